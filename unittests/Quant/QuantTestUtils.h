//===- QuantTestUtils.h - Synthetic layers for the numeric tests -*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_UNITTESTS_QUANT_QUANTTESTUTILS_H
#define LLQ_UNITTESTS_QUANT_QUANTTESTUTILS_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace llq::quant::test {

/// \p count samples of N(0, sigma^2) from a seeded generator.
inline std::vector<float> gaussian(int64_t count, unsigned seed,
                                   float sigma = 1) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> v(count);
  for (float &x : v)
    x = normal(rng);
  return v;
}

/// Calibration inputs like an LLM layer's: X = Z M for Gaussian Z (t x k) and
/// a random mixing matrix M = I + G / sqrt(k), so features are correlated,
/// with a few outlier channels 10x larger.
inline std::vector<float> correlatedInputs(int64_t t, int64_t k, unsigned seed,
                                           int outliers) {
  std::vector<float> z = gaussian(t * k, seed);
  std::vector<float> mix = gaussian(k * k, seed + 1, 1.0f / std::sqrt(k));
  for (int64_t i = 0; i < k; ++i)
    mix[i * k + i] += 1.0f;
  std::vector<float> x(t * k, 0.0f);
  for (int64_t r = 0; r < t; ++r)
    for (int64_t l = 0; l < k; ++l)
      for (int64_t j = 0; j < k; ++j)
        x[r * k + j] += z[r * k + l] * mix[l * k + j];
  std::mt19937 rng(seed + 2);
  for (int o = 0; o < outliers; ++o) {
    int64_t channel = rng() % k;
    for (int64_t r = 0; r < t; ++r)
      x[r * k + channel] *= 10.0f;
  }
  return x;
}

/// Lower Cholesky factor of the symmetric positive definite k x k \p a.
inline std::vector<double> cholesky(const std::vector<double> &a, int64_t k) {
  std::vector<double> l(k * k, 0.0);
  for (int64_t j = 0; j < k; ++j) {
    double d = a[j * k + j];
    for (int64_t p = 0; p < j; ++p)
      d -= l[j * k + p] * l[j * k + p];
    l[j * k + j] = std::sqrt(d);
    for (int64_t i = j + 1; i < k; ++i) {
      double s = a[i * k + j];
      for (int64_t p = 0; p < j; ++p)
        s -= l[i * k + p] * l[j * k + p];
      l[i * k + j] = s / l[j * k + j];
    }
  }
  return l;
}

/// The reference's three steps: L = chol(H); Hinv = cholesky_inverse(L);
/// U = chol(Hinv, upper), i.e. Hinv = U^T U.
inline std::vector<double> inverseCholeskyUpper(const std::vector<double> &h,
                                                int64_t k) {
  std::vector<double> l = cholesky(h, k);
  std::vector<double> linv(k * k, 0.0); // Lower, by forward substitution.
  for (int64_t c = 0; c < k; ++c) {
    linv[c * k + c] = 1.0 / l[c * k + c];
    for (int64_t i = c + 1; i < k; ++i) {
      double s = 0;
      for (int64_t p = c; p < i; ++p)
        s -= l[i * k + p] * linv[p * k + c];
      linv[i * k + c] = s / l[i * k + i];
    }
  }
  std::vector<double> hinv(k * k, 0.0); // L^-T L^-1.
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      for (int64_t p = std::max(i, j); p < k; ++p)
        hinv[i * k + j] += linv[p * k + i] * linv[p * k + j];
  std::vector<double> l2 = cholesky(hinv, k), u(k * k);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      u[i * k + j] = l2[j * k + i];
  return u;
}

} // namespace llq::quant::test

#endif // LLQ_UNITTESTS_QUANT_QUANTTESTUTILS_H
