//===- Binarize.cpp - Binarization of LLM weights -------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/Binarize.h"

#include "llq/Quant/GPTQ.h"
#include "llq/Quant/Half.h"
#include "llq/Quant/Packing.h"
#include "llq/Quant/Uniform.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <initializer_list>
#include <numeric>

namespace llq::quant {

namespace {

//===----------------------------------------------------------------------===//
// Shared pieces
//===----------------------------------------------------------------------===//

/// Rounds \p value to the f16 value stored for it, kept finite so that no
/// decoded value is ever infinite or NaN.
float storedScale(double value) {
  constexpr double kMaxHalf = 65504.0;
  return roundToHalf(
      static_cast<float>(std::clamp(value, -kMaxHalf, kMaxHalf)));
}

/// The stored alpha of a set of \p count values whose |x| sum to \p absSum:
/// their mean |x|, the alpha minimizing sum (x - alpha sign(x))^2; 0 for an
/// empty set.
float meanAbsScale(double absSum, int64_t count) {
  return count == 0 ? 0.0f : storedScale(absSum / count);
}

/// The sign bit of \p x: 1 for +1 (x >= 0), 0 for -1.
inline uint8_t signBit(float x) { return x < 0.0f ? 0 : 1; }

inline float signedValue(bool bit, float alpha) { return bit ? alpha : -alpha; }

/// Packs the row-major \p rows x \p cols 0/1 values in \p bits, 1 bit each.
std::vector<uint32_t> packBits(const std::vector<uint8_t> &bits, int64_t rows,
                               int64_t cols) {
  std::vector<uint32_t> out(rows * packedWordsPerRow(cols, 1));
  packRows(bits.data(), rows, cols, 1, out.data());
  return out;
}

std::vector<uint8_t> unpackBits(const std::vector<uint32_t> &packed,
                                int64_t rows, int64_t cols) {
  std::vector<uint8_t> bits(rows * cols);
  unpackRows(packed.data(), rows, cols, 1, bits.data());
  return bits;
}

/// Bytes of the given word and half arrays.
int64_t bytesOf(std::initializer_list<const std::vector<uint32_t> *> words,
                std::initializer_list<const std::vector<uint16_t> *> halves) {
  int64_t bytes = 0;
  for (const std::vector<uint32_t> *v : words)
    bytes += 4 * static_cast<int64_t>(v->size());
  for (const std::vector<uint16_t> *v : halves)
    bytes += 2 * static_cast<int64_t>(v->size());
  return bytes;
}

/// Converts stored scales to their f16 bits.
std::vector<uint16_t> toHalves(const std::vector<float> &values) {
  std::vector<uint16_t> out(values.size());
  std::transform(values.begin(), values.end(), out.begin(), floatToHalf);
  return out;
}

/// Columns per group: \p groupSize, or all of them when it is 0.
int64_t groupWidth(int64_t cols, int64_t groupSize) {
  return groupSize == 0 ? cols : groupSize;
}

/// Checks what every calibrated binarizer needs; empty when fine.
std::string checkCalibrated(int64_t n, int64_t k, const std::vector<float> &h,
                            int64_t blockSize, double dampPercent) {
  if (blockSize < 1)
    return "block size must be positive, got " + std::to_string(blockSize);
  return validateHessian(n, k, h, dampPercent);
}

//===----------------------------------------------------------------------===//
// BiLLM
//===----------------------------------------------------------------------===//

/// The squared error of binarizing the values with magnitudes a[begin..end)
/// as alpha1 B1 + alpha2 B2 with the optimal (unrounded) alphas, given the
/// prefix sums \p sums and \p squares of a and a^2. Only magnitudes matter:
/// the residual r has |r| = |a - alpha1|, and with alpha1 = sum a / m and
/// alpha2 = sum |r| / m the error sum (|r| - alpha2)^2 is
/// sum a^2 - (sum a)^2 / m - (sum |r|)^2 / m, one pass over the values.
double residualError(const double *a, const double *sums, const double *squares,
                     int64_t begin, int64_t end) {
  int64_t m = end - begin;
  if (m == 0)
    return 0.0;
  double sum = sums[end] - sums[begin], alpha1 = sum / m, residualSum = 0;
  for (int64_t i = begin; i < end; ++i)
    residualSum += std::fabs(a[i] - alpha1);
  return squares[end] - squares[begin] - sum * alpha1 -
         residualSum * residualSum / m;
}

/// Sums over one row's values of |w| <= p (concentrated) and |w| > p.
struct SplitSums {
  double concentrated = 0, sparse = 0;
  int64_t concentratedCount = 0, sparseCount = 0;

