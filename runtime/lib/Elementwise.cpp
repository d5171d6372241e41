//===- Elementwise.cpp - Broadcasting binary and ternary kernels ----------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Binary operators, their variadic forms, Where, Clip and SwiGLU. Each
// operator is a functor on the computation type; the broadcast plan and the
// element traits turn it into loops over every dtype it supports.
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Kernels/Elementwise.h"
#include "ElementwiseSupport.h"

using namespace llq;
using namespace llq::rt;
using namespace llq::rt::detail;

const char *rt::binaryOpName(BinaryOp op) {
  switch (op) {
  case BinaryOp::Add:
    return "Add";
  case BinaryOp::Sub:
    return "Sub";
  case BinaryOp::Mul:
    return "Mul";
  case BinaryOp::Div:
    return "Div";
  case BinaryOp::Pow:
    return "Pow";
  case BinaryOp::Max:
    return "Max";
  case BinaryOp::Min:
    return "Min";
  case BinaryOp::Mod:
    return "Mod";
  case BinaryOp::Equal:
    return "Equal";
  case BinaryOp::Less:
    return "Less";
  case BinaryOp::LessOrEqual:
    return "LessOrEqual";
  case BinaryOp::Greater:
    return "Greater";
  case BinaryOp::GreaterOrEqual:
    return "GreaterOrEqual";
  case BinaryOp::And:
    return "And";
  case BinaryOp::Or:
    return "Or";
  case BinaryOp::Xor:
    return "Xor";
  case BinaryOp::BitShiftLeft:
    return "BitShiftLeft";
  case BinaryOp::BitShiftRight:
    return "BitShiftRight";
  }
  return "Binary";
}

namespace {

//===----------------------------------------------------------------------===//
// Operator functors, on computation types
//===----------------------------------------------------------------------===//

struct AddFn {
  template <typename T> T operator()(T a, T b) const { return addOf(a, b); }
};
struct SubFn {
  template <typename T> T operator()(T a, T b) const { return subOf(a, b); }
};
struct MulFn {
  template <typename T> T operator()(T a, T b) const { return mulOf(a, b); }
};
struct MaxFn {
  template <typename T> T operator()(T a, T b) const { return maxOf(a, b); }
};
struct MinFn {
  template <typename T> T operator()(T a, T b) const { return minOf(a, b); }
};

/// Integer division truncates toward zero (C++ and ONNX agree); the one
/// overflowing quotient, MIN / -1, wraps. Zero divisors are rejected before.
struct DivFn {
  template <typename T> T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T> && std::is_signed_v<T>)
      return b == T(-1) ? subOf(T(0), a) : static_cast<T>(a / b);
    else
      return static_cast<T>(a / b);
  }
};

/// ONNX Mod with fmod=0: an integer remainder with the divisor's sign
/// (Python's %).
struct FloorModFn {
  template <typename T> T operator()(T a, T b) const {
    if constexpr (std::is_signed_v<T>) {
      T r = b == T(-1) ? T(0) : static_cast<T>(a % b);
      return (r != 0 && ((r < 0) != (b < 0))) ? static_cast<T>(r + b) : r;
    } else {
      return static_cast<T>(a % b);
    }
  }
};

/// ONNX Mod with fmod=1: C's fmod, with the dividend's sign.
struct TruncModFn {
  template <typename T> T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>)
      return std::fmod(a, b);
    else if constexpr (std::is_signed_v<T>)
      return b == T(-1) ? T(0) : static_cast<T>(a % b);
    else
      return static_cast<T>(a % b);
  }
};

/// Integer power by squaring, wrapping like repeated Mul. A negative
/// exponent gives 1/base^-e truncated toward zero: 0 unless |base| is 1
/// (onnxruntime's std::pow is undefined for base 0 there; we give 0).
template <typename B, typename E> B integerPow(B base, E e) {
  if (e < 0)
    return base == B(1) ? B(1) : base == B(-1) ? (e % 2 ? B(-1) : B(1)) : B(0);
  B result = 1;
  while (e > 0) {
    if (e & 1)
      result = mulOf(result, base);
    base = mulOf(base, base);
    e /= 2;
  }
  return result;
}

