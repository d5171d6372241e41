//===- Pipeline.h - From kernel specs to PTX and cubins ----------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
//   specs ─ build ─▶ module { gpu.module @llq_kernels { gpu.func ... } }
//     decode:  scf.parallel nest ─ convert-parallel-loops-to-gpu ─ outline ─▶
//              gpu.func with its arguments put in the ABI order
//     prefill: gpu.func built directly (nvgpu tensor-core ops)
//   ─ lower ─▶ convert-scf-to-cf, convert-nvgpu-to-nvvm, convert-gpu-to-nvvm,
//              nvvm-attach-target, gpu-module-to-binary{format=isa} ─▶ PTX
//   ─ ptxas ─▶ cubin (+ its -v resource report)
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_CONVERSION_LLQTOGPU_PIPELINE_H
#define LLQ_CONVERSION_LLQTOGPU_PIPELINE_H

#include "llq/Conversion/LLQToGPU/QGemmKernels.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace llq::gpu {

/// The name of the gpu.module that holds every generated kernel.
inline constexpr llvm::StringLiteral kKernelModuleName = "llq_kernels";

/// Registers the dialects, extensions and translations that building,
/// lowering and JIT-running kernels need, and (once) their passes.
void registerKernelCompilation(mlir::DialectRegistry &registry);

/// Builds `module { gpu.module @llq_kernels { ... } }` with one kernel per
/// finalized spec. Errors are emitted on the context.
mlir::OwningOpRef<mlir::ModuleOp>
buildKernelModule(mlir::MLIRContext &ctx, llvm::ArrayRef<QGemmSpec> specs);

/// Lowers (a clone of) \p kernels to PTX for \p chip ("sm_80", "sm_90").
mlir::FailureOr<std::string> lowerKernelsToPtx(mlir::ModuleOp kernels,
                                               llvm::StringRef chip);

/// A cubin and what ptxas said of each kernel (registers, spills).
struct Cubin {
  std::string bytes;
  std::string report;
};

/// Assembles \p ptx for \p chip with ptxas, found as $LLQ_PTXAS,
/// $CUDA_HOME/bin/ptxas, /usr/local/cuda/bin/ptxas or on PATH.
llvm::Expected<Cubin> assemblePtx(llvm::StringRef ptx, llvm::StringRef chip);

/// Lowers a module of decode loop nests (buildDecodeLoopNest) to the LLVM
/// dialect for the host, so the nests run on the CPU.
mlir::LogicalResult lowerLoopNestsForHost(mlir::ModuleOp module);

} // namespace llq::gpu

#endif // LLQ_CONVERSION_LLQTOGPU_PIPELINE_H