  void add(float absValue, float p) {
    if (absValue <= p) {
      concentrated += absValue;
      ++concentratedCount;
    } else {
      sparse += absValue;
      ++sparseCount;
    }
  }
};

/// The candidate break points: numpy's linear-interpolation quantiles
/// 0.10, 0.11, ..., 0.90 of \p sorted (non-empty, ascending).
std::vector<float> breakPointCandidates(const std::vector<float> &sorted) {
  std::vector<float> candidates;
  int64_t m = sorted.size();
  for (int percent = 10; percent <= 90; ++percent) {
    double position = percent / 100.0 * double(m - 1);
    int64_t lo = static_cast<int64_t>(position);
    int64_t hi = std::min(lo + 1, m - 1);
    double fraction = position - double(lo);
    candidates.push_back(static_cast<float>(
        sorted[lo] + fraction * (double(sorted[hi]) - sorted[lo])));
  }
  return candidates;
}

/// One BiLLM run over a layer.
class BiLLMRun {
public:
  BiLLMRun(const float *w, int64_t n, int64_t k, const BiLLMOptions &options)
      : n(n), k(k), options(options), weights(w, w + n * k),
        salientColumn(k, 0), firstBits(n * k), secondBits(n * k),
        sparseBits(n * k),
        scales(n * numGroups(k, options.blockSize) * kNumBiLLMScales),
        blockValues(n * std::min(options.blockSize, k)) {}

  bool prepare(std::vector<float> &h, std::string &error) {
    fixDeadColumns(h, k, weights.data(), n);
    if (!dampAndInvertHessian(h, k, options.dampPercent, error)) {
      error = "BiLLM: " + error;
      return false;
    }
    u = std::move(h);
    return true;
  }

  double run() {
    return compensateColumns(
        weights.data(), n, k, u, options.blockSize,
        [&](int64_t begin, int64_t end) { decideBlock(begin, end); },
        [&](int64_t r, int64_t i, float) {
          return blockValues[r * blockWidth + (i - blockBegin)];
        });
  }

  void finish(BiLLMMatrix &out, std::vector<float> *approximation);

private:
  void decideBlock(int64_t begin, int64_t end);
  std::vector<int64_t> rankColumns(int64_t begin, int64_t end) const;
  int64_t searchSalientCount(const std::vector<int64_t> &ranked) const;
  void binarizeSalient(int64_t r, const std::vector<int64_t> &columns);
  void binarizeSplit(int64_t r, const std::vector<int64_t> &columns, float p);
  float *rowScales(int64_t r) {
    return &scales[(r * numGroups(k, options.blockSize) +
                    blockBegin / options.blockSize) *
                   kNumBiLLMScales];
  }

