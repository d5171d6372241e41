//===- UniformTest.cpp - Tests for uniform (RTN) quantization -------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/Uniform.h"

#include "llq/Quant/Half.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>
#include <random>
#include <sstream>
#include <utility>
#include <vector>

using namespace llq::quant;

namespace {

constexpr float kMinNormalHalf = 0x1p-14f;

UniformScheme makeScheme(int bits, int64_t groupSize, bool symmetric) {
  UniformScheme scheme;
  scheme.bits = bits;
  scheme.groupSize = groupSize;
  scheme.symmetric = symmetric;
  return scheme;
}

std::vector<float> dequantized(const UniformMatrix &m) {
  std::vector<float> out(m.rows * m.cols);
  dequantize(m, out.data());
  return out;
}

/// Gaussian rows with per-row magnitudes spread over ~2 decades and a few
/// outliers, like the weights of a linear layer.
std::vector<float> randomMatrix(int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> logScale(-4.0f, 1.0f);
  std::bernoulli_distribution outlier(0.005);
  std::vector<float> w(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    float rowScale = std::exp(logScale(rng));
    for (int64_t c = 0; c < cols; ++c)
      w[r * cols + c] = normal(rng) * rowScale * (outlier(rng) ? 8.0f : 1.0f);
  }
  return w;
}

double meanSquaredError(const std::vector<float> &w, const UniformMatrix &m) {
  std::vector<float> deq = dequantized(m);
  double sum = 0;
  for (size_t i = 0; i < w.size(); ++i)
    sum += (double(deq[i]) - w[i]) * (double(deq[i]) - w[i]);
  return sum / w.size();
}

/// A shape and scheme the randomized tests sweep over.
struct Config {
  int64_t rows, cols;
  UniformScheme scheme;
};

std::vector<Config> randomConfigs() {
  struct Shape {
    int64_t rows, cols, groupSize;
  };
  const Shape shapes[] = {
      {16, 576, 128}, {16, 100, 32}, {12, 256, 0}, {9, 10, 4}};
  std::vector<Config> configs;
  for (Shape shape : shapes)
    for (int bits : {2, 3, 4, 8})
      for (bool symmetric : {false, true})
        configs.push_back({shape.rows, shape.cols,
                           makeScheme(bits, shape.groupSize, symmetric)});
  return configs;
}

std::string describe(const Config &c) {
  std::ostringstream os;
  os << c.rows << "x" << c.cols << " g=" << c.scheme.groupSize
     << " bits=" << c.scheme.bits << (c.scheme.symmetric ? " sym" : " asym");
  return os.str();
}

unsigned seedOf(const Config &c) {
  return static_cast<unsigned>(c.cols * 131 + c.scheme.groupSize * 17 +
                               c.scheme.bits * 3 + c.scheme.symmetric);
}

//===----------------------------------------------------------------------===//
// Float64 reference, written from the convention's text and sharing no code
// with the library (not even the f16 conversion).
//===----------------------------------------------------------------------===//

/// Whether \p r is within 1e-6 (relative) of a tie n + 0.5, where float32 and
/// float64 arithmetic may legitimately round to different integers.
bool nearHalfTie(double r) {
  double distance = std::fabs(r - std::floor(r) - 0.5);
  return distance <= 1e-6 * std::max(1.0, std::fabs(r));
}

/// Rounds positive \p v to the nearest f16 value, ties to even: 11 significant
/// bits, and a spacing of no less than 2^-24 (subnormals).
double refRoundToHalf(double v, bool &nearTie) {
  int exponent;
  std::frexp(v, &exponent); // v = f * 2^exponent, f in [0.5, 1).
  double spacing = std::ldexp(1.0, std::max(exponent - 11, -24));
  nearTie = nearHalfTie(v / spacing);
  return std::nearbyint(v / spacing) * spacing; // Default mode: ties to even.
}

/// The group's min and max, in float64.
std::pair<double, double> refRange(const float *x, int64_t n) {
  // The convention's range always includes 0 (a no-op for symmetric).
  double mn = std::min(0.0, double(x[0])), mx = std::max(0.0, double(x[0]));
  for (int64_t i = 1; i < n; ++i) {
    mn = std::min<double>(mn, x[i]);
    mx = std::max<double>(mx, x[i]);
  }
  return {mn, mx};
}

/// The f16 scale; \p nearTie says whether its f16 rounding sat so close to a
/// tie that float32 arithmetic may pick the neighbouring f16 value.
double refScale(double mn, double mx, int bits, bool symmetric, bool &nearTie) {
  int maxq = (1 << bits) - 1, half = 1 << (bits - 1);
  double raw = symmetric ? std::max(-mn, mx) / (half - 1) : (mx - mn) / maxq;
  double scale = refRoundToHalf(std::max(raw, 1e-5), nearTie);
  return std::max(scale, 0x1p-14);
}

int refZero(double mn, double scale, int bits, bool symmetric, bool &nearTie) {
  nearTie = false;
  if (symmetric)
    return 1 << (bits - 1);
  nearTie = nearHalfTie(-mn / scale);
  return static_cast<int>(
      std::clamp(std::round(-mn / scale), 0.0, double((1 << bits) - 1)));
}

int refCode(double x, double scale, int zero, int bits, bool symmetric) {
  int maxq = (1 << bits) - 1, half = 1 << (bits - 1);
  double r = std::round(x / scale);
  if (symmetric)
    return static_cast<int>(std::clamp(r, double(-half), double(half - 1))) +
           half;
  return static_cast<int>(std::clamp(r + zero, 0.0, double(maxq)));
}

/// Calls fn(params, groupBegin, groupSize) for every group of \p m, with
/// groupBegin an index into the row-major matrix.
template <typename Fn> void forEachGroup(const UniformMatrix &m, Fn fn) {
  int64_t width = m.scheme.groupSize == 0 ? m.cols : m.scheme.groupSize;
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t g = 0; g < m.groups; ++g)
      fn(m.params(r, g), r * m.cols + g * width,
         std::min(width, m.cols - g * width));
}

} // namespace

