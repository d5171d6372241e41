//===- GPTQTest.cpp - Tests for GPTQ and the Hessian accumulator ----------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/GPTQ.h"

#include "llq/Quant/Half.h"
#include "llq/Quant/Statistics.h"

#include "QuantTestUtils.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
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

GPTQOptions makeOptions(UniformScheme scheme, int64_t blockSize = 128,
                        bool actOrder = false, bool staticGroups = false) {
  GPTQOptions options;
  options.scheme = scheme;
  options.blockSize = blockSize;
  options.actOrder = actOrder;
  options.staticGroups = staticGroups;
  return options;
}

std::vector<float> dequantized(const UniformMatrix &m) {
  std::vector<float> out(m.rows * m.cols);
  dequantize(m, out.data());
  return out;
}

/// H = 2/t X^T X, in float64 from the definition.
std::vector<double> referenceHessian(const std::vector<float> &x, int64_t t,
                                     int64_t k) {
  std::vector<double> h(k * k, 0.0);
  for (int64_t r = 0; r < t; ++r)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j)
        h[i * k + j] += double(x[r * k + i]) * x[r * k + j];
  for (double &v : h)
    v *= 2.0 / t;
  return h;
}

std::vector<float> hessianOf(const std::vector<float> &x, int64_t t,
                             int64_t k) {
  HessianAccumulator acc(k);
  acc.add(x.data(), t);
  return acc.matrix();
}

/// 1/2 sum over rows of d^T H d for d = dequantized(m) - w: half the output
/// error ||X W^T - X Q^T||^2 / t when H = 2/t X^T X.
double quadraticError(const std::vector<float> &w, const UniformMatrix &m,
                      const std::vector<double> &h) {
  std::vector<float> q = dequantized(m);
  int64_t k = m.cols;
  double total = 0;
  std::vector<double> d(k);
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t j = 0; j < k; ++j)
      d[j] = double(q[r * k + j]) - w[r * k + j];
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j)
        total += d[i] * h[i * k + j] * d[j];
  }
  return total / 2;
}

//===----------------------------------------------------------------------===//
// Float64 reference GPTQ
//===----------------------------------------------------------------------===//

/// How the reference's run compared with the library's.
struct Comparison {
  int64_t codes = 0, codeTies = 0, paramTies = 0, mismatches = 0;
  std::string firstMismatch;
  double loss = 0;

  void mismatch(const std::string &what) {
    if (mismatches++ == 0)
      firstMismatch = what;
  }
};

/// Within \p tol (in steps) of a rounding tie n + 0.5, where float32 and
/// float64 compensated weights may legitimately round differently.
bool nearTie(double r, double tol) {
  return std::fabs(r - std::floor(r) - 0.5) <= tol;
}

/// Tie tolerance in rounding steps. Float32 compensated weights drift from
/// float64 ones by roughly 2^-24 times the growth of the updates, which damping
/// keeps to a few hundred on these problems; 2e-3 is generous, and the test
/// checks that few codes need it.
constexpr double kTieTolerance = 2e-3;

