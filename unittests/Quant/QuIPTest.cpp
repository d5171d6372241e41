//===- QuIPTest.cpp - Tests for randomized Hadamard transforms and QuIP ---===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/QuIP.h"

#include "llq/Quant/OutputError.h"
#include "llq/Quant/Statistics.h"

#include "gtest/gtest.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

using namespace llq::quant;

namespace {

std::vector<double> gaussian64(int64_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> v(count);
  for (double &x : v)
    x = normal(rng);
  return v;
}

std::vector<float> gaussian(int64_t count, unsigned seed, float sigma = 1) {
  std::vector<double> v = gaussian64(count, seed);
  std::vector<float> out(count);
  for (int64_t i = 0; i < count; ++i)
    out[i] = static_cast<float>(sigma * v[i]);
  return out;
}

/// The dense n x n matrix of \p t in float64: column j is T e_j.
std::vector<double> denseOf(const RandomizedHadamard &t) {
  int64_t n = t.size();
  std::vector<double> a(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    a[i * n + i] = 1.0;
  t.applyToColumns(a.data(), n);
  return a;
}

/// R (x) (H_p S) from its definition: H_ij = (-1)^popcount(i & j) / sqrt(p).
std::vector<double> referenceDense(const RandomizedHadamard &t) {
  int64_t n = t.size(), p = t.hadamardSize(), m = t.oddSize();
  std::vector<double> a(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t bi = i / p, ai = i % p, bj = j / p, aj = j % p;
      double h = (__builtin_popcountll(ai & aj) % 2 ? -1.0 : 1.0) /
                 std::sqrt(double(p));
      a[i * n + j] = t.mixing()[bi * m + bj] * h * t.signs()[aj];
    }
  return a;
}

/// max |A^T A - I| for the n x n matrix \p a.
double orthogonalityDefect(const std::vector<double> &a, int64_t n) {
  double worst = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0;
      for (int64_t l = 0; l < n; ++l)
        dot += a[l * n + i] * a[l * n + j];
      worst = std::max(worst, std::fabs(dot - (i == j ? 1.0 : 0.0)));
    }
  return worst;
}

/// C = op(A) B in float64 for n x n A and n x c B, op(A) = A or A^T.
std::vector<double> multiply(const std::vector<double> &a, bool transposeA,
                             const std::vector<double> &b, int64_t n,
                             int64_t c) {
  std::vector<double> out(n * c, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t l = 0; l < n; ++l) {
      double coefficient = transposeA ? a[l * n + i] : a[i * n + l];
      for (int64_t j = 0; j < c; ++j)
        out[i * c + j] += coefficient * b[l * c + j];
    }
  return out;
}

double maxAbsDiff(const std::vector<double> &a, const std::vector<double> &b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

double dot(const std::vector<double> &a, const std::vector<double> &b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    s += a[i] * b[i];
  return s;
}

/// Calibration inputs like an LLM layer's: X = Z (I + G / sqrt(k)) for
/// Gaussian Z and G, so that features are correlated, with a few outlier
/// channels 10x larger.
std::vector<float> correlatedInputs(int64_t t, int64_t k, unsigned seed,
                                    int outliers) {
  std::vector<float> z = gaussian(t * k, seed);
  std::vector<float> mix = gaussian(k * k, seed + 1, 1.0f / std::sqrt(k));
  for (int64_t i = 0; i < k; ++i)
    mix[i * k + i] += 1.0f;
  std::vector<float> x(t * k);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t, k, k, 1.0f,
              z.data(), k, mix.data(), k, 0.0f, x.data(), k);
  std::mt19937 rng(seed + 2);
  for (int o = 0; o < outliers; ++o) {
    int64_t channel = rng() % k;
    for (int64_t r = 0; r < t; ++r)
      x[r * k + channel] *= 10.0f;
  }
  return x;
}

/// Gaussian weights (sigma 0.02) whose input columns \p outlierColumns are
/// 20x larger, as in the salient columns of LLM layers.
std::vector<float> outlierWeights(int64_t n, int64_t k, unsigned seed,
                                  const std::vector<int64_t> &outlierColumns) {
  std::vector<float> w = gaussian(n * k, seed, 0.02f);
  for (int64_t column : outlierColumns)
    for (int64_t r = 0; r < n; ++r)
      w[r * k + column] *= 20.0f;
  return w;
}

std::vector<float> hessianOf(const std::vector<float> &x, int64_t t,
                             int64_t k) {
  HessianAccumulator acc(k);
  acc.add(x.data(), t);
  return acc.matrix();
}

UniformScheme perChannel(int bits) {
  UniformScheme scheme;
  scheme.bits = bits;
  return scheme;
}

QuIPOptions quipOptions(UniformScheme scheme, bool rescale) {
  QuIPOptions options;
  options.ldlq.scheme = scheme;
  options.rescale = rescale;
  return options;
}

std::vector<float> dequantized(const QuIPMatrix &m) {
  std::vector<float> out(m.transformed.rows * m.transformed.cols);
  dequantize(m, out.data());
  return out;
}

std::vector<float> dequantized(const UniformMatrix &m) {
  std::vector<float> out(m.rows * m.cols);
  dequantize(m, out.data());
  return out;
}

} // namespace

