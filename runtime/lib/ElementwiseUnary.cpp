//===- ElementwiseUnary.cpp - Unary kernels and Cast ----------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "ElementwiseSupport.h"
#include "llq/Runtime/Kernels/Elementwise.h"

using namespace llq;
using namespace llq::rt;
using namespace llq::rt::detail;

const char *rt::unaryOpName(UnaryOp op) {
  switch (op) {
  case UnaryOp::Neg:
    return "Neg";
  case UnaryOp::Abs:
    return "Abs";
  case UnaryOp::Sqrt:
    return "Sqrt";
  case UnaryOp::Reciprocal:
    return "Reciprocal";
  case UnaryOp::Exp:
    return "Exp";
  case UnaryOp::Log:
    return "Log";
  case UnaryOp::Sin:
    return "Sin";
  case UnaryOp::Cos:
    return "Cos";
  case UnaryOp::Tan:
    return "Tan";
  case UnaryOp::Tanh:
    return "Tanh";
  case UnaryOp::Sigmoid:
    return "Sigmoid";
  case UnaryOp::Relu:
    return "Relu";
  case UnaryOp::Erf:
    return "Erf";
  case UnaryOp::Floor:
    return "Floor";
  case UnaryOp::Ceil:
    return "Ceil";
  case UnaryOp::Round:
    return "Round";
  case UnaryOp::Sign:
    return "Sign";
  case UnaryOp::Not:
    return "Not";
  case UnaryOp::IsNaN:
    return "IsNaN";
  case UnaryOp::IsInf:
    return "IsInf";
  case UnaryOp::Silu:
    return "Silu";
  case UnaryOp::GeluErf:
    return "GeluErf";
  case UnaryOp::GeluTanh:
    return "GeluTanh";
  case UnaryOp::Softplus:
    return "Softplus";
  case UnaryOp::Identity:
    return "Identity";
  }
  return "Unary";
}

namespace {

/// Allocates x's shape in `OE`'s dtype, maps `f` over x into it and stores
/// it in `out`.
template <typename IE, typename OE, typename F>
Status mapInto(const Tensor &x, Tensor &out, F f) {
  Tensor result = Tensor::empty(OE::kDType, x.shape());
  map1<IE, OE>(x, result, f);
  out = std::move(result);
  return Status::ok();
}

/// The ops defined for every number: integers wrap like onnxruntime's
/// two's complement arithmetic, floats follow IEEE (Sign keeps NaN, as
/// numpy does; Relu passes NaN through).
template <typename E>
Status runNumericOp(UnaryOp op, const Tensor &x, Tensor &out) {
  using T = typename E::Compute;
  switch (op) {
  case UnaryOp::Neg:
    return mapInto<E, E>(x, out, [](T v) { return subOf(T(0), v); });
  case UnaryOp::Abs:
    return mapInto<E, E>(x, out,
                         [](T v) { return v < T(0) ? subOf(T(0), v) : v; });
  case UnaryOp::Relu:
    return mapInto<E, E>(x, out, [](T v) { return v < T(0) ? T(0) : v; });
  case UnaryOp::Sign:
    return mapInto<E, E>(x, out, [](T v) {
      return v > T(0) ? T(1) : v < T(0) ? T(-1) : isNaN(v) ? v : T(0);
    });
  default:
    return unsupportedDType(unaryOpName(op), x.dtype());
  }
}

/// The transcendental and rounding ops, on float or double. The GELUs and
/// Softplus are written in forms that keep full relative precision for
/// negative inputs (erfc rather than 1 + erf, 1 + tanh(u) = 2 sigmoid(2u)).
template <typename E>
Status runFloatOp(UnaryOp op, const Tensor &x, Tensor &out) {
  using T = typename E::Compute;
  switch (op) {
  case UnaryOp::Sqrt:
    return mapInto<E, E>(x, out, [](T v) { return std::sqrt(v); });
  case UnaryOp::Reciprocal:
    return mapInto<E, E>(x, out, [](T v) { return T(1) / v; });
  case UnaryOp::Exp:
    return mapInto<E, E>(x, out, [](T v) { return std::exp(v); });
  case UnaryOp::Log:
    return mapInto<E, E>(x, out, [](T v) { return std::log(v); });
  case UnaryOp::Sin:
    return mapInto<E, E>(x, out, [](T v) { return std::sin(v); });
  case UnaryOp::Cos:
    return mapInto<E, E>(x, out, [](T v) { return std::cos(v); });
  case UnaryOp::Tan:
    return mapInto<E, E>(x, out, [](T v) { return std::tan(v); });
  case UnaryOp::Tanh:
    return mapInto<E, E>(x, out, [](T v) { return std::tanh(v); });
  case UnaryOp::Sigmoid:
    return mapInto<E, E>(x, out, [](T v) { return sigmoidOf(v); });
  case UnaryOp::Erf:
    return mapInto<E, E>(x, out, [](T v) { return std::erf(v); });
  case UnaryOp::Floor:
    return mapInto<E, E>(x, out, [](T v) { return std::floor(v); });
  case UnaryOp::Ceil:
    return mapInto<E, E>(x, out, [](T v) { return std::ceil(v); });
  case UnaryOp::Round:
    // The default rounding mode is to nearest, ties to even, as ONNX wants.
    return mapInto<E, E>(x, out, [](T v) { return std::nearbyint(v); });
  case UnaryOp::Silu:
    return mapInto<E, E>(x, out, [](T v) { return v * sigmoidOf(v); });
  case UnaryOp::GeluErf:
    return mapInto<E, E>(x, out, [](T v) {
      return T(0.5) * v * std::erfc(-v * T(0.70710678118654752440));
    });
  case UnaryOp::GeluTanh:
    return mapInto<E, E>(x, out, [](T v) {
      T u = T(0.79788456080286535588) * (v + T(0.044715) * v * v * v);
      return v * sigmoidOf(T(2) * u);
    });
  case UnaryOp::Softplus:
    return mapInto<E, E>(x, out, [](T v) {
      return v > T(0) ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
    });
  case UnaryOp::IsNaN:
    return mapInto<E, Elem<DType::Bool>>(
        x, out, [](T v) -> uint8_t { return std::isnan(v); });
  case UnaryOp::IsInf:
    return mapInto<E, Elem<DType::Bool>>(
        x, out, [](T v) -> uint8_t { return std::isinf(v); });
  default:
    return runNumericOp<E>(op, x, out);
  }
}

} // namespace

