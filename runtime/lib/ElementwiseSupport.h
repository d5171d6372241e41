//===- ElementwiseSupport.h - Shared machinery of the kernels ---*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// What the elementwise, reduction and normalization kernels share: element
// traits that load every dtype into the type it is computed in and store it
// back (16-bit floats through float), dispatch from a runtime DType to those
// traits, value conversion with defined results for every input, and a
// broadcast plan that turns any numpy broadcast into few long runs whose
// operands advance by 0 or 1, so that the innermost loops vectorize.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_RUNTIME_LIB_ELEMENTWISESUPPORT_H
#define LLQ_RUNTIME_LIB_ELEMENTWISESUPPORT_H

#include "llq/Quant/Half.h"
#include "llq/Runtime/Parallel.h"
#include "llq/Runtime/Status.h"
#include "llq/Runtime/Tensor.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace llq::rt::detail {

/// Elements per parallel chunk: below this, waking the pool costs more than
/// the work saves.
constexpr int64_t kGrain = 16384;

/// "f32", "bf16", "bool": the spelling Tensor::describe uses.
std::string dtypeString(DType dtype);

/// Whether an optional input was given. A default-constructed Tensor
/// reports defined() (it has no elements), so storage is what tells.
inline bool isPresent(const Tensor &t) {
  return t.defined() && t.raw() != nullptr;
}

//===----------------------------------------------------------------------===//
// Element traits and dispatch
//===----------------------------------------------------------------------===//

/// A dtype whose elements are computed in their own C++ type (or `C`).
template <DType D, typename S, typename C = S> struct NativeElem {
  static constexpr DType kDType = D;
  using Store = S;
  using Compute = C;
  static Compute load(Store v) { return static_cast<Compute>(v); }
  static Store store(Compute v) { return static_cast<Store>(v); }
};

/// A 16-bit float stored as bits and computed in float.
template <DType D, float (*Widen)(uint16_t), uint16_t (*Narrow)(float)>
struct HalfElem {
  static constexpr DType kDType = D;
  using Store = uint16_t;
  using Compute = float;
  static float load(uint16_t v) { return Widen(v); }
  static uint16_t store(float v) { return Narrow(v); }
};

template <DType D> struct Elem;
template <> struct Elem<DType::F64> : NativeElem<DType::F64, double> {};
template <> struct Elem<DType::F32> : NativeElem<DType::F32, float> {};
template <>
struct Elem<DType::F16>
    : HalfElem<DType::F16, quant::halfToFloat, quant::floatToHalf> {};
template <>
struct Elem<DType::BF16>
    : HalfElem<DType::BF16, quant::bfloat16ToFloat, quant::floatToBFloat16> {};
template <> struct Elem<DType::I64> : NativeElem<DType::I64, int64_t> {};
template <> struct Elem<DType::I32> : NativeElem<DType::I32, int32_t> {};
template <> struct Elem<DType::I16> : NativeElem<DType::I16, int16_t> {};
template <> struct Elem<DType::I8> : NativeElem<DType::I8, int8_t> {};
template <> struct Elem<DType::U8> : NativeElem<DType::U8, uint8_t> {};
template <> struct Elem<DType::U16> : NativeElem<DType::U16, uint16_t> {};
template <> struct Elem<DType::U32> : NativeElem<DType::U32, uint32_t> {};
template <> struct Elem<DType::U64> : NativeElem<DType::U64, uint64_t> {};
template <> struct Elem<DType::Bool> : NativeElem<DType::Bool, uint8_t> {};

/// A compile-time set of dtypes; `+` joins two sets.
template <DType... Ds> struct DTypes {};
template <DType... A, DType... B>
constexpr DTypes<A..., B...> operator+(DTypes<A...>, DTypes<B...>) {
  return {};
}

inline constexpr DTypes<DType::F32, DType::F16, DType::BF16, DType::F64>
    kFloatTypes{};
inline constexpr DTypes<DType::I64, DType::I32, DType::I16, DType::I8>
    kSignedTypes{};