//===----------------------------------------------------------------------===//
// RandomizedHadamard
//===----------------------------------------------------------------------===//

TEST(RandomizedHadamardTest, FactorsSizes) {
  struct Size {
    int64_t n, p, m;
  };
  const Size sizes[] = {{1, 1, 1},        {9, 1, 9},       {64, 64, 1},
                        {576, 64, 9},     {1536, 512, 3},  {4096, 4096, 1},
                        {14336, 2048, 7}, {11008, 256, 43}};
  for (Size s : sizes) {
    ASSERT_EQ(RandomizedHadamard::checkSize(s.n), "") << s.n;
    RandomizedHadamard t(s.n, 1);
    EXPECT_EQ(t.size(), s.n);
    EXPECT_EQ(t.hadamardSize(), s.p) << s.n;
    EXPECT_EQ(t.oddSize(), s.m) << s.n;
    EXPECT_EQ(t.signs().size(), size_t(s.p));
    EXPECT_EQ(t.mixing().size(), size_t(s.m * s.m));
    for (int8_t sign : t.signs())
      EXPECT_TRUE(sign == 1 || sign == -1);
  }
  EXPECT_NE(RandomizedHadamard::checkSize(0), "");
  // 2062 = 2 * 1031, with 1031 prime.
  std::string error = RandomizedHadamard::checkSize(2062);
  EXPECT_NE(error.find("1031"), std::string::npos) << error;
}

TEST(RandomizedHadamardTest, OrthogonalInFloat64) {
  for (int64_t n : {1, 2, 3, 8, 12, 64, 72, 576}) {
    RandomizedHadamard t(n, 1000 + n);
    std::vector<double> a = denseOf(t);
    double defect = orthogonalityDefect(a, n);
    EXPECT_LT(defect, 1e-12) << "n = " << n;
    if (n == 576)
      std::printf("[          ] max |T^T T - I|, n = 576: %.2e\n", defect);
  }
}

TEST(RandomizedHadamardTest, MatchesDenseKroneckerProduct) {
  for (int64_t n : {4, 12, 40, 64, 72, 96}) {
    RandomizedHadamard t(n, 7 * n);
    std::vector<double> dense = referenceDense(t);
    EXPECT_LT(maxAbsDiff(denseOf(t), dense), 1e-13) << "n = " << n;

    // Float32 application to the columns and rows of a matrix, against the
    // float64 product with the dense matrix.
    const int64_t c = 5;
    std::vector<double> b = gaussian64(n * c, unsigned(n));
    for (bool transpose : {false, true}) {
      std::vector<double> expected = multiply(dense, transpose, b, n, c);
      std::vector<float> cols(b.begin(), b.end());
      t.applyToColumns(cols.data(), c, transpose);
      std::vector<double> got(cols.begin(), cols.end());
      EXPECT_LT(maxAbsDiff(got, expected), 1e-5)
          << "columns, n = " << n << (transpose ? " transposed" : "");

      // Rows of B^T (c x n): row x <- T x is the same product transposed.
      std::vector<float> rows(c * n);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < c; ++j)
          rows[j * n + i] = static_cast<float>(b[i * c + j]);
      t.applyToRows(rows.data(), c, transpose);
      double worst = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < c; ++j)
          worst =
              std::max(worst, std::fabs(rows[j * n + i] - expected[i * c + j]));
      EXPECT_LT(worst, 1e-5)
          << "rows, n = " << n << (transpose ? " transposed" : "");
    }
  }
}

