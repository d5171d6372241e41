//===- SmoothQuantTest.cpp - Tests for SmoothQuant and channel stats ------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/SmoothQuant.h"

#include "llq/Quant/Statistics.h"
#include "llq/Quant/Uniform.h"

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

/// Activations whose few outlier channels are 50x the rest, the situation
/// SmoothQuant is for (the paper reports ~100x outliers in OPT/LLaMA).
std::vector<float> outlierActivations(int64_t t, int64_t k, unsigned seed) {
  std::vector<float> x = gaussian(t * k, seed);
  std::mt19937 rng(seed + 1);
  for (int i = 0; i < 4; ++i) {
    int64_t channel = rng() % k;
    for (int64_t r = 0; r < t; ++r)
      x[r * k + channel] *= 50.0f;
  }
  return x;
}

std::vector<float> columnAbsMax(const std::vector<float> &m, int64_t rows,
                                int64_t k) {
  ChannelStats stats(k);
  stats.add(m.data(), rows);
  return stats.maxAbs();
}

/// ||X W^T - Xq Wq^T||^2 in float64, with Xq the per-token int8 fake
/// quantization of X and Wq the per-channel symmetric int8 (UniformScheme
/// {8, 0, true}) dequantization of W: the W8A8 output error.
double w8a8Error(const std::vector<float> &x, int64_t t, int64_t k,
                 const std::vector<float> &w, int64_t n) {
  std::vector<float> xq = x, wq(n * k);
  fakeQuantizePerToken(xq.data(), t, k, 8);
  UniformScheme scheme;
  scheme.bits = 8;
  scheme.groupSize = 0;
  scheme.symmetric = true;
  dequantize(quantizeRTN(w.data(), n, k, scheme), wq.data());
  double sum = 0;
  for (int64_t r = 0; r < t; ++r)
    for (int64_t i = 0; i < n; ++i) {
      double y = 0, yq = 0;
      for (int64_t j = 0; j < k; ++j) {
        y += double(x[r * k + j]) * w[i * k + j];
        yq += double(xq[r * k + j]) * wq[i * k + j];
      }
      sum += (y - yq) * (y - yq);
    }
  return sum;
}

} // namespace

//===----------------------------------------------------------------------===//
// ChannelStats
//===----------------------------------------------------------------------===//

TEST(ChannelStatsTest, HandCase) {
  ChannelStats stats(3);
  EXPECT_EQ(stats.samples(), 0);
  EXPECT_EQ(stats.meanAbs(), std::vector<double>(3, 0.0));
  EXPECT_EQ(stats.maxAbs(), std::vector<float>(3, 0.0f));
  const float a[] = {1, -2, 0, -3, 2, 0.5f};
  stats.add(a, 2);
  EXPECT_EQ(stats.samples(), 2);
  EXPECT_EQ(stats.meanAbs(), (std::vector<double>{2, 2, 0.25}));
  EXPECT_EQ(stats.maxAbs(), (std::vector<float>{3, 2, 0.5f}));
  // A second batch; the NaN makes channel 2's mean NaN but not its max.
  const float b[] = {-6, 0, std::numeric_limits<float>::quiet_NaN()};
  stats.add(b, 1);
  EXPECT_EQ(stats.samples(), 3);
  EXPECT_EQ(stats.meanAbs()[0], 10.0 / 3);
  EXPECT_EQ(stats.meanAbs()[1], 4.0 / 3);
  EXPECT_TRUE(std::isnan(stats.meanAbs()[2]));
  EXPECT_EQ(stats.maxAbs(), (std::vector<float>{6, 2, 0.5f}));
}

TEST(ChannelStatsTest, BatchSplitsAgree) {
  const int64_t t = 257, k = 19;
  std::vector<float> x = outlierActivations(t, k, 3);
  ChannelStats whole(k), pieces(k);
  whole.add(x.data(), t);
  for (int64_t begin = 0, rows = 1; begin < t; begin += rows, rows += 3)
    pieces.add(x.data() + begin * k, std::min(rows, t - begin));
  EXPECT_EQ(pieces.samples(), t);
  EXPECT_EQ(pieces.maxAbs(), whole.maxAbs());
  for (int64_t j = 0; j < k; ++j) {
    double sum = 0;
    float mx = 0;
    for (int64_t r = 0; r < t; ++r) {
      sum += std::fabs(double(x[r * k + j]));
      mx = std::max(mx, std::fabs(x[r * k + j]));
    }
    EXPECT_NEAR(whole.meanAbs()[j], sum / t, 1e-13 * sum / t);
    EXPECT_NEAR(pieces.meanAbs()[j], sum / t, 1e-13 * sum / t);
    EXPECT_EQ(whole.maxAbs()[j], mx);
  }
}

