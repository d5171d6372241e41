//===- BinarizeTest.cpp - Tests for the binarization methods --------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/Binarize.h"

#include "llq/Quant/Half.h"
#include "llq/Quant/OutputError.h"
#include "llq/Quant/Packing.h"
#include "llq/Quant/Statistics.h"
#include "llq/Quant/Uniform.h"

#include "QuantTestUtils.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

using namespace llq::quant;
using namespace llq::quant::test;

namespace {

//===----------------------------------------------------------------------===//
// Inputs
//===----------------------------------------------------------------------===//

/// Weights with heavy tails: Gaussian, with one weight in 50 made 6x larger,
/// as LLM weight rows have.
std::vector<float> outlierWeights(int64_t count, unsigned seed, float sigma) {
  std::vector<float> w = gaussian(count, seed, sigma);
  std::mt19937 rng(seed + 7);
  for (float &v : w)
    if (rng() % 50 == 0)
      v *= 6.0f;
  return w;
}

std::vector<float> hessianOf(const std::vector<float> &x, int64_t t,
                             int64_t k) {
  HessianAccumulator acc(k);
  acc.add(x.data(), t);
  return acc.matrix();
}

std::vector<float> identityHessian(int64_t k) {
  std::vector<float> h(k * k, 0.0f);
  for (int64_t i = 0; i < k; ++i)
    h[i * k + i] = 1.0f;
  return h;
}

template <typename Matrix> std::vector<float> decoded(const Matrix &m) {
  std::vector<float> out(m.rows * m.cols);
  dequantize(m, out.data());
  return out;
}

std::vector<uint8_t> unpacked(const std::vector<uint32_t> &packed, int64_t rows,
                              int64_t cols) {
  std::vector<uint8_t> bits(rows * cols);
  unpackRows(packed.data(), rows, cols, 1, bits.data());
  return bits;
}

/// Bitwise equality, so that -0 and +0 or two NaNs are told apart.
bool sameBits(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool allFinite(const std::vector<float> &v) {
  return std::all_of(v.begin(), v.end(),
                     [](float x) { return std::isfinite(x); });
}

double squaredDistance(const float *a, const float *b, int64_t n) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    double d = double(a[i]) - b[i];
    total += d * d;
  }
  return total;
}

/// The stored (f16) value of a float64 scale.
double half(double v) { return roundToHalf(static_cast<float>(v)); }

/// Whether two stored scales are equal or neighbouring f16 values, as float32
/// and float64 sums may round them.
bool withinHalfUlp(double a, double b) {
  return std::fabs(a - b) <= std::max(std::fabs(a), std::fabs(b)) * 0x1p-10;
}

//===----------------------------------------------------------------------===//
// Float64 linear algebra
//===----------------------------------------------------------------------===//

/// The float64 weights and U every calibrated reference starts from: dead
/// columns zeroed (H_ii = 1), diag(H) damped, U = chol(H^-1, upper).
struct Prepared {
  std::vector<double> w, u, damped;
};

Prepared prepare(const std::vector<float> &w, int64_t n, int64_t k,
                 std::vector<double> h, double dampPercent) {
  Prepared p{std::vector<double>(w.begin(), w.end()), {}, {}};
  double mean = 0;
  for (int64_t i = 0; i < k; ++i) {
    if (h[i * k + i] == 0) {
      h[i * k + i] = 1;
      for (int64_t r = 0; r < n; ++r)
        p.w[r * k + i] = 0;
    }
    mean += h[i * k + i] / k;
  }
  for (int64_t i = 0; i < k; ++i)
    h[i * k + i] += dampPercent * mean;
  p.u = inverseCholeskyUpper(h, k);
  p.damped = std::move(h);
  return p;
}

/// 1/2 sum over rows of d^T H d for d = q - w.
double quadraticError(const std::vector<double> &w, const std::vector<float> &q,
                      const std::vector<double> &h, int64_t n, int64_t k) {
  double total = 0;
  std::vector<double> d(k);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < k; ++j)
      d[j] = double(q[r * k + j]) - w[r * k + j];
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j)
        total += d[i] * h[i * k + j] * d[j];
  }
  return total / 2;
}

/// GPTQ's update after quantizing column \p i of row \p r to \p q: the error
/// (w_i - q) / U_ii moves onto columns (i, end) (end = k: all later columns).
void compensate(std::vector<double> &w, const std::vector<double> &u, int64_t k,
                int64_t r, int64_t i, double q, int64_t end, double &loss) {
  double e = (w[r * k + i] - q) / u[i * k + i];
  loss += e * e / 2;
  for (int64_t j = i + 1; j < end; ++j)
    w[r * k + j] -= e * u[i * k + j];
}

//===----------------------------------------------------------------------===//
// Float64 references of the binarization steps, from the papers
//===----------------------------------------------------------------------===//

double sgn(double x) { return x < 0 ? -1.0 : 1.0; }

double meanAbs(const std::vector<double> &x) {
  double s = 0;
  for (double v : x)
    s += std::fabs(v);
  return x.empty() ? 0.0 : s / x.size();
}

/// sum (x - alpha sign(x))^2 with alpha = mean |x|.
double binaryError(const std::vector<double> &x) {
  double alpha = meanAbs(x), e = 0;
  for (double v : x)
    e += (v - alpha * sgn(v)) * (v - alpha * sgn(v));
  return e;
}

/// BiLLM's residual approximation with exact alphas: the squared error.
double residualError(const std::vector<double> &x) {
  double alpha1 = meanAbs(x);
  std::vector<double> residual;
  for (double v : x)
    residual.push_back(v - alpha1 * sgn(v));
  return binaryError(residual);
}

/// numpy.quantile (linear) of \p sorted at \p q.
double quantile(const std::vector<double> &sorted, double q) {
  double position = q * double(sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(position));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (position - lo) * (sorted[hi] - sorted[lo]);
}

/// Counts where a library decision differs from the reference's: a tie when
/// the reference finds both choices equally good (within float32 noise),
/// else a mismatch.
struct Comparison {
  int64_t decisions = 0, ties = 0, mismatches = 0;
  std::string firstMismatch;

  void check(bool same, bool tie, const std::string &what) {
    ++decisions;
    if (same)
      return;
    if (tie) {
      ++ties;
      return;
    }
    if (mismatches++ == 0)
      firstMismatch = what;
  }
};

//===----------------------------------------------------------------------===//
// Float64 reference BiLLM
//===----------------------------------------------------------------------===//

/// What the library decided, unpacked to n x k arrays.
struct BiLLMDecisions {
  std::vector<uint8_t> salient, first, second, sparse;
  std::vector<float> values;
};

BiLLMDecisions unpackBiLLM(const BiLLMMatrix &m) {
  int64_t n = m.rows, k = m.cols, s = m.salientCount;
  BiLLMDecisions d{unpacked(m.salientColumns, 1, k), unpacked(m.signs, n, k),
                   std::vector<uint8_t>(n * k, 0),
                   std::vector<uint8_t>(n * k, 0), decoded(m)};
  std::vector<uint8_t> second = unpacked(m.residualSigns, n, s);
  std::vector<uint8_t> sparse = unpacked(m.sparse, n, k - s);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0, si = 0, oi = 0; j < k; ++j) {
      if (d.salient[j])
        d.second[r * k + j] = second[r * s + si++];
      else
        d.sparse[r * k + j] = sparse[r * (k - s) + oi++];
    }
  return d;
}

