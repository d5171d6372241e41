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

/// A kernel given as MLIR text: a module holding one func.func called
/// `name` whose body is an scf.parallel nest with GPU mapping attributes
/// (ModelKernels.h).
struct LoopNestKernel {
  std::string name;
  std::string source;
};

/// Builds `module { gpu.module @llq_kernels { ... } }` with one kernel per
/// finalized spec and per loop nest. Errors are emitted on the context.
mlir::OwningOpRef<mlir::ModuleOp>
buildKernelModule(mlir::MLIRContext &ctx, llvm::ArrayRef<QGemmSpec> specs,
                  llvm::ArrayRef<LoopNestKernel> nests = {});

/// Builds a module of host functions, one per decode spec with a CUDA-core
/// loop nest (mTile <= 4) and per loop nest, not yet lowered.
mlir::OwningOpRef<mlir::ModuleOp>
buildHostKernelModule(mlir::MLIRContext &ctx, llvm::ArrayRef<QGemmSpec> specs,
                      llvm::ArrayRef<LoopNestKernel> nests);

/// Lowers a module of loop nests for the host (lowerLoopNestsForHost) and
/// adds to each function `f` an entry point `f_packed(void **params)` that
/// takes its parameters as cuLaunchKernel does: params[i] points to the i-th
/// parameter of the expanded ABI (a memref is five: allocated and aligned
/// pointers, offset, size, stride), followed by two i64 parameters, the range
/// [lo, hi) of grid.x blocks to run. Launchers therefore pack the same array
/// for the GPU and for the host, and may split a host launch across threads
/// by ranges of blocks.
mlir::LogicalResult lowerHostKernels(mlir::ModuleOp module);

/// Optimizes a lowered host module (lowerHostKernels) at -O3 and emits an
/// object file for the machine it runs on; returns its bytes.
llvm::Expected<std::string> emitHostObject(mlir::ModuleOp module);

/// Links \p object into a shared library with the system C compiler (found
/// as $CC, cc, gcc or clang); returns the library's bytes.
llvm::Expected<std::string> linkSharedLibrary(llvm::StringRef object);

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
