//===- QuIP.cpp - QuIP: incoherence processing + LDLQ ---------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/QuIP.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <numeric>

namespace llq::quant {

namespace {

/// Steele et al.'s splitmix64: a 64-bit generator whose output is fixed by
/// its definition, so a seed means the same transform on every host.
class SplitMix64 {
public:
  explicit SplitMix64(uint64_t seed) : state(seed) {}

  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  /// Uniform on (0, 1], with 53 random bits.
  double uniform() { return static_cast<double>((next() >> 11) + 1) * 0x1p-53; }

  /// A standard normal sample by the Box-Muller transform (one of the pair).
  double gaussian() {
    constexpr double kTwoPi = 6.283185307179586;
    double radius = std::sqrt(-2.0 * std::log(uniform()));
    return radius * std::cos(kTwoPi * uniform());
  }

private:
  uint64_t state;
};

/// Returns a Haar-random m x m orthogonal matrix, row-major: the rows of a
/// Gaussian matrix orthonormalized by Gram-Schmidt in order. That is the Q^T
/// of the QR factorization of the (equally Gaussian) transpose with R's
/// diagonal positive, the sign fix that makes QR's Q Haar-distributed. Each
/// row is orthogonalized twice, which leaves it orthogonal to the previous
/// ones to working precision however ill-conditioned the draw ("twice is
/// enough", Giraud et al. 2005).
std::vector<double> randomOrthogonal(int64_t m, SplitMix64 &rng) {
  std::vector<double> q(m * m);
  for (double &v : q)
    v = rng.gaussian();
  for (int64_t i = 0; i < m; ++i) {
    double *row = &q[i * m];
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t j = 0; j < i; ++j) {
        const double *prev = &q[j * m];
        double dot = std::inner_product(row, row + m, prev, 0.0);
        for (int64_t l = 0; l < m; ++l)
          row[l] -= dot * prev[l];
      }
    double norm = std::sqrt(std::inner_product(row, row + m, row, 0.0));
    for (int64_t l = 0; l < m; ++l)
      row[l] /= norm;
  }
  return q;
}

/// (a, b) <- (a + b, a - b) elementwise over \p n values.
template <typename Real>
void butterfly(Real *__restrict a, Real *__restrict b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    Real u = a[i], v = b[i];
    a[i] = u + v;
    b[i] = u - v;
  }
}

/// The unnormalized Walsh-Hadamard transform of \p p elements of \p width
/// values each: log2(p) rounds of butterflies between elements whose indices
/// differ in one bit. The two halves of a butterfly are contiguous runs of
/// whole elements, so each round is a few long vectorizable loops.
template <typename Real> void walshHadamard(Real *x, int64_t p, int64_t width) {
  int64_t total = p * width;
  for (int64_t half = width; half < total; half *= 2)
    for (int64_t i = 0; i < total; i += 2 * half)
      butterfly(x + i, x + i + half, half);
}

/// y[0, n) += a * x[0, n) for arrays that do not overlap.
template <typename Real>
void addScaled(Real *__restrict y, const Real *__restrict x, Real a,
               int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    y[i] += a * x[i];
}

} // namespace

//===----------------------------------------------------------------------===//
// RandomizedHadamard
//===----------------------------------------------------------------------===//

std::string RandomizedHadamard::checkSize(int64_t n) {
  if (n < 1)
    return "a transform needs a positive size, got " + std::to_string(n);
  int64_t odd = n / (n & -n);
  if (odd > kMaxOddFactor)
    return "size " + std::to_string(n) + " has the odd factor " +
           std::to_string(odd) + ", above the supported " +
           std::to_string(kMaxOddFactor);
  return "";
}

RandomizedHadamard::RandomizedHadamard(int64_t n, uint64_t seed)
    : p(n & -n), m(n / (n & -n)), signVector(p) {
  assert(checkSize(n).empty() && "unsupported transform size");
  SplitMix64 rng(seed);
  for (int8_t &s : signVector)
    s = (rng.next() >> 63) ? -1 : 1;
  mixingMatrix = m == 1 ? std::vector<double>{1.0} : randomOrthogonal(m, rng);
}

template <typename Real>
void RandomizedHadamard::applyHadamard(Real *x, int64_t width,
                                       bool transpose) const {
  // H S and its transpose S H: the signs and the normalization go before or
  // after the butterflies.
  Real norm = static_cast<Real>(1.0 / std::sqrt(static_cast<double>(p)));
  auto scale = [&](Real *run) {
    for (int64_t a = 0; a < p; ++a) {
      Real factor = signVector[a] * norm;
      for (int64_t c = 0; c < width; ++c)
        run[a * width + c] *= factor;
    }
  };
  for (int64_t b = 0; b < m; ++b) {
    Real *run = x + b * p * width;
    if (!transpose)
      scale(run);
    walshHadamard(run, p, width);
    if (transpose)
      scale(run);
  }
}

template <typename Real>
void RandomizedHadamard::applyMixing(Real *x, int64_t width,
                                     bool transpose) const {
  if (m == 1)
    return;
  // Run b becomes sum_c R_bc run_c (R_cb for R^T). The runs are processed in
  // strips so that the scratch copy stays small for wide matrices.
  constexpr int64_t kStrip = 1024;
  int64_t runLength = p * width;
  std::vector<Real> saved(m * std::min(kStrip, runLength));
  for (int64_t begin = 0; begin < runLength; begin += kStrip) {
    int64_t len = std::min(kStrip, runLength - begin);
    for (int64_t c = 0; c < m; ++c)
      std::copy_n(x + c * runLength + begin, len, &saved[c * len]);
    for (int64_t b = 0; b < m; ++b) {
      Real *out = x + b * runLength + begin;
      std::fill_n(out, len, Real(0));
      for (int64_t c = 0; c < m; ++c) {
        double coefficient =
            transpose ? mixingMatrix[c * m + b] : mixingMatrix[b * m + c];
        addScaled(out, &saved[c * len], static_cast<Real>(coefficient), len);
      }
    }
  }
}

