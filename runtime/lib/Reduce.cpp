//===- Reduce.cpp - Reductions, ArgMax/ArgMin and CumSum ------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// A reduction sees its input as [outer, R, inner]: R the reduced elements,
// contiguous when inner is 1 (the last axis, summed in eight independent
// lanes so that the adds vectorize) and otherwise strided, in which case
// blocks of inner columns are accumulated row by row, which vectorizes
// across the columns. Reduced axes that are not adjacent are first gathered
// to the back. Each reduction is a map (x, x^2, exp(x - max)), a combine
// (+, *, max, min) and a finish (/R, sqrt, log + max) in an accumulator of
// double for floats and int64 for integers.
//
//===----------------------------------------------------------------------===//

#include "ElementwiseSupport.h"
#include "llq/Runtime/Kernels/Elementwise.h"

#include <cstring>

using namespace llq;
using namespace llq::rt;
using namespace llq::rt::detail;

const char *rt::reduceOpName(ReduceOp op) {
  switch (op) {
  case ReduceOp::Sum:
    return "ReduceSum";
  case ReduceOp::Mean:
    return "ReduceMean";
  case ReduceOp::Max:
    return "ReduceMax";
  case ReduceOp::Min:
    return "ReduceMin";
  case ReduceOp::Prod:
    return "ReduceProd";
  case ReduceOp::SumSquare:
    return "ReduceSumSquare";
  case ReduceOp::L2:
    return "ReduceL2";
  case ReduceOp::LogSumExp:
    return "ReduceLogSumExp";
  }
  return "Reduce";
}

namespace {

/// Reduces a contiguous row, split into pieces reduced in parallel when it
/// is long (a reduction over all axes is one row). The split depends only
/// on n, so results do not depend on the thread count.
template <typename E, typename Op, typename A = AccOf<E>>
A reduceLongRow(const typename E::Store *x, int64_t n, A shift) {
  constexpr int64_t kPiece = int64_t(1) << 16;
  if (n <= kPiece)
    return reduceRow<E, Op>(x, n, shift);
  int64_t pieces = (n + kPiece - 1) / kPiece;
  std::vector<A> partial(pieces);
  parallelFor(pieces, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p)
      partial[p] = reduceRow<E, Op>(x + p * kPiece,
                                    std::min(kPiece, n - p * kPiece), shift);
  });
  A acc = Op::identity();
  for (A a : partial)
    acc = Op::combine(acc, a);
  return acc;
}

/// Reduces rows o of view `v`, columns [i0, i1), of x into y.
template <typename E, typename Op>
void reduceBlock(const typename E::Store *x, const AxisView &v, int64_t o,
                 int64_t i0, int64_t i1, typename E::Store *y) {
  using A = AccOf<E>;
  using T = typename E::Compute;
  const typename E::Store *base = x + o * v.extent * v.inner + i0;
  typename E::Store *dst = y + o * v.inner + i0;
  int64_t w = i1 - i0;
  A shift[kColumnBlock] = {}, acc[kColumnBlock];
  if (v.inner == 1) {
    if constexpr (Op::kShifted)
      shift[0] = finiteOrZero(reduceLongRow<E, MaxOp<E>>(base, v.extent, A(0)));
    acc[0] = reduceLongRow<E, Op>(base, v.extent, shift[0]);
  } else {
    if constexpr (Op::kShifted) {
      reduceColumns<E, MaxOp<E>>(base, v.extent, v.inner, w, shift, acc);
      for (int64_t i = 0; i < w; ++i)
        shift[i] = finiteOrZero(acc[i]);
    }
    reduceColumns<E, Op>(base, v.extent, v.inner, w, shift, acc);
  }
  for (int64_t i = 0; i < w; ++i)
    dst[i] = E::store(convertValue<T>(Op::finish(acc[i], v.extent, shift[i])));
}

template <typename E, typename Op>
Status runReduce(const Tensor &x, const AxisView &v, Tensor &y) {
  const auto *px = x.data<typename E::Store>();
  auto *py = y.data<typename E::Store>();
  forEachColumnBlock(v.outer, v.inner, v.extent, kColumnBlock,
                     [&](int64_t o, int64_t i0, int64_t i1) {
                       reduceBlock<E, Op>(px, v, o, i0, i1, py);
                     });
  return Status::ok();
}

template <typename E>
Status reduceAs(ReduceOp op, const Tensor &x, const AxisView &v, Tensor &y) {
  constexpr bool isFloat = std::is_floating_point_v<typename E::Compute>;
  switch (op) {
  case ReduceOp::Sum:
    return runReduce<E, SumOp<E>>(x, v, y);
  case ReduceOp::Mean:
    return runReduce<E, MeanOp<E>>(x, v, y);
  case ReduceOp::Max:
    return runReduce<E, MaxOp<E>>(x, v, y);
  case ReduceOp::Min:
    return runReduce<E, MinOp<E>>(x, v, y);
  case ReduceOp::Prod:
    return runReduce<E, ProdOp<E>>(x, v, y);
  case ReduceOp::SumSquare:
    return runReduce<E, SumSquareOp<E>>(x, v, y);
  case ReduceOp::L2:
    if constexpr (isFloat)
      return runReduce<E, L2Op<E>>(x, v, y);
    break;
  case ReduceOp::LogSumExp:
    if constexpr (isFloat)
      return runReduce<E, LogSumExpOp<E>>(x, v, y);
    break;
  }
  return unsupportedDType(reduceOpName(op), x.dtype());
}