/// GPTQ in float64, written from the reference's column loop with block size
/// 1 (lazy batches only reorder the arithmetic). Where the library took the
/// other side of a near tie (a code, or a lazily computed group's scale or
/// zero), the reference follows it so both stay on one trajectory, and counts
/// it; anything else is a mismatch.
Comparison referenceGPTQ(const std::vector<float> &w, int64_t n, int64_t k,
                         std::vector<double> h, const GPTQOptions &o,
                         const UniformMatrix &lib) {
  Comparison cmp;
  const UniformScheme &s = o.scheme;
  int64_t width = s.groupSize == 0 ? k : s.groupSize;
  bool lazy = s.groupSize > 0 && !o.staticGroups && !o.actOrder;
  std::vector<double> wd(w.begin(), w.end());
  for (int64_t i = 0; i < k; ++i) {
    if (h[i * k + i] != 0)
      continue;
    h[i * k + i] = 1;
    for (int64_t r = 0; r < n; ++r)
      wd[r * k + i] = 0;
  }
  std::vector<int64_t> perm(k);
  std::iota(perm.begin(), perm.end(), 0);
  if (o.actOrder)
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
      return h[a * k + a] > h[b * k + b];
    });
  std::vector<double> hp(k * k);
  double mean = 0;
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j)
      hp[i * k + j] = h[perm[i] * k + perm[j]];
    mean += hp[i * k + i] / k;
  }
  for (int64_t i = 0; i < k; ++i)
    hp[i * k + i] += o.dampPercent * mean;
  std::vector<double> u = inverseCholeskyUpper(hp, k);

  int maxq = maxCode(s.bits);
  for (int64_t r = 0; r < n; ++r) {
    std::vector<GroupParams> params(lib.groups);
    auto rangeParams = [&](auto at, int64_t len) {
      double mn = at(0), mx = at(0);
      for (int64_t j = 1; j < len; ++j) {
        mn = std::min(mn, at(j));
        mx = std::max(mx, at(j));
      }
      return groupParamsFromRange(float(mn), float(mx), s);
    };
    if (!lazy)
      for (int64_t g = 0; g < lib.groups; ++g) {
        params[g] =
            rangeParams([&](int64_t j) { return wd[r * k + g * width + j]; },
                        std::min(width, k - g * width));
        GroupParams p = lib.params(r, g);
        if (p.scale != params[g].scale || p.zero != params[g].zero)
          cmp.mismatch("static params of row " + std::to_string(r));
      }
    std::vector<double> row(k);
    for (int64_t i = 0; i < k; ++i)
      row[i] = wd[r * k + perm[i]];
    for (int64_t i = 0; i < k; ++i) {
      int64_t col = perm[i], g = col / width;
      if (lazy && i % width == 0) {
        GroupParams p = rangeParams([&](int64_t j) { return row[i + j]; },
                                    std::min(width, k - i));
        GroupParams libP = lib.params(r, g);
        if (p.scale != libP.scale || p.zero != libP.zero) {
          bool close = std::fabs(p.scale - libP.scale) <= p.scale * 0x1p-10 &&
                       std::abs(p.zero - libP.zero) <= 1;
          if (!close)
            cmp.mismatch("group params of row " + std::to_string(r));
          ++cmp.paramTies;
        }
        params[g] = libP;
      }
      GroupParams p = params[g];
      double ratio = row[i] / p.scale;
      double rounded = ratio < 0 ? -std::floor(-ratio + 0.5)
                                 : std::floor(ratio + 0.5); // Half away.
      int code =
          int(std::clamp(rounded + p.zero, 0.0, static_cast<double>(maxq)));
      int libCode = lib.codes[r * k + col];
      ++cmp.codes;
      if (code != libCode) {
        if (nearTie(ratio, kTieTolerance) && std::abs(code - libCode) == 1)
          ++cmp.codeTies;
        else
          cmp.mismatch("row " + std::to_string(r) + " col " +
                       std::to_string(col) + ": code " +
                       std::to_string(libCode) + " expected " +
                       std::to_string(code));
        code = libCode;
      }
      double e = (row[i] - (code - p.zero) * double(p.scale)) / u[i * k + i];
      cmp.loss += e * e / 2;
      for (int64_t j = i + 1; j < k; ++j)
        row[j] -= e * u[i * k + j];
    }
  }
  return cmp;
}

/// A small random problem and the options to run it with.
struct Case {
  int64_t n, k, t;
  GPTQOptions options;
};

std::string describe(const Case &c) {
  std::ostringstream os;
  const UniformScheme &s = c.options.scheme;
  os << c.n << "x" << c.k << " w" << s.bits << " g" << s.groupSize
     << (s.symmetric ? " sym" : " asym") << " block " << c.options.blockSize
     << (c.options.actOrder ? " act-order" : "")
     << (c.options.staticGroups ? " static" : "");
  return os.str();
}

