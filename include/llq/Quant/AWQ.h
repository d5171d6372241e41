//===- AWQ.h - Activation-aware weight quantization -------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// AWQ (Lin et al. 2023, "AWQ: Activation-aware Weight Quantization for LLM
// Compression and Acceleration"), following the reference implementation
// (mit-han-lab/llm-awq, awq/quantize/auto_scale.py and auto_clip.py).
//
// AWQ keeps plain round-to-nearest codes but changes what is rounded:
//
//  * scaling: input channel j of the layers that share an input is
//    multiplied by s_j before quantization (and the producer of the input
//    divides by s_j), with s = mean|x|^alpha and alpha chosen on a grid to
//    minimize the output error, so that the weights of salient channels,
//    those with large activations, are rounded relatively more finely;
//  * clipping: each group's range is shrunk where that lowers the group's
//    output error on calibration inputs.
//
// Rounding is the project's uniform convention (Uniform.h) throughout, and
// all products are float32 BLAS calls.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_QUANT_AWQ_H
#define LLQ_QUANT_AWQ_H

#include "llq/Quant/Uniform.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace llq::quant {

/// Returns the scales for grid point \p alpha: s = meanAbs^alpha, clamped
/// below at 1e-4, then divided by sqrt(max(s) * min(s)) so that they are
/// centred on 1 in log scale (as llm-awq does). Computed in float64 and
/// rounded to float once. alpha = 0 gives all ones (0^0 = 1).
std::vector<float> awqScalesForAlpha(const std::vector<double> &meanAbs,
                                     double alpha);

/// Returns the output error of quantizing the layers \p weights (layer i is
/// rows[i] x k, row-major) that share the input \p x (t x k) after scaling
/// their input channels by \p scales:
///
///   sum_i mean over (t x rows[i]) of (X (Q(W_i diag(s)) diag(1/s))^T
///                                     - X W_i^T)^2
///
/// with Q round-to-nearest per \p scheme. Computed as X D^T for the weight
/// difference D, which is the same product without the cancellation.
double awqScaledError(const std::vector<const float *> &weights,
                      const std::vector<int64_t> &rows, int64_t k,
                      const float *x, int64_t t,
                      const std::vector<float> &scales,
                      const UniformScheme &scheme);

/// The outcome of awqSearchScales.
struct AWQScaleResult {
  /// The grid point chosen.
  double alpha = 0;
  /// awqScalesForAlpha(meanAbs, alpha).
  std::vector<float> scales;
  /// loss(scales).
  double error = 0;
  /// The loss with s = 1 (alpha = 0), i.e. of plain round-to-nearest.
  double baseError = 0;
};

/// Searches alpha in {0, 1/grid, ..., (grid-1)/grid} (llm-awq uses grid = 20)
/// for the scales minimizing \p loss; ties keep the smaller alpha. llm-awq's
/// objective is the output error of the module that consumes the scaled
/// layers (e.g. the whole attention block for q/k/v), which only the caller
/// can evaluate; awqScaledError is the objective when that module is the
/// layers themselves. NaN losses never win; if all are NaN the result is
/// alpha = 0 (the reference raises instead). \p grid must be positive.
AWQScaleResult
awqSearchScales(const std::vector<double> &meanAbs, int grid,
                const std::function<double(const std::vector<float> &)> &loss);

/// llm-awq's auto_clip, applied: for each row and group of the row-major
/// \p n x \p k matrix \p w, tries max_val = m * (1 - i / grid) for
/// i in [0, int(maxShrink * grid)), where m is the group's max |w|; clips the
/// group to [-max_val, max_val], quantizes it round-to-nearest per \p scheme,
/// and measures the mean over tokens of the group's squared output error
/// against the unclipped weights on the inputs \p x (t x k). Then clips each
/// group of \p w in place to its best max_val (the first best; i = 0 leaves
/// the group alone).
///
/// Tokens are subsampled like the reference: every (t / sampleTokens)-th row
/// of \p x starting at row 0 (all rows when t < 2 * sampleTokens or
/// sampleTokens <= 0): at least min(t, sampleTokens) rows and fewer than
/// 2 * sampleTokens.
///
/// Returns the number of groups whose range was shrunk.
int64_t awqClip(float *w, int64_t n, int64_t k, const float *x, int64_t t,
                const UniformScheme &scheme, int grid = 20,
                double maxShrink = 0.5, int64_t sampleTokens = 512);

} // namespace llq::quant

#endif // LLQ_QUANT_AWQ_H
