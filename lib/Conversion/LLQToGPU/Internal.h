//===- Internal.h - Shared pieces of the LLQToGPU kernels --------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_LIB_CONVERSION_LLQTOGPU_INTERNAL_H
#define LLQ_LIB_CONVERSION_LLQTOGPU_INTERNAL_H

#include "llq/Conversion/LLQToGPU/QGemmKernels.h"

#include <string>
#include <vector>

namespace llq::gpu {

/// Pieces of the kernels written as MLIR text: an integer literal, an f32
/// literal that round-trips ("%.9e"), and the GPU mapping attributes of a
/// blocks (x, y) x threads (x) scf.parallel nest.
inline std::string intText(int64_t v) { return std::to_string(v); }
std::string floatText(double v);
extern const char *const kMapThreadsAttr;
extern const char *const kMapBlocksAttr;

/// The frame of a rows x work nest: `func.func @name(args, %m: i32)`, then
/// scf.parallel over blocks (ceil(work / block), m) and threads (block),
/// defining %c0, %c1, %row and %g = bx * block + tx, and opening
/// `scf.if %g < work`; rowNestEnd() closes it all.
std::string rowNestBegin(const std::string &name, const std::string &args,
                         int64_t block, int64_t work);
std::string rowNestEnd();

/// Launch configuration of a finalized prefill spec for \p m rows.
QGemmLaunch prefillLaunch(const QGemmSpec &spec, int64_t m);

/// Checks a prefill spec's shape (beyond what every kernel needs); returns
/// "" or why the prefill kernel cannot be generated for it.
std::string prefillUnsupportedReason(const QGemmSpec &spec);

/// Threads per block of the decode kernel.
int64_t decodeBlockSize();

/// What each K split of a finalized decode spec covers: 128-bit chunks for
/// the CUDA-core kernel, quads of chunks for the tensor-core one.
int64_t decodeChunksPerSplit(const QGemmSpec &spec);

/// Whether a decode spec uses the tensor-core kernel (more than 4 rows).
bool decodeUsesTensorCores(const QGemmSpec &spec);

/// Output rows one block of the tensor-core decode kernel computes.
int64_t decodeMmaRowsPerBlock();

/// Dynamic shared memory of the tensor-core decode kernel (its staged
/// activation tile), and the chunk quads one step of its loop covers.
int64_t decodeMmaSharedBytes(const QGemmSpec &spec);
int64_t decodeMmaQuadsPerStep(const QGemmSpec &spec);

/// Builds the tensor-core decode kernel of \p spec as a gpu.func in
/// \p gpuModule (DecodeMmaKernel.cpp).
mlir::Operation *buildDecodeMmaKernel(mlir::OpBuilder &b,
                                      mlir::Operation *gpuModule,
                                      const QGemmSpec &spec);

} // namespace llq::gpu

#endif // LLQ_LIB_CONVERSION_LLQTOGPU_INTERNAL_H
