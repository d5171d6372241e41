//===- Elementwise.h - Elementwise, reduction and norm kernels --*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The CPU kernels behind ONNX's elementwise operators (with numpy
// broadcasting), its reductions and the normalizations LLaMA-style models
// use. They follow ONNX semantics so that a graph runs here exactly as it
// does in onnxruntime, and they are written for activations of
// [batch, 2048, 576..14336]: contiguous, scalar and trailing-vector operands
// take fast paths and large ranges are split over the thread pool.
//
// Every kernel allocates its result and assigns it to `out` only once it
// has succeeded, so `out` may alias an input.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_RUNTIME_KERNELS_ELEMENTWISE_H
#define LLQ_RUNTIME_KERNELS_ELEMENTWISE_H

#include "llq/Runtime/Status.h"
#include "llq/Runtime/Tensor.h"

#include <cstdint>
#include <vector>

namespace llq::rt {

enum class BinaryOp {
  Add,
  Sub,
  Mul,
  Div,
  Pow,
  Max,
  Min,
  Mod,
  Equal,
  Less,
  LessOrEqual,
  Greater,
  GreaterOrEqual,
  And,
  Or,
  Xor,
  BitShiftLeft,
  BitShiftRight
};

/// The ONNX name of `op` ("Add", "BitShiftLeft"), used in error messages.
const char *binaryOpName(BinaryOp op);

/// Numpy/ONNX multidirectional broadcasting of two tensors of one dtype.
/// Arithmetic keeps the dtype (F32, F16, BF16, F64, I64, I32, I16, I8, U8;
/// 16-bit floats are computed in float and rounded back). Pow also takes an
/// exponent of another dtype (f32^i64, f16^f32, ...). Integer Div truncates
/// toward zero and fails on a zero divisor; Mod takes the divisor's sign for
/// integers, or the dividend's (C fmod) when `fmod` is set, which ONNX
/// requires for floats. Comparisons give Bool; And/Or/Xor take Bool;
/// BitShift takes unsigned integers; Max/Min propagate NaN.
Status binary(BinaryOp op, const Tensor &a, const Tensor &b, Tensor &out,
              bool fmod = false);

/// ONNX Max, Min, Sum (op Add) and Mean (op Add with `mean`) over N >= 1
/// inputs that broadcast together.
Status variadic(BinaryOp op, const std::vector<Tensor> &inputs, Tensor &out,
                bool mean = false);

enum class UnaryOp {
  Neg,
  Abs,
  Sqrt,
  Reciprocal,
  Exp,
  Log,
  Sin,
  Cos,
  Tan,
  Tanh,
  Sigmoid,
  Relu,
  Erf,
  Floor,
  Ceil,
  Round,
  Sign,
  Not,
  IsNaN,
  IsInf,
  Silu,
  GeluErf,
  GeluTanh,
  Softplus,
  Identity
};

/// The ONNX-style name of `op` ("Sqrt", "GeluTanh"), used in error messages.
const char *unaryOpName(UnaryOp op);

/// Float ops on F32/F16/BF16 (computed in float) and F64; Neg, Abs, Sign,
/// Relu and Identity also on signed integers (Abs, Relu, Identity also on
/// U8), Not on Bool, IsNaN/IsInf give Bool. Round is half to even.
Status unary(UnaryOp op, const Tensor &x, Tensor &out);

/// ONNX Clip: `min` and `max` are optional (undefined or default Tensor =
/// absent) one-element tensors of x's dtype; min > max clips everything to
/// max, and NaN passes through.
Status clip(const Tensor &x, const Tensor &min, const Tensor &max, Tensor &out);

/// ONNX Cast between F32, F16, BF16, F64, I64, I32, I16, I8, U8 (also U16,
/// U32, U64) and Bool. Float to integer truncates toward zero, saturates
/// out-of-range values and maps NaN to 0; integers narrow modulo 2^n; any to
/// Bool is x != 0; narrowing to F16/BF16 rounds to nearest even.
Status cast(const Tensor &x, DType to, Tensor &out);

/// ONNX Where: cond (Bool), x and y (one dtype, any) broadcast together.
Status where(const Tensor &cond, const Tensor &x, const Tensor &y, Tensor &out);

enum class ReduceOp { Sum, Mean, Max, Min, Prod, SumSquare, L2, LogSumExp };

/// The ONNX name of `op` ("ReduceSum", "ReduceLogSumExp").
const char *reduceOpName(ReduceOp op);

/// Reduces over `axes` (negative counts from the back; empty means all axes,
/// or a copy of x when `noopWithEmptyAxes`), keeping reduced axes as size 1
/// with `keepDims`. Floats (F32, F16, BF16, F64) accumulate in double;
/// I64/I32 support Sum, Mean, Max, Min, Prod and SumSquare, wrapping on
/// overflow. An empty reduction yields the op's identity (0, 1, -inf, +inf;
/// Mean of nothing is NaN).
Status reduce(ReduceOp op, const Tensor &x, const std::vector<int64_t> &axes,
              bool keepDims, bool noopWithEmptyAxes, Tensor &out);

/// ONNX ArgMax (`isMax`) / ArgMin along `axis`, giving I64 indices; ties go
/// to the first index, or the last with `selectLastIndex`; NaN counts as
/// the extreme value, as in numpy.
Status argReduce(bool isMax, const Tensor &x, int64_t axis, bool keepDims,
                 bool selectLastIndex, Tensor &out);

/// Softmax, or LogSoftmax with `log`, along one axis (opset 13), shifting
/// by the maximum for stability; F32, F16, BF16, F64.
Status softmax(const Tensor &x, int64_t axis, bool log, Tensor &out);

/// ONNX CumSum along `axis`, optionally exclusive and/or reversed; F32, F64
/// (accumulated in double), F16, BF16, I64, I32.
Status cumsum(const Tensor &x, int64_t axis, bool exclusive, bool reverse,
              Tensor &out);

/// RMSNorm over the last dimension, as onnxruntime's
/// SimplifiedLayerNormalization: y = x / sqrt(mean(x^2) + eps) * weight,
/// with weight (F32, F16 or BF16) of the last dimension's size, computed in
/// float with the mean of squares in double; y has x's dtype. With
/// `invStdDev`, also returns 1/sqrt(mean(x^2) + eps) as F32 of shape
/// x.shape[:-1] + [1].
Status rmsNorm(const Tensor &x, const Tensor &weight, float eps, Tensor &out,
               Tensor *invStdDev = nullptr);

/// SkipSimplifiedLayerNormalization: s = x + skip (+ bias [D] if defined),
/// out = rmsNorm(s), and `sum` = s. skip has x's shape or the shape of its
/// trailing dimensions (e.g. [S, D] against [B, S, D]).
Status skipRmsNorm(const Tensor &x, const Tensor &skip, const Tensor &weight,
                   const Tensor &bias, float eps, Tensor &out, Tensor &sum);

/// ONNX LayerNormalization: normalizes over dims [axis, rank) with mean and
/// variance in double, then scales by `weight` and adds `bias` (optional),
/// both with as many elements as the normalized dims.
Status layerNorm(const Tensor &x, const Tensor &weight, const Tensor &bias,
                 int64_t axis, float eps, Tensor &out);

/// SwiGLU: out = silu(gate) * up for gate and up of one shape and float
/// dtype (F32; F16/BF16 computed in float).
Status swiglu(const Tensor &gate, const Tensor &up, Tensor &out);

} // namespace llq::rt

#endif // LLQ_RUNTIME_KERNELS_ELEMENTWISE_H