/// BiLLM in float64, written from the paper's Algorithm 1 with the steps the
/// header describes. With \p lib, every decision of the library is checked
/// against the reference's on the reference's weights and the library's is
/// followed, so that both stay on one trajectory; without, the reference runs
/// alone. \p diagonalUpdate selects the paper's compensation
/// E = (W_b - Q_b) / diag(U_bb) instead of the exact one.
struct BiLLMReference {
  std::vector<float> values;
  double loss = 0;
  Comparison cmp;
};

BiLLMReference referenceBiLLM(const std::vector<float> &w0, int64_t n,
                              int64_t k, const std::vector<float> &h,
                              const BiLLMOptions &o, const BiLLMMatrix *lib,
                              bool diagonalUpdate = false) {
  Prepared p =
      prepare(w0, n, k, std::vector<double>(h.begin(), h.end()), o.dampPercent);
  std::vector<double> &w = p.w, &u = p.u;
  BiLLMDecisions d;
  if (lib)
    d = unpackBiLLM(*lib);
  double rms =
      std::sqrt(std::inner_product(w.begin(), w.end(), w.begin(), 0.0) /
                std::max<int64_t>(1, n * k));
  double tol = 1e-4 * rms;
  BiLLMReference ref;
  ref.values.resize(n * k);
  Comparison &cmp = ref.cmp;
  for (int64_t b = 0; b < k; b += o.blockSize) {
    int64_t e = std::min(b + o.blockSize, k), width = e - b;
    std::string where = "block at column " + std::to_string(b);
    // Salient columns: rank by sum_i w_ij^2 / U_jj^2, search the count.
    std::vector<double> score(width, 0.0);
    for (int64_t j = b; j < e; ++j) {
      for (int64_t r = 0; r < n; ++r)
        score[j - b] += w[r * k + j] * w[r * k + j];
      score[j - b] /= u[j * k + j] * u[j * k + j];
    }
    std::vector<int64_t> ranked(width);
    std::iota(ranked.begin(), ranked.end(), b);
    std::stable_sort(ranked.begin(), ranked.end(), [&](int64_t x, int64_t y) {
      return score[x - b] > score[y - b];
    });
    auto countError = [&](const std::vector<bool> &isSalient) {
      double total = 0;
      for (int64_t r = 0; r < n; ++r) {
        std::vector<double> s, rest;
        for (int64_t j = b; j < e; ++j)
          (isSalient[j - b] ? s : rest).push_back(w[r * k + j]);
        total += residualError(s) + residualError(rest);
      }
      return total;
    };
    std::vector<bool> best;
    double bestError = 0;
    for (int64_t c = 1; c <= std::min(o.maxSalientColumns, width); ++c) {
      std::vector<bool> isSalient(width, false);
      for (int64_t t = 0; t < c; ++t)
        isSalient[ranked[t] - b] = true;
      double error = countError(isSalient);
      if (c == 1 || error < bestError) {
        best = isSalient;
        bestError = error;
      }
    }
    if (lib) {
      std::vector<bool> libSalient(width);
      for (int64_t j = b; j < e; ++j)
        libSalient[j - b] = d.salient[j];
      double libError = countError(libSalient);
      cmp.check(libSalient == best,
                std::fabs(libError - bestError) <= 1e-6 * bestError + 1e-12,
                where + ": salient columns");
      best = libSalient;
    }
    // The break point: quantiles of the other weights' |w|.
    std::vector<double> magnitudes;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = b; j < e; ++j)
        if (!best[j - b])
          magnitudes.push_back(std::fabs(w[r * k + j]));
    std::sort(magnitudes.begin(), magnitudes.end());
    auto splitError = [&](auto isSparse) {
      double total = 0;
      for (int64_t r = 0; r < n; ++r) {
        std::vector<double> concentrated, sparse;
        for (int64_t j = b; j < e; ++j)
          if (!best[j - b])
            (isSparse(r, j) ? sparse : concentrated).push_back(w[r * k + j]);
        total += binaryError(concentrated) + binaryError(sparse);
      }
      return total;
    };
    double breakPoint = 0, splitBest = 0;
    for (int percent = 10; percent <= 90 && !magnitudes.empty(); ++percent) {
      double q = quantile(magnitudes, percent / 100.0);
      double error = splitError(
          [&](int64_t r, int64_t j) { return std::fabs(w[r * k + j]) > q; });
      if (percent == 10 || error < splitBest) {
        breakPoint = q;
        splitBest = error;
      }
    }
    auto isSparse = [&](int64_t r, int64_t j) {
      if (lib)
        return bool(d.sparse[r * k + j]);
      return std::fabs(w[r * k + j]) > breakPoint;
    };
    if (lib && !magnitudes.empty()) {
      bool same = true;
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = b; j < e; ++j)
          if (!best[j - b])
            same &= isSparse(r, j) == (std::fabs(w[r * k + j]) > breakPoint);
      double libError = splitError(isSparse);
      cmp.check(same, std::fabs(libError - splitBest) <= 1e-6 * splitBest,
                where + ": break point");
    }
    // Alphas and signs per row; the reference's values, or the library's.
    for (int64_t r = 0; r < n; ++r) {
      std::vector<double> s, parts[2];
      for (int64_t j = b; j < e; ++j)
        (best[j - b] ? s : parts[isSparse(r, j)]).push_back(w[r * k + j]);
      double alpha1 = half(meanAbs(s));
      std::vector<double> residual;
      for (double v : s)
        residual.push_back(v - alpha1 * sgn(v));
      double alpha2 = half(meanAbs(residual));
      double partAlpha[2] = {half(meanAbs(parts[0])), half(meanAbs(parts[1]))};
      if (lib) {
        const uint16_t *a =
            &lib->scales[(r * lib->blocks + b / o.blockSize) * kNumBiLLMScales];
        double libAlphas[4] = {halfToFloat(a[0]), halfToFloat(a[1]),
                               halfToFloat(a[2]), halfToFloat(a[3])};
        double refAlphas[4] = {alpha1, alpha2, partAlpha[0], partAlpha[1]};
        for (int i = 0; i < 4; ++i)
          cmp.check(libAlphas[i] == refAlphas[i],
                    withinHalfUlp(libAlphas[i], refAlphas[i]),
                    where + ": alpha " + std::to_string(i) + " of row " +
                        std::to_string(r));
      }
      for (int64_t j = b, si = 0; j < e; ++j) {
        double v = w[r * k + j], value;
        if (best[j - b]) {
          double rv = residual[si++];
          value = alpha1 * sgn(v) + alpha2 * sgn(rv);
          if (lib)
            cmp.check(d.second[r * k + j] == (rv >= 0), std::fabs(rv) < tol,
                      where + ": residual sign");
        } else {
          value = partAlpha[isSparse(r, j)] * sgn(v);
        }
        if (lib)
          cmp.check(d.first[r * k + j] == (v >= 0), std::fabs(v) < tol,
                    where + ": sign");
        ref.values[r * k + j] =
            lib ? d.values[r * k + j] : static_cast<float>(value);
      }
    }
    // Compensation.
    for (int64_t r = 0; r < n; ++r) {
      std::vector<double> block(w.begin() + r * k + b, w.begin() + r * k + e);
      for (int64_t i = b; i < e; ++i) {
        if (diagonalUpdate)
          w[r * k + i] = block[i - b]; // No updates inside the block.
        compensate(w, u, k, r, i, ref.values[r * k + i], k, ref.loss);
      }
    }
  }
  return ref;
}

/// A small problem for the reference comparisons.
struct BiLLMCase {
  int64_t n, k, blockSize;
  bool diagonalHessian;
};

//===----------------------------------------------------------------------===//
// Float64 reference PB-LLM
//===----------------------------------------------------------------------===//