std::vector<Case> referenceCases() {
  struct Shape {
    int64_t n, k, groupSize;
  };
  // Groups that divide K, a short last group (50 = 4 * 12 + 2), per channel,
  // and groups larger than some block sizes.
  const Shape shapes[] = {{12, 64, 16}, {9, 50, 12}, {8, 40, 0}, {10, 70, 32}};
  std::vector<Case> cases;
  for (Shape shape : shapes)
    for (int bits : {2, 3, 4, 8})
      for (bool symmetric : {false, true})
        for (int variant = 0; variant < 3; ++variant)
          for (int64_t block : {int64_t(128), int64_t(7), int64_t(1)}) {
            UniformScheme scheme = makeScheme(bits, shape.groupSize, symmetric);
            cases.push_back(
                {shape.n, shape.k, 4 * shape.k,
                 makeOptions(scheme, block, variant == 2, variant == 1)});
          }
  return cases;
}

} // namespace

//===----------------------------------------------------------------------===//
// HessianAccumulator
//===----------------------------------------------------------------------===//

TEST(HessianAccumulatorTest, MatchesDefinitionForAnyBatchSplit) {
  const int64_t t = 301, k = 23;
  std::vector<float> x = correlatedInputs(t, k, 7, 2);
  std::vector<double> expected = referenceHessian(x, t, k);
  double scale = 0;
  for (int64_t i = 0; i < k; ++i)
    scale = std::max(scale, expected[i * k + i]);
  const std::vector<std::vector<int64_t>> splits = {
      {301},
      {1, 300},
      {100, 100, 101},
      {7, 13, 0, 281},
      std::vector<int64_t>(301, 1)};
  for (const std::vector<int64_t> &split : splits) {
    HessianAccumulator acc(k);
    int64_t done = 0;
    for (int64_t rows : split) {
      acc.add(x.data() + done * k, rows);
      done += rows;
    }
    ASSERT_EQ(acc.samples(), t);
    ASSERT_EQ(acc.columns(), k);
    std::vector<float> h = acc.matrix();
    std::vector<float> diag = acc.diagonal();
    for (int64_t i = 0; i < k; ++i) {
      EXPECT_EQ(diag[i], h[i * k + i]);
      for (int64_t j = 0; j < k; ++j) {
        EXPECT_EQ(h[i * k + j], h[j * k + i]);
        // 301 running rescalings cost a few float32 ulps of the largest entry.
        EXPECT_NEAR(h[i * k + j], expected[i * k + j], 1e-5 * scale)
            << "split of " << split.size() << " at " << i << "," << j;
      }
    }
  }
}

TEST(HessianAccumulatorTest, EmptyAndRelease) {
  HessianAccumulator acc(3);
  EXPECT_EQ(acc.samples(), 0);
  EXPECT_EQ(acc.matrix(), std::vector<float>(9, 0.0f));
  // One token x = (1, 2, 3): H = 2 x x^T.
  const float x[] = {1, 2, 3};
  acc.add(x, 1);
  const std::vector<float> expected = {2, 4, 6, 4, 8, 12, 6, 12, 18};
  EXPECT_EQ(acc.matrix(), expected);
  // Adding the same token again keeps the mean: n/(n+m) * H + 2/(n+m) x x^T.
  acc.add(x, 1);
  EXPECT_EQ(acc.matrix(), expected);
  EXPECT_EQ(acc.diagonal(), (std::vector<float>{2, 8, 18}));
  EXPECT_EQ(acc.release(), expected);
  EXPECT_EQ(acc.samples(), 0);
  EXPECT_EQ(acc.matrix(), std::vector<float>(9, 0.0f));
}

//===----------------------------------------------------------------------===//
// Hand-computed cases
//===----------------------------------------------------------------------===//

