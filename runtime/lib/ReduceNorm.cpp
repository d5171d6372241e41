//===- ReduceNorm.cpp - Softmax and normalization kernels -----------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Softmax and the layer normalizations reduce and rewrite one row at a
// time. Statistics are accumulated in double (mean of squares, variance,
// sum of exponentials), the elementwise rescaling runs in the dtype's
// computation type, which keeps results within a few float ulps of
// onnxruntime's.
//
//===----------------------------------------------------------------------===//

#include "ElementwiseSupport.h"
#include "llq/Runtime/Kernels/Elementwise.h"

using namespace llq;
using namespace llq::rt;
using namespace llq::rt::detail;

namespace {

/// Softmax over rows o, columns [i0, i1) of view v: the maximum, then the
/// sum of exp(x - max) in double, then the rescaling. Along a contiguous
/// axis, F32 and F64 keep each exp(x - max) in the output and sum that, so
/// one exp per element is computed; otherwise it is recomputed rather than
/// rounded to 16 bits twice.
template <typename E>
void softmaxBlock(const typename E::Store *x, typename E::Store *y,
                  const AxisView &v, int64_t o, int64_t i0, int64_t i1,
                  bool log) {
  using A = AccOf<E>;
  using T = typename E::Compute;
  constexpr bool kCanKeepExp = std::is_same_v<T, typename E::Store>;
  int64_t w = i1 - i0, n = v.extent, start = o * n * v.inner + i0;
  const auto *src = x + start;
  auto *dst = y + start;
  A zero[kColumnBlock] = {}, max[kColumnBlock], sum[kColumnBlock];
  bool keptExp = false;
  if (v.inner == 1) {
    max[0] = reduceRow<E, MaxOp<E>>(src, n, A(0));
    if constexpr (kCanKeepExp) {
      if (!log) {
        T m = static_cast<T>(max[0]);
        for (int64_t j = 0; j < n; ++j)
          dst[j] = std::exp(src[j] - m);
        keptExp = true;
      }
    }
    sum[0] = keptExp ? reduceRow<E, SumOp<E>>(dst, n, A(0))
                     : reduceRow<E, LogSumExpOp<E>>(src, n, max[0]);
  } else {
    reduceColumns<E, MaxOp<E>>(src, n, v.inner, w, zero, max);
    reduceColumns<E, LogSumExpOp<E>>(src, n, v.inner, w, max, sum);
  }
  T shift[kColumnBlock] = {}, scale[kColumnBlock] = {};
  for (int64_t i = 0; i < w; ++i) {
    shift[i] = static_cast<T>(max[i]);
    scale[i] = static_cast<T>(log ? std::log(sum[i]) : 1.0 / sum[i]);
  }
  auto write = [&](int64_t k, int64_t i) {
    if (log)
      dst[k] = E::store(E::load(src[k]) - shift[i] - scale[i]);
    else if (keptExp)
      dst[k] = E::store(E::load(dst[k]) * scale[i]);
    else
      dst[k] = E::store(std::exp(E::load(src[k]) - shift[i]) * scale[i]);
  };
  // A contiguous row gets its own loop, which vectorizes.
  if (v.inner == 1)
    for (int64_t j = 0; j < n; ++j)
      write(j, 0);
  else
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < w; ++i)
        write(j * v.inner + i, i);
}

/// Loads a vector parameter (weight, bias) as floats.
bool loadFloats(const Tensor &t, std::vector<float> &values) {
  values.resize(t.numel());
  return dispatch(t.dtype(), kFloatTypes, [&](auto e) {
    using E = decltype(e);
    const auto *p = t.data<typename E::Store>();
    for (int64_t i = 0; i < t.numel(); ++i)
      values[i] = static_cast<float>(E::load(p[i]));
  });
}

/// Checks that an optional (unless `required`) parameter has `size`
/// elements of a float dtype, and loads it; absent gives an empty vector.
Status loadParameter(const std::string &kernel, const char *what,
                     const Tensor &t, int64_t size, const Tensor &x,
                     bool required, std::vector<float> &values) {
  values.clear();
  if (!isPresent(t) && !required)
    return Status::ok();
  if (!isPresent(t) || t.numel() != size || !loadFloats(t, values))
    return Status::error(kernel + ": " + what + " " +
                         (isPresent(t) ? t.describe() : "(absent)") +
                         " does not match the normalized size " +
                         std::to_string(size) + " of " + x.describe());
  return Status::ok();
}

