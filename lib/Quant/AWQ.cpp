//===- AWQ.cpp - Activation-aware weight quantization ---------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/AWQ.h"

#include <cblas.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <numeric>

namespace llq::quant {

namespace {

/// The most floats of X D^T held at once; the token dimension is chunked to
/// stay below it (64k tokens x 14336 outputs would be 3.7 GB).
constexpr int64_t kMaxProductFloats = int64_t(1) << 22;

/// Adds to rowSums[r] the sum over tokens of (X D^T)[token, r]^2, where X is
/// \p t x \p kk with row stride \p ldx and D is \p n x \p kk row-major: the
/// squared output error of each output channel when D is a weight error.
void addOutputError(const float *x, int64_t t, int64_t ldx, const float *d,
                    int64_t n, int64_t kk, double *rowSums) {
  if (t == 0 || n == 0 || kk == 0)
    return;
  int64_t chunk = std::clamp<int64_t>(kMaxProductFloats / n, 1, t);
  std::vector<float> product(chunk * n);
  for (int64_t t0 = 0; t0 < t; t0 += chunk) {
    int64_t m = std::min(chunk, t - t0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m),
                static_cast<int>(n), static_cast<int>(kk), 1.0f, x + t0 * ldx,
                static_cast<int>(ldx), d, static_cast<int>(kk), 0.0f,
                product.data(), static_cast<int>(n));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t r = 0; r < n; ++r)
        rowSums[r] += double(product[i * n + r]) * product[i * n + r];
  }
}

/// Returns Q(W diag(s)) diag(1/s) - W for round-to-nearest Q, in the order of
/// operations of llm-awq (multiply, quantize, divide).
std::vector<float> scaledQuantizationDelta(const float *w, int64_t n, int64_t k,
                                           const std::vector<float> &scales,
                                           const UniformScheme &scheme) {
  std::vector<float> delta(w, w + n * k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j)
      delta[r * k + j] *= scales[j];
  dequantize(quantizeRTN(delta.data(), n, k, scheme), delta.data());
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j)
      delta[r * k + j] = delta[r * k + j] / scales[j] - w[r * k + j];
  return delta;
}

/// Writes Q(clamp(v, -maxVal, maxVal)) - v for the \p n values of one group
/// to \p out, with the group's parameters taken from the clamped values.
void clippedGroupDelta(const float *v, int64_t n, float maxVal,
                       const UniformScheme &scheme, float *out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = std::clamp(v[i], -maxVal, maxVal);
  GroupParams p = computeGroupParams(out, n, scheme);
  for (int64_t i = 0; i < n; ++i)
    out[i] = dequantizeValue(quantizeValue(out[i], p, scheme.bits), p) - v[i];
}

/// The reference's token subsampling, x[0::t // sampleTokens]; copies only
/// when it drops rows.
struct TokenSample {
  const float *x;
  int64_t t;
  std::vector<float> storage;
};

TokenSample subsampleTokens(const float *x, int64_t t, int64_t k,
                            int64_t sampleTokens) {
  int64_t stride =
      sampleTokens > 0 ? std::max<int64_t>(1, t / sampleTokens) : 1;
  if (stride == 1)
    return {x, t, {}};
  TokenSample sample{nullptr, (t + stride - 1) / stride, {}};
  sample.storage.reserve(sample.t * k);
  for (int64_t i = 0; i < t; i += stride)
    sample.storage.insert(sample.storage.end(), x + i * k, x + (i + 1) * k);
  sample.x = sample.storage.data();
  return sample;
}

/// The clip search of one group (columns [begin, begin + len)) over all rows:
/// returns each row's best max_val, or NaN where no shrink beats none.
std::vector<float> searchGroupClip(const float *w, int64_t n, int64_t k,
                                   int64_t begin, int64_t len,
                                   const TokenSample &sample,
                                   const UniformScheme &scheme, int grid,
                                   int steps) {
  std::vector<float> orgMax(n, 0.0f), best(n, std::nanf(""));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < len; ++j)
      orgMax[r] = std::max(orgMax[r], std::fabs(w[r * k + begin + j]));
  std::vector<double> bestError(n, std::numeric_limits<double>::infinity());
  std::vector<double> error(n);
  std::vector<float> delta(n * len);
  for (int step = 0; step < steps; ++step) {
    float factor = static_cast<float>(1.0 - double(step) / grid);
    for (int64_t r = 0; r < n; ++r)
      clippedGroupDelta(w + r * k + begin, len, orgMax[r] * factor, scheme,
                        &delta[r * len]);
    std::fill(error.begin(), error.end(), 0.0);
    addOutputError(sample.x + begin, sample.t, k, delta.data(), n, len,
                   error.data());
    for (int64_t r = 0; r < n; ++r) {
      double mean = error[r] / sample.t;
      if (mean < bestError[r]) { // The first best wins, as in the reference.
        bestError[r] = mean;
        best[r] = step == 0 ? std::nanf("") : orgMax[r] * factor;
      }
    }
  }
  return best;
}

} // namespace