  int64_t n, k;
  BiLLMOptions options;
  /// The weights being compensated, n x k; the chosen values once swept.
  std::vector<float> weights;
  /// U, the upper Cholesky factor of H^-1, k x k.
  std::vector<float> u;
  /// Per column, 1 if salient.
  std::vector<uint8_t> salientColumn;
  /// n x k bits: B1 (every weight), B2 (salient), sparse group (the others).
  std::vector<uint8_t> firstBits, secondBits, sparseBits;
  /// n x blocks x kNumBiLLMScales stored alphas.
  std::vector<float> scales;
  /// The current block's chosen values, n x blockWidth.
  std::vector<float> blockValues;
  int64_t blockBegin = 0, blockWidth = 0;
};

std::vector<int64_t> BiLLMRun::rankColumns(int64_t begin, int64_t end) const {
  std::vector<double> score(end - begin, 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = begin; j < end; ++j) {
      double v = weights[r * k + j];
      score[j - begin] += v * v;
    }
  for (int64_t j = begin; j < end; ++j) {
    double d = u[j * k + j];
    score[j - begin] /= d * d;
  }
  std::vector<int64_t> ranked(end - begin);
  std::iota(ranked.begin(), ranked.end(), begin);
  std::stable_sort(ranked.begin(), ranked.end(), [&](int64_t a, int64_t b) {
    return score[a - begin] > score[b - begin];
  });
  return ranked;
}

int64_t BiLLMRun::searchSalientCount(const std::vector<int64_t> &ranked) const {
  int64_t width = ranked.size();
  // |w| of each row in rank order, so that the top c columns are a prefix,
  // and its prefix sums of |w| and w^2.
  std::vector<double> magnitudes(n * width), sums(n * (width + 1), 0.0),
      squares(n * (width + 1), 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t t = 0; t < width; ++t) {
      double a = std::fabs(weights[r * k + ranked[t]]);
      magnitudes[r * width + t] = a;
      sums[r * (width + 1) + t + 1] = sums[r * (width + 1) + t] + a;
      squares[r * (width + 1) + t + 1] = squares[r * (width + 1) + t] + a * a;
    }
  int64_t best = 1;
  double bestError = 0;
  for (int64_t c = 1; c <= std::min(options.maxSalientColumns, width); ++c) {
    double error = 0;
    for (int64_t r = 0; r < n; ++r) {
      const double *a = &magnitudes[r * width], *s = &sums[r * (width + 1)],
                   *q = &squares[r * (width + 1)];
      error += residualError(a, s, q, 0, c) + residualError(a, s, q, c, width);
    }
    if (c == 1 || error < bestError) {
      best = c;
      bestError = error;
    }
  }
  return best;
}

void BiLLMRun::binarizeSalient(int64_t r, const std::vector<int64_t> &columns) {
  int64_t m = columns.size();
  std::vector<float> x(m);
  std::vector<uint8_t> b1(m), b2(m);
  for (int64_t t = 0; t < m; ++t)
    x[t] = weights[r * k + columns[t]];
  auto [alpha1, alpha2] = residualBinarize(x.data(), m, b1.data(), b2.data());
  for (int64_t t = 0; t < m; ++t) {
    int64_t j = columns[t];
    firstBits[r * k + j] = b1[t];
    secondBits[r * k + j] = b2[t];
    blockValues[r * blockWidth + (j - blockBegin)] =
        residualValue(b1[t], b2[t], alpha1, alpha2);
  }
  rowScales(r)[kSalientFirst] = alpha1;
  rowScales(r)[kSalientResidual] = alpha2;
}

void BiLLMRun::binarizeSplit(int64_t r, const std::vector<int64_t> &columns,
                             float p) {
  SplitSums sums;
  for (int64_t j : columns)
    sums.add(std::fabs(weights[r * k + j]), p);
  float concentrated = meanAbsScale(sums.concentrated, sums.concentratedCount);
  float sparse = meanAbsScale(sums.sparse, sums.sparseCount);
  for (int64_t j : columns) {
    float v = weights[r * k + j];
    uint8_t bit = signBit(v), isSparse = std::fabs(v) > p;
    firstBits[r * k + j] = bit;
    sparseBits[r * k + j] = isSparse;
    blockValues[r * blockWidth + (j - blockBegin)] =
        signedValue(bit, isSparse ? sparse : concentrated);
  }
  rowScales(r)[kConcentrated] = concentrated;
  rowScales(r)[kSparse] = sparse;
}

void BiLLMRun::decideBlock(int64_t begin, int64_t end) {
  blockBegin = begin;
  blockWidth = end - begin;
  std::vector<int64_t> ranked = rankColumns(begin, end);
  int64_t count = searchSalientCount(ranked);
  std::vector<int64_t> salient(ranked.begin(), ranked.begin() + count);
  std::vector<int64_t> others(ranked.begin() + count, ranked.end());
  std::sort(salient.begin(), salient.end());
  std::sort(others.begin(), others.end());
  for (int64_t j : salient)
    salientColumn[j] = 1;

  std::vector<float> rest(n * others.size());
  for (int64_t r = 0; r < n; ++r)
    for (size_t t = 0; t < others.size(); ++t)
      rest[r * others.size() + t] = weights[r * k + others[t]];
  float p = billmBreakPoint(rest.data(), n, others.size());
  for (int64_t r = 0; r < n; ++r) {
    binarizeSalient(r, salient);
    binarizeSplit(r, others, p);
  }
}

void BiLLMRun::finish(BiLLMMatrix &out, std::vector<float> *approximation) {
  out = BiLLMMatrix();
  out.rows = n;
  out.cols = k;
  out.blockSize = options.blockSize;
  out.blocks = numGroups(k, options.blockSize);
  int64_t s =
      std::accumulate(salientColumn.begin(), salientColumn.end(), int64_t(0));
  out.salientCount = s;
  out.salientColumns = packBits(salientColumn, 1, k);
  out.signs = packBits(firstBits, n, k);
  // Each row's B2 bits of salient columns and group bits of the others, in
  // column order.
  std::vector<uint8_t> residual(n * s), sparse(n * (k - s));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0, si = 0, oi = 0; j < k; ++j) {
      if (salientColumn[j])
        residual[r * s + si++] = secondBits[r * k + j];
      else
        sparse[r * (k - s) + oi++] = sparseBits[r * k + j];
    }
  out.residualSigns = packBits(residual, n, s);
  out.sparse = packBits(sparse, n, k - s);
  out.scales = toHalves(scales);
  if (approximation)
    *approximation = std::move(weights);
}

//===----------------------------------------------------------------------===//
// PB-LLM
//===----------------------------------------------------------------------===//

/// Marks the \p count largest of \p scores (ties by position) in a 0/1 mask.
std::vector<uint8_t> topScores(const std::vector<float> &scores,
                               int64_t count) {
  std::vector<uint8_t> mask(scores.size(), 0);
  if (count <= 0)
    return mask;
  std::vector<float> sorted = scores;
  std::nth_element(sorted.begin(), sorted.begin() + (count - 1), sorted.end(),
                   std::greater<float>());
  float threshold = sorted[count - 1];
  int64_t above = 0;
  for (size_t i = 0; i < scores.size(); ++i)
    if (scores[i] > threshold) {
      mask[i] = 1;
      ++above;
    }
  for (size_t i = 0; i < scores.size() && above < count; ++i)
    if (scores[i] == threshold) {
      mask[i] = 1;
      ++above;
    }
  return mask;
}

/// One PB-LLM run over a layer.
class PBLLMRun {
public:
  PBLLMRun(const float *w, int64_t n, int64_t k, const PBLLMOptions &options)
      : n(n), k(k), options(options), weights(w, w + n * k), codes(n * k),
        signBits(n * k), alphas(n), params(n) {}