/// Pow with an exponent of the base's dtype or another one: same-type
/// floats use that type's pow, mixed types pow in double (as C++'s pow
/// overloads promote in onnxruntime), then convert to the base's type.
struct PowFn {
  template <typename B, typename E> B operator()(B base, E e) const {
    if constexpr (std::is_integral_v<B> && std::is_integral_v<E>)
      return integerPow(base, e);
    else if constexpr (std::is_same_v<B, E>)
      return std::pow(base, e);
    else
      return convertValue<B>(
          std::pow(static_cast<double>(base), static_cast<double>(e)));
  }
};

struct EqualFn {
  template <typename T> bool operator()(T a, T b) const { return a == b; }
};
struct LessFn {
  template <typename T> bool operator()(T a, T b) const { return a < b; }
};
struct LessOrEqualFn {
  template <typename T> bool operator()(T a, T b) const { return a <= b; }
};
struct GreaterFn {
  template <typename T> bool operator()(T a, T b) const { return a > b; }
};
struct GreaterOrEqualFn {
  template <typename T> bool operator()(T a, T b) const { return a >= b; }
};
struct AndFn {
  template <typename T> bool operator()(T a, T b) const {
    return (a != 0) & (b != 0);
  }
};
struct OrFn {
  template <typename T> bool operator()(T a, T b) const {
    return (a != 0) | (b != 0);
  }
};
struct XorFn {
  template <typename T> bool operator()(T a, T b) const {
    return (a != 0) != (b != 0);
  }
};

/// Shifts by the type's width or more give 0, as numpy's do, rather than
/// C++'s undefined behaviour.
struct ShiftLeftFn {
  template <typename T> T operator()(T a, T b) const {
    return static_cast<uint64_t>(b) >= sizeof(T) * 8
               ? T(0)
               : static_cast<T>(WrapT<T>(a) << b);
  }
};
struct ShiftRightFn {
  template <typename T> T operator()(T a, T b) const {
    return static_cast<uint64_t>(b) >= sizeof(T) * 8 ? T(0)
                                                     : static_cast<T>(a >> b);
  }
};

//===----------------------------------------------------------------------===//
// Drivers
//===----------------------------------------------------------------------===//

/// How a same-dtype binary operator is run.
struct BinaryRun {
  BinaryOp op;
  const Tensor &a, &b;
  const BroadcastPlan<2> &plan;
  Tensor &out;
  /// Integer Div and Mod must reject zero divisors.
  bool checkDivisor = false;
};

template <typename E> bool hasZero(const Tensor &t) {
  const auto *p = t.data<typename E::Store>();
  return std::any_of(p, p + t.numel(),
                     [](typename E::Store v) { return v == 0; });
}

/// Runs `fn` over a and b of one dtype from `types`; the result is Bool
/// when `ToBool`, else of that dtype.
template <bool ToBool, DType... Ds, typename Fn>
Status runSameType(const BinaryRun &run, DTypes<Ds...> types, Fn fn) {
  Status status = unsupportedDType(binaryOpName(run.op), run.a.dtype());
  dispatch(run.a.dtype(), types, [&](auto e) {
    using E = decltype(e);
    using OE = std::conditional_t<ToBool, Elem<DType::Bool>, E>;
    if constexpr (std::is_integral_v<typename E::Compute>) {
      if (run.checkDivisor && run.plan.numel > 0 && hasZero<E>(run.b)) {
        status = Status::error(std::string(binaryOpName(run.op)) +
                               ": integer division by zero");
        return;
      }
    }
    Tensor result = Tensor::empty(OE::kDType, run.plan.shape);
    mapBroadcast2<E, E, OE>(run.plan, run.a, run.b, result, fn);
    run.out = std::move(result);
    status = Status::ok();
  });
  return status;
}