Status rt::unary(UnaryOp op, const Tensor &x, Tensor &out) {
  if (op == UnaryOp::Identity) {
    out = x.clone();
    return Status::ok();
  }
  if (op == UnaryOp::Not) {
    if (x.dtype() != DType::Bool)
      return unsupportedDType("Not", x.dtype());
    using B = Elem<DType::Bool>;
    return mapInto<B, B>(x, out, [](uint8_t v) -> uint8_t { return v == 0; });
  }
  Status status = unsupportedDType(unaryOpName(op), x.dtype());
  if (dispatch(x.dtype(), kFloatTypes,
               [&](auto e) { status = runFloatOp<decltype(e)>(op, x, out); }))
    return status;
  // Abs and Relu of an unsigned byte are the identity; Neg and Sign are
  // left to signed types, as in onnxruntime.
  auto run = [&](auto e) { status = runNumericOp<decltype(e)>(op, x, out); };
  if (!dispatch(x.dtype(), kSignedTypes, run) &&
      (op == UnaryOp::Abs || op == UnaryOp::Relu))
    dispatch(x.dtype(), kByteType, run);
  return status;
}

Status rt::cast(const Tensor &x, DType to, Tensor &out) {
  auto types =
      kFloatTypes + kSignedTypes + kByteType + kWideUnsigned + kBoolType;
  Status status = Status::error("Cast: " + dtypeString(x.dtype()) + " to " +
                                dtypeString(to) + " is not supported");
  dispatch(x.dtype(), types, [&](auto from) {
    dispatch(to, types, [&](auto target) {
      using IE = decltype(from);
      using OE = decltype(target);
      using Src = typename IE::Compute;
      using Dst = typename OE::Compute;
      // Going through float, F64 -> F16 rounds twice, as onnxruntime's
      // double -> float -> half does.
      status = mapInto<IE, OE>(x, out, [](Src v) -> Dst {
        if constexpr (OE::kDType == DType::Bool)
          return v != Src(0);
        else
          return convertValue<Dst>(v);
      });
    });
  });
  return status;
}