  bool prepare(std::vector<float> &h, std::string &error);
  double run() {
    return compensateColumns(
        weights.data(), n, k, u, options.blockSize, [](int64_t, int64_t) {},
        [&](int64_t r, int64_t i, float v) { return quantize(r, i, v); });
  }
  void finish(PBLLMMatrix &out, std::vector<float> *approximation);

private:
  float quantize(int64_t r, int64_t i, float v) {
    if (salient[r * k + i]) {
      uint8_t code = quantizeValue(v, params[r], 8);
      codes[r * k + i] = code;
      return dequantizeValue(code, params[r]);
    }
    uint8_t bit = signBit(v);
    signBits[r * k + i] = bit;
    return signedValue(bit, alphas[r]);
  }

  int64_t n, k;
  PBLLMOptions options;
  std::vector<float> weights, u;
  /// n x k: 1 at salient positions.
  std::vector<uint8_t> salient;
  /// n x k: 8-bit codes of salient weights, sign bits of the others.
  std::vector<uint8_t> codes, signBits;
  /// Per row: alpha of the binarized weights, 8-bit parameters.
  std::vector<float> alphas;
  std::vector<GroupParams> params;
};

bool PBLLMRun::prepare(std::vector<float> &h, std::string &error) {
  fixDeadColumns(h, k, weights.data(), n);
  if (!dampAndInvertHessian(h, k, options.dampPercent, error)) {
    error = "PB-LLM: " + error;
    return false;
  }
  u = std::move(h);
  std::vector<float> scores(n * k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j) {
      float v = weights[r * k + j], d = u[j * k + j];
      scores[r * k + j] = v * v / (d * d);
    }
  salient = topScores(scores, std::llround(options.salientFraction * n * k));
  UniformScheme int8Scheme;
  int8Scheme.bits = 8;
  int8Scheme.symmetric = true;
  for (int64_t r = 0; r < n; ++r) {
    const float *row = &weights[r * k];
    params[r] = computeGroupParams(row, k, int8Scheme);
    double absSum = 0;
    int64_t count = 0;
    for (int64_t j = 0; j < k; ++j)
      if (!salient[r * k + j]) {
        absSum += std::fabs(row[j]);
        ++count;
      }
    alphas[r] = meanAbsScale(absSum, count);
  }
  return true;
}

void PBLLMRun::finish(PBLLMMatrix &out, std::vector<float> *approximation) {
  out = PBLLMMatrix();
  out.rows = n;
  out.cols = k;
  for (int64_t i = 0; i < n * k; ++i)
    if (salient[i])
      signBits[i] = 0;
  out.signs = packBits(signBits, n, k);
  out.salient = packBits(salient, n, k);
  out.rowOffsets.push_back(0);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < k; ++j)
      if (salient[r * k + j])
        out.codes.push_back(
            static_cast<int8_t>(int(codes[r * k + j]) - int(params[r].zero)));
    out.rowOffsets.push_back(static_cast<uint32_t>(out.codes.size()));
  }
  out.binaryScales = toHalves(alphas);
  for (const GroupParams &p : params)
    out.salientScales.push_back(floatToHalf(p.scale));
  if (approximation)
    *approximation = std::move(weights);
}