TEST(RandomizedHadamardTest, LargeSizesAreOrthogonal) {
  // Too large for a dense check: T preserves inner products and T^T undoes
  // T, in float64, on random vectors; in float32 on a matrix's rows and
  // columns.
  for (int64_t n : {1536, 14336}) {
    RandomizedHadamard t(n, 3);
    std::vector<double> x = gaussian64(n, 1), y = gaussian64(n, 2);
    std::vector<double> tx = x, ty = y;
    t.applyToRows(tx.data(), 1);
    t.applyToRows(ty.data(), 1);
    EXPECT_NEAR(dot(tx, tx), dot(x, x), 1e-12 * dot(x, x)) << n;
    EXPECT_NEAR(dot(tx, ty), dot(x, y), 1e-12 * dot(x, x)) << n;
    t.applyToRows(tx.data(), 1, /*transpose=*/true);
    EXPECT_LT(maxAbsDiff(tx, x), 1e-12) << n;

    const int64_t c = 3;
    std::vector<float> a = gaussian(n * c, 4), original = a;
    t.applyToColumns(a.data(), c);
    t.applyToColumns(a.data(), c, /*transpose=*/true);
    t.applyToRows(a.data(), c);
    t.applyToRows(a.data(), c, /*transpose=*/true);
    float worst = 0;
    for (int64_t i = 0; i < n * c; ++i)
      worst = std::max(worst, std::fabs(a[i] - original[i]));
    EXPECT_LT(worst, 1e-5f) << n;
  }
}

TEST(RandomizedHadamardTest, DeterminedBySeed) {
  RandomizedHadamard a(576, 42), b(576, 42), c(576, 43);
  EXPECT_EQ(a.signs(), b.signs());
  EXPECT_EQ(a.mixing(), b.mixing());
  EXPECT_NE(a.signs(), c.signs());
  EXPECT_NE(a.mixing(), c.mixing());
  std::vector<float> x = gaussian(576 * 2, 5), y = x, z = x;
  a.applyToRows(x.data(), 2);
  b.applyToRows(y.data(), 2);
  c.applyToRows(z.data(), 2);
  EXPECT_EQ(x, y);
  EXPECT_NE(x, z);
}

//===----------------------------------------------------------------------===//
// QuIP
//===----------------------------------------------------------------------===//

TEST(QuIPTest, IncoherenceMeasure) {
  const float equal[] = {1, -1, 1, 1, -1, -1};
  EXPECT_DOUBLE_EQ(incoherence(equal, 2, 3), 1.0);
  const float spike[] = {0, 0, 0, 0, 5, 0};
  EXPECT_DOUBLE_EQ(incoherence(spike, 2, 3), std::sqrt(6.0));
  const float zero[] = {0, 0};
  EXPECT_EQ(incoherence(zero, 1, 2), 0.0);
}

TEST(QuIPTest, TransformsRoundTripExactly) {
  // W' = U W V^T and back, in float64: exact to rounding.
  const int64_t n = 96, k = 576;
  RandomizedHadamard u(n, 11), v(k, 12);
  std::vector<double> w = gaussian64(n * k, 13), t = w;
  u.applyToColumns(t.data(), k);
  v.applyToRows(t.data(), n);
  EXPECT_GT(maxAbsDiff(t, w), 0.1);
  u.applyToColumns(t.data(), k, /*transpose=*/true);
  v.applyToRows(t.data(), n, /*transpose=*/true);
  EXPECT_LT(maxAbsDiff(t, w), 1e-12);
}