template <typename Real>
void RandomizedHadamard::apply(Real *x, int64_t width, bool transpose) const {
  // T = (R (x) I)(I (x) H S) and the two factors commute, so T and
  // T^T = R^T (x) S H apply them in the same order.
  applyHadamard(x, width, transpose);
  applyMixing(x, width, transpose);
}

template <typename Real>
void RandomizedHadamard::applyToRows(Real *a, int64_t rows,
                                     bool transpose) const {
  for (int64_t r = 0; r < rows; ++r)
    apply(a + r * size(), 1, transpose);
}

template <typename Real>
void RandomizedHadamard::applyToColumns(Real *a, int64_t cols,
                                        bool transpose) const {
  // Row i of A is element i of a vector of n elements, cols values each.
  apply(a, cols, transpose);
}

template void RandomizedHadamard::applyToRows(float *, int64_t, bool) const;
template void RandomizedHadamard::applyToRows(double *, int64_t, bool) const;
template void RandomizedHadamard::applyToColumns(float *, int64_t, bool) const;
template void RandomizedHadamard::applyToColumns(double *, int64_t, bool) const;

//===----------------------------------------------------------------------===//
// QuIP
//===----------------------------------------------------------------------===//

double incoherence(const float *w, int64_t n, int64_t k) {
  double maxAbs = 0, sumSquares = 0;
  for (int64_t i = 0; i < n * k; ++i) {
    maxAbs = std::max(maxAbs, std::fabs(double(w[i])));
    sumSquares += double(w[i]) * w[i];
  }
  return sumSquares > 0 ? maxAbs * std::sqrt(double(n * k) / sumSquares) : 0;
}

namespace {

std::string checkInputs(int64_t n, int64_t k, const std::vector<float> &h) {
  for (int64_t size : {n, k}) {
    std::string sizeError = RandomizedHadamard::checkSize(size);
    if (!sizeError.empty())
      return sizeError;
  }
  if (static_cast<int64_t>(h.size()) != k * k)
    return "the Hessian has " + std::to_string(h.size()) +
           " elements, expected " + std::to_string(k) + "^2";
  for (float v : h)
    if (!std::isfinite(v))
      return "the Hessian has non-finite entries";
  return "";
}

/// QuIP's diagonal rescaling (Algorithm 1, the reference's preproc_rescale):
/// W <- W D, H <- D^-1 H D^-1 with D_ii = (H_ii / ||W_:i||^2)^(1/4), H
/// normalized by its largest diagonal entry and both terms clamped below at
/// 1e-8. This D minimizes tr(D^-1 H D^-1) ||W D||_F^2 (by Cauchy-Schwarz),
/// the product the paper's rounding error bounds grow with: large-weight
/// columns shrink and large-input ones grow. Returns diag(D).
std::vector<float> rescaleInputs(std::vector<float> &w, int64_t n, int64_t k,
                                 std::vector<float> &h) {
  double maxDiag = 0;
  for (int64_t i = 0; i < k; ++i)
    maxDiag = std::max(maxDiag, double(h[i * k + i]));
  std::vector<double> columnEnergy(k, 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i)
      columnEnergy[i] += double(w[r * k + i]) * w[r * k + i];
  std::vector<float> d(k);
  for (int64_t i = 0; i < k; ++i) {
    double input = std::max(h[i * k + i] / maxDiag, 1e-8);
    d[i] = static_cast<float>(
        std::pow(input / std::max(columnEnergy[i], 1e-8), 0.25));
  }
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i)
      w[r * k + i] *= d[i];
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      h[i * k + j] /= d[i] * d[j];
  return d;
}

} // namespace

bool quipQuantize(const float *w, int64_t n, int64_t k, std::vector<float> h,
                  const QuIPOptions &options, QuIPMatrix &out,
                  std::string &error) {
  std::string inputError = checkInputs(n, k, h);
  if (!inputError.empty()) {
    error = "QuIP: " + inputError;
    return false;
  }
  QuIPMatrix result;
  result.seedU = options.seedU;
  result.seedV = options.seedV;
  std::vector<float> weights(w, w + n * k);
  fixDeadColumns(h, k, weights.data(), n);
  if (options.rescale)
    result.columnScales = rescaleInputs(weights, n, k, h);
  // W' = U W V^T and H' = V H V^T.
  RandomizedHadamard u(n, options.seedU), v(k, options.seedV);
  u.applyToColumns(weights.data(), k);
  v.applyToRows(weights.data(), n);
  v.applyToColumns(h.data(), k);
  v.applyToRows(h.data(), k);
  if (!gptqQuantize(weights.data(), n, k, std::move(h), options.ldlq,
                    result.transformed, error)) {
    error = "QuIP: " + error;
    return false;
  }
  out = std::move(result);
  return true;
}

void dequantize(const QuIPMatrix &m, float *out) {
  const UniformMatrix &q = m.transformed;
  if (q.rows == 0 || q.cols == 0)
    return;
  dequantize(q, out);
  RandomizedHadamard(q.rows, m.seedU).applyToColumns(out, q.cols, true);
  RandomizedHadamard(q.cols, m.seedV).applyToRows(out, q.rows, true);
  if (m.columnScales.empty())
    return;
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t i = 0; i < q.cols; ++i)
      out[r * q.cols + i] /= m.columnScales[i];
}

} // namespace llq::quant
