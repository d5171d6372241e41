//===- QGemmKernels.h - Generated quantized GEMM kernels --------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// llq generates one fused dequantize + GEMM kernel per quantized layer shape
// and batch regime, as MLIR (scf / gpu / nvgpu / vector / arith / memref)
// that MLIR's NVVM path and LLVM's NVPTX backend compile to PTX and cubins.
//
//  * decode (M <= 64): a split-K skinny GEMM. Up to 4 rows, on CUDA cores:
//    each thread owns one output row n and a contiguous range of 128-bit
//    chunks of one K split; it loads each chunk once (16 bytes, coalesced
//    across the warp), turns codes into f16 with the bit trick of
//    GpuLayout.h, and multiplies them with all M activation rows. From 5 to
//    64 rows, on tensor cores: W is mma.sync's A operand, fed straight from
//    the chunk loads (DecodeMmaKernel.cpp). Splits combine with atomic f32
//    adds, so y must be zeroed before a launch with splitK > 1.
//  * prefill (large M): tensor-core mma.sync m16n8k16 tiles fed by
//    ldmatrix, the weight tile dequantized on the way from global memory,
//    the activation tile staged by cp.async.
//
// Every kernel reads the k-chunk weight layout and [G][N] f16 group
// constants (llq/Quant/GpuLayout.h). Activations are f16, row-major M x K;
// results are f32, row-major M x N.
//
// Kernel ABI (what a launcher passes): the gpu.func arguments in order
//   x: memref<?xf16> (decode: memref<?xvector<8xf16>>, 16-byte loads),
//   w: memref<?xvector<4xi32>>, scales: memref<?xf16>,
//   biases: memref<?xf16>, y: memref<?xf32>, m: i32
// each memref expanded by the NVVM lowering into five parameters
// (allocated ptr, aligned ptr, i64 offset, i64 size, i64 stride), so a
// launch takes 26 parameters. Kernels read only the aligned pointers (offset
// 0, stride 1); sizes are informational and never bound accesses, which
// the shapes a kernel is specialized on and m determine.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_CONVERSION_LLQTOGPU_QGEMMKERNELS_H
#define LLQ_CONVERSION_LLQTOGPU_QGEMMKERNELS_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

#include <array>
#include <cstdint>
#include <string>

namespace llq::gpu {

enum class QGemmKind { Decode, Prefill };

/// What one generated kernel is specialized on.
struct QGemmSpec {
  QGemmKind kind = QGemmKind::Decode;
  int bits = 4;
  int64_t n = 0, k = 0;
  int64_t group = 128;
  /// Decode: the largest M the kernel handles (its accumulators per thread);
  /// more than 4 selects the tensor-core kernel.
  int mTile = 1;
  /// Decode: K splits (grid.y); 0 picks one from the shape.
  int splitK = 0;
  /// Activation quantization (W8A8-style layers; decode, up to 4 rows):
  /// activations are rounded to actBits-bit integers, per token with scale
  /// max|x| / (2^(actBits-1) - 1), or per tensor with the static actStep
  /// when it is positive; the products run in integers. 0: f16 activations.
  int actBits = 0;
  float actStep = 0;
  /// Integer prefill: the bits the codes use within their container
  /// (3 in 4, 5 to 7 in 8; 0: all of it). 8-bit codes must have zero point
  /// 128 (symmetric); narrower codes may have any zero point.
  int codeBits = 0;