inline constexpr DTypes<DType::U8> kByteType{};
inline constexpr DTypes<DType::U16, DType::U32, DType::U64> kWideUnsigned{};
inline constexpr DTypes<DType::Bool> kBoolType{};
/// What arithmetic supports.
inline constexpr auto kNumericTypes = kFloatTypes + kSignedTypes + kByteType;

/// Calls fn(Elem<D>{}) for the D in `set` equal to `dtype`; false if none.
template <DType... Ds, typename Fn>
bool dispatch(DType dtype, DTypes<Ds...>, Fn &&fn) {
  return ((dtype == Ds && (fn(Elem<Ds>{}), true)) || ...);
}

/// Whether `dtype` is one of F32, F16, BF16, F64.
inline bool isFloatDType(DType dtype) {
  return dispatch(dtype, kFloatTypes, [](auto) {});
}

/// "<kernel>: <dtype> is not supported".
Status unsupportedDType(const std::string &kernel, DType dtype);

//===----------------------------------------------------------------------===//
// Scalar helpers
//===----------------------------------------------------------------------===//

template <typename T> bool isNaN(T v) {
  if constexpr (std::is_floating_point_v<T>)
    return std::isnan(v);
  else
    return false;
}

/// The unsigned type integer arithmetic wraps in (C++ signed overflow is
/// undefined; onnxruntime's results are those of two's complement).
template <typename T>
using WrapT = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned,
                                 std::make_unsigned_t<T>>;

template <typename T> T addOf(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(WrapT<T>(a) + WrapT<T>(b));
  else
    return a + b;
}
template <typename T> T subOf(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(WrapT<T>(a) - WrapT<T>(b));
  else
    return a - b;
}
template <typename T> T mulOf(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(WrapT<T>(a) * WrapT<T>(b));
  else
    return a * b;
}
/// NaN-propagating maximum and minimum (ONNX Max/Min, ReduceMax/Min).
/// The bitwise | keeps them branch-free selects, which vectorize.
template <typename T> T maxOf(T a, T b) { return (isNaN(a) | (a > b)) ? a : b; }
template <typename T> T minOf(T a, T b) { return (isNaN(a) | (a < b)) ? a : b; }

/// Numerically stable logistic function.
template <typename T> T sigmoidOf(T v) {
  T e = std::exp(-std::abs(v));
  T s = T(1) / (T(1) + e);
  return v >= T(0) ? s : e * s;
}

/// Converts between computation types with a defined result for every
/// input. Float to integer truncates toward zero, saturates at the target's
/// range and maps NaN to 0: onnxruntime's Cast is a plain static_cast, which
/// is undefined behaviour in C++ for these inputs (x86 yields INT_MIN), so
/// we pick the deterministic rule of Rust's `as` and Java. Integers narrow
/// modulo 2^n, as onnxruntime's static_cast does on every host.
template <typename To, typename From> To convertValue(From v) {
  if constexpr (std::is_floating_point_v<From> && std::is_integral_v<To>) {
    if (std::isnan(v))
      return To(0);
    const double hi = std::ldexp(1.0, std::numeric_limits<To>::digits);
    const double lo = std::is_signed_v<To> ? -hi : -1.0;
    if (static_cast<double>(v) >= hi)
      return std::numeric_limits<To>::max();
    if (static_cast<double>(v) <= lo)
      return std::numeric_limits<To>::min();
    return static_cast<To>(v);
  } else {
    return static_cast<To>(v);
  }
}

//===----------------------------------------------------------------------===//
// Broadcasting
//===----------------------------------------------------------------------===//

/// The numpy broadcast of two shapes; false if they do not broadcast.
bool broadcastShape(const Shape &a, const Shape &b, Shape &out);

/// K operands broadcast to `shape`, described as runs: the output is
/// `numel` elements, walked as product(outer) runs of `inner` contiguous
/// elements, along which operand k advances by innerStride[k] (0 or 1) and
/// between which it advances as `strides[k]` says for each outer dimension.
/// Adjacent dimensions that every operand treats alike are merged, so
/// same-shape operands become one run and a trailing vector becomes runs
/// of its length.
template <size_t K> struct BroadcastPlan {
  Shape shape;
  int64_t numel = 0;
  int64_t inner = 1;
  std::array<int64_t, K> innerStride{};
  Shape outer;
  std::array<std::vector<int64_t>, K> strides;
};