/// PB-LLM in float64, written from the paper: salient weights by the top
/// fraction of w^2 / U_jj^2, 8-bit symmetric codes for them (step
/// max|w| / 127), mean-|w| binarization for the rest, GPTQ's column loop.
/// Decisions are checked against \p lib's and the library is followed at
/// near ties.
struct PBLLMReference {
  double loss = 0;
  Comparison cmp;
};

PBLLMReference referencePBLLM(const std::vector<float> &w0, int64_t n,
                              int64_t k, const std::vector<float> &h,
                              const PBLLMOptions &o, const PBLLMMatrix &lib) {
  Prepared p =
      prepare(w0, n, k, std::vector<double>(h.begin(), h.end()), o.dampPercent);
  std::vector<double> &w = p.w, &u = p.u;
  PBLLMReference ref;
  Comparison &cmp = ref.cmp;
  std::vector<uint8_t> libSalient = unpacked(lib.salient, n, k);
  std::vector<uint8_t> libSigns = unpacked(lib.signs, n, k);
  std::vector<float> libValues = decoded(lib);

  // Salient: the top count scores, ties by position.
  std::vector<double> score(n * k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j)
      score[r * k + j] =
          w[r * k + j] * w[r * k + j] / (u[j * k + j] * u[j * k + j]);
  int64_t count = std::llround(o.salientFraction * n * k);
  std::vector<int64_t> order(n * k);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return score[a] > score[b]; });
  std::vector<uint8_t> salient(n * k, 0);
  for (int64_t i = 0; i < count; ++i)
    salient[order[i]] = 1;
  double threshold = count > 0 ? score[order[count - 1]] : 0;
  for (int64_t i = 0; i < n * k; ++i)
    cmp.check(salient[i] == libSalient[i],
              std::fabs(score[i] - threshold) <= 1e-4 * threshold,
              "salient mask at " + std::to_string(i));
  EXPECT_EQ(int64_t(lib.codes.size()), count);

  double rms =
      std::sqrt(std::inner_product(w.begin(), w.end(), w.begin(), 0.0) /
                std::max<int64_t>(1, n * k));
  double tol = 1e-4 * rms;
  std::vector<double> alpha(n), step(n);
  for (int64_t r = 0; r < n; ++r) {
    std::vector<double> binary;
    double maxAbs = 0;
    for (int64_t j = 0; j < k; ++j) {
      maxAbs = std::max(maxAbs, std::fabs(w[r * k + j]));
      if (!libSalient[r * k + j])
        binary.push_back(w[r * k + j]);
    }
    alpha[r] = half(meanAbs(binary));
    step[r] = std::max(half(maxAbs / 127), 0x1p-14);
    cmp.check(alpha[r] == halfToFloat(lib.binaryScales[r]), false,
              "alpha of row " + std::to_string(r));
    cmp.check(step[r] == halfToFloat(lib.salientScales[r]), false,
              "8-bit step of row " + std::to_string(r));
  }
  for (int64_t b = 0; b < k; b += o.blockSize) {
    int64_t e = std::min(b + o.blockSize, k);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = b; i < e; ++i) {
        double v = w[r * k + i], q;
        float libValue = libValues[r * k + i];
        std::string where =
            "row " + std::to_string(r) + " col " + std::to_string(i);
        if (libSalient[r * k + i]) {
          double ratio = v / step[r];
          double code = std::clamp(
              sgn(ratio) * std::floor(std::fabs(ratio) + 0.5), -128.0, 127.0);
          q = code * step[r];
          double frac = std::fabs(ratio) - std::floor(std::fabs(ratio));
          cmp.check(float(q) == libValue, std::fabs(frac - 0.5) < 2e-3,
                    where + ": 8-bit code");
        } else {
          q = alpha[r] * sgn(v);
          cmp.check(libSigns[r * k + i] == (v >= 0), std::fabs(v) < tol,
                    where + ": sign");
        }
        compensate(w, u, k, r, i, libValue, k, ref.loss);
      }
  }
  return ref;
}

//===----------------------------------------------------------------------===//
// Float64 reference DB-LLM
//===----------------------------------------------------------------------===//

/// One group's parameters and codes.
struct DualGroup {
  double alpha1, alpha2, zeta;
  std::vector<int> codes;
};

std::array<double, 4> referenceLevels(const DualGroup &g) {
  std::array<double, 4> levels;
  for (int q = 0; q < 4; ++q)
    levels[q] =
        static_cast<float>((q >> 1) * g.alpha1 + g.alpha2 * ((q & 1) - g.zeta));
  return levels;
}

double groupError(const std::vector<double> &x, const DualGroup &g) {
  std::array<double, 4> levels = referenceLevels(g);
  double e = 0;
  for (size_t i = 0; i < x.size(); ++i)
    e += (x[i] - levels[g.codes[i]]) * (x[i] - levels[g.codes[i]]);
  return e;
}

/// DB-LLM on one group in float64 from the header's description: 2-bit RTN,
/// then least squares (Gaussian elimination with partial pivoting; the offset
/// alone when the bits leave the system singular) and nearest-value
/// re-assignment while the error (with f16 parameters) drops.
DualGroup referenceDualGroup(const std::vector<double> &x, int iterations) {
  double mn = 0, mx = 0;
  for (double v : x) {
    mn = std::min(mn, v);
    mx = std::max(mx, v);
  }
  float s = roundToHalf(std::max(static_cast<float>(mx - mn) / 3.0f, 1e-5f));
  s = std::max(s, 0x1p-14f);
  auto round2 = [](float r) {
    return int(std::round(std::clamp(r, -1024.0f, 1024.0f)));
  };
  int z = std::clamp(round2(static_cast<float>(-mn) / s), 0, 3);
  DualGroup g{2.0 * s, s, double(z), {}};
  for (double v : x)
    g.codes.push_back(std::clamp(round2(static_cast<float>(v) / s) + z, 0, 3));
  double error = groupError(x, g);
  for (int it = 0; it < iterations; ++it) {
    double a[3][4] = {};
    for (size_t i = 0; i < x.size(); ++i) {
      double f[3] = {double(g.codes[i] >> 1), double(g.codes[i] & 1), 1.0};
      for (int r = 0; r < 3; ++r) {
        for (int c = 0; c < 3; ++c)
          a[r][c] += f[r] * f[c];
        a[r][3] += f[r] * x[i];
      }
    }
    bool singular = false;
    for (int c = 0; c < 3 && !singular; ++c) {
      int pivot = c;
      for (int r = c + 1; r < 3; ++r)
        if (std::fabs(a[r][c]) > std::fabs(a[pivot][c]))
          pivot = r;
      std::swap(a[c], a[pivot]);
      singular = std::fabs(a[c][c]) < 1e-9;
      for (int r = 0; r < 3 && !singular; ++r)
        if (r != c)
          for (int cc = 3; cc >= c; --cc)
            a[r][cc] -= a[r][c] / a[c][c] * a[c][cc];
    }
    double offset = a[2][3] / a[2][2];
    DualGroup next{g.alpha1, g.alpha2, 0, {}};
    if (singular) {
      offset = 0;
      for (size_t i = 0; i < x.size(); ++i)
        offset +=
            x[i] - (g.codes[i] >> 1) * g.alpha1 - (g.codes[i] & 1) * g.alpha2;
      offset /= x.size();
    } else {
      next.alpha1 = half(a[0][3] / a[0][0]);
      next.alpha2 = half(a[1][3] / a[1][1]);
    }
    if (next.alpha2 == 0)
      break;
    next.zeta = half(-offset / next.alpha2);
    std::array<double, 4> levels = referenceLevels(next);
    for (double v : x) {
      int best = 0;
      for (int q = 1; q < 4; ++q)
        if ((v - levels[q]) * (v - levels[q]) <
            (v - levels[best]) * (v - levels[best]))
          best = q;
      next.codes.push_back(best);
    }
    double nextError = groupError(x, next);
    if (!(nextError < error))
      break;
    g = next;
    error = nextError;
  }
  return g;
}