  /// Fills splitK when 0 and checks the shape; returns "" or why the
  /// kernel cannot be generated.
  std::string finalize();
  /// A symbol name unique to the specialization, e.g.
  /// llq_qgemv_w4_g128_n4096_k4096_m1_s16.
  std::string kernelName() const;
};

/// How to launch a generated kernel.
struct QGemmLaunch {
  std::string name;
  std::array<int64_t, 3> grid{1, 1, 1}, block{1, 1, 1};
  int64_t sharedBytes = 0;
  /// Whether y accumulates (atomics) and must be zeroed first.
  bool accumulates = false;
  /// The output tile of a block: rows of x (prefill) and output features
  /// (both kernels; the decode kernels' grid.x is ceil(N / tileN)).
  int64_t tileM = 0, tileN = 0;
};

/// Launch configuration of \p spec (finalized) for \p m rows.
QGemmLaunch qgemmLaunch(const QGemmSpec &spec, int64_t m);

/// Builds the decode kernel of \p spec as a host function holding an
/// scf.parallel nest (blocks x threads, with GPU mapping attributes) whose
/// body reads and writes the ABI's memrefs. The nest runs on the CPU as is
/// (the kernels' CPU tests JIT it) and maps to a gpu.launch with
/// `convert-parallel-loops-to-gpu`. Returns the func.func.
/// With \p hostMath (the host library's form), products and partial sums
/// are f32 rather than f16x2: the same algorithm, without the f16
/// arithmetic CPUs lack.
mlir::Operation *buildDecodeLoopNest(mlir::OpBuilder &b, mlir::ModuleOp module,
                                     const QGemmSpec &spec,
                                     bool hostMath = false);

/// The decode kernel of an activation-quantized \p spec (actBits > 0) as
/// MLIR text: a host function holding the same blocks x threads nest as
/// buildDecodeLoopNest, whose threads accumulate integer products per
/// 128-bit chunk of the rows the activation-quantization nests wrote (see
/// ActQuantSpec). Its arguments are the integer prefill kernel's:
///   (xq: memref<?xvector<4xi32>>, w, scales, biases, y,
///    xs: memref<?xf32>, m: i32)
/// With \p hostMath (the host library's form) the products run on whole
/// vectors of 16 i32 lanes (the same exact integer sums).
std::string buildDecodeActQuantSource(const QGemmSpec &spec,
                                      bool hostMath = false);

/// The activation quantization ahead of an integer GEMM, decode or prefill
/// (actBits > 0): x (f16, M x K) becomes xq, actBits-bit integers in bytes, in the
/// byte order of the weights' container (quant::kChunkByteOrder), and xs,
/// each row's step, which the GEMM's epilogue multiplies in. Per token the
/// step is max|x[m, :]| / (2^(actBits-1) - 1), taken in two nests: `amax`
/// writes the maximum of each segment of segment() values, `quant`
/// combines a row's segment maxima and quantizes its segment. With a static
/// step only `quant` runs. Both are host functions holding scf.parallel
/// nests (grid (ceil(S / kActQuantBlock), m), block kActQuantBlock, with S
/// = K / segment()), as the model kernels are:
///   amax(x: memref<?xvector<8xf16>>, part: memref<?xf32>, m: i32)
///   quant(x: memref<?xvector<8xf16>>, part: memref<?xf32>,
///         xq: memref<?xvector<4xi32>>, xs: memref<?xf32>, m: i32)
/// The rounding is the decode kernels' (round half to even after a
/// multiplication by the reciprocal step, clamped to [-qmax - 1, qmax]).
constexpr int64_t kActQuantBlock = 32;

struct ActQuantSpec {
  int64_t k = 0;
  /// Container bits of the weights whose byte order xq follows.
  int order = 8;
  int actBits = 8;
  /// Positive: a static per-tensor step (no amax nest).
  float actStep = 0;

  /// Values per segment: the largest of 128, 64, 32, 16 that divides K
  /// (K must be a multiple of 16).
  int64_t segment() const {
    int64_t s = 128;
    while (s > 16 && k % s)
      s /= 2;
    return s;
  }
  int64_t segments() const { return k / segment(); }
  int64_t gridX() const {
    return (segments() + kActQuantBlock - 1) / kActQuantBlock;
  }
  /// "" when the step is static.
  std::string amaxName() const;
  std::string quantName() const;
};

/// The activation quantization an integer \p spec (decode or prefill) reads.
ActQuantSpec actQuantSpecOf(const QGemmSpec &spec);
std::string buildActAmaxSource(const ActQuantSpec &spec);
std::string buildActQuantSource(const ActQuantSpec &spec);

/// Builds the prefill kernel of \p spec directly as a gpu.func in
/// \p gpuModule (tensor-core instructions have no CPU form).
mlir::Operation *buildPrefillKernel(mlir::OpBuilder &b, mlir::Operation *gpuModule,
                                    const QGemmSpec &spec);

} // namespace llq::gpu

#endif // LLQ_CONVERSION_LLQTOGPU_QGEMMKERNELS_H
