//===- AWQTest.cpp - Tests for AWQ scaling and clipping -------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/AWQ.h"

#include "llq/Quant/Statistics.h"

#include "QuantTestUtils.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

using namespace llq::quant;
using namespace llq::quant::test;

namespace {

UniformScheme makeScheme(int bits, int64_t groupSize, bool symmetric) {
  UniformScheme scheme;
  scheme.bits = bits;
  scheme.groupSize = groupSize;
  scheme.symmetric = symmetric;
  return scheme;
}

/// Inputs with per-channel magnitudes spread over a decade and a few salient
/// channels 20x larger than the rest, as AWQ observed in LLM activations.
std::vector<float> salientInputs(int64_t t, int64_t k, unsigned seed,
                                 int salient) {
  std::vector<float> x = gaussian(t * k, seed);
  std::mt19937 rng(seed + 1);
  std::uniform_real_distribution<float> logScale(-1.0f, 1.0f);
  std::vector<float> channelScale(k);
  for (float &s : channelScale)
    s = std::exp(logScale(rng));
  for (int i = 0; i < salient; ++i)
    channelScale[rng() % k] *= 20.0f;
  for (int64_t r = 0; r < t; ++r)
    for (int64_t j = 0; j < k; ++j)
      x[r * k + j] *= channelScale[j];
  return x;
}

std::vector<double> meanAbsOf(const std::vector<float> &x, int64_t t,
                              int64_t k) {
  ChannelStats stats(k);
  stats.add(x.data(), t);
  return stats.meanAbs();
}

/// Weights with a few 8x outliers, like a linear layer's.
std::vector<float> outlierWeights(int64_t n, int64_t k, unsigned seed) {
  std::vector<float> w = gaussian(n * k, seed, 0.02f);
  std::mt19937 rng(seed + 1);
  for (int64_t i = 0; i < n * k / 100; ++i)
    w[rng() % (n * k)] *= 8.0f;
  return w;
}

//===----------------------------------------------------------------------===//
// Float64 references
//===----------------------------------------------------------------------===//

/// llm-awq's scales: x_max.pow(ratio).clamp(min=1e-4), divided by
/// sqrt(max * min).
std::vector<double> referenceScales(const std::vector<double> &meanAbs,
                                    double alpha) {
  std::vector<double> s;
  for (double m : meanAbs)
    s.push_back(std::max(std::pow(m, alpha), 1e-4));
  double mx = *std::max_element(s.begin(), s.end());
  double mn = *std::min_element(s.begin(), s.end());
  for (double &v : s)
    v /= std::sqrt(mx * mn);
  return s;
}

/// Mean over (t x n) of the output error (X D^T)^2 for a weight error D, in
/// float64 plain loops.
double meanOutputError(const std::vector<float> &x, int64_t t, int64_t k,
                       const std::vector<double> &d, int64_t n) {
  double sum = 0;
  for (int64_t r = 0; r < t; ++r)
    for (int64_t i = 0; i < n; ++i) {
      double y = 0;
      for (int64_t j = 0; j < k; ++j)
        y += double(x[r * k + j]) * d[i * k + j];
      sum += y * y;
    }
  return sum / (double(t) * n);
}

/// The per-layer term of llm-awq's loss: scale the weights (float32, as the
/// layer stores them), round to nearest, unscale, and compare outputs.
double referenceScaledError(const std::vector<float> &w, int64_t n, int64_t k,
                            const std::vector<float> &x, int64_t t,
                            const std::vector<float> &s,
                            const UniformScheme &scheme) {
  std::vector<float> scaled(n * k), q(n * k);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j)
      scaled[i * k + j] = w[i * k + j] * s[j];
  dequantize(quantizeRTN(scaled.data(), n, k, scheme), q.data());
  std::vector<double> d(n * k);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j)
      d[i * k + j] = double(q[i * k + j] / s[j]) - w[i * k + j];
  return meanOutputError(x, t, k, d, n);
}

/// llm-awq's auto_clip for one row's group [begin, begin + len): the squared
/// output error, averaged over the tokens of \p x, of each shrink step.
std::vector<double> referenceClipErrors(const float *w, int64_t k,
                                        int64_t begin, int64_t len,
                                        const std::vector<float> &x, int64_t t,
                                        const UniformScheme &scheme, int grid,
                                        int steps) {
  float orgMax = 0;
  for (int64_t j = 0; j < len; ++j)
    orgMax = std::max(orgMax, std::fabs(w[begin + j]));
  std::vector<double> errors;
  for (int i = 0; i < steps; ++i) {
    float maxVal = orgMax * float(1.0 - double(i) / grid);
    std::vector<float> clipped(len);
    for (int64_t j = 0; j < len; ++j)
      clipped[j] = std::min(std::max(w[begin + j], -maxVal), maxVal);
    GroupParams p = computeGroupParams(clipped.data(), len, scheme);
    double sum = 0;
    for (int64_t r = 0; r < t; ++r) {
      double y = 0;
      for (int64_t j = 0; j < len; ++j) {
        double q =
            dequantizeValue(quantizeValue(clipped[j], p, scheme.bits), p);
        y += double(x[r * k + begin + j]) * (q - w[begin + j]);
      }
      sum += y * y;
    }
    errors.push_back(sum / t);
  }
  return errors;
}

} // namespace

