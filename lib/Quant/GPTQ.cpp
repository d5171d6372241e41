//===- GPTQ.cpp - GPTQ weight quantization --------------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/GPTQ.h"

#include "llq/Quant/Half.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <thread>

// LAPACK from OpenBLAS (Fortran ABI: arguments by reference, 32-bit integers,
// trailing hidden lengths of the character arguments).
extern "C" {
void spotrf_(const char *uplo, const int *n, float *a, const int *lda,
             int *info, size_t uploLength);
void strtri_(const char *uplo, const char *diag, const int *n, float *a,
             const int *lda, int *info, size_t uploLength, size_t diagLength);
}

namespace llq::quant {

namespace {

/// Runs fn(begin, end) on contiguous chunks of the rows [0, n), one chunk per
/// hardware thread, or inline when there is too little work (\p rowCost is a
/// rough count of flops per row) to pay for starting threads. Only the caller
/// calls BLAS, so its thread pool and these threads never work at once.
template <typename Fn>
void parallelForRows(int64_t n, int64_t rowCost, const Fn &fn) {
  constexpr int64_t kMinChunkCost = int64_t(1) << 18;
  int64_t threads = std::max(1u, std::thread::hardware_concurrency());
  int64_t chunks = std::min({threads, n, n * rowCost / kMinChunkCost});
  if (chunks <= 1) {
    fn(int64_t(0), n);
    return;
  }
  std::vector<std::thread> workers;
  for (int64_t c = 1; c < chunks; ++c)
    workers.emplace_back(fn, n * c / chunks, n * (c + 1) / chunks);
  fn(int64_t(0), n / chunks);
  for (std::thread &worker : workers)
    worker.join();
}

/// y[0, n) -= a * x[0, n) for arrays that do not overlap. The fixed-width
/// inner loop lets GCC vectorize it at -O2, whose cost model does not version
/// loops of unknown trip count.
void subtractScaled(float *__restrict y, const float *__restrict x, float a,
                    int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l)
      y[j + l] -= a * x[j + l];
  for (; j < n; ++j)
    y[j] -= a * x[j];
}

/// Reorders the columns of the row-major \p rows x \p k matrix \p m so that
/// new column i is old column order[i].
void gatherColumns(float *m, int64_t rows, int64_t k,
                   const std::vector<int64_t> &order) {
  std::vector<float> row(k);
  for (int64_t r = 0; r < rows; ++r) {
    float *dst = m + r * k;
    for (int64_t i = 0; i < k; ++i)
      row[i] = dst[order[i]];
    std::copy(row.begin(), row.end(), dst);
  }
}

/// Reorders the rows of the row-major \p k x \p k matrix \p m in place so that
/// new row i is old row order[i], following the permutation's cycles with a
/// single row of scratch (a second K x K matrix can be 822 MB).
void gatherRows(float *m, int64_t k, const std::vector<int64_t> &order) {
  std::vector<float> saved(k);
  std::vector<bool> done(k, false);
  for (int64_t start = 0; start < k; ++start) {
    if (done[start] || order[start] == start)
      continue;
    std::copy(m + start * k, m + (start + 1) * k, saved.begin());
    int64_t i = start;
    while (order[i] != start) {
      std::copy(m + order[i] * k, m + (order[i] + 1) * k, m + i * k);
      done[i] = true;
      i = order[i];
    }
    std::copy(saved.begin(), saved.end(), m + i * k);
    done[i] = true;
  }
}

/// Replaces the symmetric positive definite row-major \p h with U, the upper
/// Cholesky factor of its inverse (H^-1 = U^T U), lower triangle zeroed.
///
/// The reference forms U in three steps (cholesky, cholesky_inverse,
/// cholesky upper: 4/3 K^3 flops). Half of that suffices: with V = U^-1,
/// H = V V^T, so for the reversal J, J H J = (J V J)(J V J)^T is the Cholesky
/// factorization of J H J (J V J is lower triangular), and U = J L^-1 J for
/// its factor L. Reversing a row-major K x K buffer is exactly M -> J M J.
bool invertCholeskyUpper(std::vector<float> &h, int64_t k, std::string &error) {
  std::reverse(h.begin(), h.end());
  // Column-major "U" on a row-major buffer is the row-major lower factor.
  int ik = static_cast<int>(k), info = 0;
  spotrf_("U", &ik, h.data(), &ik, &info, 1);
  if (info != 0) {
    // spotrf factored J H J, so its failing leading minor is a trailing one
    // of H, starting at column k - info (in processing order for GPTQ).
    error = "the damped Hessian is not positive definite (Cholesky failed at "
            "column " +
            std::to_string(k - info) + " of " + std::to_string(k) +
            "); retry with more damping";
    return false;
  }
  strtri_("U", "N", &ik, h.data(), &ik, &info, 1, 1);
  if (info != 0) {
    error = "the Cholesky factor of the Hessian is singular";
    return false;
  }
  std::reverse(h.begin(), h.end());
  for (int64_t i = 1; i < k; ++i)
    std::fill(h.begin() + i * k, h.begin() + i * k + i, 0.0f);
  return true;
}

/// W[:, end:] -= Err U[begin:end, end:], the lazy batch update of the columns
/// after a block, for the n x (end - begin) scaled errors \p errors.
void updateTrailingColumns(float *w, int64_t n, int64_t k, const float *u,
                           const float *errors, int64_t begin, int64_t end) {
  if (n == 0 || end == k)
    return;
  int count = static_cast<int>(end - begin);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n),
              static_cast<int>(k - end), count, -1.0f, errors, count,
              &u[begin * k + end], static_cast<int>(k), 1.0f, &w[end],
              static_cast<int>(k));
}