TEST(GPTQTest, ThreeColumnHandCase) {
  // H = [[2,1,0],[1,2,1],[0,1,2]], no damping; one row w = (0.4, 1.4, 3.0);
  // 2-bit asymmetric per channel: range [0, 3], s = 1, z = 0, grid 0..3.
  // H^-1 = 1/4 [[3,-2,1],[-2,4,-2],[1,-2,3]] = U^T U with
  //   U = [[sqrt(3)/2, -1/sqrt(3), 1/(2 sqrt(3))],
  //        [0,          sqrt(2/3), -1/sqrt(6)   ],
  //        [0,          0,          1/sqrt(2)   ]].
  // Column 0: q = 0, e = 0.4 / U00; w1 -= e U01 -> 1.4 + 0.4 * 2/3 = 1.6667,
  //   w2 -= e U02 -> 3.0 - 0.4 / 3 = 2.8667. (This is OBS: the rest moves by
  //   -(w0 - q0) / Hinv00 * Hinv[0, 1:] = -0.4 * 4/3 * (-1/2, 1/4).)
  // Column 1: q = round(1.6667) = 2 (RTN would give 1), e = -0.3333 / U11;
  //   w2 -= e U12 -> 2.8667 - 0.1667 = 2.7.
  // Column 2: q = round(2.7) = 3.
  // Loss: sum (w - q)^2 / U_ii^2 / 2 = (0.16 / (3/4) + (1/9) / (2/3) +
  //   0.09 / (1/2)) / 2 = (0.21333 + 0.16667 + 0.18) / 2 = 0.28,
  //   which is 1/2 (q - w)^T H (q - w) for q - w = (-0.4, 0.6, 0).
  const float w[] = {0.4f, 1.4f, 3.0f};
  std::vector<float> h = {2, 1, 0, 1, 2, 1, 0, 1, 2};
  GPTQOptions options = makeOptions(makeScheme(2, 0, false));
  options.dampPercent = 0;
  UniformMatrix m;
  std::string error;
  double loss = -1;
  ASSERT_TRUE(gptqQuantize(w, 1, 3, h, options, m, error, &loss)) << error;
  EXPECT_EQ(m.codes, (std::vector<uint8_t>{0, 2, 3}));
  EXPECT_EQ(m.scales, (std::vector<uint16_t>{0x3C00}));
  EXPECT_EQ(m.zeros, (std::vector<uint8_t>{0}));
  EXPECT_NEAR(loss, 0.28, 1e-6);
  EXPECT_EQ(quantizeRTN(w, 1, 3, options.scheme).codes,
            (std::vector<uint8_t>{0, 1, 3}));
  // The same with act-order: diag(H) ties everywhere, so the stable order is
  // the original one and nothing changes.
  options.actOrder = true;
  ASSERT_TRUE(gptqQuantize(w, 1, 3, h, options, m, error, &loss)) << error;
  EXPECT_EQ(m.codes, (std::vector<uint8_t>{0, 2, 3}));
}

TEST(GPTQTest, ActOrderHandCase) {
  // H = [[1,1,0],[1,4,0],[0,0,1]], no damping; w = (1.4, 1.3, 3.0); 2-bit
  // asymmetric per channel: range [0, 3], s = 1, z = 0. Column 2 is
  // decoupled and only fixes the range. With two coupled columns, OBS moves
  // the other one by -(q_i - w_i) * H_ji / H_jj when column i is quantized.
  //  Original order: q0 = 1 (d0 = -0.4), w1 = 1.3 + 0.4 * 1/4 = 1.4 -> q1 = 1.
  //    Codes (1, 1, 3); d = (-0.4, -0.3): d^T H d = 0.16 + 2 * 0.12 + 4 * 0.09
  //    = 0.76.
  //  Act-order, by diag(H) = (1, 4, 1) decreasing, stable: 1, 0, 2.
  //    q1 = 1 (d1 = -0.3), w0 = 1.4 + 0.3 * 1/1 = 1.7 -> q0 = 2.
  //    Codes (2, 1, 3); d = (0.6, -0.3): 0.36 - 2 * 0.18 + 4 * 0.09 = 0.36.
  // The loss is half of d^T H d: 0.38 and 0.18.
  const float w[] = {1.4f, 1.3f, 3.0f};
  std::vector<float> h = {1, 1, 0, 1, 4, 0, 0, 0, 1};
  GPTQOptions options = makeOptions(makeScheme(2, 0, false));
  options.dampPercent = 0;
  UniformMatrix m;
  std::string error;
  double loss = -1;
  ASSERT_TRUE(gptqQuantize(w, 1, 3, h, options, m, error, &loss)) << error;
  EXPECT_EQ(m.codes, (std::vector<uint8_t>{1, 1, 3}));
  EXPECT_NEAR(loss, 0.38, 1e-6);
  options.actOrder = true;
  ASSERT_TRUE(gptqQuantize(w, 1, 3, h, options, m, error, &loss)) << error;
  EXPECT_EQ(m.codes, (std::vector<uint8_t>{2, 1, 3}));
  EXPECT_EQ(m.scales, (std::vector<uint16_t>{0x3C00}));
  EXPECT_NEAR(loss, 0.18, 1e-6);
}

