//===- OpKernels.cpp - The kernel of each executable op -------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// One small function per op family: decode the op's attributes once and
// return the closure that calls the runtime kernel.
//
//===----------------------------------------------------------------------===//

#include "llq/Dialect/LLQ/IR/LLQ.h"
#include "llq/Execution/Program.h"
#include "llq/Execution/TypeUtils.h"
#include "OpKernels.h"
#include "llq/Runtime/Kernels/Attention.h"
#include "llq/Runtime/Kernels/Elementwise.h"
#include "llq/Runtime/Kernels/Linear.h"
#include "llq/Runtime/Kernels/Movement.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace llq;
using rt::Status;
using rt::Tensor;

using llq::detail::Inputs;
using llq::detail::KernelFn;
using llq::detail::Outputs;

static rt::BinaryOp toRuntime(BinaryKind kind) {
  switch (kind) {
  case BinaryKind::add: return rt::BinaryOp::Add;
  case BinaryKind::sub: return rt::BinaryOp::Sub;
  case BinaryKind::mul: return rt::BinaryOp::Mul;
  case BinaryKind::div: return rt::BinaryOp::Div;
  case BinaryKind::pow: return rt::BinaryOp::Pow;
  case BinaryKind::max: return rt::BinaryOp::Max;
  case BinaryKind::min: return rt::BinaryOp::Min;
  case BinaryKind::mod:
  case BinaryKind::fmod: return rt::BinaryOp::Mod;
  case BinaryKind::equal: return rt::BinaryOp::Equal;
  case BinaryKind::less: return rt::BinaryOp::Less;
  case BinaryKind::less_equal: return rt::BinaryOp::LessOrEqual;
  case BinaryKind::greater: return rt::BinaryOp::Greater;
  case BinaryKind::greater_equal: return rt::BinaryOp::GreaterOrEqual;
  case BinaryKind::logical_and: return rt::BinaryOp::And;
  case BinaryKind::logical_or: return rt::BinaryOp::Or;
  case BinaryKind::logical_xor: return rt::BinaryOp::Xor;
  case BinaryKind::shift_left: return rt::BinaryOp::BitShiftLeft;
  case BinaryKind::shift_right: return rt::BinaryOp::BitShiftRight;
  }
  llvm_unreachable("unknown binary kind");
}

static rt::UnaryOp toRuntime(UnaryKind kind) {
  switch (kind) {
  case UnaryKind::neg: return rt::UnaryOp::Neg;
  case UnaryKind::abs: return rt::UnaryOp::Abs;
  case UnaryKind::sqrt: return rt::UnaryOp::Sqrt;
  case UnaryKind::reciprocal: return rt::UnaryOp::Reciprocal;
  case UnaryKind::exp: return rt::UnaryOp::Exp;
  case UnaryKind::log: return rt::UnaryOp::Log;
  case UnaryKind::sin: return rt::UnaryOp::Sin;
  case UnaryKind::cos: return rt::UnaryOp::Cos;
  case UnaryKind::tan: return rt::UnaryOp::Tan;
  case UnaryKind::tanh: return rt::UnaryOp::Tanh;
  case UnaryKind::sigmoid: return rt::UnaryOp::Sigmoid;
  case UnaryKind::relu: return rt::UnaryOp::Relu;
  case UnaryKind::erf: return rt::UnaryOp::Erf;
  case UnaryKind::floor: return rt::UnaryOp::Floor;
  case UnaryKind::ceil: return rt::UnaryOp::Ceil;
  case UnaryKind::round: return rt::UnaryOp::Round;
  case UnaryKind::sign: return rt::UnaryOp::Sign;
  case UnaryKind::logical_not: return rt::UnaryOp::Not;
  case UnaryKind::isnan: return rt::UnaryOp::IsNaN;
  case UnaryKind::isinf: return rt::UnaryOp::IsInf;
  case UnaryKind::silu: return rt::UnaryOp::Silu;
  case UnaryKind::gelu: return rt::UnaryOp::GeluErf;
  case UnaryKind::gelu_tanh: return rt::UnaryOp::GeluTanh;
  case UnaryKind::softplus: return rt::UnaryOp::Softplus;
  case UnaryKind::identity: return rt::UnaryOp::Identity;
  }
  llvm_unreachable("unknown unary kind");
}