//===----------------------------------------------------------------------===//
// Scheme helpers
//===----------------------------------------------------------------------===//

TEST(UniformTest, Validate) {
  EXPECT_EQ(validate(makeScheme(4, 0, false)), "");
  EXPECT_EQ(validate(makeScheme(1, 128, false)), "");
  EXPECT_EQ(validate(makeScheme(2, 0, true)), "");
  EXPECT_EQ(validate(makeScheme(8, 1, true)), "");
  EXPECT_EQ(validate(makeScheme(0, 0, false)), "bits must be in 1..8, got 0");
  EXPECT_EQ(validate(makeScheme(9, 0, false)), "bits must be in 1..8, got 9");
  EXPECT_EQ(validate(makeScheme(1, 0, true)),
            "symmetric quantization needs at least 2 bits");
  EXPECT_NE(validate(makeScheme(4, -1, false)), "");
  EXPECT_NE(validate(makeScheme(-3, 0, true)), "");
}

TEST(UniformTest, GroupCountsAndCodeRanges) {
  EXPECT_EQ(numGroups(576, 128), 5); // The fifth group has 64 columns.
  EXPECT_EQ(numGroups(10, 4), 3);
  EXPECT_EQ(numGroups(128, 128), 1);
  EXPECT_EQ(numGroups(129, 128), 2);
  EXPECT_EQ(numGroups(4096, 0), 1);
  EXPECT_EQ(numGroups(0, 128), 0);
  EXPECT_EQ(maxCode(1), 1);
  EXPECT_EQ(maxCode(4), 15);
  EXPECT_EQ(maxCode(8), 255);
  EXPECT_EQ(symmetricZero(2), 2);
  EXPECT_EQ(symmetricZero(4), 8);
  EXPECT_EQ(symmetricZero(8), 128);
}

//===----------------------------------------------------------------------===//
// Hand-computed cases
//===----------------------------------------------------------------------===//