inline constexpr auto kPowTypes =
    kFloatTypes + DTypes<DType::I64, DType::I32>();

/// Reads a one-element tensor of a numeric dtype as a double.
double scalarValue(const Tensor &t) {
  double value = 0;
  dispatch(t.dtype(), kNumericTypes, [&](auto e) {
    using E = decltype(e);
    value = static_cast<double>(E::load(t.data<typename E::Store>()[0]));
  });
  return value;
}

Status runPow(const BinaryRun &run) {
  const Tensor &a = run.a, &b = run.b;
  // x^2 is the square's correctly rounded value, which Mul computes exactly
  // and without a pow call per element (RMSNorm decompositions do this).
  if (isFloatDType(a.dtype()) && b.numel() == 1 && b.rank() <= a.rank() &&
      scalarValue(b) == 2.0) {
    BroadcastPlan<2> square;
    (void)planBroadcast<2>({&a.shape(), &a.shape()}, square);
    return runSameType<false>(BinaryRun{BinaryOp::Mul, a, a, square, run.out},
                              kFloatTypes, MulFn());
  }
  Status status = Status::error("Pow: " + dtypeString(a.dtype()) + " ^ " +
                                dtypeString(b.dtype()) + " is not supported");
  dispatch(a.dtype(), kPowTypes, [&](auto base) {
    dispatch(b.dtype(), kPowTypes, [&](auto exponent) {
      using BE = decltype(base);
      Tensor result = Tensor::empty(BE::kDType, run.plan.shape);
      mapBroadcast2<BE, decltype(exponent), BE>(run.plan, a, b, result,
                                                PowFn());
      run.out = std::move(result);
      status = Status::ok();
    });
  });
  return status;
}

Status runMod(BinaryRun run, bool fmod) {
  if (!fmod && isFloatDType(run.a.dtype()))
    return Status::error("Mod: fmod=0 is not defined for " +
                         dtypeString(run.a.dtype()) +
                         " (ONNX requires fmod=1 for floats)");
  run.checkDivisor = true;
  auto integers = kSignedTypes + kByteType + kWideUnsigned;
  return fmod ? runSameType<false>(run, kFloatTypes + integers, TruncModFn())
              : runSameType<false>(run, integers, FloorModFn());
}

Status runBinary(BinaryRun run, bool fmod) {
  auto comparable = kNumericTypes + kWideUnsigned + kBoolType;
  switch (run.op) {
  case BinaryOp::Add:
    return runSameType<false>(run, kNumericTypes, AddFn());
  case BinaryOp::Sub:
    return runSameType<false>(run, kNumericTypes, SubFn());
  case BinaryOp::Mul:
    return runSameType<false>(run, kNumericTypes, MulFn());
  case BinaryOp::Div:
    run.checkDivisor = true;
    return runSameType<false>(run, kNumericTypes, DivFn());
  case BinaryOp::Max:
    return runSameType<false>(run, kNumericTypes, MaxFn());
  case BinaryOp::Min:
    return runSameType<false>(run, kNumericTypes, MinFn());
  case BinaryOp::Pow:
    return runPow(run);
  case BinaryOp::Mod:
    return runMod(run, fmod);
  case BinaryOp::Equal:
    return runSameType<true>(run, comparable, EqualFn());
  case BinaryOp::Less:
    return runSameType<true>(run, comparable, LessFn());
  case BinaryOp::LessOrEqual:
    return runSameType<true>(run, comparable, LessOrEqualFn());
  case BinaryOp::Greater:
    return runSameType<true>(run, comparable, GreaterFn());
  case BinaryOp::GreaterOrEqual:
    return runSameType<true>(run, comparable, GreaterOrEqualFn());
  case BinaryOp::And:
    return runSameType<true>(run, kBoolType, AndFn());
  case BinaryOp::Or:
    return runSameType<true>(run, kBoolType, OrFn());
  case BinaryOp::Xor:
    return runSameType<true>(run, kBoolType, XorFn());
  case BinaryOp::BitShiftLeft:
    return runSameType<false>(run, kByteType + kWideUnsigned, ShiftLeftFn());
  case BinaryOp::BitShiftRight:
    return runSameType<false>(run, kByteType + kWideUnsigned, ShiftRightFn());
  }
  return Status::error("Binary: unknown operator");
}