//===----------------------------------------------------------------------===//
// Agreement with the float64 reference
//===----------------------------------------------------------------------===//

TEST(GPTQTest, MatchesFloat64Reference) {
  Comparison total;
  std::string firstMismatch;
  for (const Case &c : referenceCases()) {
    unsigned seed = unsigned(c.k * 31 + c.options.scheme.bits);
    std::vector<float> x = correlatedInputs(c.t, c.k, seed, 2);
    std::vector<float> w = gaussian(c.n * c.k, seed + 5);
    std::vector<float> h = hessianOf(x, c.t, c.k);
    UniformMatrix m;
    std::string error;
    double loss = 0;
    ASSERT_TRUE(gptqQuantize(w.data(), c.n, c.k, h, c.options, m, error, &loss))
        << describe(c) << ": " << error;
    ASSERT_EQ(m.codes.size(), size_t(c.n * c.k));
    ASSERT_EQ(m.groups, numGroups(c.k, c.options.scheme.groupSize));
    ASSERT_EQ(m.scales.size(), size_t(c.n * m.groups));
    ASSERT_EQ(m.zeros.size(), c.options.scheme.symmetric ? 0 : m.scales.size());
    Comparison cmp = referenceGPTQ(
        w, c.n, c.k, std::vector<double>(h.begin(), h.end()), c.options, m);
    if (cmp.mismatches && total.mismatches == 0)
      firstMismatch = describe(c) + ": " + cmp.firstMismatch;
    total.codes += cmp.codes;
    total.codeTies += cmp.codeTies;
    total.paramTies += cmp.paramTies;
    total.mismatches += cmp.mismatches;
    EXPECT_NEAR(loss, cmp.loss, 1e-3 * cmp.loss + 1e-9) << describe(c);
  }
  EXPECT_EQ(total.mismatches, 0) << firstMismatch;
  EXPECT_LT(total.codeTies * 500, total.codes);
  EXPECT_LT(total.paramTies * 100, total.codes / 16);
  std::printf("[          ] %lld codes, %lld near ties and %lld lazy group "
              "params taken the other way\n",
              (long long)total.codes, (long long)total.codeTies,
              (long long)total.paramTies);
}

TEST(GPTQTest, LossIsHalfTheQuadraticError) {
  // The per-column losses add up to 1/2 (q - w0)^T H (q - w0) with the damped
  // H: each step's loss is exactly the increase of that quadratic form.
  const int64_t n = 16, k = 96, t = 400;
  std::vector<float> x = correlatedInputs(t, k, 21, 3);
  std::vector<float> w = gaussian(n * k, 22);
  std::vector<float> h = hessianOf(x, t, k);
  for (bool actOrder : {false, true}) {
    GPTQOptions options = makeOptions(makeScheme(3, 32, false), 40, actOrder);
    UniformMatrix m;
    std::string error;
    double loss = 0;
    ASSERT_TRUE(gptqQuantize(w.data(), n, k, h, options, m, error, &loss));
    std::vector<double> damped(h.begin(), h.end());
    double mean = 0;
    for (int64_t i = 0; i < k; ++i)
      mean += damped[i * k + i] / k;
    for (int64_t i = 0; i < k; ++i)
      damped[i * k + i] += options.dampPercent * mean;
    EXPECT_NEAR(loss, quadraticError(w, m, damped), 1e-4 * loss);
  }
}

//===----------------------------------------------------------------------===//
// Properties
//===----------------------------------------------------------------------===//