//===----------------------------------------------------------------------===//
// Scales
//===----------------------------------------------------------------------===//

TEST(AWQTest, AlphaZeroGivesUnitScales) {
  std::vector<double> meanAbs = {3.5, 0.0, 1e-9, 120.0, 0.25};
  EXPECT_EQ(awqScalesForAlpha(meanAbs, 0.0), std::vector<float>(5, 1.0f));
  EXPECT_TRUE(awqScalesForAlpha({}, 0.5).empty());
}

TEST(AWQTest, ScalesHandCase) {
  // alpha = 0.5: s = (2, 1, 0.5), sqrt(max * min) = sqrt(2 * 0.5) = 1.
  EXPECT_EQ(awqScalesForAlpha({4.0, 1.0, 0.25}, 0.5),
            (std::vector<float>{2.0f, 1.0f, 0.5f}));
  // alpha = 1 with a dead channel: s = (4, 1e-4 clamped, 1), normalized by
  // sqrt(4 * 1e-4) = 0.02: (200, 0.005, 50).
  std::vector<float> s = awqScalesForAlpha({4.0, 0.0, 1.0}, 1.0);
  EXPECT_FLOAT_EQ(s[0], 200.0f);
  EXPECT_FLOAT_EQ(s[1], 0.005f);
  EXPECT_FLOAT_EQ(s[2], 50.0f);
}

TEST(AWQTest, ScalesMatchFloat64Reference) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> logMean(-6.0, 3.0);
  std::vector<double> meanAbs(300);
  for (double &m : meanAbs)
    m = std::exp(logMean(rng));
  for (int i = 0; i < 20; ++i) {
    double alpha = i / 20.0;
    std::vector<float> s = awqScalesForAlpha(meanAbs, alpha);
    std::vector<double> expected = referenceScales(meanAbs, alpha);
    for (size_t j = 0; j < s.size(); ++j)
      ASSERT_NEAR(s[j], expected[j], 1e-6 * expected[j]) << alpha << " " << j;
  }
}

//===----------------------------------------------------------------------===//
// Scaled error and the alpha search
//===----------------------------------------------------------------------===//

TEST(AWQTest, UnitScalesGiveRTNError) {
  // Two layers sharing the input, e.g. gate and up projections.
  const int64_t k = 96, t = 64;
  std::vector<float> x = salientInputs(t, k, 11, 2);
  std::vector<float> w1 = outlierWeights(20, k, 12),
                     w2 = outlierWeights(7, k, 13);
  UniformScheme scheme = makeScheme(4, 32, false);
  double rtn = 0;
  for (auto [w, n] : {std::pair{&w1, int64_t(20)}, {&w2, int64_t(7)}}) {
    std::vector<float> q(n * k);
    dequantize(quantizeRTN(w->data(), n, k, scheme), q.data());
    std::vector<double> d(n * k);
    for (int64_t i = 0; i < n * k; ++i)
      d[i] = double(q[i]) - (*w)[i];
    rtn += meanOutputError(x, t, k, d, n);
  }
  double error = awqScaledError({w1.data(), w2.data()}, {20, 7}, k, x.data(), t,
                                std::vector<float>(k, 1.0f), scheme);
  EXPECT_NEAR(error, rtn, 1e-5 * rtn);
}

TEST(AWQTest, ScaledErrorMatchesFloat64Reference) {
  const int64_t n = 24, k = 80, t = 50;
  std::vector<float> x = salientInputs(t, k, 21, 3);
  std::vector<float> w = outlierWeights(n, k, 22);
  std::vector<double> meanAbs = meanAbsOf(x, t, k);
  for (UniformScheme scheme : {makeScheme(3, 16, false), makeScheme(4, 0, true),
                               makeScheme(4, 48, false)})
    for (double alpha : {0.25, 0.5, 0.9}) {
      std::vector<float> s = awqScalesForAlpha(meanAbs, alpha);
      double expected = referenceScaledError(w, n, k, x, t, s, scheme);
      EXPECT_NEAR(awqScaledError({w.data()}, {n}, k, x.data(), t, s, scheme),
                  expected, 1e-5 * expected);
    }
}

