//===- Statistics.h - Calibration statistics of layer inputs ----*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Accumulators for what the calibration-based quantizers need to know about
// the inputs X (tokens x K features, row-major) of a linear layer:
//
//  * GPTQ needs the Hessian of the layer's squared output error,
//    H = 2/n * X^T X over all n tokens seen;
//  * AWQ needs the mean |x| of each input channel and SmoothQuant its max |x|.
//
// Calibration streams many batches through a layer, so both accumulate batch
// by batch and never hold more than one batch of activations.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_QUANT_STATISTICS_H
#define LLQ_QUANT_STATISTICS_H

#include <cstdint>
#include <vector>

namespace llq::quant {

/// Accumulates GPTQ's H = 2/n * sum over tokens of x x^T (K x K).
///
/// Like the reference implementation (gptq.py, add_batch) it keeps H a mean,
/// not a sum: each batch of m tokens first rescales H by n / (n + m) and then
/// adds 2 / (n + m) * X^T X. The entries therefore stay at the magnitude of a
/// single x x^T however many tokens are seen, which keeps float32 storage
/// accurate for large n. The reference counts sequences rather than tokens as
/// n; that changes H by a constant factor, which GPTQ is invariant to (damping
/// is relative to mean(diag(H))).
///
/// Storage is float32 (a K = 14336 Hessian is 822 MB) and each batch is one
/// BLAS ssyrk call, which fills only the upper triangle.
class HessianAccumulator {
public:
  explicit HessianAccumulator(int64_t k);

  /// Adds \p rows tokens of K features each (row-major rows x K).
  void add(const float *x, int64_t rows);

  int64_t columns() const { return k; }
  int64_t samples() const { return n; }

  /// The full symmetric matrix (both triangles filled), row-major K x K; all
  /// zeros before any token has been added.
  std::vector<float> matrix() const;

  /// Like matrix(), but moves the storage out instead of copying it, leaving
  /// the accumulator empty (zero samples); for Hessians too large to hold
  /// twice.
  std::vector<float> release();

  /// Just diag(H), the mean of x_j^2 times 2; what act-order ranks columns by.
  std::vector<float> diagonal() const;

private:
  int64_t k;
  int64_t n = 0;
  /// Row-major K x K; only the upper triangle is maintained.
  std::vector<float> upper;
};

/// Per-input-channel statistics of |x|: mean and max over all tokens seen.
class ChannelStats {
public:
  explicit ChannelStats(int64_t k);

  /// Adds \p rows tokens of K features each (row-major rows x K). NaN inputs
  /// make that channel's mean NaN and are ignored by its max.
  void add(const float *x, int64_t rows);

  int64_t samples() const { return n; }

  /// Mean |x_j| over all tokens, summed in float64 so that millions of tokens
  /// lose nothing; all zeros before the first add().
  const std::vector<double> &meanAbs() const { return means; }

  /// Max |x_j| over all tokens; all zeros before the first add().
  const std::vector<float> &maxAbs() const { return maxima; }

private:
  int64_t n = 0;
  std::vector<double> sums;
  std::vector<double> means;
  std::vector<float> maxima;
};

} // namespace llq::quant

#endif // LLQ_QUANT_STATISTICS_H