/// Builds the plan for `shapes`; false if they do not broadcast.
template <size_t K>
bool planBroadcast(const std::array<const Shape *, K> &shapes,
                   BroadcastPlan<K> &plan) {
  plan = BroadcastPlan<K>();
  for (const Shape *s : shapes)
    if (!broadcastShape(plan.shape, *s, plan.shape))
      return false;
  plan.numel = numElements(plan.shape);
  if (plan.numel == 0)
    return true;
  size_t rank = plan.shape.size();
  // Operand strides over the result's dimensions, 0 where broadcast.
  std::array<std::vector<int64_t>, K> full;
  for (size_t k = 0; k < K; ++k) {
    const Shape &s = *shapes[k];
    full[k].assign(rank, 0);
    int64_t stride = 1;
    for (size_t i = 0; i < s.size(); ++i) {
      size_t src = s.size() - 1 - i, dst = rank - 1 - i;
      full[k][dst] = s[src] == 1 ? 0 : stride;
      stride *= s[src];
    }
  }
  // Merge from the innermost dimension out, skipping size-1 dimensions.
  struct Dim {
    int64_t size;
    std::array<int64_t, K> stride;
  };
  std::vector<Dim> merged; // innermost first
  for (size_t i = rank; i-- > 0;) {
    if (plan.shape[i] == 1)
      continue;
    Dim d{plan.shape[i], {}};
    for (size_t k = 0; k < K; ++k)
      d.stride[k] = full[k][i];
    bool fits = !merged.empty();
    for (size_t k = 0; fits && k < K; ++k)
      fits = d.stride[k] == merged.back().stride[k] * merged.back().size;
    if (fits)
      merged.back().size *= d.size;
    else
      merged.push_back(d);
  }
  if (!merged.empty()) {
    plan.inner = merged.front().size;
    plan.innerStride = merged.front().stride;
  }
  for (size_t m = merged.size(); m-- > 1;) {
    plan.outer.push_back(merged[m].size);
    for (size_t k = 0; k < K; ++k)
      plan.strides[k].push_back(merged[m].stride[k]);
  }
  return true;
}

/// The operand offsets at the start of each run, in order (an odometer
/// over the plan's outer dimensions).
template <size_t K> class BroadcastWalker {
public:
  BroadcastWalker(const BroadcastPlan<K> &plan, int64_t run)
      : plan(plan), index(plan.outer.size(), 0) {
    for (size_t d = plan.outer.size(); d-- > 0;) {
      index[d] = run % plan.outer[d];
      run /= plan.outer[d];
      for (size_t k = 0; k < K; ++k)
        offsets[k] += index[d] * plan.strides[k][d];
    }
  }
  const std::array<int64_t, K> &current() const { return offsets; }
  void next() {
    for (size_t d = plan.outer.size(); d-- > 0;) {
      for (size_t k = 0; k < K; ++k)
        offsets[k] += plan.strides[k][d];
      if (++index[d] < plan.outer[d])
        return;
      for (size_t k = 0; k < K; ++k)
        offsets[k] -= plan.strides[k][d] * plan.outer[d];
      index[d] = 0;
    }
  }

private:
  const BroadcastPlan<K> &plan;
  std::vector<int64_t> index;
  std::array<int64_t, K> offsets{};
};

/// Calls fn(outputOffset, operandOffsets, n) for stretches of at most one
/// run, covering the output once, in parallel chunks of kGrain elements.
/// Long runs are split, so one huge same-shape run still uses every thread.
template <size_t K, typename Fn>
void forEachRun(const BroadcastPlan<K> &plan, Fn &&fn) {
  parallelFor(plan.numel, kGrain, [&](int64_t begin, int64_t end) {
    int64_t within = begin % plan.inner;
    BroadcastWalker<K> walker(plan, begin / plan.inner);
    for (int64_t pos = begin; pos < end;) {
      int64_t n = std::min(plan.inner - within, end - pos);
      std::array<int64_t, K> offsets = walker.current();
      for (size_t k = 0; k < K; ++k)
        offsets[k] += within * plan.innerStride[k];
      fn(pos, offsets, n);
      pos += n;
      within = 0;
      walker.next();
    }
  });
}