//===----------------------------------------------------------------------===//
// Smoothing factors
//===----------------------------------------------------------------------===//

TEST(SmoothQuantTest, ScalesHandCase) {
  // Two layers sharing the input; per-channel max |W| over both:
  //   wMax = (1, 4, 0.25, 1, 0 -> 1e-5).
  // alpha = 0.5, actMax = (4, 1, 0.25, 0, 9):
  //   s = (2 / 1, 1 / 2, 0.5 / 0.5, 0 -> 1e-5, 3 / sqrt(1e-5)).
  const std::vector<float> a = {1, -4, 0.1f, 1, 0, 0.5f, 2, -0.25f, -1, 0};
  const std::vector<float> b = {-0.25f, 1, 0.2f, 0.5f, 0};
  const std::vector<float> actMax = {4, 1, 0.25f, 0, 9};
  std::vector<float> s =
      smoothQuantScales(actMax, {a.data(), b.data()}, {2, 1}, 5, 0.5);
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s[0], 2.0f);
  EXPECT_EQ(s[1], 0.5f);
  EXPECT_EQ(s[2], 1.0f);
  EXPECT_EQ(s[3], 1e-5f);
  EXPECT_FLOAT_EQ(s[4], 3 / std::sqrt(1e-5));
}

TEST(SmoothQuantTest, AlphaZeroAndOne) {
  const int64_t n = 8, k = 12;
  std::vector<float> w = gaussian(n * k, 5, 0.1f);
  w[3] = 1e6f; // Column 3: 1 / 1e6 is below the 1e-5 floor.
  std::vector<float> act1(k), act2(k);
  for (int64_t j = 0; j < k; ++j) {
    act1[j] = 0.5f + j;
    act2[j] = j == 0 ? 0.0f : 100.0f / (j + 1);
  }
  std::vector<float> wMax = columnAbsMax(w, n, k);
  // alpha = 0: s = 1 / wMax whatever the activations (0^0 = 1).
  std::vector<float> s1 = smoothQuantScales(act1, {w.data()}, {n}, k, 0.0);
  EXPECT_EQ(s1, smoothQuantScales(act2, {w.data()}, {n}, k, 0.0));
  for (int64_t j = 0; j < k; ++j)
    EXPECT_FLOAT_EQ(s1[j], std::max(1.0 / wMax[j], 1e-5)) << j;
  // alpha = 1: s = actMax whatever the weights, floored at 1e-5.
  std::vector<float> other = gaussian(n * k, 6, 3.0f);
  std::vector<float> s2 = smoothQuantScales(act2, {w.data()}, {n}, k, 1.0);
  EXPECT_EQ(s2, smoothQuantScales(act2, {other.data()}, {n}, k, 1.0));
  for (int64_t j = 0; j < k; ++j)
    EXPECT_EQ(s2[j], std::max(act2[j], 1e-5f)) << j;
}

TEST(SmoothQuantTest, HalfMigrationEqualizesRanges) {
  // At alpha = 0.5, s_j = sqrt(a_j / w_j), so both the smoothed activations
  // (a_j / s_j) and weights (w_j * s_j) have max sqrt(a_j * w_j).
  const int64_t t = 64, n = 16, k = 32;
  std::vector<float> x = outlierActivations(t, k, 7);
  std::vector<float> w1 = gaussian(n * k, 8, 0.02f), w2 = gaussian(5 * k, 9);
  std::vector<float> actMax = columnAbsMax(x, t, k);
  std::vector<float> s =
      smoothQuantScales(actMax, {w1.data(), w2.data()}, {n, 5}, k, 0.5);
  std::vector<float> m1 = columnAbsMax(w1, n, k), m2 = columnAbsMax(w2, 5, k);
  for (int64_t j = 0; j < k; ++j) {
    double wMax = std::max(m1[j], m2[j]);
    double expected = std::sqrt(double(actMax[j]) * wMax);
    EXPECT_NEAR(actMax[j] / s[j], expected, 1e-6 * expected);
    EXPECT_NEAR(wMax * s[j], expected, 1e-6 * expected);
  }
}