TEST(GPTQTest, DiagonalHessianGivesRTN) {
  // With H diagonal, H^-1 and its Cholesky factor U are diagonal too, so every
  // update w_j -= e * U_ij (j > i) adds zero: no column is ever compensated,
  // lazy group parameters see the original weights, and GPTQ is RTN bit for
  // bit, in any order. (U is computed, not assumed: it must come out exactly
  // diagonal, which the Cholesky and triangular inverse of a diagonal matrix
  // do, since every off-diagonal term is a sum of products with a zero.)
  const int64_t n = 7, k = 45;
  std::vector<float> w = gaussian(n * k, 3);
  // The identity (uncorrelated unit inputs) and a random positive diagonal.
  std::vector<float> identity(k * k, 0.0f), h(k * k, 0.0f);
  std::mt19937 rng(4);
  for (int64_t i = 0; i < k; ++i) {
    identity[i * k + i] = 1.0f;
    h[i * k + i] = 0.1f + float(rng() % 1000) / 100;
  }
  for (const std::vector<float> *hessian : {&identity, &h})
    for (UniformScheme scheme :
         {makeScheme(4, 0, false), makeScheme(3, 16, false),
          makeScheme(2, 8, true), makeScheme(8, 10, true)})
      for (bool actOrder : {false, true})
        for (bool staticGroups : {false, true}) {
          UniformMatrix m, rtn = quantizeRTN(w.data(), n, k, scheme);
          std::string error;
          ASSERT_TRUE(gptqQuantize(
              w.data(), n, k, *hessian,
              makeOptions(scheme, 8, actOrder, staticGroups), m, error));
          EXPECT_EQ(m.codes, rtn.codes);
          EXPECT_EQ(m.scales, rtn.scales);
          EXPECT_EQ(m.zeros, rtn.zeros);
        }
}

TEST(GPTQTest, StaticGroupsComeFromOriginalWeights) {
  // With static groups (explicit, or implied by act-order with groups), every
  // scale and zero is RTN's; only the codes differ.
  const int64_t n = 6, k = 100, t = 300;
  std::vector<float> x = correlatedInputs(t, k, 31, 2);
  std::vector<float> w = gaussian(n * k, 32);
  std::vector<float> h = hessianOf(x, t, k);
  UniformScheme scheme = makeScheme(4, 32, false);
  UniformMatrix rtn = quantizeRTN(w.data(), n, k, scheme);
  for (auto [actOrder, staticGroups] :
       {std::pair{false, true}, {true, false}}) {
    UniformMatrix m;
    std::string error;
    ASSERT_TRUE(gptqQuantize(w.data(), n, k, h,
                             makeOptions(scheme, 128, actOrder, staticGroups),
                             m, error));
    EXPECT_EQ(m.scales, rtn.scales);
    EXPECT_EQ(m.zeros, rtn.zeros);
    EXPECT_NE(m.codes, rtn.codes);
  }
}

TEST(GPTQTest, BlockSizeOnlyChangesSpeed) {
  // Blocks are cut so that no lazy group starts with updates pending; the
  // codes agree across block sizes but for float32 summation order at ties.
  const int64_t n = 24, k = 150, t = 600;
  std::vector<float> x = correlatedInputs(t, k, 41, 2);
  std::vector<float> w = gaussian(n * k, 42);
  std::vector<float> h = hessianOf(x, t, k);
  UniformScheme scheme = makeScheme(3, 40, false); // Short last group of 30.
  UniformMatrix base;
  std::string error;
  ASSERT_TRUE(
      gptqQuantize(w.data(), n, k, h, makeOptions(scheme, 1), base, error));
  for (int64_t block : {2, 17, 40, 64, 128, 1000}) {
    UniformMatrix m;
    ASSERT_TRUE(
        gptqQuantize(w.data(), n, k, h, makeOptions(scheme, block), m, error));
    int64_t differ = 0;
    for (size_t i = 0; i < m.codes.size(); ++i)
      differ += m.codes[i] != base.codes[i];
    EXPECT_LE(differ, int64_t(m.codes.size() / 200)) << "block " << block;
  }
}