//===----------------------------------------------------------------------===//
// DB-LLM
//===----------------------------------------------------------------------===//

/// One group's parameters as stored (f16 values).
struct DualParams {
  float alpha1, alpha2, zeta;
};

/// The code 2 b1 + b2 of each of \p x[0..m) nearest to \p levels (the lowest
/// code on ties), and the squared error of those choices.
double assignNearest(const float *x, int64_t m,
                     const std::array<float, 4> &levels, uint8_t *codes) {
  double total = 0;
  for (int64_t i = 0; i < m; ++i) {
    double best = 0;
    for (uint8_t q = 0; q < 4; ++q) {
      double d = double(x[i]) - levels[q];
      if (q == 0 || d * d < best) {
        best = d * d;
        codes[i] = q;
      }
    }
    total += best;
  }
  return total;
}

double squaredError(const float *x, int64_t m,
                    const std::array<float, 4> &levels, const uint8_t *codes) {
  double total = 0;
  for (int64_t i = 0; i < m; ++i) {
    double d = double(x[i]) - levels[codes[i]];
    total += d * d;
  }
  return total;
}

/// Least squares for x ~ alpha1 b1 + alpha2 b2 + c with the bits of \p codes
/// fixed, by Cramer's rule on the normal equations. Their matrix holds counts,
/// so its determinant is an exact integer and is zero exactly when the bits
/// cannot determine all three (a plane constant, or the planes equal or
/// complementary, as in a constant group or a group of one column); then the
/// offset alone is fitted to the current scales \p p.
std::array<double, 3> solveDualLeastSquares(const float *x, int64_t m,
                                            const uint8_t *codes,
                                            const DualParams &p) {
  double g[3][3] = {}, rhs[3] = {};
  for (int64_t i = 0; i < m; ++i) {
    double f[3] = {double(codes[i] >> 1), double(codes[i] & 1), 1.0};
    for (int a = 0; a < 3; ++a) {
      rhs[a] += f[a] * x[i];
      for (int b = 0; b < 3; ++b)
        g[a][b] += f[a] * f[b];
    }
  }
  auto det = [](const double c[3][3]) {
    return c[0][0] * (c[1][1] * c[2][2] - c[1][2] * c[2][1]) -
           c[0][1] * (c[1][0] * c[2][2] - c[1][2] * c[2][0]) +
           c[0][2] * (c[1][0] * c[2][1] - c[1][1] * c[2][0]);
  };
  double d = det(g);
  if (d == 0) {
    // sum (x - alpha1 b1 - alpha2 b2) / m; g[a][2] counts plane a's ones.
    double offset = rhs[2] - p.alpha1 * g[0][2] - p.alpha2 * g[1][2];
    return {p.alpha1, p.alpha2, offset / m};
  }
  std::array<double, 3> solution;
  for (int col = 0; col < 3; ++col) {
    double c[3][3];
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b)
        c[a][b] = b == col ? rhs[a] : g[a][b];
    solution[col] = det(c) / d;
  }
  return solution;
}