TEST(SmoothQuantTest, ScalesMatchFloat64Reference) {
  const int64_t k = 50;
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> logValue(-8.0f, 5.0f);
  std::vector<float> actMax(k);
  for (float &a : actMax)
    a = std::exp(logValue(rng));
  actMax[7] = 0;
  std::vector<float> w1 = gaussian(6 * k, 14), w2 = gaussian(3 * k, 15, 1e-3f);
  for (int64_t r = 0; r < 6; ++r)
    w1[r * k + 9] = 0; // Column 9 of layer 1 is zero; layer 2 decides.
  for (int64_t r = 0; r < 3; ++r)
    w2[r * k + 9] = 0; // ... and now both: wMax floors at 1e-5.
  for (double alpha : {0.0, 0.3, 0.5, 0.85, 1.0}) {
    std::vector<float> s =
        smoothQuantScales(actMax, {w1.data(), w2.data()}, {6, 3}, k, alpha);
    for (int64_t j = 0; j < k; ++j) {
      double wMax = 0;
      for (int64_t r = 0; r < 6; ++r)
        wMax = std::max(wMax, std::fabs(double(w1[r * k + j])));
      for (int64_t r = 0; r < 3; ++r)
        wMax = std::max(wMax, std::fabs(double(w2[r * k + j])));
      double expected = std::pow(double(actMax[j]), alpha) /
                        std::pow(std::max(wMax, 1e-5), 1 - alpha);
      expected = std::max(expected, 1e-5);
      ASSERT_NEAR(s[j], expected, 1e-6 * expected) << alpha << " " << j;
    }
  }
}

//===----------------------------------------------------------------------===//
// Per-token activation quantization
//===----------------------------------------------------------------------===//

TEST(SmoothQuantTest, FakeQuantizePerTokenHandCase) {
  // Row 0: max 127 -> s = 1; 0.5 and -2.5 are ties and go to even (0, -2),
  //   1.5 goes to 2, 3.4 to 3.
  // Row 1: all zero -> s = 1e-5 / 127; zeros stay zero.
  // Row 2: 4 bits, max 7 -> s = 1; 6.5 -> 6 (even), -7 stays.
  std::vector<float> x = {127, 0.5f, 1.5f, -2.5f, 3.4f, 0, 0, 0, 0, 0};
  fakeQuantizePerToken(x.data(), 2, 5, 8);
  EXPECT_EQ(x, (std::vector<float>{127, 0, 2, -2, 3, 0, 0, 0, 0, 0}));
  std::vector<float> y = {6.5f, -7, 0.5f, 2.5f};
  fakeQuantizePerToken(y.data(), 1, 4, 4);
  EXPECT_EQ(y, (std::vector<float>{6, -7, 0, 2}));
}

TEST(SmoothQuantTest, FakeQuantizePerTokenMatchesReference) {
  const int64_t t = 40, k = 33;
  std::vector<float> x = outlierActivations(t, k, 17);
  for (int bits : {8, 6, 4, 2}) {
    std::vector<float> q = x;
    fakeQuantizePerToken(q.data(), t, k, bits);
    float maxq = float((1 << (bits - 1)) - 1);
    for (int64_t r = 0; r < t; ++r) {
      float absMax = 0;
      for (int64_t j = 0; j < k; ++j)
        absMax = std::max(absMax, std::fabs(x[r * k + j]));
      float s = std::max(absMax, 1e-5f) / maxq;
      for (int64_t j = 0; j < k; ++j) {
        // The reference's t.div_(s).round_().mul_(s), in float32.
        float ratio = x[r * k + j] / s;
        float lower = std::floor(ratio), frac = ratio - lower;
        float code = frac > 0.5f ? lower + 1
                     : frac < 0.5f
                         ? lower
                         : (std::fmod(lower, 2.0f) == 0 ? lower : lower + 1);
        ASSERT_EQ(q[r * k + j], code * s) << bits << " " << r << "," << j;
        ASSERT_LE(std::fabs(code), maxq);
      }
    }
  }
}

//===----------------------------------------------------------------------===//
// W8A8 error
//===----------------------------------------------------------------------===//

TEST(SmoothQuantTest, SmoothingReducesW8A8Error) {
  const int64_t t = 192, n = 48, k = 256;
  std::vector<float> x = outlierActivations(t, k, 21);
  std::vector<float> w = gaussian(n * k, 22, 0.02f);
  double plain = w8a8Error(x, t, k, w, n);
  std::vector<float> actMax = columnAbsMax(x, t, k);
  for (double alpha : {0.5, 0.8}) {
    std::vector<float> s = smoothQuantScales(actMax, {w.data()}, {n}, k, alpha);
    // The caller's side: the producer of X divides by s, W multiplies by s.
    std::vector<float> xs = x, ws = w;
    for (int64_t r = 0; r < t; ++r)
      for (int64_t j = 0; j < k; ++j)
        xs[r * k + j] /= s[j];
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j)
        ws[i * k + j] *= s[j];
    double smoothed = w8a8Error(xs, t, k, ws, n);
    std::printf("[          ] W8A8 output error, smoothed (alpha %.1f) / "
                "plain: %.3f\n",
                alpha, smoothed / plain);
    EXPECT_LT(smoothed, 0.5 * plain) << alpha;
  }
}