/// Calls fn with one std::integral_constant (0 or 1) per stride, so that
/// loops indexing `i * stride` see the stride at compile time and vectorize.
template <size_t I, size_t K, typename Fn, typename... Cs>
void withStaticStrides(const std::array<int64_t, K> &strides, Fn &&fn,
                       Cs... chosen) {
  if constexpr (I == K) {
    fn(chosen...);
  } else if (strides[I] == 0) {
    withStaticStrides<I + 1>(strides, fn, chosen...,
                             std::integral_constant<int64_t, 0>());
  } else {
    withStaticStrides<I + 1>(strides, fn, chosen...,
                             std::integral_constant<int64_t, 1>());
  }
}

/// out = OE::store(f(AE::load(a), BE::load(b))) over a broadcast plan.
template <typename AE, typename BE, typename OE, typename F>
void mapBroadcast2(const BroadcastPlan<2> &plan, const Tensor &a,
                   const Tensor &b, Tensor &out, F f) {
  const auto *pa = a.data<typename AE::Store>();
  const auto *pb = b.data<typename BE::Store>();
  auto *po = out.data<typename OE::Store>();
  forEachRun(
      plan, [&](int64_t pos, const std::array<int64_t, 2> &offs, int64_t n) {
        const auto *ra = pa + offs[0];
        const auto *rb = pb + offs[1];
        auto *ro = po + pos;
        withStaticStrides<0>(plan.innerStride, [&](auto sa, auto sb) {
          for (int64_t i = 0; i < n; ++i)
            ro[i] = OE::store(f(AE::load(ra[i * sa]), BE::load(rb[i * sb])));
        });
      });
}

/// out = OE::store(f(IE::load(x))) over contiguous tensors of equal size.
template <typename IE, typename OE, typename F>
void map1(const Tensor &x, Tensor &out, F f) {
  const auto *px = x.data<typename IE::Store>();
  auto *po = out.data<typename OE::Store>();
  parallelFor(x.numel(), kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      po[i] = OE::store(f(IE::load(px[i])));
  });
}

//===----------------------------------------------------------------------===//
// Axes
//===----------------------------------------------------------------------===//

/// Resolves a possibly negative axis of a rank-`rank` tensor.
Status normalizeAxis(const std::string &kernel, int64_t axis, int64_t rank,
                     int64_t &out);

/// A tensor seen as [outer, extent, inner] around one axis.
struct AxisView {
  int64_t outer = 1, extent = 1, inner = 1;
};
AxisView axisView(const Shape &shape, int64_t axis);

/// Runs fn(o, i0, i1) over rows o < outer and blocks [i0, i1) of at most
/// `block` columns of [0, inner), in parallel when the work, `costPerColumn`
/// elements per column, is large enough. Splitting columns keeps reductions
/// over a leading axis ([1, R, inner]) parallel.
void forEachColumnBlock(
    int64_t outer, int64_t inner, int64_t costPerColumn, int64_t block,
    const std::function<void(int64_t, int64_t, int64_t)> &fn);

//===----------------------------------------------------------------------===//
// Reductions
//===----------------------------------------------------------------------===//
//
// A reduction is a map (x, x^2, exp(x - shift)), a combine (+, *, max, min)
// and a finish (/n, sqrt, log + shift) over an accumulator of double for
// floats and int64 for integers.

/// Columns per block when the reduced axis is strided: the accumulators of
/// one block stay in registers or L1.
constexpr int64_t kColumnBlock = 256;
/// Independent accumulators along a contiguous reduced axis.
constexpr int64_t kLanes = 8;