/// Quantizes the group \p x[0..m): the 2-bit uniform start, then up to
/// \p iterations refinement steps, each kept only if it lowers the error.
DualParams quantizeDualGroup(const float *x, int64_t m, int iterations,
                             uint8_t *codes) {
  UniformScheme twoBit;
  twoBit.bits = 2;
  GroupParams start = computeGroupParams(x, m, twoBit);
  for (int64_t i = 0; i < m; ++i)
    codes[i] = quantizeValue(x[i], start, 2);
  DualParams best{storedScale(2.0 * start.scale), start.scale,
                  static_cast<float>(start.zero)};
  double bestError = squaredError(
      x, m, dualBinaryLevels(best.alpha1, best.alpha2, best.zeta), codes);
  std::vector<uint8_t> candidateCodes(m);
  for (int it = 0; it < iterations; ++it) {
    std::array<double, 3> ls = solveDualLeastSquares(x, m, codes, best);
    DualParams candidate{storedScale(ls[0]), storedScale(ls[1]), 0.0f};
    if (candidate.alpha2 == 0.0f)
      break;
    candidate.zeta = storedScale(-ls[2] / candidate.alpha2);
    double error = assignNearest(
        x, m,
        dualBinaryLevels(candidate.alpha1, candidate.alpha2, candidate.zeta),
        candidateCodes.data());
    if (!(error < bestError))
      break;
    best = candidate;
    bestError = error;
    std::copy(candidateCodes.begin(), candidateCodes.end(), codes);
  }
  return best;
}

} // namespace

//===----------------------------------------------------------------------===//
// Public entry points
//===----------------------------------------------------------------------===//

double bitsPerWeight(int64_t bytes, int64_t rows, int64_t cols) {
  return rows * cols == 0 ? 0.0 : 8.0 * double(bytes) / double(rows * cols);
}

int64_t SignMatrix::storedBytes() const { return bytesOf({&signs}, {&scales}); }

SignMatrix binarizeSign(const float *w, int64_t rows, int64_t cols,
                        int64_t groupSize) {
  assert(groupSize >= 0 && "group size must be 0 or positive");
  SignMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.groupSize = groupSize;
  m.groups = numGroups(cols, groupSize);
  int64_t width = groupWidth(cols, groupSize);
  std::vector<uint8_t> bits(rows * cols);
  std::vector<float> alphas(rows * m.groups);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < m.groups; ++g) {
      int64_t begin = r * cols + g * width;
      int64_t end = begin + std::min(width, cols - g * width);
      double absSum = 0;
      for (int64_t i = begin; i < end; ++i) {
        absSum += std::fabs(w[i]);
        bits[i] = signBit(w[i]);
      }
      alphas[r * m.groups + g] = meanAbsScale(absSum, end - begin);
    }
  m.signs = packBits(bits, rows, cols);
  m.scales = toHalves(alphas);
  return m;
}

void dequantize(const SignMatrix &m, float *out) {
  std::vector<uint8_t> bits = unpackBits(m.signs, m.rows, m.cols);
  int64_t width = groupWidth(m.cols, m.groupSize);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t j = 0; j < m.cols; ++j) {
      float alpha = halfToFloat(m.scales[r * m.groups + j / width]);
      out[r * m.cols + j] = signedValue(bits[r * m.cols + j], alpha);
    }
}

std::pair<float, float> residualBinarize(const float *x, int64_t m,
                                         uint8_t *first, uint8_t *second) {
  double absSum = 0;
  for (int64_t i = 0; i < m; ++i) {
    absSum += std::fabs(x[i]);
    first[i] = signBit(x[i]);
  }
  float alpha1 = meanAbsScale(absSum, m);
  std::vector<float> residual(m);
  double residualSum = 0;
  for (int64_t i = 0; i < m; ++i) {
    residual[i] = x[i] - signedValue(first[i], alpha1);
    residualSum += std::fabs(residual[i]);
    second[i] = signBit(residual[i]);
  }
  return {alpha1, meanAbsScale(residualSum, m)};
}