TEST(UniformTest, AsymmetricTwoBitHandCase) {
  // s = (2 - -1) / 3 = 1 (exact in f16); z = round(1 / 1) = 1.
  // codes: round(-1) + 1 = 0, 0 + 1 = 1, round(0.5) + 1 = 2 (half away from
  // zero), 2 + 1 = 3. deq = (q - 1) * 1 = -1, 0, 1, 2.
  const float w[] = {-1.0f, 0.0f, 0.5f, 2.0f};
  UniformMatrix m = quantizeRTN(w, 1, 4, makeScheme(2, 0, false));
  EXPECT_EQ(m.groups, 1);
  EXPECT_EQ(m.codes, (std::vector<uint8_t>{0, 1, 2, 3}));
  EXPECT_EQ(m.scales, (std::vector<uint16_t>{0x3C00}));
  EXPECT_EQ(m.zeros, (std::vector<uint8_t>{1}));
  EXPECT_EQ(dequantized(m), (std::vector<float>{-1.0f, 0.0f, 1.0f, 2.0f}));
}

TEST(UniformTest, ScaleIsRoundedToHalfBeforeCoding) {
  // s = (1 - 0) / 15 = 0.0666..., which f16 holds as 1.06640625 * 2^-4 =
  // 0.066650390625 (0x2C44); z = round(-0 / s) = 0. 1 / s = 15.0037 -> 15,
  // so deq(1) = 15 * 0.066650390625 = 0.999755859375, which is exactly what a
  // runtime storing the f16 scale computes.
  const float w[] = {0.0f, 1.0f};
  UniformMatrix m = quantizeRTN(w, 1, 2, makeScheme(4, 0, false));
  EXPECT_EQ(m.scales, (std::vector<uint16_t>{0x2C44}));
  EXPECT_EQ(m.params(0, 0).scale, 0.066650390625f);
  EXPECT_EQ(m.codes, (std::vector<uint8_t>{0, 15}));
  EXPECT_EQ(dequantized(m), (std::vector<float>{0.0f, 0.999755859375f}));
}

TEST(UniformTest, SymmetricThreeBitHandCase) {
  // z = 2^2 = 4; s = max|x| / (4 - 1) = 3 / 3 = 1.
  // round(x / s) = 2 (1.5 away from zero), -3, 1, 3, each + 4 = 6, 1, 5, 7.
  // deq = (q - 4) * 1 = 2, -3, 1, 3.
  const float w[] = {1.5f, -3.0f, 0.7f, 3.0f};
  UniformMatrix m = quantizeRTN(w, 1, 4, makeScheme(3, 0, true));
  EXPECT_EQ(m.codes, (std::vector<uint8_t>{6, 1, 5, 7}));
  EXPECT_EQ(m.scales, (std::vector<uint16_t>{0x3C00}));
  EXPECT_TRUE(m.zeros.empty());
  EXPECT_EQ(m.params(0, 0).zero, 4);
  EXPECT_EQ(dequantized(m), (std::vector<float>{2.0f, -3.0f, 1.0f, 3.0f}));
}

TEST(UniformTest, SymmetricFourBitHandCase) {
  // z = 8; s = 0.7 / 7 = 0.1 -> f16 0.0999755859375.
  // 0.7 / s = 7.0017 -> 7 -> code 15; -0.35 / s = -3.5009 -> -4 -> code 4.
  // deq = 7 * s = 0.6998291015625 and -4 * s = -0.39990234375.
  const float w[] = {0.7f, -0.35f};
  UniformMatrix m = quantizeRTN(w, 1, 2, makeScheme(4, 0, true));
  EXPECT_EQ(m.params(0, 0).scale, 0.0999755859375f);
  EXPECT_EQ(m.codes, (std::vector<uint8_t>{15, 4}));
  EXPECT_EQ(dequantized(m),
            (std::vector<float>{0.6998291015625f, -0.39990234375f}));
}