/// Marks the axes to reduce; all of them when `axes` is empty.
Status reducedMask(const std::string &kernel, const std::vector<int64_t> &axes,
                   int64_t rank, std::vector<bool> &mask) {
  mask.assign(rank, axes.empty());
  for (int64_t axis : axes) {
    int64_t a;
    LLQ_RT_TRY(normalizeAxis(kernel, axis, rank, a));
    if (mask[a])
      return Status::error(kernel + ": axis " + std::to_string(axis) +
                           " appears twice");
    mask[a] = true;
  }
  return Status::ok();
}

/// Copies x with its dimensions in `order` (a permutation) into a new
/// contiguous tensor, moving element bits.
Tensor permuted(const Tensor &x, const std::vector<int64_t> &order) {
  const Shape &s = x.shape();
  std::vector<int64_t> stride(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;)
    stride[i - 1] = stride[i] * s[i];
  BroadcastPlan<1> plan;
  for (int64_t d : order)
    plan.shape.push_back(s[d]);
  plan.numel = x.numel();
  plan.inner = s[order.back()];
  plan.innerStride[0] = stride[order.back()];
  for (size_t i = 0; i + 1 < order.size(); ++i) {
    plan.outer.push_back(s[order[i]]);
    plan.strides[0].push_back(stride[order[i]]);
  }
  Tensor result = Tensor::empty(x.dtype(), plan.shape);
  size_t bytes = dtypeSize(x.dtype());
  const char *src = static_cast<const char *>(x.raw());
  char *dst = static_cast<char *>(result.raw());
  forEachRun(
      plan, [&](int64_t pos, const std::array<int64_t, 1> &offs, int64_t n) {
        for (int64_t i = 0; i < n; ++i)
          std::memcpy(dst + (pos + i) * bytes,
                      src + (offs[0] + i * plan.innerStride[0]) * bytes, bytes);
      });
  return result;
}

/// Sees x as [outer, R, inner] with the masked dimensions in R, gathering
/// them to the back when they are not adjacent (size-1 dimensions aside).
AxisView reductionView(const Tensor &x, const std::vector<bool> &mask,
                       Tensor &source) {
  const Shape &s = x.shape();
  std::vector<int64_t> kept, reduced;
  int64_t groups = 0;
  bool previous = false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == 1)
      continue;
    (mask[i] ? reduced : kept).push_back(static_cast<int64_t>(i));
    groups += mask[i] && !previous;
    previous = mask[i];
  }
  AxisView v;
  source = x;
  if (groups > 1) {
    std::vector<int64_t> order = kept;
    order.insert(order.end(), reduced.begin(), reduced.end());
    source = permuted(x, order);
    for (int64_t d : kept)
      v.outer *= s[d];
  }
  v.extent = 1;
  for (int64_t d : reduced)
    v.extent *= s[d];
  if (groups <= 1) {
    // outer: the kept dimensions before the reduced ones.
    int64_t firstReduced = reduced.empty() ? int64_t(s.size()) : reduced[0];
    for (int64_t d : kept)
      (d < firstReduced ? v.outer : v.inner) *= s[d];
  }
  return v;
}

} // namespace

Status rt::reduce(ReduceOp op, const Tensor &x,
                  const std::vector<int64_t> &axes, bool keepDims,
                  bool noopWithEmptyAxes, Tensor &out) {
  std::string name = reduceOpName(op);
  if (axes.empty() && noopWithEmptyAxes) {
    out = x.clone();
    return Status::ok();
  }
  std::vector<bool> mask;
  LLQ_RT_TRY(reducedMask(name, axes, x.rank(), mask));
  Shape shape;
  for (int64_t i = 0; i < x.rank(); ++i)
    if (!mask[i] || keepDims)
      shape.push_back(mask[i] ? 1 : x.dim(i));
  auto types = kFloatTypes + DTypes<DType::I64, DType::I32>();
  Status status = unsupportedDType(name, x.dtype());
  dispatch(x.dtype(), types, [&](auto e) {
    Tensor source;
    AxisView v = reductionView(x, mask, source);
    Tensor result = Tensor::empty(x.dtype(), shape);
    status = reduceAs<decltype(e)>(op, source, v, result);
    if (status)
      out = std::move(result);
  });
  return status;
}