TEST(QuIPTest, EightBitsReconstructTheLayer) {
  // At 8 bits Q' ~ W', so dequantize must undo the rotations and the
  // rescaling: the relative error is that of 8-bit rounding.
  const int64_t n = 48, k = 192, t = 768;
  std::vector<float> x = correlatedInputs(t, k, 21, 2);
  std::vector<float> w = outlierWeights(n, k, 22, {5, 100});
  std::vector<float> h = hessianOf(x, t, k);
  for (bool rescale : {false, true}) {
    QuIPMatrix m;
    std::string error;
    ASSERT_TRUE(quipQuantize(w.data(), n, k, h,
                             quipOptions(perChannel(8), rescale), m, error))
        << error;
    EXPECT_EQ(m.columnScales.size(), rescale ? size_t(k) : 0u);
    std::vector<float> q = dequantized(m);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n * k; ++i) {
      err += double(q[i] - w[i]) * (q[i] - w[i]);
      ref += double(w[i]) * w[i];
    }
    EXPECT_LT(std::sqrt(err / ref), 0.02) << "rescale " << rescale;
  }
}

TEST(QuIPTest, RepresentationAndDeterminism) {
  const int64_t n = 24, k = 72, t = 300;
  std::vector<float> x = correlatedInputs(t, k, 31, 1);
  std::vector<float> w = outlierWeights(n, k, 32, {3});
  std::vector<float> h = hessianOf(x, t, k);
  UniformScheme scheme = perChannel(3);
  scheme.groupSize = 32; // 32, 32, 8.
  QuIPOptions options = quipOptions(scheme, true);
  options.seedU = 77;
  options.seedV = 78;
  QuIPMatrix a, b;
  std::string error;
  ASSERT_TRUE(quipQuantize(w.data(), n, k, h, options, a, error)) << error;
  ASSERT_TRUE(quipQuantize(w.data(), n, k, h, options, b, error)) << error;
  EXPECT_EQ(a.seedU, 77u);
  EXPECT_EQ(a.seedV, 78u);
  EXPECT_EQ(a.transformed.rows, n);
  EXPECT_EQ(a.transformed.cols, k);
  EXPECT_EQ(a.transformed.groups, 3);
  EXPECT_EQ(a.transformed.codes.size(), size_t(n * k));
  EXPECT_EQ(a.transformed.scales.size(), size_t(n * 3));
  EXPECT_EQ(a.transformed.zeros.size(), size_t(n * 3));
  EXPECT_EQ(a.transformed.codes, b.transformed.codes);
  EXPECT_EQ(a.transformed.scales, b.transformed.scales);
  EXPECT_EQ(dequantized(a), dequantized(b));
  // Dequantizing is U^T Q' V D^-1, from the seeds alone.
  std::vector<float> expected = dequantized(a.transformed);
  RandomizedHadamard(n, 77).applyToColumns(expected.data(), k, true);
  RandomizedHadamard(k, 78).applyToRows(expected.data(), n, true);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i)
      expected[r * k + i] /= a.columnScales[i];
  EXPECT_EQ(dequantized(a), expected);
}