TEST(UniformTest, ShortLastGroup) {
  // K = 10, g = 4: groups of 4, 4 and 2 columns, 2-bit asymmetric.
  //   [0, 1, 2, 3]:  s = 3 / 3 = 1, z = 0, codes 0 1 2 3.
  //   [-2, 0, 2, 4]: s = 6 / 3 = 2, z = round(2 / 2) = 1,
  //                  codes -1+1 = 0, 0+1 = 1, 1+1 = 2, 2+1 = 3.
  //   [-1, 2]:       s = 3 / 3 = 1, z = 1, codes 0, 3.
  // Row 1 is row 0 doubled: scales double (exactly, in f16), codes repeat.
  std::vector<float> w = {0, 1, 2, 3, -2, 0, 2, 4, -1, 2};
  for (int i = 0; i < 10; ++i)
    w.push_back(2 * w[i]);
  UniformMatrix m = quantizeRTN(w.data(), 2, 10, makeScheme(2, 4, false));
  EXPECT_EQ(m.groups, 3);
  std::vector<uint8_t> rowCodes = {0, 1, 2, 3, 0, 1, 2, 3, 0, 3};
  std::vector<uint8_t> codes = rowCodes;
  codes.insert(codes.end(), rowCodes.begin(), rowCodes.end());
  EXPECT_EQ(m.codes, codes);
  EXPECT_EQ(m.zeros, (std::vector<uint8_t>{0, 1, 1, 0, 1, 1}));
  // 1.0, 2.0, 1.0 in row 0 and 2.0, 4.0, 2.0 in row 1.
  EXPECT_EQ(m.scales, (std::vector<uint16_t>{0x3C00, 0x4000, 0x3C00, 0x4000,
                                             0x4400, 0x4000}));
  EXPECT_EQ(dequantized(m), w);
}

TEST(UniformTest, RoundHalfAwayMatchesStdRound) {
  // Includes the values where "add 0.5 and truncate" goes wrong
  // (0.49999997 + 0.5 rounds up to 1 in float) and integers beyond 2^23.
  const float edge[] = {
      0.0f,  -0.0f,      0.49999997f, -0.49999997f, 0.5f, -0.5f,      2.5f,
      -2.5f, 8388607.5f, 8388609.0f,  -8388609.0f,  1e9f, 1.0000001f, -1023.5f};
  for (float v : edge)
    EXPECT_EQ(roundHalfAway(v), static_cast<int>(std::round(v))) << v;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uniform(-300.0f, 300.0f);
  for (int i = 0; i < 100000; ++i) {
    float v = uniform(rng);
    ASSERT_EQ(roundHalfAway(v), static_cast<int>(std::round(v))) << v;
  }
}

TEST(UniformTest, RoundsHalfAwayFromZero) {
  // s = 1, z = 4 at 3 bits: x / s = +-0.5, +-1.5, +-2.5 are exact ties and
  // round away from zero (not to even), then shift by 4.
  GroupParams p = {1.0f, 4};
  const float x[] = {-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f};
  const uint8_t expected[] = {1, 2, 3, 5, 6, 7};
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(quantizeValue(x[i], p, 3), expected[i]) << "x " << x[i];
  // The zero point rounds the same way: -mn / s = 2.5 -> z = 3.
  EXPECT_EQ(groupParamsFromRange(-2.5f, 0.5f, makeScheme(2, 0, false)).zero, 3);
}

TEST(UniformTest, ParamsFromShrunkRange) {
  // A clipping search trying [-0.5, 0.5] at 4 bits: s = 1 / 15 -> f16
  // 0.066650390625, z = round(0.5 / s) = round(7.5018) = 8.
  GroupParams p = groupParamsFromRange(-0.5f, 0.5f, makeScheme(4, 0, false));
  EXPECT_EQ(p.scale, 0.066650390625f);
  EXPECT_EQ(p.zero, 8);
  // Values outside the range saturate.
  EXPECT_EQ(quantizeValue(-3.0f, p, 4), 0);
  EXPECT_EQ(quantizeValue(3.0f, p, 4), 15);
  EXPECT_EQ(quantizeValue(0.0f, p, 4), 8);
}

TEST(UniformTest, ParamsFromValuesMatchParamsFromTheirRange) {
  std::vector<float> w = randomMatrix(1, 77, 5);
  auto [mn, mx] = std::minmax_element(w.begin(), w.end());
  for (bool symmetric : {false, true}) {
    UniformScheme scheme = makeScheme(3, 0, symmetric);
    GroupParams a = computeGroupParams(w.data(), 77, scheme);
    GroupParams b = groupParamsFromRange(*mn, *mx, scheme);
    EXPECT_EQ(a.scale, b.scale);
    EXPECT_EQ(a.zero, b.zero);
  }
}

//===----------------------------------------------------------------------===//
// Scale floor and ceiling, degenerate groups
//===----------------------------------------------------------------------===//

