//===- Binarize.h - Binarization of LLM weights -----------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The study's binarization methods on a row-major weight matrix W (N x K, rows
// = output channels) with, where the method is calibrated, the Hessian
// H = 2/t X^T X (K x K) of its inputs:
//
//  * sign binarization, the baseline: w ~ alpha * sign(w) with alpha the mean
//    |w| of the row or group, the alpha that minimizes the squared error
//    ("XNOR-Net: ImageNet Classification Using Binary Convolutional Neural
//    Networks", Rastegari et al. 2016);
//  * BiLLM ("BiLLM: Pushing the Limit of Post-Training Quantization for LLMs",
//    Huang et al. 2024): per block of columns, salient columns get a residual
//    two-term binarization and the others are split at a break point into two
//    groups binarized apart, with GPTQ's error compensation between blocks;
//  * PB-LLM ("PB-LLM: Partially Binarized Large Language Models", Shang et al.
//    2023): a fraction of salient weights kept as 8-bit codes, the rest
//    binarized, GPTQ's error compensation column by column;
//  * DB-LLM ("DB-LLM: Accurate Dual-Binarization for Efficient LLMs", Chen et
//    al. 2024): 2-bit weights as two binary planes with their own scales.
//
// Each method returns the representation a deployment stores: bit planes in
// Packing.h's layout (1 bit per weight, rows padded to 32-bit words), masks,
// f16 scales and, for PB-LLM, int8 codes. dequantize() reconstructs the float
// matrix from exactly that representation, bit for bit what the method
// computed, and storedBytes() counts every byte of it, so that
// bitsPerWeight() is the honest storage cost. The papers count only the
// weights' payload (BiLLM's 1.08 bits are one sign bit per weight and a
// second per salient one; PB-LLM's 1.7 bits are 1 per binarized and 8 per
// salient weight). What they leave out costs BiLLM about 1.5 bits per weight
// (the group bitmap, 1 bit per non-salient weight, and four f16 alphas per row
// and block of 128), PB-LLM 1 bit per weight for the salient bitmap plus 64
// bits per row.
//
// Sign bits are 1 for +1 and 0 for -1, and sign(0) = +1. Scales are rounded
// to f16 before the values they decode are computed, as in Uniform.h.
//
// Saliency. Both BiLLM and PB-LLM rank weights by the Optimal Brain Surgeon
// cost of removing them, w_ij^2 / [H^-1]_jj in OBS; the papers write
// w^2 / [H^-1]_jj^2 and their code divides by the square of diag(U), U the
// upper Cholesky factor of H^-1, which is OBS's denominator for the columns
// not yet quantized (GPTQ: [H_F^-1]_jj = U_jj^2). We follow the code:
// s_ij = w_ij^2 / U_jj^2, with U from the damped Hessian.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_QUANT_BINARIZE_H
#define LLQ_QUANT_BINARIZE_H

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace llq::quant {

/// Returns 8 * \p bytes / (\p rows * \p cols), the bits per weight that
/// \p bytes of storage cost for a rows x cols matrix (0 for an empty one).
double bitsPerWeight(int64_t bytes, int64_t rows, int64_t cols);

//===----------------------------------------------------------------------===//
// Sign binarization
//===----------------------------------------------------------------------===//

/// A rows x cols matrix stored as alpha * B with B = +-1.
struct SignMatrix {
  int64_t rows = 0, cols = 0;
  /// Columns per group along K; 0 means one group per row.
  int64_t groupSize = 0;
  int64_t groups = 0;
  /// rows x packedWordsPerRow(cols, 1) words of sign bits.
  std::vector<uint32_t> signs;
  /// rows x groups alphas as f16 bits.
  std::vector<uint16_t> scales;

  int64_t storedBytes() const;
};

/// Binarizes each group of \p groupSize columns (0: each row) of the
/// row-major \p rows x \p cols \p w as alpha * sign(w), alpha = mean |w|.
SignMatrix binarizeSign(const float *w, int64_t rows, int64_t cols,
                        int64_t groupSize);

/// Writes the rows * cols values of \p m to \p out, row-major.
void dequantize(const SignMatrix &m, float *out);

//===----------------------------------------------------------------------===//
// BiLLM
//===----------------------------------------------------------------------===//
//
// Following the paper's Algorithm 1 and the reference code
// (Aaronhuang-778/BiLLM, bigptq.py and utils/), for each block of 128 columns,
// on the weights as compensated so far:
//
//  1. Salient columns. Columns are ranked by sum_i s_ij. The top c columns are
//     salient, c in 1..49 chosen to minimize the block's squared error when
//     both the salient and the other columns get the residual binarization
//     below (the reference's structural search over its top 50 columns).
//  2. Residual binarization of the salient weights of each row:
//     alpha1 B1 = binarize(w), alpha2 B2 = binarize(w - alpha1 B1), so
//     w ~ alpha1 B1 + alpha2 B2 (two sign bits per weight).
//  3. The bell-shaped split of the other weights: a break point p, one per
//     block, searched over the quantiles 0.10, 0.11, ..., 0.90 of their |w|
//     (the reference's grid, which lies between 0 and max |w| and follows the
//     distribution rather than its outliers), puts |w| <= p in the
//     concentrated group and |w| > p in the sparse one; each group of each
//     row is binarized with its own alpha, and p minimizes the block's
//     squared error.
//  4. Compensation. The block's error moves onto the columns after it with
//     U. The paper and its code scale the block's errors by diag(U) only,
//     E = (W_b - Q_b) / diag(U_bb); we use the exact OBS update of a block
//     quantized at once, E = (W_b - Q_b) U_bb^-1, which GPTQ's in-block sweep
//     computes (compensateColumns with the block's values fixed up front).
//     The two agree when U_bb is diagonal; the exact one is the minimizer of
//     the output error over the remaining columns, and the tests show it
//     lowers the layer's output error.
//
// Where the reference also subtracts a per-row mean before each binarization,
// we binarize around zero as the paper's equations do: the mean would cost
// another f16 per row, part and block.

/// How billmQuantize runs.
struct BiLLMOptions {
  /// Columns per block; each block has its own salient columns, break point
  /// and alphas.
  int64_t blockSize = 128;
  /// Damping added to diag(H), as in GPTQOptions.
  double dampPercent = 0.01;
  /// Salient column counts tried per block: 1 .. min(this, block width).
  int64_t maxSalientColumns = 49;
};

/// The alphas BiLLM stores per row and block, in this order.
enum BiLLMScale {
  kSalientFirst,
  kSalientResidual,
  kConcentrated,
  kSparse,
  kNumBiLLMScales
};

/// A BiLLM-binarized rows x cols matrix. Salient columns are the same in every
/// row, so every row has salientCount salient weights.
struct BiLLMMatrix {
  int64_t rows = 0, cols = 0, blockSize = 0, blocks = 0;
  /// Salient columns over all blocks.
  int64_t salientCount = 0;
  /// packedWordsPerRow(cols, 1) words: bit j is set if column j is salient.
  std::vector<uint32_t> salientColumns;
  /// rows x packedWordsPerRow(cols, 1): every weight's sign bit (B1 for the
  /// salient ones).
  std::vector<uint32_t> signs;
  /// rows x packedWordsPerRow(salientCount, 1): B2 of each row's salient
  /// weights in column order.
  std::vector<uint32_t> residualSigns;
  /// rows x packedWordsPerRow(cols - salientCount, 1): 1 where a non-salient
  /// weight (in column order) is in its block's sparse group.
  std::vector<uint32_t> sparse;
  /// rows x blocks x kNumBiLLMScales alphas as f16 bits.
  std::vector<uint16_t> scales;

  int64_t storedBytes() const;
};

/// Binarizes the row-major \p n x \p k \p w with BiLLM given the Hessian \p h
/// (row-major k x k, symmetric, consumed as scratch). Dead columns
/// (H_ii == 0) are zeroed first, as in GPTQ. \p approximation, when given,
/// receives the n x k values the method chose, \p squaredError the sum of the
/// scaled errors as in gptqQuantize.
///
/// Returns false with a message in \p error when the options are invalid,
/// \p h is not k x k or not finite, or H is not positive definite after
/// damping.
bool billmQuantize(const float *w, int64_t n, int64_t k, std::vector<float> h,
                   const BiLLMOptions &options, BiLLMMatrix &out,
                   std::string &error,
                   std::vector<float> *approximation = nullptr,
                   double *squaredError = nullptr);

/// Writes the rows * cols values of \p m to \p out, row-major.
void dequantize(const BiLLMMatrix &m, float *out);

/// The residual binarization of \p x[0..m): writes B1 and B2 sign bits to
/// \p first and \p second and returns the stored (f16) alpha1 and alpha2.
/// x_i decodes to residualValue(first[i], second[i], alpha1, alpha2).
std::pair<float, float> residualBinarize(const float *x, int64_t m,
                                         uint8_t *first, uint8_t *second);

/// The value of a weight with residual sign bits \p b1 and \p b2.
inline float residualValue(bool b1, bool b2, float alpha1, float alpha2) {
  return (b1 ? alpha1 : -alpha1) + (b2 ? alpha2 : -alpha2);
}

/// BiLLM's break point for the row-major \p rows x \p cols non-salient
/// weights \p w of a block: the candidate quantile of their |w| (numpy's
/// linear interpolation) whose split minimizes the squared error of binarizing
/// each row's |w| <= p and |w| > p apart with their mean |w|; the first one
/// on ties. 0 when there are no weights.
float billmBreakPoint(const float *w, int64_t rows, int64_t cols);

//===----------------------------------------------------------------------===//
// PB-LLM
//===----------------------------------------------------------------------===//
//
// Following the paper's GPTQ-based post-training variant and the reference
// code (hahnyuan/PB-LLM, gptq_pb/): the salient weights are the top fraction
// of s_ij over the whole matrix (ties by position), chosen once from the
// weights before compensation. Each row keeps its salient weights as 8-bit
// symmetric codes (Uniform.h's rule, scale from the row's max |w|, as the
// reference calibrates its 8-bit quantizer on the whole row) and binarizes
// the others as alpha * sign(w) with alpha the mean |w| of the row's
// non-salient weights, the paper's optimal scaling factor. Then GPTQ's sweep
// quantizes column by column, compensating each error, in blocks of 128.
//
// The salient fraction for a target average bit-width follows the paper's
// accounting, 8 bits per salient and 1 per binarized weight:
// bits = 1 + 7 * fraction, so 1.7 bits keep 10% and 2 bits 1/7 (14.3%);
// 20% would be 2.4 bits. Storage adds the salient bitmap and the scales.
//
// The salient codes are stored sparsely: the bitmap gives their positions
// and each row's codes follow in column order, found through per-row offsets.
// Column indices (16 bits per salient weight) would repeat what the bitmap
// says at twice its cost for fractions above 1/16.

/// The salient fraction PB-LLM keeps for \p averageBits in the paper's
/// accounting, (averageBits - 1) / 7.
double pbllmSalientFraction(double averageBits);

/// How pbllmQuantize runs.
struct PBLLMOptions {
  /// Fraction of all weights kept as 8-bit codes, in [0, 1].
  double salientFraction = 0.1;
  /// Columns per lazy batch of the compensation; only speed depends on it.
  int64_t blockSize = 128;
  /// Damping added to diag(H), as in GPTQOptions.
  double dampPercent = 0.01;
};

/// A PB-LLM-quantized rows x cols matrix.
struct PBLLMMatrix {
  int64_t rows = 0, cols = 0;
  /// rows x packedWordsPerRow(cols, 1): sign bits of the binarized weights, 0
  /// at salient positions.
  std::vector<uint32_t> signs;
  /// rows x packedWordsPerRow(cols, 1): 1 at salient positions.
  std::vector<uint32_t> salient;
  /// rows + 1 offsets: row r's salient codes are
  /// codes[rowOffsets[r], rowOffsets[r + 1]), in column order.
  std::vector<uint32_t> rowOffsets;
  /// Salient weights as symmetric 8-bit codes: w = code * salientScale.
  std::vector<int8_t> codes;
  /// Per row, f16 bits: alpha of the binarized weights.
  std::vector<uint16_t> binaryScales;
  /// Per row, f16 bits: step of the salient codes.
  std::vector<uint16_t> salientScales;

  int64_t storedBytes() const;
};

/// Quantizes the row-major \p n x \p k \p w with PB-LLM given the Hessian
/// \p h (row-major k x k, symmetric, consumed as scratch). Dead columns,
/// outputs and errors as in billmQuantize.
bool pbllmQuantize(const float *w, int64_t n, int64_t k, std::vector<float> h,
                   const PBLLMOptions &options, PBLLMMatrix &out,
                   std::string &error,
                   std::vector<float> *approximation = nullptr,
                   double *squaredError = nullptr);

/// Writes the rows * cols values of \p m to \p out, row-major.
void dequantize(const PBLLMMatrix &m, float *out);

//===----------------------------------------------------------------------===//
// DB-LLM
//===----------------------------------------------------------------------===//
//
// Flexible dual binarization: each group of g columns of a row is
//
//     w ~ alpha1 * b1 + alpha2 * (b2 - zeta),   b1, b2 in {0, 1},
//
// two binary planes with their own scales and an offset -alpha2 * zeta. It
// starts as 2-bit uniform quantization (Uniform.h, asymmetric): the code
// q = 2 b1 + b2 splits into its bits, alpha1 = 2s, alpha2 = s and zeta = z, so
// that the group decodes exactly to (q - z) s. The paper then makes alpha1 and
// alpha2 free. Here they and the offset are refined by least squares on the
// group, alternating with re-assigning each weight the nearest of the four
// values; a step is kept only if, with its parameters rounded to f16, it
// lowers the group's squared error, which therefore never exceeds RTN's.
// Storing the offset as zeta, in units of alpha2, keeps the 2-bit start exact
// (-z s needs 12 significant bits for z = 3, more than f16 holds).
//
// The paper's second half, deviation-aware distillation, fine-tunes the
// scales end to end against the full-precision model's predictions, weighting
// samples by their entropy. That is training: it needs gradients through the
// whole network, an optimizer and a training corpus, none of which a
// post-training compiler pass has (calibration runs forward only, one block at
// a time). It is out of scope; this is the post-training part.

/// How dbllmQuantize runs.
struct DBLLMOptions {
  /// Columns per group along K; 0 means one group per row.
  int64_t groupSize = 128;
  /// Refinement steps (least squares, then re-assignment) per group at most;
  /// 0 keeps the 2-bit uniform start.
  int refineIterations = 20;
};

/// The parameters DB-LLM stores per group, in this order.
enum DBLLMParam { kFirstScale, kSecondScale, kOffset, kNumDBLLMParams };

/// A DB-LLM-quantized rows x cols matrix.
struct DBLLMMatrix {
  int64_t rows = 0, cols = 0, groupSize = 0, groups = 0;
  /// rows x packedWordsPerRow(cols, 1) words each: the b1 and b2 planes.
  std::vector<uint32_t> first, second;
  /// rows x groups x kNumDBLLMParams f16 bits: alpha1, alpha2, zeta.
  std::vector<uint16_t> params;

  int64_t storedBytes() const;
};

/// Quantizes the row-major \p rows x \p cols \p w with DB-LLM's dual
/// binarization. \p approximation as in billmQuantize.
DBLLMMatrix dbllmQuantize(const float *w, int64_t rows, int64_t cols,
                          const DBLLMOptions &options,
                          std::vector<float> *approximation = nullptr);

/// Writes the rows * cols values of \p m to \p out, row-major.
void dequantize(const DBLLMMatrix &m, float *out);

/// The values codes 2 b1 + b2 = 0..3 of a group decode to:
/// alpha1 * b1 + alpha2 * (b2 - zeta), computed in float64 (where every
/// product of f16 values is exact) and rounded to float once.
std::array<float, 4> dualBinaryLevels(float alpha1, float alpha2, float zeta);

} // namespace llq::quant

#endif // LLQ_QUANT_BINARIZE_H