//===----------------------------------------------------------------------===//
// The synthetic layer the methods are compared on
//===----------------------------------------------------------------------===//

/// K = 512, N = 256, correlated inputs with outlier channels, heavy-tailed
/// weights.
struct Layer {
  static constexpr int64_t n = 256, k = 512, t = 2048;
  std::vector<float> x = correlatedInputs(t, k, 91, 6);
  std::vector<float> w = outlierWeights(n * k, 92, 0.02f);
  std::vector<float> h = hessianOf(x, t, k);

  double outputError(const std::vector<float> &approx) const {
    return relativeOutputError(x.data(), t, k, w.data(), approx.data(), n);
  }
};

const Layer &layer() {
  static const Layer instance;
  return instance;
}

} // namespace

//===----------------------------------------------------------------------===//
// Sign binarization
//===----------------------------------------------------------------------===//

TEST(SignBinarizationTest, HandComputed) {
  // Row 0: mean |w| = (1 + 2 + 0 + 3) / 4 = 1.5, signs + - + + (sign(0) = +1).
  // Row 1: mean |w| = 1.5 / 4 = 0.375, signs - + - +.
  const float w[] = {1, -2, 0, 3, -0.5f, 0.5f, -0.25f, 0.25f};
  SignMatrix m = binarizeSign(w, 2, 4, 0);
  EXPECT_EQ(m.groups, 1);
  EXPECT_EQ(m.signs, (std::vector<uint32_t>{0b1101, 0b1010}));
  EXPECT_EQ(m.scales, (std::vector<uint16_t>{0x3E00, 0x3600})); // 1.5, 0.375
  EXPECT_EQ(decoded(m), (std::vector<float>{1.5f, -1.5f, 1.5f, 1.5f, -0.375f,
                                            0.375f, -0.375f, 0.375f}));
  // Two words of signs and two f16 alphas: 12 bytes, 12 bits per weight.
  EXPECT_EQ(m.storedBytes(), 12);
  EXPECT_EQ(bitsPerWeight(m.storedBytes(), 2, 4), 12.0);

  // Groups of 3: (1, -2, 0) has alpha 1, (3) alpha 3; (-0.5, 0.5, -0.25)
  // 0.416..., (0.25) 0.25.
  m = binarizeSign(w, 2, 4, 3);
  EXPECT_EQ(m.groups, 2);
  EXPECT_EQ(decoded(m),
            (std::vector<float>{1, -1, 1, 3, -roundToHalf(1.25f / 3),
                                roundToHalf(1.25f / 3), -roundToHalf(1.25f / 3),
                                0.25f}));
}

TEST(SignBinarizationTest, MatchesFloat64Reference) {
  // K = 50: groups of 16 leave a short last group of 2.
  const int64_t n = 9, k = 50;
  std::vector<float> w = outlierWeights(n * k, 3, 0.05f);
  for (int64_t groupSize : {0, 16, 50, 64}) {
    SignMatrix m = binarizeSign(w.data(), n, k, groupSize);
    int64_t width = groupSize == 0 ? k : groupSize;
    ASSERT_EQ(m.groups, (k + width - 1) / width);
    std::vector<float> q = decoded(m);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t g = 0; g * width < k; ++g) {
        std::vector<double> values(w.begin() + r * k + g * width,
                                   w.begin() + r * k +
                                       std::min(k, (g + 1) * width));
        double alpha = half(meanAbs(values));
        for (size_t i = 0; i < values.size(); ++i)
          EXPECT_EQ(q[r * k + g * width + i], alpha * sgn(values[i]))
              << "group size " << groupSize << " row " << r;
      }
  }
}

TEST(SignBinarizationTest, ZeroRowsAndEmptyShapes) {
  std::vector<float> w(3 * 5, 0.0f);
  w[5] = 2.0f; // Row 1 is (2, 0, 0, 0, 0); rows 0 and 2 are zero.
  SignMatrix m = binarizeSign(w.data(), 3, 5, 0);
  std::vector<float> q = decoded(m);
  EXPECT_TRUE(sameBits(std::vector<float>(q.begin(), q.begin() + 5),
                       std::vector<float>(5, 0.0f)));
  EXPECT_TRUE(sameBits(std::vector<float>(q.begin() + 10, q.end()),
                       std::vector<float>(5, 0.0f)));
  // alpha = f16(2 / 5) = 0.39990234375; sign(0) = +1.
  EXPECT_EQ(std::vector<float>(q.begin() + 5, q.begin() + 10),
            std::vector<float>(5, 0.39990234375f));
  EXPECT_EQ(binarizeSign(w.data(), 0, 5, 0).storedBytes(), 0);
  EXPECT_EQ(binarizeSign(w.data(), 3, 0, 0).storedBytes(), 0);
}

//===----------------------------------------------------------------------===//
// BiLLM
//===----------------------------------------------------------------------===//

TEST(BiLLMTest, ResidualBinarizationHandCase) {
  // x = (1, -3, 0.5, -0.5): alpha1 = mean |x| = 1.25, B1 = (+, -, +, -);
  // residual x - alpha1 B1 = (-0.25, -1.75, -0.75, 0.75): alpha2 = 0.875,
  // B2 = (-, -, -, +); x ~ alpha1 B1 + alpha2 B2 = (0.375, -2.125, 0.375,
  // -0.375), squared error 0.390625 + 0.765625 + 2 * 0.015625 = 1.1875
  // (one binarization alone: sum (|x| - 1.25)^2 = 4.25).
  const float x[] = {1, -3, 0.5f, -0.5f};
  uint8_t b1[4], b2[4];
  auto [alpha1, alpha2] = residualBinarize(x, 4, b1, b2);
  EXPECT_EQ(alpha1, 1.25f);
  EXPECT_EQ(alpha2, 0.875f);
  EXPECT_EQ(std::vector<uint8_t>(b1, b1 + 4),
            (std::vector<uint8_t>{1, 0, 1, 0}));
  EXPECT_EQ(std::vector<uint8_t>(b2, b2 + 4),
            (std::vector<uint8_t>{0, 0, 0, 1}));
  std::vector<float> q;
  for (int i = 0; i < 4; ++i)
    q.push_back(residualValue(b1[i], b2[i], alpha1, alpha2));
  EXPECT_EQ(q, (std::vector<float>{0.375f, -2.125f, 0.375f, -0.375f}));
  EXPECT_EQ(squaredDistance(x, q.data(), 4), 1.1875);
}