TEST(UniformTest, ScalesAreFiniteNormalHalves) {
  for (bool symmetric : {false, true}) {
    UniformScheme scheme = makeScheme(2, 0, symmetric);
    // Raw scale 1e-9: clamped to 1e-5, which is an f16 subnormal, so floored.
    EXPECT_EQ(groupParamsFromRange(0.0f, 3e-9f, scheme).scale, kMinNormalHalf);
    // Raw scale ~6.7e5 rounds to the f16 infinity and is clamped to 65504.
    EXPECT_EQ(groupParamsFromRange(-1e6f, 1e6f, scheme).scale, 65504.0f);
    float huge = std::numeric_limits<float>::max();
    EXPECT_EQ(groupParamsFromRange(-huge, huge, scheme).scale, 65504.0f);
  }
}

TEST(UniformTest, NaNValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  UniformScheme scheme = makeScheme(4, 0, false);
  const float mixed[] = {nan, -1.0f, 2.0f, nan};
  GroupParams p = computeGroupParams(mixed, 4, scheme);
  GroupParams q = groupParamsFromRange(-1.0f, 2.0f, scheme);
  EXPECT_EQ(p.scale, q.scale);
  EXPECT_EQ(p.zero, q.zero);
  EXPECT_EQ(quantizeValue(nan, p, 4), 0);
  const float allNaN[] = {nan, nan};
  EXPECT_EQ(computeGroupParams(allNaN, 2, scheme).scale, kMinNormalHalf);
}

TEST(UniformTest, AllZeroGroupsReconstructExactly) {
  const std::vector<float> w(2 * 8, 0.0f);
  for (int bits = 1; bits <= 8; ++bits) {
    for (bool symmetric : {false, true}) {
      if (symmetric && bits == 1)
        continue;
      UniformMatrix m =
          quantizeRTN(w.data(), 2, 8, makeScheme(bits, 4, symmetric));
      forEachGroup(m, [&](GroupParams p, int64_t, int64_t) {
        EXPECT_EQ(p.scale, kMinNormalHalf);
      });
      EXPECT_EQ(dequantized(m), w) << "bits " << bits;
    }
  }
}

TEST(UniformTest, ConstantSymmetricGroupsReconstructNearlyExactly) {
  // s = |c| / (z - 1) rounded to f16 and c maps to +-(z - 1), so the only
  // error is the f16 rounding of s (relative 2^-11), or at most s / 2 when the
  // scale floor binds.
  for (float c : {0.37f, -2.5f, 1e-3f, -7e-5f}) {
    for (int bits = 2; bits <= 8; ++bits) {
      for (int64_t cols : {1, 5}) { // One-element groups too.
        std::vector<float> w(cols, c);
        UniformMatrix m =
            quantizeRTN(w.data(), 1, cols, makeScheme(bits, 0, true));
        float s = m.params(0, 0).scale;
        EXPECT_TRUE(std::isfinite(s) && s >= kMinNormalHalf);
        for (float d : dequantized(m))
          EXPECT_LE(std::fabs(d - c), std::max(std::fabs(c) * 0x1p-11f, s / 2))
              << "c " << c << " bits " << bits;
      }
    }
  }
}

TEST(UniformTest, ConstantAsymmetricGroups) {
  // The asymmetric range always includes 0, so a constant group c > 0 spans
  // [0, c] with s = roundToHalf(c / maxq), z = 0 and every code maxq; c < 0
  // spans [c, 0] with z = maxq and every code 0. Either way c comes back up
  // to the f16 rounding of s (relative 2^-11 on each of maxq steps).
  for (int bits = 1; bits <= 8; ++bits) {
    int maxq = maxCode(bits);
    for (float c : {0.37f, -2.5f, 1e-3f, -7e-5f, 0.0f}) {
      for (int64_t cols : {1, 5}) {
        std::vector<float> w(cols, c);
        UniformMatrix m =
            quantizeRTN(w.data(), 1, cols, makeScheme(bits, 0, false));
        GroupParams p = m.params(0, 0);
        // Tiny constants hit the scale floor 2^-14, and z absorbs them.
        if (std::fabs(c) / maxq > kMinNormalHalf) {
          EXPECT_EQ(p.zero, c < 0 ? maxq : 0) << "bits " << bits << " c " << c;
        }
        for (float d : dequantized(m))
          EXPECT_LE(std::fabs(d - c),
                    std::max(std::fabs(c) * 0x1p-11f, p.scale / 2))
              << "bits " << bits << " c " << c;
      }
    }
  }
  // Exact when c is a multiple of the smallest scale: 0.37 at 4 bits has
  // s = roundToHalf(0.37 / 15) and decodes to 15 * s.
  const float w[] = {0.37f, 0.37f, 0.37f};
  UniformMatrix m = quantizeRTN(w, 1, 3, makeScheme(4, 0, false));
  EXPECT_EQ(m.params(0, 0).zero, 0);
  EXPECT_EQ(m.codes, (std::vector<uint8_t>{15, 15, 15}));
  EXPECT_EQ(dequantized(m)[0], 15 * roundToHalf(0.37f / 15));
}

