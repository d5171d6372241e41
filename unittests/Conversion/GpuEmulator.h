//===- GpuEmulator.h - Running generated GPU kernels on the CPU -*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Runs a kernel of the gpu.module that buildKernelModule returns (before the
// NVVM lowering) on the CPU, with the semantics of a CUDA launch, so the
// kernels that exist only as gpu.funcs (the tensor-core prefill and decode
// kernels) and the GPU form of the loop nests are tested without a GPU.
//
// The gpu.func becomes a host function: thread and block ids, barriers and
// the warp-collective instructions (nvgpu.ldmatrix, nvgpu.mma.sync) become
// calls into this emulator, the asynchronous copies become synchronous ones
// (with the source size's zero fill), dynamic shared memory becomes an
// argument, and the address spaces are dropped. The function is then
// lowered like the host loop nests and JIT-compiled.
//
// A launch runs the blocks one after another; the threads of a block are
// fibers on one OS thread, switched at every barrier and warp collective.
// A collective runs once every live thread of its warp (a barrier: of its
// block) has reached it; threads that wait on different collectives, or a
// block where nothing can run, are reported as errors. Shared memory starts
// filled with 0xcd bytes, so reads of unwritten shared memory show.
//
// What it checks: the indexing, the fragment layouts the kernels assume of
// ldmatrix and mma.sync (m16n8k16 f16 -> f32, m16n8k32 s8 -> s32, as the PTX
// ISA defines them), the dequantization arithmetic, guards and the
// pipeline's ordering under one legal interleaving of the threads. What it
// does not: timing, races that another interleaving would expose, register
// or shared-memory limits (ptxas reports those).
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_UNITTESTS_CONVERSION_GPUEMULATOR_H
#define LLQ_UNITTESTS_CONVERSION_GPUEMULATOR_H

#include "mlir/IR/BuiltinOps.h"

#include <array>
#include <cstdint>
#include <memory>
#include <string>

namespace llq::gpu::emu {

class Kernel {
public:
  /// Compiles kernel \p name of the gpu.module in \p kernels for the CPU
  /// (the module is modified). Returns null and sets \p error on failure.
  static std::unique_ptr<Kernel> create(mlir::ModuleOp kernels,
                                        const std::string &name,
                                        std::string &error);
  ~Kernel();

  /// Runs a launch of grid x block threads with \p sharedBytes of dynamic
  /// shared memory; \p params is the launch's parameter array (a pointer to
  /// each parameter of the lowered kernel: five per memref, one per i32),
  /// as cuLaunchKernel takes it. Returns "" or what went wrong.
  std::string launch(std::array<uint32_t, 3> grid,
                     std::array<uint32_t, 3> block, size_t sharedBytes,
                     void **params);

  struct Impl;

private:
  explicit Kernel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace llq::gpu::emu

#endif // LLQ_UNITTESTS_CONVERSION_GPUEMULATOR_H