static std::optional<rt::ReduceOp> toRuntime(ReduceKind kind) {
  switch (kind) {
  case ReduceKind::sum: return rt::ReduceOp::Sum;
  case ReduceKind::mean: return rt::ReduceOp::Mean;
  case ReduceKind::max: return rt::ReduceOp::Max;
  case ReduceKind::min: return rt::ReduceOp::Min;
  case ReduceKind::prod: return rt::ReduceOp::Prod;
  case ReduceKind::sum_square: return rt::ReduceOp::SumSquare;
  case ReduceKind::l2: return rt::ReduceOp::L2;
  case ReduceKind::log_sum_exp: return rt::ReduceOp::LogSumExp;
  case ReduceKind::argmax:
  case ReduceKind::argmin: return std::nullopt;
  }
  llvm_unreachable("unknown reduce kind");
}

static std::vector<int64_t> toVector(ArrayRef<int64_t> values) {
  return std::vector<int64_t>(values.begin(), values.end());
}

/// Reads optional index operand `i` (undefined: empty).
static Status indexOperand(const Inputs &in, size_t i, std::vector<int64_t> &out,
                           const char *what) {
  out.clear();
  if (i >= in.size() || !in[i].defined() ||
      (in[i].numel() == 0 && in[i].rank() == 1))
    return Status::ok();
  return rt::toIndexVector(in[i], out, what);
}

