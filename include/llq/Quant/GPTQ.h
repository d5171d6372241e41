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

} // namespace llq::quant

#endif // LLQ_QUANT_GPTQ_H