namespace {

/// Whether v replaces the best so far: NaN is the extreme value (the first
/// NaN wins, as numpy's argmax and argmin), ties go to the last index with
/// `last`.
template <typename T> bool improves(T v, T best, bool isMax, bool last) {
  if (isNaN(best))
    return last && isNaN(v);
  if (isNaN(v))
    return true;
  if (v == best)
    return last;
  return isMax ? v > best : v < best;
}

/// The index of the extreme of a contiguous row: its value comes from the
/// vectorized NaN-propagating reduction, then a scan finds where it is.
template <typename E>
int64_t argOfRow(const typename E::Store *row, int64_t n, bool isMax,
                 bool last) {
  using A = AccOf<E>;
  A extreme = isMax ? reduceRow<E, MaxOp<E>>(row, n, A(0))
                    : reduceRow<E, MinOp<E>>(row, n, A(0));
  bool nan = isNaN(extreme);
  auto matches = [&](int64_t j) {
    A value = A(E::load(row[j]));
    return nan ? isNaN(value) : value == extreme;
  };
  if (last) {
    for (int64_t j = n - 1; j > 0; --j)
      if (matches(j))
        return j;
    return 0;
  }
  for (int64_t j = 0; j < n; ++j)
    if (matches(j))
      return j;
  return 0;
}

/// The same for w columns `stride` apart, in one pass over the rows.
template <typename E>
void argOfColumns(const typename E::Store *base, int64_t n, int64_t stride,
                  int64_t w, bool isMax, bool last, int64_t *index) {
  using T = typename E::Compute;
  T best[kColumnBlock];
  for (int64_t i = 0; i < w; ++i) {
    best[i] = E::load(base[i]);
    index[i] = 0;
  }
  for (int64_t j = 1; j < n; ++j)
    for (int64_t i = 0; i < w; ++i) {
      T value = E::load(base[j * stride + i]);
      if (improves(value, best[i], isMax, last)) {
        best[i] = value;
        index[i] = j;
      }
    }
}

template <typename E>
void runArgReduce(const Tensor &x, const AxisView &v, bool isMax, bool last,
                  Tensor &y) {
  const auto *px = x.data<typename E::Store>();
  int64_t *py = y.data<int64_t>();
  forEachColumnBlock(v.outer, v.inner, v.extent, kColumnBlock,
                     [&](int64_t o, int64_t i0, int64_t i1) {
                       const auto *base = px + o * v.extent * v.inner + i0;
                       int64_t *index = py + o * v.inner + i0;
                       if (v.inner == 1)
                         *index = argOfRow<E>(base, v.extent, isMax, last);
                       else
                         argOfColumns<E>(base, v.extent, v.inner, i1 - i0,
                                         isMax, last, index);
                     });
}

} // namespace

Status rt::argReduce(bool isMax, const Tensor &x, int64_t axis, bool keepDims,
                     bool selectLastIndex, Tensor &out) {
  std::string name = isMax ? "ArgMax" : "ArgMin";
  int64_t a;
  LLQ_RT_TRY(normalizeAxis(name, axis, x.rank(), a));
  if (x.dim(a) == 0)
    return Status::error(name + ": axis " + std::to_string(axis) + " of " +
                         shapeString(x.shape()) + " is empty");
  Shape shape = x.shape();
  if (keepDims)
    shape[a] = 1;
  else
    shape.erase(shape.begin() + a);
  Status status = unsupportedDType(name, x.dtype());
  dispatch(x.dtype(), kNumericTypes, [&](auto e) {
    Tensor result = Tensor::empty(DType::I64, shape);
    runArgReduce<decltype(e)>(x, axisView(x.shape(), a), isMax, selectLastIndex,
                              result);
    out = std::move(result);
    status = Status::ok();
  });
  return status;
}

namespace {

template <typename E>
void runCumSum(const Tensor &x, const AxisView &v, bool exclusive, bool reverse,
               Tensor &y) {
  using A = AccOf<E>;
  using T = typename E::Compute;
  const auto *px = x.data<typename E::Store>();
  auto *py = y.data<typename E::Store>();
  forEachColumnBlock(v.outer, v.inner, v.extent, kColumnBlock,
                     [&](int64_t o, int64_t i0, int64_t i1) {
                       int64_t w = i1 - i0, start = o * v.extent * v.inner + i0;
                       A acc[kColumnBlock] = {};
                       for (int64_t step = 0; step < v.extent; ++step) {
                         int64_t j = reverse ? v.extent - 1 - step : step;
                         const auto *src = px + start + j * v.inner;
                         auto *dst = py + start + j * v.inner;
                         for (int64_t i = 0; i < w; ++i) {
                           A value = A(E::load(src[i]));
                           A sum = addOf(acc[i], value);
                           dst[i] = E::store(
                               convertValue<T>(exclusive ? acc[i] : sum));
                           acc[i] = sum;
                         }
                       }
                     });
}

} // namespace

Status rt::cumsum(const Tensor &x, int64_t axis, bool exclusive, bool reverse,
                  Tensor &out) {
  int64_t a;
  LLQ_RT_TRY(normalizeAxis("CumSum", axis, x.rank(), a));
  Status status = unsupportedDType("CumSum", x.dtype());
  dispatch(x.dtype(), kFloatTypes + DTypes<DType::I64, DType::I32>(),
           [&](auto e) {
             Tensor result = Tensor::empty(x.dtype(), x.shape());
             runCumSum<decltype(e)>(x, axisView(x.shape(), a), exclusive,
                                    reverse, result);
             out = std::move(result);
             status = Status::ok();
           });
  return status;
}