/// Kernels of the ONNX-level graph ops.
static FailureOr<KernelFn> graphKernel(Operation *op, bool &handled) {
  return llvm::TypeSwitch<Operation *, FailureOr<KernelFn>>(op)
      .Case([](BinaryOp op) -> KernelFn {
        rt::BinaryOp kind = toRuntime(op.getKind());
        bool fmod = op.getKind() == BinaryKind::fmod;
        return [=](const Inputs &in, Outputs &out) {
          return rt::binary(kind, in[0], in[1], out[0], fmod);
        };
      })
      .Case([](UnaryOp op) -> KernelFn {
        rt::UnaryOp kind = toRuntime(op.getKind());
        return [=](const Inputs &in, Outputs &out) {
          return rt::unary(kind, in[0], out[0]);
        };
      })
      .Case([](CastOp op) -> FailureOr<KernelFn> {
        auto type = cast<ShapedType>(op.getType());
        std::optional<DType> to = getRuntimeDType(type.getElementType());
        if (!to)
          return op.emitError("cannot cast to ") << type.getElementType();
        return KernelFn([to = *to](const Inputs &in, Outputs &out) {
          return rt::cast(in[0], to, out[0]);
        });
      })
      .Case([](WhereOp) -> KernelFn {
        return [](const Inputs &in, Outputs &out) {
          return rt::where(in[0], in[1], in[2], out[0]);
        };
      })
      .Case([](ClipOp op) -> KernelFn {
        bool hasMin = op.getMin() != nullptr, hasMax = op.getMax() != nullptr;
        return [=](const Inputs &in, Outputs &out) {
          size_t i = 1;
          Tensor lo = hasMin ? in[i++] : Tensor();
          Tensor hi = hasMax ? in[i++] : Tensor();
          return rt::clip(in[0], lo, hi, out[0]);
        };
      })
      .Case([](MatMulOp) -> KernelFn {
        return [](const Inputs &in, Outputs &out) {
          return rt::matmul(in[0], in[1], out[0]);
        };
      })
      .Case([](GemmOp op) -> KernelFn {
        float alpha = op.getAlpha().convertToFloat();
        float beta = op.getBeta().convertToFloat();
        bool ta = op.getTransA(), tb = op.getTransB();
        return [=](const Inputs &in, Outputs &out) {
          Tensor c = in.size() > 2 ? in[2] : Tensor();
          return rt::gemm(in[0], in[1], c, alpha, beta, ta, tb, out[0]);
        };
      })
      .Case([](ReduceOp op) -> KernelFn {
        std::optional<rt::ReduceOp> kind = toRuntime(op.getKind());
        std::vector<int64_t> axes = toVector(op.getAxes());
        bool keep = op.getKeepdims(), noop = op.getNoopWithEmptyAxes();
        if (!kind) {
          bool isMax = op.getKind() == ReduceKind::argmax;
          bool last = op.getSelectLastIndex();
          int64_t axis = axes.empty() ? 0 : axes.front();
          return [=](const Inputs &in, Outputs &out) {
            return rt::argReduce(isMax, in[0], axis, keep, last, out[0]);
          };
        }
        return [=](const Inputs &in, Outputs &out) {
          return rt::reduce(*kind, in[0], axes, keep, noop, out[0]);
        };
      })
      .Case([](SoftmaxOp op) -> KernelFn {
        int64_t axis = op.getAxis();
        bool log = op.getLog();
        return [=](const Inputs &in, Outputs &out) {
          return rt::softmax(in[0], axis, log, out[0]);
        };
      })
      .Case([](CumSumOp op) -> KernelFn {
        int64_t axis = op.getAxis();
        bool exclusive = op.getExclusive(), reverse = op.getReverse();
        return [=](const Inputs &in, Outputs &out) {
          return rt::cumsum(in[0], axis, exclusive, reverse, out[0]);
        };
      })
      .Case([](ShapeOp op) -> KernelFn {
        int64_t start = op.getStart();
        std::optional<int64_t> end;
        if (op.getEnd())
          end = static_cast<int64_t>(*op.getEnd());
        return [=](const Inputs &in, Outputs &out) {
          return rt::shapeOf(in[0], start, end, out[0]);
        };
      })
      .Case([](SizeOp) -> KernelFn {
        return [](const Inputs &in, Outputs &out) {
          return rt::sizeOf(in[0], out[0]);
        };
      })
      .Case([](ReshapeOp op) -> KernelFn {
        bool allowZero = op.getAllowzero();
        return [=](const Inputs &in, Outputs &out) {
          return rt::reshape(in[0], in[1], allowZero, out[0]);
        };
      })
      .Case([](FlattenOp op) -> KernelFn {
        int64_t axis = op.getAxis();
        return [=](const Inputs &in, Outputs &out) {
          return rt::flatten(in[0], axis, out[0]);
        };
      })
      .Case([](SqueezeOp op) -> KernelFn {
        std::vector<int64_t> axes = toVector(op.getAxes());
        return [=](const Inputs &in, Outputs &out) {
          return rt::squeeze(in[0], axes, out[0]);
        };
      })
      .Case([](UnsqueezeOp op) -> KernelFn {
        std::vector<int64_t> axes = toVector(op.getAxes());
        return [=](const Inputs &in, Outputs &out) {
          return rt::unsqueeze(in[0], axes, out[0]);
        };
      })
      .Case([](TransposeOp op) -> KernelFn {
        std::vector<int64_t> perm = toVector(op.getPerm());
        return [=](const Inputs &in, Outputs &out) {
          return rt::transpose(in[0], perm, out[0]);
        };
      })
      .Case([](ConcatOp op) -> KernelFn {
        int64_t axis = op.getAxis();
        return [=](const Inputs &in, Outputs &out) {
          return rt::concat(in, axis, out[0]);
        };
      })
      .Case([](SliceOp op) -> KernelFn {
        bool hasAxes = op.getAxes() != nullptr;
        bool hasSteps = op.getSteps() != nullptr;
        return [=](const Inputs &in, Outputs &out) {
          std::vector<int64_t> starts, ends, axes, steps;
          LLQ_RT_TRY(rt::toIndexVector(in[1], starts, "Slice starts"));
          LLQ_RT_TRY(rt::toIndexVector(in[2], ends, "Slice ends"));
          size_t i = 3;
          if (hasAxes)
            LLQ_RT_TRY(indexOperand(in, i++, axes, "Slice axes"));
          if (hasSteps)
            LLQ_RT_TRY(indexOperand(in, i++, steps, "Slice steps"));
          return rt::slice(in[0], starts, ends, axes, steps, out[0]);
        };
      })
      .Case([](SplitOp op) -> KernelFn {
        int64_t axis = op.getAxis();
        int64_t parts = op.getNumResults();
        bool hasSizes = op.getSizes() != nullptr;
        return [=](const Inputs &in, Outputs &out) {
          std::vector<int64_t> sizes;
          if (hasSizes)
            LLQ_RT_TRY(indexOperand(in, 1, sizes, "Split sizes"));
          return rt::split(in[0], axis, sizes, parts, out);
        };
      })
      .Case([](ExpandOp) -> KernelFn {
        return [](const Inputs &in, Outputs &out) {
          std::vector<int64_t> shape;
          LLQ_RT_TRY(rt::toIndexVector(in[1], shape, "Expand shape"));
          return rt::expand(in[0], shape, out[0]);
        };
      })
      .Case([](TileOp) -> KernelFn {
        return [](const Inputs &in, Outputs &out) {
          std::vector<int64_t> repeats;
          LLQ_RT_TRY(rt::toIndexVector(in[1], repeats, "Tile repeats"));
          return rt::tile(in[0], repeats, out[0]);
        };
      })
      .Case([](GatherOp op) -> KernelFn {
        int64_t axis = op.getAxis();
        return [=](const Inputs &in, Outputs &out) {
          return rt::gather(in[0], in[1], axis, out[0]);
        };
      })
      .Case([](GatherElementsOp op) -> KernelFn {
        int64_t axis = op.getAxis();
        return [=](const Inputs &in, Outputs &out) {
          return rt::gatherElements(in[0], in[1], axis, out[0]);
        };
      })
      .Case([](GatherNDOp op) -> KernelFn {
        int64_t batchDims = op.getBatchDims();
        return [=](const Inputs &in, Outputs &out) {
          return rt::gatherND(in[0], in[1], batchDims, out[0]);
        };
      })
      .Case([](ScatterNDOp op) -> KernelFn {
        std::string reduction = op.getReduction().str();
        return [=](const Inputs &in, Outputs &out) {
          return rt::scatterND(in[0], in[1], in[2], reduction, out[0]);
        };
      })
      .Case([](ScatterElementsOp op) -> KernelFn {
        std::string reduction = op.getReduction().str();
        int64_t axis = op.getAxis();
        return [=](const Inputs &in, Outputs &out) {
          return rt::scatterElements(in[0], in[1], in[2], axis, reduction,
                                     out[0]);
        };
      })
      .Case([](TriluOp op) -> KernelFn {
        bool upper = op.getUpper();
        return [=](const Inputs &in, Outputs &out) {
          std::vector<int64_t> k;
          LLQ_RT_TRY(indexOperand(in, 1, k, "Trilu k"));
          return rt::trilu(in[0], upper, k.empty() ? 0 : k[0], out[0]);
        };
      })
      .Case([](RangeOp) -> KernelFn {
        return [](const Inputs &in, Outputs &out) {
          return rt::range(in[0], in[1], in[2], out[0]);
        };
      })
      .Case([](ConstantOfShapeOp op) -> FailureOr<KernelFn> {
        auto value = dyn_cast<DenseElementsAttr>(op.getValue());
        std::optional<DType> dtype =
            value ? getRuntimeDType(value.getElementType()) : std::nullopt;
        if (!dtype || value.getNumElements() != 1)
          return op.emitError("expects a one-element dense value");
        Tensor fill = Tensor::empty(*dtype, {1});
        // Materialized once; the kernel copies it into each result.
        if (dtype == DType::F32)
          *fill.data<float>() = value.getSplatValue<APFloat>().convertToFloat();
        else if (isa<FloatType>(value.getElementType()))
          return op.emitError("supports f32 float fill values, got ")
                 << value.getElementType();
        else {
          uint64_t bits = value.getSplatValue<APInt>().getSExtValue();
          std::memcpy(fill.raw(), &bits, dtypeSize(*dtype));
        }
        return KernelFn([fill](const Inputs &in, Outputs &out) {
          std::vector<int64_t> shape;
          LLQ_RT_TRY(rt::toIndexVector(in[0], shape, "ConstantOfShape shape"));
          return rt::constantOfShape(shape, fill, out[0]);
        });
      })
      .Case([](PadOp op) -> KernelFn {
        std::string mode = op.getMode().str();
        bool hasValue = op.getConstantValue() != nullptr;
        bool hasAxes = op.getAxes() != nullptr;
        return [=](const Inputs &in, Outputs &out) {
          std::vector<int64_t> pads, axes;
          LLQ_RT_TRY(rt::toIndexVector(in[1], pads, "Pad pads"));
          size_t i = 2;
          Tensor value = hasValue ? in[i++] : Tensor();
          if (hasAxes)
            LLQ_RT_TRY(indexOperand(in, i, axes, "Pad axes"));
          return rt::pad(in[0], pads, value, axes, mode, out[0]);
        };
      })
      .Default([&](Operation *) {
        handled = false;
        return failure();
      });
}