/// A normalization's parameters: rows are written as
/// (value - mean) * invStd * weight + bias, where RMSNorm (not `centered`)
/// takes the mean as 0 and bias is empty when absent.
struct NormSpec {
  const std::vector<float> &weight, &bias;
  float eps;
  bool centered;
};

/// The sum of term(i) for i < n in double, in independent lanes so that
/// the adds pipeline and vectorize.
template <typename Term> double sumOf(int64_t n, const Term &term) {
  double lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t k = 0; k < kLanes; ++k)
      lanes[k] += term(i + k);
  double sum = 0;
  for (; i < n; ++i)
    sum += term(i);
  for (double lane : lanes)
    sum += lane;
  return sum;
}

/// Statistics of one row in double: (mean, 1 / sqrt(var + eps)), where var
/// is the mean of squares around the mean, or around 0 when not centered.
template <typename Row>
std::pair<double, double> rowStatistics(const Row &row, int64_t n,
                                        const NormSpec &spec) {
  if (n == 0)
    return {0.0, 1.0 / std::sqrt(double(spec.eps))};
  double mean = spec.centered
                    ? sumOf(n, [&](int64_t i) { return double(row(i)); }) /
                          static_cast<double>(n)
                    : 0.0;
  double squares = sumOf(n, [&](int64_t i) {
    double d = double(row(i)) - mean;
    return d * d;
  });
  double var = squares / static_cast<double>(n);
  return {mean, 1.0 / std::sqrt(var + double(spec.eps))};
}

/// Normalizes every row of x [rows, n] (values through `row(r)`, a
/// function giving the row's accessor) into y, optionally recording each
/// row's inverse standard deviation.
template <typename E, typename RowOf>
void normalizeRows(int64_t rows, int64_t n, const RowOf &rowOf,
                   const NormSpec &spec, Tensor &y, float *invStd) {
  using T = typename E::Compute;
  auto *py = y.data<typename E::Store>();
  int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(n, 1));
  parallelFor(rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      auto row = rowOf(r);
      auto [mean, inv] = rowStatistics(row, n, spec);
      if (invStd)
        invStd[r] = static_cast<float>(inv);
      T shift = static_cast<T>(mean), scale = static_cast<T>(inv);
      auto *dst = py + r * n;
      for (int64_t i = 0; i < n; ++i) {
        T value = (T(row(i)) - shift) * scale * T(spec.weight[i]);
        dst[i] = E::store(spec.bias.empty() ? value : value + T(spec.bias[i]));
      }
    }
  });
}

/// Row accessor of a contiguous x [rows, n].
template <typename E> auto contiguousRows(const Tensor &x, int64_t n) {
  const auto *px = x.data<typename E::Store>();
  return [px, n](int64_t r) {
    const auto *row = px + r * n;
    return [row](int64_t i) { return E::load(row[i]); };
  };
}

Status checkFloat(const std::string &kernel, const Tensor &x) {
  if (!isFloatDType(x.dtype()))
    return unsupportedDType(kernel, x.dtype());
  if (x.rank() == 0)
    return Status::error(kernel + ": input must have a dimension, got " +
                         x.describe());
  return Status::ok();
}

} // namespace

Status rt::softmax(const Tensor &x, int64_t axis, bool log, Tensor &out) {
  std::string name = log ? "LogSoftmax" : "Softmax";
  int64_t a;
  LLQ_RT_TRY(normalizeAxis(name, axis, x.rank(), a));
  Status status = unsupportedDType(name, x.dtype());
  dispatch(x.dtype(), kFloatTypes, [&](auto e) {
    using E = decltype(e);
    Tensor result = Tensor::empty(x.dtype(), x.shape());
    AxisView v = axisView(x.shape(), a);
    const auto *px = x.data<typename E::Store>();
    auto *py = result.data<typename E::Store>();
    forEachColumnBlock(v.outer, v.inner, v.extent, kColumnBlock,
                       [&](int64_t o, int64_t i0, int64_t i1) {
                         softmaxBlock<E>(px, py, v, o, i0, i1, log);
                       });
    out = std::move(result);
    status = Status::ok();
  });
  return status;
}