TEST(BiLLMTest, BreakPointHandCase) {
  // |w| sorted: 0.1, 0.2, 0.3, 1, 2. The quantiles 0.10..0.90 fall in four
  // partitions (concentrated |w| <= p, each part binarized with its mean):
  //   p in (0.1, 0.2):  {0.1} | {0.2, 0.3, 1, 2}:  0 + 2.0675
  //   p = 0.2 (q .25):  {0.1, 0.2} | {0.3, 1, 2}: 0.005 + 1.46
  //   p = 0.3 (q .50):  {0.1, 0.2, 0.3} | {1, 2}: 0.02 + 0.5
  //   p = 1 (q .75):    {0.1, 0.2, 0.3, 1} | {2}:  0.5 + 0
  // The last is best, first reached at the 0.75 quantile, exactly 1.
  const float w[] = {0.1f, -0.2f, 0.3f, -1.0f, 2.0f};
  EXPECT_EQ(billmBreakPoint(w, 1, 5), 1.0f);
  // Rows are binarized apart but share the break point: a second row whose
  // own best split is elsewhere cannot move it past what both prefer.
  const float two[] = {0.1f, -0.2f, 0.3f, -1.0f, 2.0f,
                       0.1f, -0.2f, 0.3f, -1.0f, 2.0f};
  EXPECT_EQ(billmBreakPoint(two, 2, 5), 1.0f);
  EXPECT_EQ(billmBreakPoint(w, 0, 5), 0.0f);
}

TEST(BiLLMTest, FourColumnHandCase) {
  // One row, H = I and no damping, so U = I: nothing is compensated and the
  // saliency is w^2. Ranked columns: 1 (9), 0 (1), 2, 3 (0.25 each, by index).
  // Residual errors of salient | other columns per salient count:
  //   c = 1: {-3}: 0 | {1, 0.5, -0.5}: alpha1 2/3, |r| (1/3, 1/6, 1/6),
  //          alpha2 2/9: 1/81 + 2/324 = 0.0185
  //   c = 2: {1, -3}: alpha1 2, r (-1, -1), alpha2 1: 0 | {0.5, -0.5}: 0
  //   c = 3: 0.5, c = 4: 1.1875 (ResidualBinarizationHandCase).
  // So columns 0 and 1 are salient: (2 - 1, -2 - 1) = (1, -3) exactly. The
  // others, |w| = 0.5 both, split at p = 0.5: both concentrated, alpha 0.5.
  const float w[] = {1, -3, 0.5f, -0.5f};
  BiLLMOptions options;
  options.dampPercent = 0;
  BiLLMMatrix m;
  std::string error;
  std::vector<float> approx;
  double loss = -1;
  ASSERT_TRUE(billmQuantize(w, 1, 4, identityHessian(4), options, m, error,
                            &approx, &loss))
      << error;
  EXPECT_EQ(approx, (std::vector<float>{1, -3, 0.5f, -0.5f}));
  EXPECT_EQ(loss, 0.0);
  EXPECT_EQ(m.blocks, 1);
  EXPECT_EQ(m.salientCount, 2);
  EXPECT_EQ(m.salientColumns, (std::vector<uint32_t>{0b0011}));
  EXPECT_EQ(m.signs, (std::vector<uint32_t>{0b0101}));
  EXPECT_EQ(m.residualSigns, (std::vector<uint32_t>{0b00}));
  EXPECT_EQ(m.sparse, (std::vector<uint32_t>{0b00}));
  // alpha1 2, alpha2 1, concentrated 0.5, sparse (empty) 0.
  EXPECT_EQ(m.scales, (std::vector<uint16_t>{0x4000, 0x3C00, 0x3800, 0x0000}));
  EXPECT_TRUE(sameBits(decoded(m), approx));
  // Four words of bits and four f16 alphas.
  EXPECT_EQ(m.storedBytes(), 4 * 4 + 4 * 2);
}

TEST(BiLLMTest, MatchesFloat64Reference) {
  // Blocks of 128 with a short last one (200 = 128 + 72), blocks of 48 (150 =
  // 3 * 48 + 6), a diagonal Hessian (no compensation: the decisions must
  // agree exactly) and correlated ones (the library's float32 weights drift
  // from float64 by ~1e-6, so near ties may go either way).
  const BiLLMCase cases[] = {{12, 200, 128, true},
                             {12, 200, 128, false},
                             {10, 150, 48, false},
                             {16, 64, 128, false}};
  for (const BiLLMCase &c : cases) {
    std::string name = std::to_string(c.n) + "x" + std::to_string(c.k) +
                       " block " + std::to_string(c.blockSize) +
                       (c.diagonalHessian ? " diagonal H" : "");
    unsigned seed = unsigned(c.k + c.blockSize);
    std::vector<float> w = outlierWeights(c.n * c.k, seed, 0.02f);
    std::vector<float> h;
    if (c.diagonalHessian) {
      h = identityHessian(c.k);
      std::mt19937 rng(seed);
      for (int64_t i = 0; i < c.k; ++i)
        h[i * c.k + i] = 0.1f + float(rng() % 1000) / 100;
    } else {
      h = hessianOf(correlatedInputs(4 * c.k, c.k, seed, 2), 4 * c.k, c.k);
    }
    BiLLMOptions options;
    options.blockSize = c.blockSize;
    BiLLMMatrix m;
    std::string error;
    std::vector<float> approx;
    double loss = 0;
    ASSERT_TRUE(
        billmQuantize(w.data(), c.n, c.k, h, options, m, error, &approx, &loss))
        << error;
    EXPECT_TRUE(sameBits(decoded(m), approx)) << name;
    BiLLMReference ref = referenceBiLLM(w, c.n, c.k, h, options, &m);
    EXPECT_EQ(ref.cmp.mismatches, 0) << name << ": " << ref.cmp.firstMismatch;
    if (c.diagonalHessian) {
      EXPECT_EQ(ref.cmp.ties, 0) << name;
    }
    EXPECT_LE(ref.cmp.ties * 200, ref.cmp.decisions) << name;
    EXPECT_NEAR(loss, ref.loss, 1e-3 * ref.loss) << name;
    std::printf("[          ] BiLLM %s: %lld decisions, %lld near ties\n",
                name.c_str(), (long long)ref.cmp.decisions,
                (long long)ref.cmp.ties);
  }
}

TEST(BiLLMTest, LossIsHalfTheQuadraticError) {
  // Whatever values a block takes, the sweep's errors e solve e U = w0 - q,
  // so their squares add up to 1/2 (q - w0)^T H (q - w0) with the damped H.
  const int64_t n = 8, k = 160;
  std::vector<float> w = outlierWeights(n * k, 11, 0.02f);
  std::vector<float> h = hessianOf(correlatedInputs(600, k, 12, 3), 600, k);
  BiLLMOptions options;
  options.blockSize = 64;
  BiLLMMatrix m;
  std::string error;
  std::vector<float> approx;
  double loss = 0;
  ASSERT_TRUE(
      billmQuantize(w.data(), n, k, h, options, m, error, &approx, &loss));
  Prepared p = prepare(w, n, k, std::vector<double>(h.begin(), h.end()),
                       options.dampPercent);
  EXPECT_NEAR(loss, quadraticError(p.w, approx, p.damped, n, k), 1e-4 * loss);
}

TEST(BiLLMTest, ExactBlockUpdateBeatsPaperDiagonalScaling) {
  // The same method in float64 with the paper's E = (W_b - Q_b) / diag(U_bb)
  // and with the exact block update the library uses: the exact one leaves a
  // smaller output error, and the library matches its float64 run.
  const Layer &l = layer();
  BiLLMOptions options;
  BiLLMMatrix m;
  std::string error;
  std::vector<float> approx;
  ASSERT_TRUE(
      billmQuantize(l.w.data(), l.n, l.k, l.h, options, m, error, &approx));
  BiLLMReference exact =
      referenceBiLLM(l.w, l.n, l.k, l.h, options, nullptr, false);
  BiLLMReference diagonal =
      referenceBiLLM(l.w, l.n, l.k, l.h, options, nullptr, true);
  double library = l.outputError(approx);
  double exactError = l.outputError(exact.values);
  double diagonalError = l.outputError(diagonal.values);
  std::printf("[          ] BiLLM output error: library %.4f, float64 exact "
              "update %.4f, paper's diagonal update %.4f\n",
              library, exactError, diagonalError);
  EXPECT_NEAR(library, exactError, 0.01 * exactError);
  EXPECT_LT(exactError, diagonalError);
}

