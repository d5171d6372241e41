//===- ModelKernels.h - The non-GEMM kernels of a LLaMA model ---*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Everything of a LLaMA forward pass that is not a quantized GEMM, generated
// per model (the dimensions are constants of each kernel): the embedding
// gather, RMSNorm, the residual add, RoPE with the KV-cache write,
// attention over the cache with grouped-query heads (scores, softmax,
// probabilities times values), SwiGLU, and the f16 GEMV that runs layers left
// unquantized (typically the LM head).
//
// Each kernel is an `scf.parallel` nest (blocks x threads, with GPU mapping
// attributes) written as MLIR text and specialized by substitution. The same
// nest is mapped to a gpu.launch by `convert-parallel-loops-to-gpu` for the
// GPU, and lowered as is for the host, where it runs serially: that is what
// `llq-compile --target=cpu` builds and what the CPU tests run.
//
// Conventions (every kernel):
//   * activations are row-major; m (i32, the last argument) counts rows;
//   * grid.y is m for the row-wise kernels (launch: grid(m) below);
//   * the residual stream h is f32; GEMM inputs are f16; GEMM outputs f32;
//   * ss[m] is the sum of squares of each row of h, which embed and add
//     accumulate with atomics (zero it first) and rmsnorm reads;
//   * the KV cache of a layer is f16 [maxContext][kvHeads][headDim], rows
//     written at positions pos0 .. pos0 + m - 1;
//   * scores are f32 [m][heads][maxContext]; query row r sees keys
//     0 .. pos0 + r (causal). The softmax statistics per (row, head), smax
//     (the maximum, as an order-preserving u32) and ssum, are combined by
//     the threads with atomics: zero both before the scores kernel.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_CONVERSION_LLQTOGPU_MODELKERNELS_H
#define LLQ_CONVERSION_LLQTOGPU_MODELKERNELS_H

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace llq::gpu {

/// The dimensions a model's kernels are specialized on.
struct ModelDims {
  int64_t hidden = 0, heads = 0, kvHeads = 0, headDim = 0;
  int64_t intermediate = 0, vocab = 0;
  /// KV-cache capacity in positions.
  int64_t maxContext = 0;
  float epsilon = 1e-5f;
  /// Attention's score scale (1 / sqrt(headDim) in LLaMA).
  float scale = 0;
  /// Splits of a row's keys across blocks (the GPU's: a decode step's few
  /// rows then still fill the machine). Above 1 the scores kernel runs
  /// heads x splits blocks per row, and two kernels more exist for decode
  /// steps: values_split and attn_out. 1 on the host.
  int64_t attnSplits = 1;

  /// "" or why no kernels can be built for these dimensions.
  std::string check() const;
};

enum class ModelOp {
  Embed,    ///< (ids i32, table f16 [V][D], h f32, ss f32, m)
  AddSumSq, ///< (h f32, y f32, ss f32, m): h += y, ss += rows' squares
  RmsNorm,  ///< (h f32, ss f32, weight f32 [D], out f16, m)
  Rope,     ///< (q, k, v f32, inv_freq f32 [hd/2], q_out f16, kcache,
            ///<  vcache f16, pos, m)
  Scores,   ///< (q f16, kcache f16, scores f32, smax i32, pos, m)
  Softmax,  ///< (scores f32, smax i32, ssum f32, pos, m): exp in place
  Values,   ///< (scores f32, ssum f32, vcache f16, out f16, pos, m)
  SwiGlu,   ///< (gate f32, up f32, out f16, m)
  ValuesSplit, ///< (scores f32, ssum f32, vcache f16, acc f32, pos, m):
               ///< acc += the rows' attention outputs (zero acc first)
  AttnOut,     ///< (acc f32, out f16, m): out = acc in f16
  Argmax,      ///< (logits f32 [vocab], best u64, m): greedy sampling on
               ///< the device, best = max over i of (ordered(logit_i) << 32
               ///< | ~i) (zero best first)
};
// pos: memref<?xi32> holding the first row's position. It lives in device
// memory rather than in the launch parameters so that one captured launch
// sequence (a CUDA graph) serves every decode step.

/// "embed", "add_sumsq", "rmsnorm", "rope", "scores", "softmax", "values",
/// "swiglu", "values_split", "attn_out", "argmax".
const char *modelOpName(ModelOp op);

/// One generated model kernel: its launch and its loop nest.
struct ModelKernel {
  ModelOp op;
  std::string name;
  /// Launch: grid (gridX, rowsInY ? m : gridY, 1), block (block, 1, 1).
  int64_t gridX = 1, gridY = 1;
  bool rowsInY = true;
  int64_t block = 1;
  /// The host function holding the scf.parallel nest, as MLIR text.
  std::string source;
};

/// Every model kernel for \p dims (dims.check() must be "").
std::vector<ModelKernel> buildModelKernels(const ModelDims &dims);

/// QuIP's randomized Hadamard transform T = R (x) (H_p S) of size n = m p
/// (quant::RandomizedHadamard) applied to every row of an m-row matrix, as
/// loop nests (HadamardKernels.cpp): the p-point Walsh-Hadamard transforms
/// in stages of radix <= 16 over an f32 buffer, then a finishing nest that
/// mixes the runs by R. For the inputs of a QuIP layer (transpose false):
/// T applied to x (f16) times 1/D, written as f16; for its outputs
/// (transpose true): T^T applied to the GEMM's f32 rows, written as f32.
///   stage i: (in: memref<?xf16|f32>, signs f32 [p], scale f32 [n] (1/D;
///            read by the first stage of T only), buf f32 [m][n], m)
///   finish:  (buf, signs, mix f32 [m x m] (R), out f16|f32, m)
/// Grids (stageGridX(i) or finishGridX(), m), 128 threads.
struct HadamardSpec {
  int64_t n = 0, p = 0, m = 1;
  bool transpose = false;

  struct Stage {
    int64_t stride, radix;
  };
  std::vector<Stage> stages() const;
  std::string stageName(size_t i) const;
  std::string finishName() const;
  int64_t stageGridX(size_t i) const;
  int64_t finishGridX() const;
};
std::string hadamardStageSource(const HadamardSpec &spec, size_t stage);
std::string hadamardFinishSource(const HadamardSpec &spec);

/// A GEMV/skinny GEMM over f16 weights, for layers left unquantized:
/// y[m, n] (+)= sum_k x[m, k] w[n, k] with the weights in the k-chunk layout
/// of 8 halves: w[k / 8][n] is a vector<8xf16> (GpuLayout.h's layout with
/// f16 "codes"). Arguments (x: memref<?xvector<8xf16>>, w: memref<?xvector
/// <8xf16>>, y: memref<?xf32>, m: i32); grid (ceil(n / 128), splitK),
/// block 128; accumulating (zero y first) when splitK > 1.
struct HGemvSpec {
  int64_t n = 0, k = 0;
  int mTile = 4;
  int splitK = 0; ///< 0: chosen from the shape
  /// Fills splitK and checks the shape; "" or why not.
  std::string finalize();
  std::string kernelName() const;
  int64_t chunksPerSplit() const;
};

/// The loop nest of \p spec (finalized), as MLIR text.
std::string hgemvSource(const HGemvSpec &spec);

/// Threads per block of the f16 GEMV.
constexpr int64_t kHGemvBlock = 128;

/// A GEMV/skinny GEMM over a PB-LLM layer (llq.packed_linear <pbllm>): each
/// weight is either binary, sign * binary_scale[n], or salient, an 8-bit
/// code * salient_scale[n], the salient codes of a row stored in column
/// order. Arguments (x: memref<?xf16>, signs: memref<?xi32>, salient:
/// memref<?xi32>, row_offsets: memref<?xi32>, codes: memref<?xi8>,
/// binary_scales: memref<?xf16>, salient_scales: memref<?xf16>, y:
/// memref<?xf32>, m: i32). signs and salient are the format's bit planes
/// transposed to [K / 32][N] words (coalesced across a warp), column j of a
/// word at bit j; a split of K finds its first code by counting the salient
/// bits before it. Grid (ceil(n / 128), splitK), block 128; accumulating
/// (zero y first) when splitK > 1.
struct PBLLMGemvSpec {
  int64_t n = 0, k = 0;
  int mTile = 1;
  int splitK = 0; ///< 0: chosen from the shape
  std::string finalize();
  std::string kernelName() const;
  int64_t wordsPerSplit() const;
};

/// The loop nest of \p spec (finalized), as MLIR text.
std::string pbllmGemvSource(const PBLLMGemvSpec &spec);

/// A GEMV/skinny GEMM over a BiLLM layer (llq.packed_linear <billm>). BiLLM's
/// salient columns are the same in every row, so its residual signs (salient
/// columns) and sparse-group bits (the others) are expanded at pack time
/// into one second bit plane over all K columns, which costs no space:
///   salient column:   w = (b1 ? a1 : -a1) + (b2 ? a2 : -a2)
///   other column:     w = (b1 ? 1 : -1) * (b2 ? a_sparse : a_concentrated)
/// with the four alphas of the row's block of blockSize columns. Arguments
/// (x: memref<?xf16>, mask: memref<?xi32> [K / 32], first, second:
/// memref<?xi32> [K / 32][N], alphas: memref<?xf16> [blocks][N][4] in the
/// order a1, a2, a_concentrated, a_sparse, y: memref<?xf32>, m: i32). Grid
/// (ceil(n / 128), splitK), block 128; accumulating when splitK > 1.
///
/// With `dbllm`, the same two planes hold DB-LLM's dual binarization instead:
/// w = (b1 ? a1 : 0) + a2 * (b2 - zeta) with the group's (a1, a2, zeta) in
/// alphas [groups][N][3], blockSize the group width; the kernel sums x, x
/// where b1 and x where b2 per word, and no mask is read.
struct BiLLMGemvSpec {
  int64_t n = 0, k = 0, blockSize = 0;
  int mTile = 1;
  int splitK = 0;
  bool dbllm = false;
  std::string finalize();
  std::string kernelName() const;
  int64_t wordsPerSplit() const;
};

/// The loop nest of \p spec (finalized), as MLIR text.
std::string billmGemvSource(const BiLLMGemvSpec &spec);

/// A GEMV/skinny GEMM over an NF4 layer: 4-bit codes in the k-chunk layout
/// (GpuLayout.h), each weight fma(level[code], a, tau) with the block's
/// decoded constant a and ICQ shift tau (0 without ICQ), which the pack step
/// decodes from the double-quantized constants into f32 [blocks][N]: the
/// kernel reproduces NF4's dequantize exactly. Arguments (x:
/// memref<?xvector<8xf16>>, w: memref<?xvector<4xi32>>, levels:
/// memref<?xf32> (16), scales, shifts: memref<?xf32>, y: memref<?xf32>,
/// m: i32). Grid (ceil(n / 128), splitK), block 128.
struct NF4GemvSpec {
  int64_t n = 0, k = 0, blockSize = 64;
  int mTile = 1;
  int splitK = 0;
  std::string finalize();
  std::string kernelName() const;
  int64_t chunksPerSplit() const;
};

/// The loop nest of \p spec (finalized), as MLIR text.
std::string nf4GemvSource(const NF4GemvSpec &spec);

} // namespace llq::gpu

#endif // LLQ_CONVERSION_LLQTOGPU_MODELKERNELS_H