Status rt::rmsNorm(const Tensor &x, const Tensor &weight, float eps,
                   Tensor &out, Tensor *invStdDev) {
  LLQ_RT_TRY(checkFloat("RMSNorm", x));
  int64_t n = x.dim(-1),
          rows = numElements(Shape(x.shape().begin(), x.shape().end() - 1));
  std::vector<float> w, none;
  LLQ_RT_TRY(loadParameter("RMSNorm", "weight", weight, n, x, true, w));
  Shape statShape = x.shape();
  statShape.back() = 1;
  Tensor result = Tensor::empty(x.dtype(), x.shape());
  Tensor inv = invStdDev ? Tensor::empty(DType::F32, statShape) : Tensor();
  NormSpec spec{w, none, eps, false};
  dispatch(x.dtype(), kFloatTypes, [&](auto e) {
    using E = decltype(e);
    normalizeRows<E>(rows, n, contiguousRows<E>(x, n), spec, result,
                     invStdDev ? inv.data<float>() : nullptr);
  });
  out = std::move(result);
  if (invStdDev)
    *invStdDev = std::move(inv);
  return Status::ok();
}

Status rt::skipRmsNorm(const Tensor &x, const Tensor &skip,
                       const Tensor &weight, const Tensor &bias, float eps,
                       Tensor &out, Tensor &sum) {
  const char *name = "SkipSimplifiedLayerNormalization";
  LLQ_RT_TRY(checkFloat(name, x));
  // skip is x's shape or a suffix of it (leading 1s aside): it repeats
  // whole rows, every skip.numel() elements.
  Shape skipShape = skip.shape();
  while (!skipShape.empty() && skipShape.front() == 1 && skipShape.size() > 1)
    skipShape.erase(skipShape.begin());
  bool suffix = skipShape.size() <= x.shape().size() &&
                std::equal(skipShape.begin(), skipShape.end(),
                           x.shape().end() - skipShape.size());
  if (skip.dtype() != x.dtype() || !suffix || skipShape.empty() ||
      skipShape.back() != x.dim(-1))
    return Status::error(std::string(name) + ": skip " + skip.describe() +
                         " does not match input " + x.describe());
  int64_t n = x.dim(-1), rows = n ? x.numel() / n : 0;
  int64_t skipRows = n ? skip.numel() / n : 1;
  std::vector<float> w, b, none;
  LLQ_RT_TRY(loadParameter(name, "weight", weight, n, x, true, w));
  LLQ_RT_TRY(loadParameter(name, "bias", bias, n, x, false, b));
  Tensor result = Tensor::empty(x.dtype(), x.shape());
  Tensor added = Tensor::empty(x.dtype(), x.shape());
  NormSpec spec{w, none, eps, false};
  dispatch(x.dtype(), kFloatTypes, [&](auto e) {
    using E = decltype(e);
    using T = typename E::Compute;
    const auto *px = x.data<typename E::Store>();
    const auto *ps = skip.data<typename E::Store>();
    auto *pa = added.data<typename E::Store>();
    // The sum is formed in the computation type, stored once for `sum`, and
    // normalized unrounded, as onnxruntime does for 16-bit inputs.
    auto rowOf = [&](int64_t r) {
      const auto *xr = px + r * n;
      const auto *sr = ps + (r % skipRows) * n;
      auto *ar = pa + r * n;
      for (int64_t i = 0; i < n; ++i)
        ar[i] = E::store(E::load(xr[i]) + E::load(sr[i]) +
                         (b.empty() ? T(0) : T(b[i])));
      return [xr, sr, &b](int64_t i) {
        return E::load(xr[i]) + E::load(sr[i]) + (b.empty() ? T(0) : T(b[i]));
      };
    };
    normalizeRows<E>(rows, n, rowOf, spec, result, nullptr);
  });
  out = std::move(result);
  sum = std::move(added);
  return Status::ok();
}

Status rt::layerNorm(const Tensor &x, const Tensor &weight, const Tensor &bias,
                     int64_t axis, float eps, Tensor &out) {
  const char *name = "LayerNormalization";
  LLQ_RT_TRY(checkFloat(name, x));
  int64_t a;
  LLQ_RT_TRY(normalizeAxis(name, axis, x.rank(), a));
  int64_t n = numElements(Shape(x.shape().begin() + a, x.shape().end()));
  int64_t rows = numElements(Shape(x.shape().begin(), x.shape().begin() + a));
  std::vector<float> w, b;
  LLQ_RT_TRY(loadParameter(name, "weight", weight, n, x, true, w));
  LLQ_RT_TRY(loadParameter(name, "bias", bias, n, x, false, b));
  Tensor result = Tensor::empty(x.dtype(), x.shape());
  NormSpec spec{w, b, eps, true};
  dispatch(x.dtype(), kFloatTypes, [&](auto e) {
    using E = decltype(e);
    normalizeRows<E>(rows, n, contiguousRows<E>(x, n), spec, result, nullptr);
  });
  out = std::move(result);
  return Status::ok();
}