TEST(BiLLMTest, EdgeCases) {
  // K = 576 (4 blocks of 128 and one of 64), an all-zero row, a dead column
  // (no input ever reaches feature 5) and a zero column of weights.
  const int64_t n = 6, k = 576, t = 1200;
  std::vector<float> x = correlatedInputs(t, k, 21, 2);
  for (int64_t r = 0; r < t; ++r)
    x[r * k + 5] = 0.0f;
  std::vector<float> h = hessianOf(x, t, k);
  std::vector<float> w = outlierWeights(n * k, 22, 0.02f);
  std::fill(w.begin() + 2 * k, w.begin() + 3 * k, 0.0f);
  for (int64_t r = 0; r < n; ++r)
    w[r * k + 300] = 0.0f;
  BiLLMOptions options;
  BiLLMMatrix m;
  std::string error;
  std::vector<float> approx;
  ASSERT_TRUE(billmQuantize(w.data(), n, k, h, options, m, error, &approx))
      << error;
  EXPECT_EQ(m.blocks, 5);
  EXPECT_EQ(m.scales.size(), size_t(n * 5 * kNumBiLLMScales));
  EXPECT_TRUE(allFinite(approx));
  EXPECT_TRUE(sameBits(decoded(m), approx));
  for (int64_t j = 0; j < k; ++j)
    EXPECT_EQ(approx[2 * k + j], 0.0f) << j;
  // The dead column's weights are dropped before anything else, so they
  // cannot change the result.
  std::vector<float> other = w;
  for (int64_t r = 0; r < n; ++r)
    other[r * k + 5] = 1.0f + r;
  std::vector<float> otherApprox;
  BiLLMMatrix otherM;
  ASSERT_TRUE(billmQuantize(other.data(), n, k, h, options, otherM, error,
                            &otherApprox));
  EXPECT_TRUE(sameBits(approx, otherApprox));
  // Every column dead: U = I / sqrt(1.01), weights zeroed, all values 0.
  ASSERT_TRUE(billmQuantize(w.data(), n, k, std::vector<float>(k * k, 0.0f),
                            options, m, error, &approx));
  EXPECT_TRUE(sameBits(approx, std::vector<float>(n * k, 0.0f)));
  // Empty shapes and bad inputs.
  EXPECT_TRUE(billmQuantize(w.data(), 0, k, h, options, m, error));
  EXPECT_TRUE(billmQuantize(w.data(), n, 0, {}, options, m, error));
  EXPECT_EQ(m.storedBytes(), 0);
  options.blockSize = 0;
  EXPECT_FALSE(billmQuantize(w.data(), n, k, h, options, m, error));
  EXPECT_NE(error.find("block size"), std::string::npos) << error;
  options = BiLLMOptions();
  std::vector<float> nan = h;
  nan[7] = NAN;
  EXPECT_FALSE(billmQuantize(w.data(), n, k, nan, options, m, error));
  std::vector<float> negative = identityHessian(4);
  negative[0] = -1.0f;
  EXPECT_FALSE(billmQuantize(w.data(), 1, 4, negative, options, m, error));
  EXPECT_NE(error.find("BiLLM: the damped Hessian is not positive definite"),
            std::string::npos)
      << error;
}

//===----------------------------------------------------------------------===//
// PB-LLM
//===----------------------------------------------------------------------===//

TEST(PBLLMTest, SalientFractionFromTargetBits) {
  // 8 bits per salient and 1 per binarized weight: bits = 1 + 7 f.
  EXPECT_DOUBLE_EQ(pbllmSalientFraction(1.7), 0.1);
  EXPECT_DOUBLE_EQ(pbllmSalientFraction(2.0), 1.0 / 7);
  EXPECT_DOUBLE_EQ(pbllmSalientFraction(2.4), 0.2);
  EXPECT_DOUBLE_EQ(pbllmSalientFraction(1.0), 0.0);
}