TEST(QuIPTest, DeadInputsAndBadInputs) {
  const int64_t n = 8, k = 24, t = 100;
  std::vector<float> x = correlatedInputs(t, k, 41, 0);
  for (int64_t r = 0; r < t; ++r)
    x[r * k + 4] = 0.0f;
  std::vector<float> w = gaussian(n * k, 42);
  std::vector<float> h = hessianOf(x, t, k);
  QuIPMatrix m;
  std::string error;
  for (bool rescale : {false, true}) {
    ASSERT_TRUE(quipQuantize(w.data(), n, k, h,
                             quipOptions(perChannel(4), rescale), m, error))
        << error;
    for (float v : dequantized(m))
      EXPECT_TRUE(std::isfinite(v));
  }
  EXPECT_FALSE(quipQuantize(w.data(), n, k, std::vector<float>(k * k - 1),
                            quipOptions(perChannel(4), true), m, error));
  EXPECT_NE(error.find("Hessian"), std::string::npos) << error;
  std::vector<float> nan = h;
  nan[3] = std::nanf("");
  EXPECT_FALSE(quipQuantize(w.data(), n, k, nan,
                            quipOptions(perChannel(4), true), m, error));
  EXPECT_NE(error.find("non-finite"), std::string::npos) << error;
  EXPECT_FALSE(quipQuantize(w.data(), n, k, h, quipOptions(perChannel(9), true),
                            m, error));
  EXPECT_NE(error.find("bits"), std::string::npos) << error;
  std::vector<float> wide(2 * 2062, 1.0f);
  EXPECT_FALSE(quipQuantize(wide.data(), 2, 2062,
                            std::vector<float>(2062 * 2062, 0.0f),
                            quipOptions(perChannel(4), true), m, error));
  EXPECT_NE(error.find("odd factor"), std::string::npos) << error;
}

TEST(QuIPTest, BeatsGPTQAndRTNOnOutlierColumns) {
  // K = 576 = 64 * 9 (SmolLM2's hidden size) and N = 192 = 64 * 3, so both
  // transforms have a mixing factor. Four weight columns are 20x larger and
  // the inputs are correlated with outlier channels: per-channel grids of W
  // are stretched by a few weights, which the rotations spread out.
  const int64_t n = 192, k = 576, t = 2304;
  std::vector<float> x = correlatedInputs(t, k, 51, 4);
  std::vector<float> w = outlierWeights(n, k, 52, {17, 130, 301, 555});
  std::vector<float> h = hessianOf(x, t, k);

  QuIPOptions options = quipOptions(perChannel(2), true);
  RandomizedHadamard u(n, options.seedU), v(k, options.seedV);
  std::vector<float> rotated = w;
  u.applyToColumns(rotated.data(), k);
  v.applyToRows(rotated.data(), n);
  double before = incoherence(w.data(), n, k);
  double after = incoherence(rotated.data(), n, k);
  std::printf("[          ] incoherence mu: W %.2f, U W V^T %.2f\n", before,
              after);
  RecordProperty("incoherence_before", std::to_string(before));
  RecordProperty("incoherence_after", std::to_string(after));
  EXPECT_LT(after, before / 4);

  for (int bits : {2, 3}) {
    UniformScheme scheme = perChannel(bits);
    auto outputError = [&](const std::vector<float> &q) {
      return relativeOutputError(x.data(), t, k, w.data(), q.data(), n);
    };
    double rtn = outputError(dequantized(quantizeRTN(w.data(), n, k, scheme)));
    GPTQOptions gptqOptions;
    gptqOptions.scheme = scheme;
    UniformMatrix g;
    std::string error;
    ASSERT_TRUE(gptqQuantize(w.data(), n, k, h, gptqOptions, g, error));
    double gptq = outputError(dequantized(g));
    double quip[2];
    for (bool rescale : {false, true}) {
      QuIPMatrix m;
      ASSERT_TRUE(quipQuantize(w.data(), n, k, h, quipOptions(scheme, rescale),
                               m, error))
          << error;
      quip[rescale] = outputError(dequantized(m));
    }
    std::printf("[          ] w%d per channel, relative output error: RTN "
                "%.4f, GPTQ %.4f, QuIP %.4f, QuIP without rescaling %.4f\n",
                bits, rtn, gptq, quip[1], quip[0]);
    std::string suffix = "_w" + std::to_string(bits);
    RecordProperty("rtn" + suffix, std::to_string(rtn));
    RecordProperty("gptq" + suffix, std::to_string(gptq));
    RecordProperty("quip" + suffix, std::to_string(quip[1]));
    RecordProperty("quip_no_rescale" + suffix, std::to_string(quip[0]));
    EXPECT_LT(quip[1], gptq) << bits << " bits";
    EXPECT_LT(quip[1], rtn) << bits << " bits";
    EXPECT_LT(quip[0], gptq) << bits << " bits, without rescaling";
  }
}