/// Accumulator type of a dtype: double for floats, int64 for integers.
template <typename E>
using AccOf = std::conditional_t<std::is_floating_point_v<typename E::Compute>,
                                 double, int64_t>;

template <typename E> struct OpBase {
  using A = AccOf<E>;
  static constexpr bool kShifted = false;
  static A identity() { return A(0); }
  static A map(A v, A) { return v; }
  static A combine(A a, A b) { return addOf(a, b); }
  static A finish(A a, int64_t, A) { return a; }
};
template <typename E> struct SumOp : OpBase<E> {};
template <typename E> struct MeanOp : OpBase<E> {
  using A = AccOf<E>;
  static A finish(A a, int64_t n, A) {
    if constexpr (std::is_floating_point_v<A>)
      return a / static_cast<A>(n); // NaN for an empty reduction
    else
      return n ? a / n : A(0);
  }
};
template <typename E> struct SumSquareOp : OpBase<E> {
  using A = AccOf<E>;
  static A map(A v, A) { return mulOf(v, v); }
};
template <typename E> struct L2Op : SumSquareOp<E> {
  using A = AccOf<E>;
  static A finish(A a, int64_t, A) { return std::sqrt(a); }
};
/// log(sum(exp(x - m))) + m with m the maximum (0 if not finite, so that
/// all -inf gives -inf and +inf gives +inf rather than NaN).
template <typename E> struct LogSumExpOp : OpBase<E> {
  using A = AccOf<E>;
  static constexpr bool kShifted = true;
  static A map(A v, A shift) { return std::exp(v - shift); }
  static A finish(A a, int64_t, A shift) { return std::log(a) + shift; }
};
template <typename E> struct ProdOp : OpBase<E> {
  using A = AccOf<E>;
  static A identity() { return A(1); }
  static A combine(A a, A b) { return mulOf(a, b); }
};
template <typename E> struct MaxOp : OpBase<E> {
  using A = AccOf<E>;
  using T = typename E::Compute;
  static A identity() {
    return std::numeric_limits<T>::has_infinity
               ? -std::numeric_limits<A>::infinity()
               : A(std::numeric_limits<T>::lowest());
  }
  static A combine(A a, A b) { return maxOf(a, b); }
};
template <typename E> struct MinOp : OpBase<E> {
  using A = AccOf<E>;
  using T = typename E::Compute;
  static A identity() {
    return std::numeric_limits<T>::has_infinity
               ? std::numeric_limits<A>::infinity()
               : A(std::numeric_limits<T>::max());
  }
  static A combine(A a, A b) { return minOf(a, b); }
};

/// Reduces n contiguous elements.
template <typename E, typename Op, typename A = AccOf<E>>
A reduceRow(const typename E::Store *x, int64_t n, A shift) {
  A lanes[kLanes];
  std::fill(lanes, lanes + kLanes, Op::identity());
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int64_t k = 0; k < kLanes; ++k)
      lanes[k] = Op::combine(lanes[k], Op::map(A(E::load(x[j + k])), shift));
  A acc = Op::identity();
  for (int64_t k = 0; k < kLanes; ++k)
    acc = Op::combine(acc, lanes[k]);
  for (; j < n; ++j)
    acc = Op::combine(acc, Op::map(A(E::load(x[j])), shift));
  return acc;
}

/// Reduces w columns over r rows `stride` apart into acc.
template <typename E, typename Op, typename A = AccOf<E>>
void reduceColumns(const typename E::Store *x, int64_t r, int64_t stride,
                   int64_t w, const A *shift, A *acc) {
  std::fill(acc, acc + w, Op::identity());
  for (int64_t j = 0; j < r; ++j) {
    const typename E::Store *row = x + j * stride;
    for (int64_t i = 0; i < w; ++i)
      acc[i] = Op::combine(acc[i], Op::map(A(E::load(row[i])), shift[i]));
  }
}

template <typename A> A finiteOrZero(A v) {
  return std::isfinite(static_cast<double>(v)) ? v : A(0);
}

} // namespace llq::rt::detail

#endif // LLQ_RUNTIME_LIB_ELEMENTWISESUPPORT_H