std::string checkInputs(int64_t n, int64_t k, const std::vector<float> &h,
                        const GPTQOptions &options) {
  std::string schemeError = validate(options.scheme);
  if (!schemeError.empty())
    return schemeError;
  if (options.blockSize < 1)
    return "block size must be positive, got " +
           std::to_string(options.blockSize);
  return validateHessian(n, k, h, options.dampPercent);
}

/// One GPTQ run over a layer; everything is kept in processing order (the
/// act-order permutation of the columns) until finish().
class GPTQRun {
public:
  GPTQRun(const float *w, int64_t n, int64_t k, const GPTQOptions &options);

  /// Fixes dead columns, computes static parameters, applies act-order and
  /// damping, and turns \p h into U.
  bool prepare(std::vector<float> &h, std::string &error);
  /// Quantizes all columns, block by block.
  void run();
  /// Writes the result in the original column order.
  void finish(UniformMatrix &out, double *squaredError);

private:
  int64_t blockEnd(int64_t begin) const;
  void quantizeRow(int64_t row, int64_t begin, int64_t end);

  int64_t n, k;
  GPTQOptions options;
  /// Columns per group (k when per channel), and groups per row.
  int64_t width, groups;
  /// Whether group parameters are computed as their first column is reached.
  bool lazyGroups;
  /// The weights being compensated, n x k.
  std::vector<float> weights;
  /// U, the upper Cholesky factor of H^-1, k x k.
  std::vector<float> u;
  /// The original column of each processing position.
  std::vector<int64_t> order;
  /// n x groups, indexed by original group.
  std::vector<GroupParams> params;
  /// n x k codes.
  std::vector<uint8_t> codes;
  /// The current block's scaled errors (w - q) / U_ii, n x (end - begin).
  std::vector<float> errors;
  /// Per-row sums of (w - q)^2 / U_ii^2 / 2.
  std::vector<double> losses;
};