TEST(GPTQTest, DeadColumns) {
  // Columns 3 and 10 never see input: H_ii = 0. Their weights are zeroed and
  // decode to exactly 0, and the other columns are quantized as if the dead
  // ones did not exist (per channel, since 0 never changes a group's range).
  const int64_t n = 5, k = 16, t = 80;
  std::vector<float> x = correlatedInputs(t, k, 51, 0);
  for (int64_t r = 0; r < t; ++r)
    x[r * k + 3] = x[r * k + 10] = 0.0f;
  std::vector<float> w = gaussian(n * k, 52);
  std::vector<float> h = hessianOf(x, t, k);
  GPTQOptions options = makeOptions(makeScheme(4, 0, false), 5);
  options.dampPercent = 0;
  UniformMatrix m;
  std::string error;
  ASSERT_TRUE(gptqQuantize(w.data(), n, k, h, options, m, error)) << error;
  std::vector<float> q = dequantized(m);

  const int64_t kk = k - 2;
  auto live = [](int64_t j) { return j != 3 && j != 10; };
  std::vector<float> wLive, hLive;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j)
      if (live(j))
        wLive.push_back(w[r * k + j]);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      if (live(i) && live(j))
        hLive.push_back(h[i * k + j]);
  UniformMatrix reduced;
  ASSERT_TRUE(
      gptqQuantize(wLive.data(), n, kk, hLive, options, reduced, error));
  std::vector<float> qLive = dequantized(reduced);
  // The two runs factor differently sized Hessians, so a float32 tie could
  // legitimately go the other way in one place.
  int64_t differ = 0;
  for (int64_t r = 0; r < n; ++r) {
    EXPECT_EQ(q[r * k + 3], 0.0f);
    EXPECT_EQ(q[r * k + 10], 0.0f);
    for (int64_t j = 0, jj = 0; j < k; ++j) {
      if (!live(j))
        continue;
      differ += q[r * k + j] != qLive[r * kk + jj];
      EXPECT_NEAR(q[r * k + j], qLive[r * kk + jj],
                  m.params(r, 0).scale * 1.01f);
      ++jj;
    }
  }
  EXPECT_LE(differ, 1);
  // An all-zero Hessian: every column dead, every weight decodes to 0.
  ASSERT_TRUE(gptqQuantize(w.data(), n, k, std::vector<float>(k * k, 0.0f),
                           makeOptions(makeScheme(3, 4, true)), m, error));
  EXPECT_EQ(dequantized(m), std::vector<float>(n * k, 0.0f));
}

TEST(GPTQTest, ShortLastGroupAndRaggedBlocks) {
  // K = 77 with groups of 32 (32, 32, 13) and blocks of 20: lazy groups start
  // at 32 and 64, inside blocks; checked against the reference.
  const int64_t n = 6, k = 77, t = 300;
  std::vector<float> x = correlatedInputs(t, k, 61, 2);
  std::vector<float> w = gaussian(n * k, 62);
  std::vector<float> h = hessianOf(x, t, k);
  GPTQOptions options = makeOptions(makeScheme(4, 32, true), 20);
  UniformMatrix m;
  std::string error;
  ASSERT_TRUE(gptqQuantize(w.data(), n, k, h, options, m, error));
  EXPECT_EQ(m.groups, 3);
  EXPECT_EQ(m.scales.size(), size_t(n * 3));
  Comparison cmp = referenceGPTQ(
      w, n, k, std::vector<double>(h.begin(), h.end()), options, m);
  EXPECT_EQ(cmp.mismatches, 0) << cmp.firstMismatch;
}