//===----------------------------------------------------------------------===//
// Randomized properties
//===----------------------------------------------------------------------===//

TEST(UniformTest, MatchesFloat64Reference) {
  // Where the reference sits on a rounding tie (within 1e-6 relative), float32
  // may legitimately round the other way. For a scale or zero point the
  // library's neighbouring choice is accepted and the group's codes are still
  // checked against it; for a code, it may differ by one and is counted.
  int64_t total = 0, excusedCodes = 0, paramTies = 0, mismatches = 0;
  std::string firstMismatch;
  auto mismatch = [&](const Config &c, int64_t index, const std::string &what) {
    if (mismatches++ == 0)
      firstMismatch =
          describe(c) + " element " + std::to_string(index) + ": " + what;
  };
  for (const Config &c : randomConfigs()) {
    std::vector<float> w = randomMatrix(c.rows, c.cols, seedOf(c));
    UniformMatrix m = quantizeRTN(w.data(), c.rows, c.cols, c.scheme);
    ASSERT_EQ(m.codes.size(), size_t(c.rows * c.cols));
    ASSERT_EQ(m.scales.size(), size_t(c.rows * m.groups));
    ASSERT_EQ(m.zeros.size(), c.scheme.symmetric ? 0 : m.scales.size());
    int bits = c.scheme.bits;
    bool symmetric = c.scheme.symmetric;
    forEachGroup(m, [&](GroupParams p, int64_t begin, int64_t n) {
      total += n;
      auto [mn, mx] = refRange(&w[begin], n);
      bool scaleTie, zeroTie;
      double scale = refScale(mn, mx, bits, symmetric, scaleTie);
      if (p.scale != scale) {
        if (!scaleTie || std::fabs(p.scale - scale) > scale * 0x1p-10)
          return mismatch(c, begin,
                          "scale " + std::to_string(p.scale) + " expected " +
                              std::to_string(scale));
        ++paramTies;
        scale = p.scale;
      }
      int zero = refZero(mn, scale, bits, symmetric, zeroTie);
      if (p.zero != zero) {
        if (!zeroTie || std::abs(p.zero - zero) != 1)
          return mismatch(c, begin,
                          "zero " + std::to_string(p.zero) + " expected " +
                              std::to_string(zero));
        ++paramTies;
        zero = p.zero;
      }
      for (int64_t i = begin; i < begin + n; ++i) {
        int expected = refCode(w[i], scale, zero, bits, symmetric);
        if (nearHalfTie(w[i] / scale)) {
          ++excusedCodes;
          if (std::abs(expected - m.codes[i]) > 1)
            mismatch(c, i, "tie off by more than one");
        } else if (m.codes[i] != expected) {
          mismatch(c, i,
                   "code " + std::to_string(m.codes[i]) + " expected " +
                       std::to_string(expected));
        }
      }
    });
  }
  EXPECT_EQ(mismatches, 0) << firstMismatch;
  EXPECT_LT(excusedCodes * 1000, total) << excusedCodes << " of " << total;
  std::cout << "[          ] " << total << " codes, " << excusedCodes
            << " near ties, " << paramTies << " scale/zero ties taken the "
            << "other way\n";
}

