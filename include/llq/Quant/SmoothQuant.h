//===- SmoothQuant.h - Activation smoothing for W8A8 ------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// SmoothQuant (Xiao et al. 2023, "SmoothQuant: Accurate and Efficient
// Post-Training Quantization for Large Language Models"), following the
// reference implementation (mit-han-lab/smoothquant, smooth.py and
// fake_quant.py).
//
// A few input channels of LLM activations carry outliers 10-100x larger than
// the rest, which ruins per-token int8 activation quantization. Since
// X W^T = (X diag(1/s)) (W diag(s))^T, dividing channel j of the activations
// by s_j and multiplying the weights' column j by s_j migrates part of that
// range from the activations, which are hard to quantize, to the weights,
// which are easy. alpha sets how much is migrated.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_QUANT_SMOOTHQUANT_H
#define LLQ_QUANT_SMOOTHQUANT_H

#include <cstdint>
#include <vector>

namespace llq::quant {

/// Returns the smoothing factors of the input channels shared by the layers
/// \p weights (layer i is rows[i] x k, row-major):
///
///   s_j = actMax_j^alpha / wMax_j^(1 - alpha),
///
/// with wMax_j = max over all layers and rows of |W[r, j]|. As in the
/// reference (smooth_ln_fcs), wMax is clamped below at 1e-5 and so is s; the
/// activation maxima are used as they are (a dead channel, actMax_j = 0, gets
/// s_j = 1e-5 for alpha > 0, and 1 / wMax_j for alpha = 0 since 0^0 = 1).
/// Computed in float64 and rounded to float once. The caller divides the
/// operation producing the input by s and multiplies every W by s.
std::vector<float> smoothQuantScales(const std::vector<float> &actMax,
                                     const std::vector<const float *> &weights,
                                     const std::vector<int64_t> &rows,
                                     int64_t k, double alpha);

/// Fake-quantizes the row-major \p rows x \p k activations \p x in place,
/// per token and symmetrically to \p bits (2..8), as the reference's
/// quantize_activation_per_token_absmax: with
/// s = max(max |row|, 1e-5) / (2^(bits-1) - 1), each x becomes
/// round(x / s) * s in float32. round is torch.round's, halves to even
/// (std::nearbyint under the default rounding mode), unlike the weight
/// codes of Uniform.h, which round halves away from zero; the scale is not
/// rounded to f16, because activations are quantized at run time.
void fakeQuantizePerToken(float *x, int64_t rows, int64_t k, int bits);

} // namespace llq::quant

#endif // LLQ_QUANT_SMOOTHQUANT_H