TEST(PBLLMTest, FourColumnHandCase) {
  // One row, H = I, no damping: saliency is w^2 and nothing is compensated.
  // A quarter of 4 weights: column 1 (-3) is salient. Its 8-bit step is
  // f16(3 / 127) = 1.51171875 * 2^-6 = 0.023620605..., code round(-3 / step)
  // = round(-127.01) = -127, value -2.99981689...; the others binarize with
  // alpha = f16(mean(1, 0.5, 0.5)) = f16(2/3) = 0.66650390625.
  const float w[] = {1, -3, 0.5f, -0.5f};
  PBLLMOptions options;
  options.salientFraction = 0.25;
  options.dampPercent = 0;
  PBLLMMatrix m;
  std::string error;
  std::vector<float> approx;
  ASSERT_TRUE(
      pbllmQuantize(w, 1, 4, identityHessian(4), options, m, error, &approx))
      << error;
  const float step = 1.51171875f / 64, alpha = 0.66650390625f;
  EXPECT_EQ(approx, (std::vector<float>{alpha, -127 * step, alpha, -alpha}));
  EXPECT_EQ(m.salient, (std::vector<uint32_t>{0b0010}));
  EXPECT_EQ(m.signs, (std::vector<uint32_t>{0b0101}));
  EXPECT_EQ(m.rowOffsets, (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(m.codes, (std::vector<int8_t>{-127}));
  EXPECT_EQ(m.binaryScales, (std::vector<uint16_t>{0x3955}));
  EXPECT_EQ(m.salientScales, (std::vector<uint16_t>{0x260C}));
  EXPECT_TRUE(sameBits(decoded(m), approx));
  // Signs, bitmap, two offsets, one code, two f16 scales.
  EXPECT_EQ(m.storedBytes(), 4 + 4 + 8 + 1 + 4);
}

TEST(PBLLMTest, MatchesFloat64Reference) {
  struct Case {
    int64_t n, k, blockSize;
    double fraction;
  };
  const Case cases[] = {
      {12, 200, 128, 0.1}, {10, 150, 32, 1.0 / 7}, {6, 64, 128, 0.5}};
  for (const Case &c : cases) {
    std::string name = std::to_string(c.n) + "x" + std::to_string(c.k) +
                       " block " + std::to_string(c.blockSize);
    unsigned seed = unsigned(3 * c.k + c.blockSize);
    std::vector<float> w = outlierWeights(c.n * c.k, seed, 0.02f);
    std::vector<float> h =
        hessianOf(correlatedInputs(4 * c.k, c.k, seed, 2), 4 * c.k, c.k);
    PBLLMOptions options;
    options.salientFraction = c.fraction;
    options.blockSize = c.blockSize;
    PBLLMMatrix m;
    std::string error;
    std::vector<float> approx;
    double loss = 0;
    ASSERT_TRUE(
        pbllmQuantize(w.data(), c.n, c.k, h, options, m, error, &approx, &loss))
        << error;
    EXPECT_TRUE(sameBits(decoded(m), approx)) << name;
    PBLLMReference ref = referencePBLLM(w, c.n, c.k, h, options, m);
    EXPECT_EQ(ref.cmp.mismatches, 0) << name << ": " << ref.cmp.firstMismatch;
    EXPECT_LE(ref.cmp.ties * 200, ref.cmp.decisions) << name;
    EXPECT_NEAR(loss, ref.loss, 1e-3 * ref.loss) << name;
  }
}

TEST(PBLLMTest, EdgeCases) {
  const int64_t n = 5, k = 576, t = 1200;
  std::vector<float> x = correlatedInputs(t, k, 31, 2);
  for (int64_t r = 0; r < t; ++r)
    x[r * k + 9] = 0.0f;
  std::vector<float> h = hessianOf(x, t, k);
  std::vector<float> w = outlierWeights(n * k, 32, 0.02f);
  std::fill(w.begin() + 4 * k, w.end(), 0.0f);
  PBLLMOptions options;
  PBLLMMatrix m;
  std::string error;
  std::vector<float> approx;
  ASSERT_TRUE(pbllmQuantize(w.data(), n, k, h, options, m, error, &approx))
      << error;
  EXPECT_TRUE(allFinite(approx));
  EXPECT_TRUE(sameBits(decoded(m), approx));
  EXPECT_EQ(m.rowOffsets.size(), size_t(n + 1));
  EXPECT_EQ(m.rowOffsets.back(), m.codes.size());
  EXPECT_EQ(int64_t(m.codes.size()), std::llround(0.1 * n * k));
  EXPECT_TRUE(sameBits(std::vector<float>(approx.begin() + 4 * k, approx.end()),
                       std::vector<float>(k, 0.0f)));
  std::vector<float> other = w;
  for (int64_t r = 0; r < n; ++r)
    other[r * k + 9] = -2.0f;
  std::vector<float> otherApprox;
  ASSERT_TRUE(
      pbllmQuantize(other.data(), n, k, h, options, m, error, &otherApprox));
  EXPECT_TRUE(sameBits(approx, otherApprox));
  // Nothing salient, everything salient.
  for (double fraction : {0.0, 1.0}) {
    options.salientFraction = fraction;
    ASSERT_TRUE(pbllmQuantize(w.data(), n, k, h, options, m, error, &approx));
    EXPECT_EQ(int64_t(m.codes.size()), fraction == 0 ? 0 : n * k);
    EXPECT_TRUE(sameBits(decoded(m), approx));
  }
  options.salientFraction = 1.5;
  EXPECT_FALSE(pbllmQuantize(w.data(), n, k, h, options, m, error));
  EXPECT_NE(error.find("salient fraction"), std::string::npos) << error;
  options = PBLLMOptions();
  EXPECT_TRUE(pbllmQuantize(w.data(), n, 0, {}, options, m, error));
  EXPECT_EQ(m.rowOffsets, std::vector<uint32_t>(n + 1, 0));
}

//===----------------------------------------------------------------------===//
// DB-LLM
//===----------------------------------------------------------------------===//

TEST(DBLLMTest, HandCase) {
  // x = (-1, 0, 0.2, 3), one group. 2-bit RTN: s = f16(4/3) = 1.3330078125,
  // z = round(1 / s) = 1, codes (0, 1, 1, 3): b1 = (0, 0, 0, 1),
  // b2 = (0, 1, 1, 1), alpha1 = 2s, alpha2 = s, zeta = 1, values
  // (-s, 0, 0, 2s), squared error 0.262.
  const float x[] = {-1, 0, 0.2f, 3};
  DBLLMOptions options;
  options.groupSize = 0;
  options.refineIterations = 0;
  std::vector<float> approx;
  DBLLMMatrix m = dbllmQuantize(x, 1, 4, options, &approx);
  const float s = 1.3330078125f;
  EXPECT_EQ(approx, (std::vector<float>{-s, 0, 0, 2 * s}));
  EXPECT_EQ(m.first, (std::vector<uint32_t>{0b1000}));
  EXPECT_EQ(m.second, (std::vector<uint32_t>{0b1110}));
  EXPECT_EQ(m.params, (std::vector<uint16_t>{floatToHalf(2 * s), floatToHalf(s),
                                             0x3C00}));
  // Refined: least squares on these bits fits c = -1, c + alpha2 = 0.1,
  // c + alpha1 + alpha2 = 3, so alpha1 = 2.9 -> f16 2.900390625, alpha2 = 1.1
  // -> 1.099609375, zeta = 1 / alpha2 -> 0.9091796875. The bits stay; the
  // error drops to about 2 * 0.1^2 = 0.02, and the next step changes nothing.
  options.refineIterations = 20;
  m = dbllmQuantize(x, 1, 4, options, &approx);
  EXPECT_EQ(m.params, (std::vector<uint16_t>{floatToHalf(2.900390625f),
                                             floatToHalf(1.099609375f),
                                             floatToHalf(0.9091796875f)}));
  EXPECT_EQ(m.first, (std::vector<uint32_t>{0b1000}));
  EXPECT_EQ(m.second, (std::vector<uint32_t>{0b1110}));
  EXPECT_NEAR(squaredDistance(x, approx.data(), 4), 0.02, 1e-3);
  EXPECT_TRUE(sameBits(decoded(m), approx));
  // Two words of bits, three f16 parameters.
  EXPECT_EQ(m.storedBytes(), 8 + 6);
}

TEST(DBLLMTest, StartIsTwoBitRTN) {
  // Without refinement the planes are the bits of RTN's 2-bit codes and the
  // values are RTN's bit for bit, including groups whose zero point is 3
  // (-3s needs 12 significant bits, more than an f16 offset would hold).
  const int64_t n = 16, k = 300;
  std::vector<float> w = outlierWeights(n * k, 41, 0.02f);
  for (int64_t j = 0; j < k; ++j)
    w[3 * k + j] = -std::fabs(w[3 * k + j]); // Row 3: zero point 3.
  for (int64_t groupSize : {0, 64, 128}) {
    UniformScheme scheme;
    scheme.bits = 2;
    scheme.groupSize = groupSize;
    UniformMatrix rtn = quantizeRTN(w.data(), n, k, scheme);
    std::vector<float> rtnValues(n * k);
    dequantize(rtn, rtnValues.data());
    DBLLMOptions options;
    options.groupSize = groupSize;
    options.refineIterations = 0;
    std::vector<float> approx;
    DBLLMMatrix m = dbllmQuantize(w.data(), n, k, options, &approx);
    EXPECT_TRUE(sameBits(approx, rtnValues)) << groupSize;
    EXPECT_TRUE(sameBits(decoded(m), rtnValues)) << groupSize;
    std::vector<uint8_t> b1 = unpacked(m.first, n, k),
                         b2 = unpacked(m.second, n, k);
    for (int64_t i = 0; i < n * k; ++i)
      ASSERT_EQ(2 * b1[i] + b2[i], rtn.codes[i]) << i;
    EXPECT_EQ(rtn.zeros[3 * rtn.groups], 3);
  }
}

TEST(DBLLMTest, MatchesFloat64Reference) {
  const int64_t n = 10, k = 200;
  std::vector<float> w = outlierWeights(n * k, 51, 0.02f);
  for (int64_t groupSize : {0, 32, 128}) {
    DBLLMOptions options;
    options.groupSize = groupSize;
    std::vector<float> approx;
    DBLLMMatrix m = dbllmQuantize(w.data(), n, k, options, &approx);
    EXPECT_TRUE(sameBits(decoded(m), approx));
    std::vector<uint8_t> b1 = unpacked(m.first, n, k),
                         b2 = unpacked(m.second, n, k);
    int64_t width = groupSize == 0 ? k : groupSize;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t g = 0; g < m.groups; ++g) {
        int64_t begin = r * k + g * width,
                size = std::min(width, k - g * width);
        DualGroup ref = referenceDualGroup(
            std::vector<double>(w.begin() + begin, w.begin() + begin + size),
            options.refineIterations);
        const uint16_t *p = &m.params[(r * m.groups + g) * kNumDBLLMParams];
        EXPECT_EQ(halfToFloat(p[kFirstScale]), ref.alpha1);
        EXPECT_EQ(halfToFloat(p[kSecondScale]), ref.alpha2);
        EXPECT_EQ(halfToFloat(p[kOffset]), ref.zeta);
        for (int64_t i = 0; i < size; ++i)
          ASSERT_EQ(2 * b1[begin + i] + b2[begin + i], ref.codes[i])
              << "group size " << groupSize << " row " << r << " group " << g;
      }
  }
}

TEST(DBLLMTest, NeverWorseThanTwoBitRTN) {
  // Every group's squared error is at most RTN's with the same group, and on
  // heavy-tailed weights the refinement lowers it clearly overall.
  const Layer &l = layer();
  const int64_t n = l.n, k = l.k, g = 128;
  UniformScheme scheme;
  scheme.bits = 2;
  scheme.groupSize = g;
  std::vector<float> rtn(n * k);
  dequantize(quantizeRTN(l.w.data(), n, k, scheme), rtn.data());
  DBLLMOptions options;
  std::vector<float> approx;
  DBLLMMatrix m = dbllmQuantize(l.w.data(), n, k, options, &approx);
  EXPECT_TRUE(sameBits(decoded(m), approx));
  double dbTotal = 0, rtnTotal = 0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; j += g) {
      int64_t at = r * k + j;
      double db = squaredDistance(&l.w[at], &approx[at], g);
      double base = squaredDistance(&l.w[at], &rtn[at], g);
      EXPECT_LE(db, base) << "row " << r << " group " << j / g;
      dbTotal += db;
      rtnTotal += base;
    }
  std::printf("[          ] DB-LLM g128: weight error / RTN w2 g128 %.3f, "
              "output error %.4f vs RTN's %.4f, %.3f bits per weight\n",
              dbTotal / rtnTotal, l.outputError(approx), l.outputError(rtn),
              bitsPerWeight(m.storedBytes(), n, k));
  EXPECT_LT(dbTotal, 0.9 * rtnTotal);
}