GPTQRun::GPTQRun(const float *w, int64_t n, int64_t k,
                 const GPTQOptions &options)
    : n(n), k(k), options(options),
      width(options.scheme.groupSize == 0 ? k : options.scheme.groupSize),
      groups(numGroups(k, options.scheme.groupSize)),
      lazyGroups(options.scheme.groupSize > 0 && !options.staticGroups &&
                 !options.actOrder),
      weights(w, w + n * k), order(k), params(n * groups), codes(n * k),
      errors(n * std::min(options.blockSize, k)), losses(n, 0.0) {
  std::iota(order.begin(), order.end(), int64_t(0));
}

bool GPTQRun::prepare(std::vector<float> &h, std::string &error) {
  fixDeadColumns(h, k, weights.data(), n);
  // Static (and per-channel) parameters come from the original weights. Dead
  // columns are zero by now; the reference computes per-channel parameters
  // before zeroing them, which can only widen the range for no benefit.
  if (!lazyGroups)
    for (int64_t r = 0; r < n; ++r)
      for (int64_t g = 0; g < groups; ++g)
        params[r * groups + g] =
            computeGroupParams(&weights[r * k + g * width],
                               std::min(width, k - g * width), options.scheme);
  if (options.actOrder) {
    std::vector<float> diag(k);
    for (int64_t i = 0; i < k; ++i)
      diag[i] = h[i * k + i];
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return diag[a] > diag[b]; });
    gatherColumns(weights.data(), n, k, order);
    gatherColumns(h.data(), k, k, order);
    gatherRows(h.data(), k, order);
  }
  if (!dampAndInvertHessian(h, k, options.dampPercent, error)) {
    error = "GPTQ: " + error;
    return false;
  }
  u = std::move(h);
  return true;
}

int64_t GPTQRun::blockEnd(int64_t begin) const {
  int64_t end = begin + std::min(options.blockSize, k - begin);
  if (!lazyGroups)
    return end;
  // A group that starts inside the block must also end inside it, or its
  // parameters would be computed from columns still missing this block's
  // updates; such a group starts the next block instead.
  int64_t lastStart = (end - 1) / width * width;
  if (lastStart > begin && std::min(lastStart + width, k) > end)
    return lastStart;
  return end;
}

void GPTQRun::quantizeRow(int64_t r, int64_t begin, int64_t end) {
  float *row = &weights[r * k];
  float *rowErrors = &errors[r * (end - begin)];
  int bits = options.scheme.bits;
  for (int64_t i = begin; i < end; ++i) {
    if (lazyGroups && i % width == 0)
      params[r * groups + i / width] =
          computeGroupParams(row + i, std::min(width, k - i), options.scheme);
    GroupParams p = params[r * groups + order[i] / width];
    uint8_t code = quantizeValue(row[i], p, bits);
    float diff = row[i] - dequantizeValue(code, p);
    const float *ui = &u[i * k];
    float scaled = diff / ui[i];
    codes[r * k + i] = code;
    rowErrors[i - begin] = scaled;
    losses[r] += double(scaled) * scaled / 2;
    // The OBS update within the block; later blocks get it in one product.
    subtractScaled(row + i + 1, ui + i + 1, scaled, end - i - 1);
  }
}

void GPTQRun::run() {
  for (int64_t begin = 0, end; begin < k; begin = end) {
    end = blockEnd(begin);
    int64_t count = end - begin;
    parallelForRows(n, count * count, [&](int64_t first, int64_t last) {
      for (int64_t r = first; r < last; ++r)
        quantizeRow(r, begin, end);
    });
    updateTrailingColumns(weights.data(), n, k, u.data(), errors.data(), begin,
                          end);
  }
}