TEST(AWQTest, SearchVisitsTheGridAndKeepsTheFirstBest) {
  std::vector<double> meanAbs = {0.5, 2.0, 8.0};
  std::vector<std::vector<float>> seen;
  // A constant loss: every point ties, the smallest alpha stays.
  AWQScaleResult r = awqSearchScales(meanAbs, 20, [&](const auto &s) {
    seen.push_back(s);
    return 1.0;
  });
  ASSERT_EQ(seen.size(), 20u);
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(seen[i], awqScalesForAlpha(meanAbs, i / 20.0)) << i;
  EXPECT_EQ(r.alpha, 0.0);
  EXPECT_EQ(r.scales, std::vector<float>(3, 1.0f));
  EXPECT_EQ(r.error, 1.0);
  EXPECT_EQ(r.baseError, 1.0);

  // Minimum at alpha = 0.35 (point 7), with a NaN that must not win.
  int call = 0;
  r = awqSearchScales(meanAbs, 20, [&](const auto &) {
    int i = call++;
    return i == 3 ? std::nan("") : std::fabs(i - 7.0) + 2;
  });
  EXPECT_EQ(r.alpha, 0.35);
  EXPECT_EQ(r.error, 2.0);
  EXPECT_EQ(r.baseError, 9.0);
  EXPECT_EQ(r.scales, awqScalesForAlpha(meanAbs, 0.35));

  // All NaN: alpha 0.
  r = awqSearchScales(meanAbs, 4, [](const auto &) { return std::nan(""); });
  EXPECT_EQ(r.alpha, 0.0);
  EXPECT_EQ(r.scales, std::vector<float>(3, 1.0f));
}

TEST(AWQTest, SearchBeatsRTNOnSalientChannels) {
  const int64_t n = 64, k = 256, t = 256;
  std::vector<float> x = salientInputs(t, k, 31, 4);
  std::vector<float> w = outlierWeights(n, k, 32);
  std::vector<double> meanAbs = meanAbsOf(x, t, k);
  for (int bits : {4, 3}) {
    UniformScheme scheme = makeScheme(bits, 128, false);
    AWQScaleResult r = awqSearchScales(meanAbs, 20, [&](const auto &s) {
      return awqScaledError({w.data()}, {n}, k, x.data(), t, s, scheme);
    });
    // The float64 reference's grid search.
    double best = std::numeric_limits<double>::infinity(), bestAlpha = -1;
    for (int i = 0; i < 20; ++i) {
      std::vector<double> sd = referenceScales(meanAbs, i / 20.0);
      double e = referenceScaledError(
          w, n, k, x, t, std::vector<float>(sd.begin(), sd.end()), scheme);
      if (e < best) {
        best = e;
        bestAlpha = i / 20.0;
      }
    }
    double rtn = referenceScaledError(w, n, k, x, t,
                                      std::vector<float>(k, 1.0f), scheme);
    EXPECT_NEAR(r.baseError, rtn, 1e-5 * rtn);
    // Same choice, or one whose reference error is as good to float32 noise.
    double chosen = referenceScaledError(w, n, k, x, t, r.scales, scheme);
    EXPECT_NEAR(chosen, best, 1e-4 * best) << r.alpha << " vs " << bestAlpha;
    EXPECT_GT(r.alpha, 0.0);
    EXPECT_LT(r.error, 0.8 * r.baseError);
    std::printf("[          ] AWQ w%d-g128: alpha %.2f, output error / RTN's "
                "%.3f\n",
                bits, r.alpha, r.error / r.baseError);
    RecordProperty("awq_over_rtn_w" + std::to_string(bits) + "_g128",
                   std::to_string(r.error / r.baseError));
  }
}

//===----------------------------------------------------------------------===//
// Clipping
//===----------------------------------------------------------------------===//