TEST(UniformTest, StoredParamsMatchGroupPrimitives) {
  for (const Config &c : randomConfigs()) {
    SCOPED_TRACE(describe(c));
    std::vector<float> w = randomMatrix(c.rows, c.cols, seedOf(c) + 1);
    UniformMatrix m = quantizeRTN(w.data(), c.rows, c.cols, c.scheme);
    std::vector<float> deq = dequantized(m);
    forEachGroup(m, [&](GroupParams p, int64_t begin, int64_t n) {
      GroupParams direct = computeGroupParams(&w[begin], n, c.scheme);
      ASSERT_EQ(p.scale, direct.scale);
      ASSERT_EQ(p.zero, direct.zero);
      for (int64_t i = begin; i < begin + n; ++i) {
        ASSERT_EQ(m.codes[i], quantizeValue(w[i], p, c.scheme.bits));
        ASSERT_EQ(deq[i], dequantizeValue(m.codes[i], p));
      }
    });
  }
}

TEST(UniformTest, ErrorIsAtMostHalfAStepInsideTheRange) {
  for (const Config &c : randomConfigs()) {
    SCOPED_TRACE(describe(c));
    std::vector<float> w = randomMatrix(c.rows, c.cols, seedOf(c) + 2);
    UniformMatrix m = quantizeRTN(w.data(), c.rows, c.cols, c.scheme);
    std::vector<float> deq = dequantized(m);
    int maxq = maxCode(c.scheme.bits);
    int64_t inRange = 0;
    forEachGroup(m, [&](GroupParams p, int64_t begin, int64_t n) {
      double lo = dequantizeValue(0, p);
      double hi = dequantizeValue(static_cast<uint8_t>(maxq), p);
      auto [mn, mx] = refRange(&w[begin], n);
      for (int64_t i = begin; i < begin + n; ++i) {
        double error = std::fabs(double(deq[i]) - w[i]);
        // Besides the relative slack, float32 x / s is off by up to |x / s|
        // units of 2^-24, which moves the rounding point by |x| * 2^-24.
        double slack = std::fabs(w[i]) * 0x1p-24;
        if (lo <= w[i] && w[i] <= hi) {
          ++inRange;
          ASSERT_LE(error, p.scale / 2 * (1 + 1e-5) + slack) << "at " << i;
        } else if (mn <= 0 && 0 <= mx) {
          // The range misses group extremes only by rounding z (s / 2) and
          // rounding s to f16 (relative 2^-11 on each of maxq steps).
          double stretch = 0.5 + maxq * 0x1p-10;
          ASSERT_LE(error, p.scale * stretch * (1 + 1e-5) + slack)
              << "at " << i;
        }
      }
    });
    // Keeps the strict bound from being vacuous. Out of range are values
    // within about s / 2 of a group's extremes (more of them at 2 bits, where
    // s / 2 is a sixth of the range) and, in tiny groups, whole groups that
    // miss 0 and saturate (see ConstantAsymmetricGroups).
    if (c.cols >= 32) {
      EXPECT_GT(inRange, int64_t(0.85 * c.rows * c.cols));
    }
  }
}

TEST(UniformTest, GroupingReducesError) {
  const int64_t rows = 32, cols = 576;
  std::vector<float> w = randomMatrix(rows, cols, 11);
  for (bool symmetric : {false, true}) {
    double perChannel = meanSquaredError(
        w, quantizeRTN(w.data(), rows, cols, makeScheme(4, 0, symmetric)));
    double g128 = meanSquaredError(
        w, quantizeRTN(w.data(), rows, cols, makeScheme(4, 128, symmetric)));
    double g32 = meanSquaredError(
        w, quantizeRTN(w.data(), rows, cols, makeScheme(4, 32, symmetric)));
    EXPECT_GT(perChannel, g128);
    EXPECT_GT(g128, g32);
  }
}

TEST(UniformTest, MoreBitsReduceError) {
  const int64_t rows = 32, cols = 576;
  std::vector<float> w = randomMatrix(rows, cols, 13);
  for (bool symmetric : {false, true}) {
    double previous = std::numeric_limits<double>::infinity();
    for (int bits = symmetric ? 2 : 1; bits <= 8; ++bits) {
      double mse =
          meanSquaredError(w, quantizeRTN(w.data(), rows, cols,
                                          makeScheme(bits, 128, symmetric)));
      EXPECT_LT(mse, previous) << "bits " << bits;
      previous = mse;
    }
  }
}