Status notBroadcastable(const std::string &kernel, const Shape &a,
                        const Shape &b) {
  return Status::error(kernel + ": shapes " + shapeString(a) + " and " +
                       shapeString(b) + " do not broadcast");
}

/// A one-element tensor of a float dtype holding `value`.
Tensor floatScalar(DType dtype, double value) {
  Tensor t = Tensor::empty(dtype, {});
  dispatch(dtype, kFloatTypes, [&](auto e) {
    using E = decltype(e);
    t.data<typename E::Store>()[0] =
        E::store(static_cast<typename E::Compute>(value));
  });
  return t;
}

} // namespace

Status rt::binary(BinaryOp op, const Tensor &a, const Tensor &b, Tensor &out,
                  bool fmod) {
  const char *name = binaryOpName(op);
  if (op != BinaryOp::Pow && a.dtype() != b.dtype())
    return Status::error(std::string(name) + ": dtypes " +
                         dtypeString(a.dtype()) + " and " +
                         dtypeString(b.dtype()) + " differ");
  BroadcastPlan<2> plan;
  if (!planBroadcast<2>({&a.shape(), &b.shape()}, plan))
    return notBroadcastable(name, a.shape(), b.shape());
  return runBinary(BinaryRun{op, a, b, plan, out}, fmod);
}

Status rt::variadic(BinaryOp op, const std::vector<Tensor> &inputs, Tensor &out,
                    bool mean) {
  if (op != BinaryOp::Max && op != BinaryOp::Min && op != BinaryOp::Add)
    return Status::error(std::string("variadic: ") + binaryOpName(op) +
                         " is not Max, Min or Add");
  std::string name =
      op == BinaryOp::Add ? (mean ? "Mean" : "Sum") : binaryOpName(op);
  if (inputs.empty())
    return Status::error(name + ": needs at least one input");
  Shape shape = inputs[0].shape();
  for (const Tensor &t : inputs) {
    if (t.dtype() != inputs[0].dtype())
      return Status::error(name + ": dtypes " + dtypeString(inputs[0].dtype()) +
                           " and " + dtypeString(t.dtype()) + " differ");
    if (!broadcastShape(shape, t.shape(), shape))
      return notBroadcastable(name, shape, t.shape());
  }
  if (mean && !isFloatDType(inputs[0].dtype()))
    return unsupportedDType(name, inputs[0].dtype());
  Tensor result = inputs[0];
  for (size_t i = 1; i < inputs.size(); ++i)
    LLQ_RT_TRY(binary(op, result, inputs[i], result));
  if (mean && inputs.size() > 1)
    LLQ_RT_TRY(binary(BinaryOp::Div, result,
                      floatScalar(result.dtype(), double(inputs.size())),
                      result));
  out = inputs.size() == 1 ? result.clone() : std::move(result);
  return Status::ok();
}