TEST(DBLLMTest, EdgeCases) {
  // K = 1536 with groups of 128 and of 100 (a short last group of 36), an
  // all-zero row, a row of equal weights and groups of one column (bits that
  // leave the least squares singular: only the offset is refitted).
  const int64_t n = 4, k = 1536;
  std::vector<float> w = outlierWeights(n * k, 61, 0.02f);
  std::fill(w.begin(), w.begin() + k, 0.0f);
  std::fill(w.begin() + k, w.begin() + 2 * k, 0.5f);
  for (int64_t groupSize : {100, 128, 1537, 1}) {
    DBLLMOptions options;
    options.groupSize = groupSize;
    std::vector<float> approx;
    DBLLMMatrix m = dbllmQuantize(w.data(), n, k, options, &approx);
    EXPECT_TRUE(allFinite(approx));
    EXPECT_TRUE(sameBits(decoded(m), approx));
    EXPECT_TRUE(sameBits(std::vector<float>(approx.begin(), approx.begin() + k),
                         std::vector<float>(k, 0.0f)));
    // RTN puts 0.5 at 3 f16(0.5 / 3) = 0.49988; the offset moves it to within
    // an f16 rounding of 0.5.
    for (int64_t j = 0; j < k; ++j)
      ASSERT_NEAR(approx[k + j], 0.5f, 2e-4) << groupSize;
  }
  EXPECT_EQ(dbllmQuantize(w.data(), n, 0, DBLLMOptions()).storedBytes(), 0);
}

//===----------------------------------------------------------------------===//
// The methods on one layer
//===----------------------------------------------------------------------===//

TEST(BinarizationTest, OutputErrorAndBitsOnCorrelatedOutlierLayer) {
  // K = 512, N = 256: BiLLM and PB-LLM (calibrated, compensated) against
  // plain sign binarization, by the relative output error on the inputs, and
  // the storage each one really takes.
  const Layer &l = layer();
  const int64_t n = l.n, k = l.k;
  SignMatrix sign = binarizeSign(l.w.data(), n, k, 0);
  double signError = l.outputError(decoded(sign));
  double signBits = bitsPerWeight(sign.storedBytes(), n, k);
  std::printf("[          ] sign (per row):  output error %.4f, %.3f bits\n",
              signError, signBits);
  RecordProperty("sign_output_error", std::to_string(signError));

  BiLLMMatrix billm;
  std::string error;
  std::vector<float> approx;
  ASSERT_TRUE(billmQuantize(l.w.data(), n, k, l.h, BiLLMOptions(), billm, error,
                            &approx))
      << error;
  EXPECT_TRUE(sameBits(decoded(billm), approx));
  double billmError = l.outputError(approx);
  double billmBits = bitsPerWeight(billm.storedBytes(), n, k);
  // The paper's count: a sign bit per weight and a second one per salient.
  double billmSignBits = double(k + billm.salientCount) / k;
  std::printf("[          ] BiLLM:           output error %.4f, %.3f bits "
              "stored (%lld salient columns: %.3f bits of signs)\n",
              billmError, billmBits, (long long)billm.salientCount,
              billmSignBits);
  RecordProperty("billm_output_error", std::to_string(billmError));
  RecordProperty("billm_bits", std::to_string(billmBits));
  EXPECT_LT(billmError, signError);
  EXPECT_GT(billmSignBits, 1.0);
  EXPECT_LT(billmSignBits, 1.3);
  // Stored: signs, B2 and the group bitmap (one bit for every weight either
  // way), the column mask and four f16 alphas per row and block of 128.
  int64_t words = packedWordsPerRow(k, 1) + packedWordsPerRow(k, 1) * n +
                  packedWordsPerRow(billm.salientCount, 1) * n +
                  packedWordsPerRow(k - billm.salientCount, 1) * n;
  EXPECT_EQ(billm.storedBytes(), 4 * words + 2 * n * 4 * kNumBiLLMScales);

  for (double target : {1.7, 2.0}) {
    PBLLMOptions options;
    options.salientFraction = pbllmSalientFraction(target);
    PBLLMMatrix pbllm;
    ASSERT_TRUE(
        pbllmQuantize(l.w.data(), n, k, l.h, options, pbllm, error, &approx))
        << error;
    EXPECT_TRUE(sameBits(decoded(pbllm), approx));
    double pbllmError = l.outputError(approx);
    double bits = bitsPerWeight(pbllm.storedBytes(), n, k);
    int64_t salient = pbllm.codes.size();
    double paperBits = double(n * k - salient + 8 * salient) / (n * k);
    std::printf("[          ] PB-LLM w%.1f:      output error %.4f, %.3f bits "
                "stored (%.3f of 1-bit and 8-bit payload)\n",
                target, pbllmError, bits, paperBits);
    RecordProperty("pbllm_w" + std::to_string(target) + "_output_error",
                   std::to_string(pbllmError));
    RecordProperty("pbllm_w" + std::to_string(target) + "_bits",
                   std::to_string(bits));
    EXPECT_LT(pbllmError, signError);
    EXPECT_NEAR(paperBits, target, 0.15);
    // Stored: signs and bitmap (2 bits per weight), 8 bits per salient
    // weight, a 32-bit offset and two f16 scales per row.
    EXPECT_EQ(pbllm.storedBytes(),
              8 * n * packedWordsPerRow(k, 1) + salient + 4 * (n + 1) + 4 * n);
  }
}