/// Kernels of the model-level ops.
static FailureOr<KernelFn> modelKernel(Operation *op,
                                       const ProgramOptions &options,
                                       bool &handled) {
  return llvm::TypeSwitch<Operation *, FailureOr<KernelFn>>(op)
      .Case([](RMSNormOp op) -> KernelFn {
        float eps = op.getEpsilon().convertToFloat();
        return [=](const Inputs &in, Outputs &out) {
          return rt::rmsNorm(in[0], in[1], eps, out[0]);
        };
      })
      .Case([](SkipRMSNormOp op) -> KernelFn {
        float eps = op.getEpsilon().convertToFloat();
        return [=](const Inputs &in, Outputs &out) {
          Tensor bias = in.size() > 3 ? in[3] : Tensor();
          return rt::skipRmsNorm(in[0], in[1], in[2], bias, eps, out[0],
                                 out[1]);
        };
      })
      .Case([](LayerNormOp op) -> KernelFn {
        float eps = op.getEpsilon().convertToFloat();
        int64_t axis = op.getAxis();
        return [=](const Inputs &in, Outputs &out) {
          Tensor bias = in.size() > 2 ? in[2] : Tensor();
          return rt::layerNorm(in[0], in[1], bias, axis, eps, out[0]);
        };
      })
      .Case([](RotaryOp op) -> KernelFn {
        bool interleaved = op.getInterleaved();
        return [=](const Inputs &in, Outputs &out) {
          return rt::rotary(in[0], in[1], in[2], interleaved, out[0]);
        };
      })
      .Case([](AttentionOp op) -> KernelFn {
        float scale = op.getScale().convertToFloat();
        bool causal = op.getCausal();
        return [=](const Inputs &in, Outputs &out) {
          Tensor mask = in.size() > 3 ? in[3] : Tensor();
          return rt::attention(in[0], in[1], in[2], mask, scale, causal,
                               out[0]);
        };
      })
      .Case([](SwiGLUOp) -> KernelFn {
        return [](const Inputs &in, Outputs &out) {
          return rt::swiglu(in[0], in[1], out[0]);
        };
      })
      .Case([](tensor::CastOp) -> KernelFn {
        // A static/dynamic shape refinement: the value is unchanged.
        return [](const Inputs &in, Outputs &out) {
          out[0] = in[0];
          return Status::ok();
        };
      })
      .Case([&](ObserveOp op) -> KernelFn {
        if (!options.observe)
          return KernelFn();
        std::string key = op.getKey().str();
        ObserveFn observe = options.observe;
        return [=](const Inputs &in, Outputs &) {
          observe(key, in[0]);
          return Status::ok();
        };
      })
      .Default([&](Operation *) {
        handled = false;
        return failure();
      });
}

FailureOr<KernelFn> llq::detail::lookupOpKernel(Operation *op,
                                                const ProgramOptions &options,
                                                bool &handled) {
  handled = true;
  FailureOr<KernelFn> kernel = graphKernel(op, handled);
  if (handled)
    return kernel;
  handled = true;
  return modelKernel(op, options, handled);
}