Status rt::where(const Tensor &cond, const Tensor &x, const Tensor &y,
                 Tensor &out) {
  if (cond.dtype() != DType::Bool)
    return Status::error("Where: condition must be bool, got " +
                         cond.describe());
  if (x.dtype() != y.dtype())
    return Status::error("Where: dtypes " + dtypeString(x.dtype()) + " and " +
                         dtypeString(y.dtype()) + " differ");
  BroadcastPlan<3> plan;
  if (!planBroadcast<3>({&cond.shape(), &x.shape(), &y.shape()}, plan))
    return Status::error("Where: shapes " + shapeString(cond.shape()) + ", " +
                         shapeString(x.shape()) + " and " +
                         shapeString(y.shape()) + " do not broadcast");
  Tensor result = Tensor::empty(x.dtype(), plan.shape);
  // Selection moves bits, so one instantiation per element size serves
  // every dtype.
  auto select = [&](auto e) {
    using S = typename decltype(e)::Store;
    const uint8_t *pc = cond.data<uint8_t>();
    const S *px = static_cast<const S *>(x.raw());
    const S *py = static_cast<const S *>(y.raw());
    S *po = static_cast<S *>(result.raw());
    forEachRun(plan, [&](int64_t pos, const std::array<int64_t, 3> &offs,
                         int64_t n) {
      const uint8_t *rc = pc + offs[0];
      const S *rx = px + offs[1], *ry = py + offs[2];
      S *ro = po + pos;
      withStaticStrides<0>(plan.innerStride, [&](auto sc, auto sx, auto sy) {
        for (int64_t i = 0; i < n; ++i)
          ro[i] = rc[i * sc] ? rx[i * sx] : ry[i * sy];
      });
    });
  };
  switch (dtypeSize(x.dtype())) {
  case 1:
    select(Elem<DType::U8>());
    break;
  case 2:
    select(Elem<DType::U16>());
    break;
  case 4:
    select(Elem<DType::U32>());
    break;
  default:
    select(Elem<DType::U64>());
    break;
  }
  out = std::move(result);
  return Status::ok();
}

Status rt::clip(const Tensor &x, const Tensor &min, const Tensor &max,
                Tensor &out) {
  for (const Tensor *bound : {&min, &max})
    if (isPresent(*bound) &&
        (bound->numel() != 1 || bound->dtype() != x.dtype()))
      return Status::error(std::string("Clip: ") +
                           (bound == &min ? "min" : "max") +
                           " must be a one-element " + dtypeString(x.dtype()) +
                           " tensor, got " + bound->describe());
  Status status = unsupportedDType("Clip", x.dtype());
  dispatch(x.dtype(), kNumericTypes, [&](auto e) {
    using E = decltype(e);
    using T = typename E::Compute;
    auto bound = [](const Tensor &t, T absent) {
      return isPresent(t) ? E::load(t.data<typename E::Store>()[0]) : absent;
    };
    constexpr bool isFloat = std::is_floating_point_v<T>;
    T lo = bound(min, isFloat ? -std::numeric_limits<T>::infinity()
                              : std::numeric_limits<T>::lowest());
    T hi = bound(max, isFloat ? std::numeric_limits<T>::infinity()
                              : std::numeric_limits<T>::max());
    Tensor result = Tensor::empty(x.dtype(), x.shape());
    // max first, then min: min > max yields max everywhere, as ONNX says,
    // and NaN passes through both.
    map1<E, E>(x, result, [=](T v) { return std::min(std::max(v, lo), hi); });
    out = std::move(result);
    status = Status::ok();
  });
  return status;
}

Status rt::swiglu(const Tensor &gate, const Tensor &up, Tensor &out) {
  if (gate.shape() != up.shape() || gate.dtype() != up.dtype())
    return Status::error("SwiGLU: gate " + gate.describe() + " and up " +
                         up.describe() + " differ");
  BroadcastPlan<2> plan;
  (void)planBroadcast<2>({&gate.shape(), &up.shape()}, plan);
  Status status = unsupportedDType("SwiGLU", gate.dtype());
  dispatch(gate.dtype(), kFloatTypes, [&](auto e) {
    using E = decltype(e);
    using T = typename E::Compute;
    Tensor result = Tensor::empty(gate.dtype(), gate.shape());
    mapBroadcast2<E, E, E>(plan, gate, up, result,
                           [](T g, T u) { return g * sigmoidOf(g) * u; });
    out = std::move(result);
    status = Status::ok();
  });
  return status;
}
