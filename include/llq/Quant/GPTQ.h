//===- GPTQ.h - GPTQ weight quantization ------------------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers"), following the reference
// implementation (IST-DASLab/gptq, gptq.py: fasterquant).
//
// GPTQ quantizes the columns of W (N x K) one at a time and, after each,
// moves the column's rounding error onto the columns not yet quantized so
// that the layer's output X W^T changes as little as possible on the
// calibration inputs. With U the upper Cholesky factor of H^-1
// (H^-1 = U^T U), quantizing column i of every row w is
//
//     q_i = Q(w_i),  e = (w_i - q_i) / U_ii,  w_j -= e * U_ij for j > i,
//
// which is the Optimal Brain Surgeon update restricted to the columns after
// i. The updates of a block of columns are applied to the rest of the matrix
// in one matrix product ("lazy batch updates"). Rows are independent.
//
// Rounding is the project's uniform convention (Uniform.h), so a row's codes,
// f16 scales and zeros mean exactly what they mean after quantizeRTN.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_QUANT_GPTQ_H
#define LLQ_QUANT_GPTQ_H

#include "llq/Quant/Uniform.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace llq::quant {

/// How gptqQuantize runs.
struct GPTQOptions {
  /// The code format: bits, group size along K (0 = per channel), symmetry.
  UniformScheme scheme;
  /// Columns per lazy batch. Only speed depends on it (see gptqQuantize).
  int64_t blockSize = 128;
  /// Damping added to diag(H): dampPercent * mean(diag(H)) (the reference's
  /// percdamp, a fraction despite its name).
  double dampPercent = 0.01;
  /// Process columns by decreasing diag(H) (the reference's --act-order), so
  /// that the columns with the largest inputs are quantized while there are
  /// most columns left to absorb their error.
  bool actOrder = false;
  /// Compute every group's parameters from the original weights before any
  /// column is quantized (the reference's --static-groups). Implied when
  /// actOrder is set and groupSize > 0: the packed format has contiguous
  /// groups along the original K and no per-column group index, so groups
  /// cannot follow the processing order. Per-channel parameters are always
  /// computed from the original weights, as in the reference.
  bool staticGroups = false;
};

/// Quantizes the row-major \p n x \p k matrix \p w given the Hessian \p h
/// (row-major k x k, symmetric, consumed as scratch), and writes the codes,
/// scales and zeros to \p out in the original column order.
///
/// Dead columns (H_ii == 0: the input feature was always zero) get H_ii = 1
/// and weight 0, as in the reference, before anything else; their code
/// decodes to exactly 0. Then diag(H) is damped and U is formed.
///
/// Groups are formed along the original column order. Without static groups,
/// a group's parameters come from the error-compensated weights when its
/// first column is reached (processing order is the original order, since
/// act-order implies static groups). Those weights are exact: a lazy batch is
/// cut short where a group starting inside it would run past its end, so a
/// group's columns have received every update they are owed when it starts,
/// and the result does not depend on blockSize. (The reference reads groups
/// that start inside a block from a copy lacking that block's updates so far;
/// the two agree whenever the block size divides the group size, e.g. the
/// defaults 128 and 128.)
///
/// Act-order ranks columns by diag(H) after the dead-column fix, ties by
/// increasing index (a stable sort; torch.argsort leaves ties unspecified).
///
/// Returns false with a message in \p error when the scheme or options are
/// invalid, \p h is not k x k or not finite, or H is not positive definite
/// after damping (Cholesky failed; the caller may retry with more damping).
///
/// \p squaredError, when given, receives the reference's "error": the sum
/// over all weights of (w - q)^2 / U_ii^2 / 2 with w the compensated weight,
/// which equals 1/2 * sum over rows of (q - w0)^T H (q - w0) for the original
/// row w0 (dead columns zeroed) and the damped H.
bool gptqQuantize(const float *w, int64_t n, int64_t k, std::vector<float> h,
                  const GPTQOptions &options, UniformMatrix &out,
                  std::string &error, double *squaredError = nullptr);

//===----------------------------------------------------------------------===//
// The machinery other error-compensating quantizers share with GPTQ
//===----------------------------------------------------------------------===//

/// Returns an empty string if \p h can be the Hessian of a layer of \p n rows
/// and \p k columns (k * k finite entries, shapes BLAS and LAPACK can index)
/// and \p dampPercent is finite and non-negative, else what is wrong.
std::string validateHessian(int64_t n, int64_t k, const std::vector<float> &h,
                            double dampPercent);

/// Dead inputs: no token ever had feature i (H_ii == 0), so column i of the
/// weights cannot affect the output. Sets H_ii = 1, which keeps H invertible,
/// and zeroes column i of the row-major \p n x \p k \p w, as the reference
/// does.
void fixDeadColumns(std::vector<float> &h, int64_t k, float *w, int64_t n);

/// Adds \p dampPercent * mean(diag(H)) to diag(H) and replaces the k x k \p h
/// with U, the upper Cholesky factor of the damped H^-1 (H^-1 = U^T U), lower
/// triangle zeroed. Returns false with a message in \p error when the damped
/// H is not positive definite.
bool dampAndInvertHessian(std::vector<float> &h, int64_t k, double dampPercent,
                          std::string &error);

/// GPTQ's column sweep for any rounding rule. Columns of the row-major
/// \p n x \p k \p w are taken in blocks of \p blockSize. For each block
/// [begin, end), \p beginBlock(begin, end) is called first, when the block's
/// weights have received every update they are owed (a quantizer that decides
/// a whole block at once reads them then); then every column i of the block,
/// in order, is quantized in every row r to q = \p quantize(r, i, w_ri) and
/// its error is spread over the columns after it with U (\p u, from
/// dampAndInvertHessian):
///
///     e = (w_ri - q) / U_ii,  w_rj -= e * U_ij for j > i.
///
/// On return \p w holds the quantized values. \p quantize is called
/// concurrently for different rows. Returns the sum of e^2 / 2, which equals
/// 1/2 * sum over rows of (q - w0)^T H (q - w0) for the original rows w0 and
/// the damped H whatever the rounding rule: the errors e of a row solve
/// e U = w0 - q, and U^-1 U^-T = H.
double compensateColumns(
    float *w, int64_t n, int64_t k, const std::vector<float> &u,
    int64_t blockSize, const std::function<void(int64_t, int64_t)> &beginBlock,
    const std::function<float(int64_t, int64_t, float)> &quantize);

} // namespace llq::quant

#endif // LLQ_QUANT_GPTQ_H