void GPTQRun::finish(UniformMatrix &out, double *squaredError) {
  out = UniformMatrix();
  out.rows = n;
  out.cols = k;
  out.groups = groups;
  out.scheme = options.scheme;
  out.codes.resize(n * k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i)
      out.codes[r * k + order[i]] = codes[r * k + i];
  out.scales.resize(n * groups);
  for (size_t i = 0; i < params.size(); ++i)
    out.scales[i] = floatToHalf(params[i].scale);
  if (!options.scheme.symmetric) {
    out.zeros.resize(n * groups);
    for (size_t i = 0; i < params.size(); ++i)
      out.zeros[i] = params[i].zero;
  }
  if (squaredError)
    *squaredError = std::accumulate(losses.begin(), losses.end(), 0.0);
}

} // namespace

bool gptqQuantize(const float *w, int64_t n, int64_t k, std::vector<float> h,
                  const GPTQOptions &options, UniformMatrix &out,
                  std::string &error, double *squaredError) {
  std::string inputError = checkInputs(n, k, h, options);
  if (!inputError.empty()) {
    error = "GPTQ: " + inputError;
    return false;
  }
  GPTQRun gptq(w, n, k, options);
  if (k > 0) {
    if (!gptq.prepare(h, error))
      return false;
    gptq.run();
  }
  gptq.finish(out, squaredError);
  return true;
}

std::string validateHessian(int64_t n, int64_t k, const std::vector<float> &h,
                            double dampPercent) {
  if (n < 0 || k < 0 || k > std::numeric_limits<int>::max() ||
      n > std::numeric_limits<int>::max())
    return "bad matrix shape " + std::to_string(n) + " x " + std::to_string(k);
  if (static_cast<int64_t>(h.size()) != k * k)
    return "the Hessian has " + std::to_string(h.size()) +
           " elements, expected " + std::to_string(k) + "^2";
  if (!(dampPercent >= 0) || !std::isfinite(dampPercent))
    return "damping must be finite and non-negative";
  for (float v : h)
    if (!std::isfinite(v))
      return "the Hessian has non-finite entries";
  return "";
}

void fixDeadColumns(std::vector<float> &h, int64_t k, float *w, int64_t n) {
  for (int64_t i = 0; i < k; ++i) {
    if (h[i * k + i] != 0.0f)
      continue;
    h[i * k + i] = 1.0f;
    for (int64_t r = 0; r < n; ++r)
      w[r * k + i] = 0.0f;
  }
}

bool dampAndInvertHessian(std::vector<float> &h, int64_t k, double dampPercent,
                          std::string &error) {
  double diagSum = 0;
  for (int64_t i = 0; i < k; ++i)
    diagSum += h[i * k + i];
  float damp = static_cast<float>(dampPercent * diagSum / k);
  for (int64_t i = 0; i < k; ++i)
    h[i * k + i] += damp;
  return invertCholeskyUpper(h, k, error);
}

double compensateColumns(
    float *w, int64_t n, int64_t k, const std::vector<float> &u,
    int64_t blockSize, const std::function<void(int64_t, int64_t)> &beginBlock,
    const std::function<float(int64_t, int64_t, float)> &quantize) {
  std::vector<float> errors(n * std::min(blockSize, k));
  std::vector<double> losses(n, 0.0);
  for (int64_t begin = 0; begin < k; begin += blockSize) {
    int64_t end = std::min(begin + blockSize, k), count = end - begin;
    beginBlock(begin, end);
    parallelForRows(n, count * count, [&](int64_t first, int64_t last) {
      for (int64_t r = first; r < last; ++r) {
        float *row = w + r * k;
        float *rowErrors = &errors[r * count];
        for (int64_t i = begin; i < end; ++i) {
          float q = quantize(r, i, row[i]);
          const float *ui = &u[i * k];
          float scaled = (row[i] - q) / ui[i];
          row[i] = q;
          rowErrors[i - begin] = scaled;
          losses[r] += double(scaled) * scaled / 2;
          subtractScaled(row + i + 1, ui + i + 1, scaled, end - i - 1);
        }
      }
    });
    updateTrailingColumns(w, n, k, u.data(), errors.data(), begin, end);
  }
  return std::accumulate(losses.begin(), losses.end(), 0.0);
}

} // namespace llq::quant