TEST(AWQTest, ClipHandCase) {
  // 3-bit symmetric (z = 4, codes -4..3 times s), one group of 4, grid 4 with
  // maxShrink 0.5: max_val in {m, 0.75 m}. Tokens e0, e1, e2 and 0, so the
  // error is the mean over 4 tokens of (q_j - w_j)^2 for j < 3; column 3's
  // input is zero, so its own error costs nothing.
  // Row 0, w = (1, 2, -1, 4):
  //   m = 4: s = f16(4/3) = 1.3330078; 1, 2, -1 -> 1, 2 (1.5004 rounds up),
  //     -1 steps -> 1.333, 2.666, -1.333: error (0.111 + 0.444 + 0.111) / 4.
  //   m = 3: clamp to (1, 2, -1, 3), s = 1: exact, error 0 -> clip to 3.
  // Row 1, w = (1, 2, -1, 3): m = 3 is exact already; m = 2.25 (s = 0.75)
  //   makes errors, so it stays.
  std::vector<float> w = {1, 2, -1, 4, 1, 2, -1, 3};
  const float x[] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0};
  EXPECT_EQ(awqClip(w.data(), 2, 4, x, 4, makeScheme(3, 4, true), 4, 0.5), 1);
  EXPECT_EQ(w, (std::vector<float>{1, 2, -1, 3, 1, 2, -1, 3}));
  // maxShrink * grid < 2 leaves only "no shrink".
  std::vector<float> w2 = {1, 2, -1, 4};
  EXPECT_EQ(awqClip(w2.data(), 1, 4, x, 4, makeScheme(3, 4, true), 4, 0.25), 0);
  EXPECT_EQ(w2, (std::vector<float>{1, 2, -1, 4}));
}

TEST(AWQTest, ClipMatchesFloat64ReferenceAndNeverHurts) {
  const int64_t n = 40, k = 200, t = 120;
  std::vector<float> x = salientInputs(t, k, 41, 3);
  const int grid = 20, steps = 10;
  for (UniformScheme scheme :
       {makeScheme(4, 64, false), makeScheme(3, 64, true),
        makeScheme(4, 0, false)}) {
    std::vector<float> w = outlierWeights(n, k, 42);
    std::vector<float> clipped = w;
    int64_t shrunk = awqClip(clipped.data(), n, k, x.data(), t, scheme, grid);
    EXPECT_GT(shrunk, 0);
    int64_t width = scheme.groupSize ? scheme.groupSize : k, reShrunk = 0;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t begin = 0; begin < k; begin += width) {
        int64_t len = std::min(width, k - begin);
        std::vector<double> errors = referenceClipErrors(
            &w[r * k], k, begin, len, x, t, scheme, grid, steps);
        // The step the library took: the one whose max_val it clipped to.
        float orgMax = 0, newMax = 0;
        for (int64_t j = 0; j < len; ++j) {
          orgMax = std::max(orgMax, std::fabs(w[r * k + begin + j]));
          newMax = std::max(newMax, std::fabs(clipped[r * k + begin + j]));
        }
        int taken = -1;
        for (int i = 0; i < steps && taken < 0; ++i)
          if (newMax == orgMax * float(1.0 - double(i) / grid))
            taken = i;
        ASSERT_GE(taken, 0) << "row " << r << " group at " << begin;
        reShrunk += taken > 0;
        double best = *std::min_element(errors.begin(), errors.end());
        // Never worse than no clipping, and the reference's best up to
        // float32 noise.
        EXPECT_LE(errors[taken], errors[0] * (1 + 1e-6));
        EXPECT_LE(errors[taken], best * (1 + 1e-4) + 1e-12);
        for (int64_t j = 0; j < len; ++j)
          ASSERT_EQ(clipped[r * k + begin + j],
                    std::clamp(w[r * k + begin + j], -newMax, newMax));
      }
    EXPECT_EQ(reShrunk, shrunk);
  }
}

TEST(AWQTest, ClipSamplesEveryStrideThToken) {
  // t = 90, sampleTokens = 30: stride 3, tokens 0, 3, ..., 87.
  const int64_t n = 16, k = 64, t = 90;
  UniformScheme scheme = makeScheme(3, 32, false);
  std::vector<float> w = outlierWeights(n, k, 52);
  std::vector<float> onlySampled = salientInputs(t, k, 51, 2);
  std::vector<float> onlyOthers = onlySampled;
  for (int64_t r = 0; r < t; ++r)
    std::fill_n((r % 3 ? onlySampled : onlyOthers).begin() + r * k, k, 0.0f);
  // Zeros elsewhere scale every error by one factor: same choices as using
  // all rows.
  std::vector<float> a = w, b = w;
  int64_t shrunk =
      awqClip(a.data(), n, k, onlySampled.data(), t, scheme, 20, 0.5, 30);
  EXPECT_GT(shrunk, 0);
  EXPECT_EQ(awqClip(b.data(), n, k, onlySampled.data(), t, scheme, 20, 0.5, 0),
            shrunk);
  EXPECT_EQ(a, b);
  // The sampled tokens are all zero: every error is 0 and nothing moves.
  std::vector<float> c = w;
  EXPECT_EQ(awqClip(c.data(), n, k, onlyOthers.data(), t, scheme, 20, 0.5, 30),
            0);
  EXPECT_EQ(c, w);
}