std::vector<float> awqScalesForAlpha(const std::vector<double> &meanAbs,
                                     double alpha) {
  std::vector<double> s(meanAbs.size());
  for (size_t j = 0; j < s.size(); ++j)
    s[j] = std::max(std::pow(meanAbs[j], alpha), 1e-4);
  std::vector<float> scales(s.size());
  if (s.empty())
    return scales;
  auto [mn, mx] = std::minmax_element(s.begin(), s.end());
  double norm = std::sqrt(*mn * *mx);
  for (size_t j = 0; j < s.size(); ++j)
    scales[j] = static_cast<float>(s[j] / norm);
  return scales;
}

double awqScaledError(const std::vector<const float *> &weights,
                      const std::vector<int64_t> &rows, int64_t k,
                      const float *x, int64_t t,
                      const std::vector<float> &scales,
                      const UniformScheme &scheme) {
  assert(weights.size() == rows.size() && "one row count per layer");
  assert(static_cast<int64_t>(scales.size()) == k && "one scale per channel");
  double total = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (rows[i] == 0 || t == 0)
      continue;
    std::vector<float> delta =
        scaledQuantizationDelta(weights[i], rows[i], k, scales, scheme);
    std::vector<double> sums(rows[i], 0.0);
    addOutputError(x, t, k, delta.data(), rows[i], k, sums.data());
    total += std::accumulate(sums.begin(), sums.end(), 0.0) /
             (double(t) * double(rows[i]));
  }
  return total;
}

AWQScaleResult
awqSearchScales(const std::vector<double> &meanAbs, int grid,
                const std::function<double(const std::vector<float> &)> &loss) {
  assert(grid > 0 && "the alpha grid needs at least one point");
  AWQScaleResult result;
  result.scales = awqScalesForAlpha(meanAbs, 0.0);
  result.error = result.baseError = loss(result.scales);
  double best = std::isnan(result.error)
                    ? std::numeric_limits<double>::infinity()
                    : result.error;
  for (int i = 1; i < grid; ++i) {
    double alpha = double(i) / grid;
    std::vector<float> scales = awqScalesForAlpha(meanAbs, alpha);
    double error = loss(scales);
    if (!(error < best)) // Ties keep the smaller alpha; NaN never wins.
      continue;
    best = error;
    result.alpha = alpha;
    result.scales = std::move(scales);
    result.error = error;
  }
  return result;
}

int64_t awqClip(float *w, int64_t n, int64_t k, const float *x, int64_t t,
                const UniformScheme &scheme, int grid, double maxShrink,
                int64_t sampleTokens) {
  assert(validate(scheme).empty() && "invalid uniform scheme");
  int steps = grid > 0 ? static_cast<int>(maxShrink * grid) : 0;
  if (n == 0 || k == 0 || t == 0 || steps <= 1)
    return 0;
  TokenSample sample = subsampleTokens(x, t, k, sampleTokens);
  int64_t width = scheme.groupSize == 0 ? k : scheme.groupSize;
  int64_t shrunk = 0;
  for (int64_t begin = 0; begin < k; begin += width) {
    int64_t len = std::min(width, k - begin);
    std::vector<float> best =
        searchGroupClip(w, n, k, begin, len, sample, scheme, grid, steps);
    for (int64_t r = 0; r < n; ++r) {
      if (std::isnan(best[r]))
        continue;
      ++shrunk;
      float *group = w + r * k + begin;
      for (int64_t j = 0; j < len; ++j)
        group[j] = std::clamp(group[j], -best[r], best[r]);
    }
  }
  return shrunk;
}

} // namespace llq::quant