float billmBreakPoint(const float *w, int64_t rows, int64_t cols) {
  if (rows * cols == 0)
    return 0.0f;
  // Each row's |w| sorted, with prefix sums: the concentrated part of a row
  // for p is a prefix, found by binary search.
  std::vector<float> magnitudes(rows * cols);
  std::vector<double> sums(rows * (cols + 1), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    float *row = &magnitudes[r * cols];
    for (int64_t j = 0; j < cols; ++j)
      row[j] = std::fabs(w[r * cols + j]);
    std::sort(row, row + cols);
    for (int64_t j = 0; j < cols; ++j)
      sums[r * (cols + 1) + j + 1] = sums[r * (cols + 1) + j] + row[j];
  }
  std::vector<float> sorted = magnitudes;
  std::sort(sorted.begin(), sorted.end());
  // Per row, sum (|w| - mean)^2 over a part is sum |w|^2 - (sum |w|)^2 /
  // count; sum |w|^2 is the same for every candidate and drops out.
  float best = 0.0f;
  double bestError = 0;
  bool first = true;
  for (float p : breakPointCandidates(sorted)) {
    double error = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const float *row = &magnitudes[r * cols];
      int64_t count = std::upper_bound(row, row + cols, p) - row;
      double concentrated = sums[r * (cols + 1) + count];
      double sparse = sums[r * (cols + 1) + cols] - concentrated;
      if (count > 0)
        error -= concentrated * concentrated / count;
      if (count < cols)
        error -= sparse * sparse / (cols - count);
    }
    if (first || error < bestError) {
      best = p;
      bestError = error;
      first = false;
    }
  }
  return best;
}

int64_t BiLLMMatrix::storedBytes() const {
  return bytesOf({&salientColumns, &signs, &residualSigns, &sparse}, {&scales});
}

bool billmQuantize(const float *w, int64_t n, int64_t k, std::vector<float> h,
                   const BiLLMOptions &options, BiLLMMatrix &out,
                   std::string &error, std::vector<float> *approximation,
                   double *squaredError) {
  std::string inputError =
      checkCalibrated(n, k, h, options.blockSize, options.dampPercent);
  if (inputError.empty() && options.maxSalientColumns < 1)
    inputError = "at least one salient column must be allowed";
  if (!inputError.empty()) {
    error = "BiLLM: " + inputError;
    return false;
  }
  BiLLMRun billm(w, n, k, options);
  double loss = 0;
  if (k > 0) {
    if (!billm.prepare(h, error))
      return false;
    loss = billm.run();
  }
  billm.finish(out, approximation);
  if (squaredError)
    *squaredError = loss;
  return true;
}

void dequantize(const BiLLMMatrix &m, float *out) {
  int64_t s = m.salientCount, k = m.cols;
  std::vector<uint8_t> salient = unpackBits(m.salientColumns, 1, k);
  std::vector<uint8_t> first = unpackBits(m.signs, m.rows, k);
  std::vector<uint8_t> second = unpackBits(m.residualSigns, m.rows, s);
  std::vector<uint8_t> sparse = unpackBits(m.sparse, m.rows, k - s);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t j = 0, si = 0, oi = 0; j < k; ++j) {
      const uint16_t *a =
          &m.scales[(r * m.blocks + j / m.blockSize) * kNumBiLLMScales];
      bool b1 = first[r * k + j];
      if (salient[j])
        out[r * k + j] = residualValue(b1, second[r * s + si++],
                                       halfToFloat(a[kSalientFirst]),
                                       halfToFloat(a[kSalientResidual]));
      else
        out[r * k + j] = signedValue(
            b1, halfToFloat(
                    a[sparse[r * (k - s) + oi++] ? kSparse : kConcentrated]));
    }
}

double pbllmSalientFraction(double averageBits) {
  return (averageBits - 1.0) / 7.0;
}

int64_t PBLLMMatrix::storedBytes() const {
  return bytesOf({&signs, &salient, &rowOffsets},
                 {&binaryScales, &salientScales}) +
         static_cast<int64_t>(codes.size());
}