TEST(GPTQTest, BadInputsAreErrors) {
  const int64_t k = 4;
  std::vector<float> w(2 * k, 0.5f), identity(k * k, 0.0f);
  for (int64_t i = 0; i < k; ++i)
    identity[i * k + i] = 1.0f;
  UniformMatrix m;
  std::string error;
  GPTQOptions options = makeOptions(makeScheme(4, 0, false));

  // Negative definite: diag(H) = -1 is not "dead", damping makes it -1.01.
  std::vector<float> negative = identity;
  for (float &v : negative)
    v = -v;
  EXPECT_FALSE(gptqQuantize(w.data(), 2, k, negative, options, m, error));
  EXPECT_NE(error.find("not positive definite"), std::string::npos) << error;

  // Indefinite: eigenvalues 3 and -1.
  std::vector<float> indefinite = identity;
  indefinite[0 * k + 1] = indefinite[1 * k + 0] = 2.0f;
  error.clear();
  EXPECT_FALSE(gptqQuantize(w.data(), 2, k, indefinite, options, m, error));
  EXPECT_NE(error.find("damping"), std::string::npos) << error;
  // ... which enough damping fixes: mean diag is 1, +2 makes it definite.
  options.dampPercent = 2.0;
  EXPECT_TRUE(gptqQuantize(w.data(), 2, k, indefinite, options, m, error));
  options.dampPercent = 0.01;

  std::vector<float> nan = identity;
  nan[5] = std::numeric_limits<float>::quiet_NaN();
  error.clear();
  EXPECT_FALSE(gptqQuantize(w.data(), 2, k, nan, options, m, error));
  EXPECT_NE(error, "");
  error.clear();
  EXPECT_FALSE(gptqQuantize(w.data(), 2, k, std::vector<float>(k * k - 1),
                            options, m, error));
  EXPECT_NE(error, "");
  error.clear();
  EXPECT_FALSE(gptqQuantize(w.data(), 2, k, identity,
                            makeOptions(makeScheme(9, 0, false)), m, error));
  EXPECT_NE(error.find("bits"), std::string::npos) << error;
  error.clear();
  EXPECT_FALSE(gptqQuantize(w.data(), 2, k, identity,
                            makeOptions(makeScheme(4, 0, false), 0), m, error));
  EXPECT_NE(error, "");

  // Empty shapes are fine.
  EXPECT_TRUE(gptqQuantize(w.data(), 0, k, identity, options, m, error));
  EXPECT_EQ(m.codes.size(), 0u);
  EXPECT_TRUE(gptqQuantize(w.data(), 2, 0, {}, options, m, error));
  EXPECT_EQ(m.rows, 2);
  EXPECT_EQ(m.groups, 0);
}

//===----------------------------------------------------------------------===//
// Output error against RTN
//===----------------------------------------------------------------------===//

TEST(GPTQTest, BeatsRTNOnCorrelatedOutlierInputs) {
  // A layer with K = 384, correlated inputs and 4 outlier channels; the output
  // error ||X W^T - X Q^T||^2 (as 1/2 sum d^T H d) of GPTQ against RTN's.
  const int64_t n = 96, k = 384, t = 1536;
  std::vector<float> x = correlatedInputs(t, k, 71, 4);
  std::vector<float> w = gaussian(n * k, 72, 0.02f);
  std::vector<float> h = hessianOf(x, t, k);
  std::vector<double> hd(h.begin(), h.end());
  struct Config {
    const char *name;
    UniformScheme scheme;
    bool actOrder;
    double maxRatio;
  };
  const Config configs[] = {
      {"w4_g128", makeScheme(4, 128, false), false, 0.8},
      {"w3_g128", makeScheme(3, 128, false), false, 0.8},
      {"w4_per_channel", makeScheme(4, 0, false), false, 0.8},
      {"w2_g64", makeScheme(2, 64, false), false, 0.9},
      {"w4_g128_sym", makeScheme(4, 128, true), false, 0.8},
      {"w4_g128_act_order_static", makeScheme(4, 128, false), true, 0.8},
      {"w3_g128_act_order_static", makeScheme(3, 128, false), true, 0.8},
  };
  for (const Config &c : configs) {
    UniformMatrix m;
    std::string error;
    ASSERT_TRUE(gptqQuantize(w.data(), n, k, h,
                             makeOptions(c.scheme, 128, c.actOrder), m, error));
    double rtn = quadraticError(w, quantizeRTN(w.data(), n, k, c.scheme), hd);
    double ratio = quadraticError(w, m, hd) / rtn;
    std::printf("[          ] GPTQ/RTN output error %-26s %.3f\n", c.name,
                ratio);
    RecordProperty(std::string("gptq_over_rtn_") + c.name,
                   std::to_string(ratio));
    EXPECT_LT(ratio, c.maxRatio) << c.name;
  }
}