bool pbllmQuantize(const float *w, int64_t n, int64_t k, std::vector<float> h,
                   const PBLLMOptions &options, PBLLMMatrix &out,
                   std::string &error, std::vector<float> *approximation,
                   double *squaredError) {
  std::string inputError =
      checkCalibrated(n, k, h, options.blockSize, options.dampPercent);
  if (inputError.empty() &&
      !(options.salientFraction >= 0 && options.salientFraction <= 1))
    inputError = "the salient fraction must be in [0, 1]";
  if (!inputError.empty()) {
    error = "PB-LLM: " + inputError;
    return false;
  }
  PBLLMRun pbllm(w, n, k, options);
  double loss = 0;
  if (k > 0) {
    if (!pbllm.prepare(h, error))
      return false;
    loss = pbllm.run();
  }
  pbllm.finish(out, approximation);
  if (squaredError)
    *squaredError = loss;
  return true;
}

void dequantize(const PBLLMMatrix &m, float *out) {
  int64_t k = m.cols;
  std::vector<uint8_t> signs = unpackBits(m.signs, m.rows, k);
  std::vector<uint8_t> salient = unpackBits(m.salient, m.rows, k);
  for (int64_t r = 0; r < m.rows; ++r) {
    float alpha = halfToFloat(m.binaryScales[r]);
    float step = halfToFloat(m.salientScales[r]);
    for (int64_t j = 0, c = m.rowOffsets[r]; j < k; ++j)
      out[r * k + j] = salient[r * k + j]
                           ? static_cast<float>(m.codes[c++]) * step
                           : signedValue(signs[r * k + j], alpha);
  }
}

std::array<float, 4> dualBinaryLevels(float alpha1, float alpha2, float zeta) {
  std::array<float, 4> levels;
  for (int q = 0; q < 4; ++q)
    levels[q] = static_cast<float>((q >> 1 ? double(alpha1) : 0.0) +
                                   double(alpha2) * ((q & 1) - double(zeta)));
  return levels;
}

int64_t DBLLMMatrix::storedBytes() const {
  return bytesOf({&first, &second}, {&params});
}

DBLLMMatrix dbllmQuantize(const float *w, int64_t rows, int64_t cols,
                          const DBLLMOptions &options,
                          std::vector<float> *approximation) {
  assert(options.groupSize >= 0 && "group size must be 0 or positive");
  DBLLMMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.groupSize = options.groupSize;
  m.groups = numGroups(cols, options.groupSize);
  int64_t width = groupWidth(cols, options.groupSize);
  std::vector<uint8_t> codes(rows * cols), b1(rows * cols), b2(rows * cols);
  std::vector<float> params(rows * m.groups * kNumDBLLMParams);
  if (approximation)
    approximation->resize(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < m.groups; ++g) {
      int64_t begin = r * cols + g * width;
      int64_t size = std::min(width, cols - g * width);
      DualParams p = quantizeDualGroup(w + begin, size,
                                       options.refineIterations, &codes[begin]);
      float *stored = &params[(r * m.groups + g) * kNumDBLLMParams];
      stored[kFirstScale] = p.alpha1;
      stored[kSecondScale] = p.alpha2;
      stored[kOffset] = p.zeta;
      std::array<float, 4> levels =
          dualBinaryLevels(p.alpha1, p.alpha2, p.zeta);
      for (int64_t i = begin; i < begin + size; ++i) {
        b1[i] = codes[i] >> 1;
        b2[i] = codes[i] & 1;
        if (approximation)
          (*approximation)[i] = levels[codes[i]];
      }
    }
  m.first = packBits(b1, rows, cols);
  m.second = packBits(b2, rows, cols);
  m.params = toHalves(params);
  return m;
}

void dequantize(const DBLLMMatrix &m, float *out) {
  std::vector<uint8_t> b1 = unpackBits(m.first, m.rows, m.cols);
  std::vector<uint8_t> b2 = unpackBits(m.second, m.rows, m.cols);
  int64_t width = groupWidth(m.cols, m.groupSize);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t g = 0; g < m.groups; ++g) {
      const uint16_t *p = &m.params[(r * m.groups + g) * kNumDBLLMParams];
      std::array<float, 4> levels = dualBinaryLevels(
          halfToFloat(p[kFirstScale]), halfToFloat(p[kSecondScale]),
          halfToFloat(p[kOffset]));
      int64_t begin = r * m.cols + g * width;
      int64_t end = begin + std::min(width, m.cols - g * width);
      for (int64_t i = begin; i < end; ++i)
        out[i] = levels[2 * b1[i] + b2[i]];
    }
}

} // namespace llq::quant
