//===- OpHandlers.cpp - One handler per ONNX op ---------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Each handler maps one ONNX node to llq ops, following the operator's
// definition for the node's opset (inputs that became attributes or the
// reverse across opsets are both accepted).
//
//===----------------------------------------------------------------------===//

#include "Importer.h"

#include "mlir/IR/BuiltinAttributes.h"

using namespace mlir;
using namespace llq;

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

/// The element type of comparisons and logical ops.
static Type boolType(NodeContext &c) { return c.builder().getI1Type(); }

static bool isComparison(BinaryKind kind) {
  switch (kind) {
  case BinaryKind::equal:
  case BinaryKind::less:
  case BinaryKind::less_equal:
  case BinaryKind::greater:
  case BinaryKind::greater_equal:
  case BinaryKind::logical_and:
  case BinaryKind::logical_or:
  case BinaryKind::logical_xor:
    return true;
  default:
    return false;
  }
}

static Value binary(NodeContext &c, BinaryKind kind, Value a, Value b,
                    Type resultType) {
  return c.builder().create<llq::BinaryOp>(
      c.loc(), resultType, BinaryKindAttr::get(c.context(), kind), a, b);
}

template <BinaryKind Kind>
static LogicalResult binaryHandler(NodeContext &c) {
  if (!c.input(0) || !c.input(1))
    return c.error("expects two inputs");
  Type type = isComparison(Kind) ? c.resultType(0, boolType(c))
                                 : c.resultTypeLike(0);
  c.setResult(0, binary(c, Kind, c.input(0), c.input(1), type));
  return success();
}

static LogicalResult modHandler(NodeContext &c) {
  BinaryKind kind = c.intAttr("fmod", 0) ? BinaryKind::fmod : BinaryKind::mod;
  c.setResult(0, binary(c, kind, c.input(0), c.input(1), c.resultTypeLike(0)));
  return success();
}

static LogicalResult bitShiftHandler(NodeContext &c) {
  std::string dir = c.stringAttr("direction", "");
  if (dir != "LEFT" && dir != "RIGHT")
    return c.error("expects direction LEFT or RIGHT, got '") << dir << "'";
  BinaryKind kind =
      dir == "LEFT" ? BinaryKind::shift_left : BinaryKind::shift_right;
  c.setResult(0, binary(c, kind, c.input(0), c.input(1), c.resultTypeLike(0)));
  return success();
}

/// Max, Min, Sum and Mean of any number of inputs, as a chain of binaries.
template <BinaryKind Kind, bool Mean = false>
static LogicalResult variadicHandler(NodeContext &c) {
  if (c.inputs.empty())
    return c.error("expects at least one input");
  Value acc = c.input(0);
  Type type = c.resultTypeLike(0);
  for (size_t i = 1; i < c.inputs.size(); ++i)
    acc = binary(c, Kind, acc, c.input(i), type);
  if (Mean && c.inputs.size() > 1)
    acc = binary(c, BinaryKind::div, acc,
                 c.f32Scalar(static_cast<float>(c.inputs.size())), type);
  if (c.inputs.size() == 1)
    acc = c.builder().create<llq::UnaryOp>(
        c.loc(), type, UnaryKindAttr::get(c.context(), UnaryKind::identity),
        acc);
  c.setResult(0, acc);
  return success();
}

template <UnaryKind Kind> static LogicalResult unaryHandler(NodeContext &c) {
  bool toBool = Kind == UnaryKind::isnan || Kind == UnaryKind::isinf;
  Type type = toBool ? c.resultType(0, boolType(c)) : c.resultTypeLike(0);
  c.setResult(0, c.builder().create<llq::UnaryOp>(
                     c.loc(), type, UnaryKindAttr::get(c.context(), Kind),
                     c.input(0)));
  return success();
}

static LogicalResult geluHandler(NodeContext &c) {
  std::string approx = c.stringAttr("approximate", "none");
  UnaryKind kind = approx == "tanh" ? UnaryKind::gelu_tanh : UnaryKind::gelu;
  c.setResult(0, c.builder().create<llq::UnaryOp>(
                     c.loc(), c.resultTypeLike(0),
                     UnaryKindAttr::get(c.context(), kind), c.input(0)));
  return success();
}

/// Identity, and Dropout in inference (its mask output is not supported).
static LogicalResult identityHandler(NodeContext &c) {
  if (c.numOutputs() > 1 && !c.node.outputs[1].empty())
    return c.error("the mask output of Dropout is not supported");
  return unaryHandler<UnaryKind::identity>(c);
}

static LogicalResult castHandler(NodeContext &c) {
  Type elt = getElementType(c.context(), c.intAttr("to", 0));
  if (!elt)
    return c.error("cannot cast to ONNX type ")
           << onnx::elemTypeName(c.intAttr("to", 0));
  c.setResult(0, c.builder().create<llq::CastOp>(c.loc(), c.resultType(0, elt),
                                                 c.input(0)));
  return success();
}

static LogicalResult castLikeHandler(NodeContext &c) {
  Type elt = cast<ShapedType>(c.input(1).getType()).getElementType();
  c.setResult(0, c.builder().create<llq::CastOp>(c.loc(), c.resultType(0, elt),
                                                 c.input(0)));
  return success();
}

static LogicalResult whereHandler(NodeContext &c) {
  c.setResult(0, c.builder().create<llq::WhereOp>(
                     c.loc(), c.resultTypeLike(0, 1), c.input(0), c.input(1),
                     c.input(2)));
  return success();
}

static LogicalResult clipHandler(NodeContext &c) {
  c.setResult(0, c.builder().create<llq::ClipOp>(c.loc(), c.resultTypeLike(0),
                                                 c.input(0), c.input(1),
                                                 c.input(2)));
  return success();
}

//===----------------------------------------------------------------------===//
// Contractions and reductions
//===----------------------------------------------------------------------===//

static LogicalResult matmulHandler(NodeContext &c) {
  auto op = c.builder().create<llq::MatMulOp>(c.loc(), c.resultTypeLike(0),
                                              c.input(0), c.input(1));
  // Exporters name module scopes in node metadata (torch.onnx) or in the
  // node name (TorchScript: /model/layers.0/mlp/up_proj/MatMul); raising
  // uses it to name linear layers after their modules.
  std::string_view scopes = c.node.metadataValue("pkg.torch.onnx.name_scopes");
  if (!scopes.empty())
    op->setAttr("llq.scopes", c.builder().getStringAttr(
                                  StringRef(scopes.data(), scopes.size())));
  else if (!c.node.name.empty())
    op->setAttr("llq.scopes", c.builder().getStringAttr(c.node.name));
  c.setResult(0, op);
  return success();
}

static LogicalResult gemmHandler(NodeContext &c) {
  auto op = c.builder().create<llq::GemmOp>(
      c.loc(), c.resultTypeLike(0), c.input(0), c.input(1), c.input(2),
      llvm::APFloat(c.floatAttr("alpha", 1.0f)),
      llvm::APFloat(c.floatAttr("beta", 1.0f)), c.intAttr("transA", 0) != 0,
      c.intAttr("transB", 0) != 0);
  if (!c.node.name.empty())
    op->setAttr("llq.scopes", c.builder().getStringAttr(c.node.name));
  c.setResult(0, op);
  return success();
}

/// Axes of a reduction: an attribute before opset 18 (13 for ReduceSum),
/// an optional constant input after.
static FailureOr<std::vector<int64_t>> reductionAxes(NodeContext &c) {
  if (auto axes = c.intsAttr("axes"))
    return *axes;
  if (c.input(1))
    return c.constantInts(1, "axes");
  return std::vector<int64_t>();
}

template <ReduceKind Kind> static LogicalResult reduceHandler(NodeContext &c) {
  FailureOr<std::vector<int64_t>> axes = reductionAxes(c);
  if (failed(axes))
    return failure();
  bool keep = c.intAttr("keepdims", 1) != 0;
  auto op = c.builder().create<llq::ReduceOp>(
      c.loc(), c.resultTypeLike(0), Kind, c.input(0), *axes, keep,
      c.intAttr("noop_with_empty_axes", 0) != 0, false);
  c.setResult(0, op);
  return success();
}

template <ReduceKind Kind> static LogicalResult argHandler(NodeContext &c) {
  auto op = c.builder().create<llq::ReduceOp>(
      c.loc(), c.resultType(0, c.builder().getI64Type()), Kind, c.input(0),
      ArrayRef<int64_t>{c.intAttr("axis", 0)}, c.intAttr("keepdims", 1) != 0,
      false, c.intAttr("select_last_index", 0) != 0);
  c.setResult(0, op);
  return success();
}

template <bool Log> static LogicalResult softmaxHandler(NodeContext &c) {
  c.setResult(0, c.builder().create<llq::SoftmaxOp>(
                     c.loc(), c.resultTypeLike(0), c.input(0),
                     c.intAttr("axis", -1), Log));
  return success();
}

static LogicalResult cumsumHandler(NodeContext &c) {
  FailureOr<std::vector<int64_t>> axis = c.constantInts(1, "axis");
  if (failed(axis) || axis->size() != 1)
    return failure();
  c.setResult(0, c.builder().create<llq::CumSumOp>(
                     c.loc(), c.resultTypeLike(0), c.input(0), axis->front(),
                     c.intAttr("exclusive", 0) != 0,
                     c.intAttr("reverse", 0) != 0));
  return success();
}

//===----------------------------------------------------------------------===//
// Shapes and data movement
//===----------------------------------------------------------------------===//

static Type i64Type(NodeContext &c) { return c.builder().getI64Type(); }

static LogicalResult shapeHandler(NodeContext &c) {
  IntegerAttr end;
  if (c.hasAttr("end"))
    end = c.builder().getI64IntegerAttr(c.intAttr("end", 0));
  c.setResult(0, c.builder().create<llq::ShapeOp>(
                     c.loc(), c.resultType(0, i64Type(c)), c.input(0),
                     c.builder().getI64IntegerAttr(c.intAttr("start", 0)),
                     end));
  return success();
}

static LogicalResult sizeHandler(NodeContext &c) {
  c.setResult(0, c.builder().create<llq::SizeOp>(
                     c.loc(), c.resultType(0, i64Type(c)), c.input(0)));
  return success();
}

static LogicalResult reshapeHandler(NodeContext &c) {
  c.setResult(0, c.builder().create<llq::ReshapeOp>(
                     c.loc(), c.resultTypeLike(0), c.input(0), c.input(1),
                     c.intAttr("allowzero", 0) != 0));
  return success();
}

static LogicalResult flattenHandler(NodeContext &c) {
  c.setResult(0, c.builder().create<llq::FlattenOp>(
                     c.loc(), c.resultTypeLike(0), c.input(0),
                     c.builder().getI64IntegerAttr(c.intAttr("axis", 1))));
  return success();
}

/// Axes of Squeeze/Unsqueeze: an attribute before opset 13, an input after.
static FailureOr<std::vector<int64_t>> squeezeAxes(NodeContext &c) {
  if (auto axes = c.intsAttr("axes"))
    return *axes;
  if (c.input(1))
    return c.constantInts(1, "axes");
  return std::vector<int64_t>();
}

template <typename OpTy> static LogicalResult squeezeHandler(NodeContext &c) {
  FailureOr<std::vector<int64_t>> axes = squeezeAxes(c);
  if (failed(axes))
    return failure();
  if (std::is_same_v<OpTy, llq::UnsqueezeOp> && axes->empty())
    return c.error("expects axes");
  c.setResult(0, c.builder().create<OpTy>(
                     c.loc(), c.resultTypeLike(0), c.input(0),
                     c.builder().getDenseI64ArrayAttr(*axes)));
  return success();
}

static LogicalResult transposeHandler(NodeContext &c) {
  std::vector<int64_t> perm;
  if (auto p = c.intsAttr("perm")) {
    perm = *p;
  } else {
    auto type = dyn_cast<RankedTensorType>(c.input(0).getType());
    if (!type)
      return c.error("needs 'perm' or an input of known rank");
    for (int64_t i = type.getRank() - 1; i >= 0; --i)
      perm.push_back(i);
  }
  c.setResult(0, c.builder().create<llq::TransposeOp>(
                     c.loc(), c.resultTypeLike(0), c.input(0),
                     c.builder().getDenseI64ArrayAttr(perm)));
  return success();
}

static LogicalResult concatHandler(NodeContext &c) {
  SmallVector<Value> inputs;
  for (Value v : c.inputs)
    if (v)
      inputs.push_back(v);
  c.setResult(0, c.builder().create<llq::ConcatOp>(
                     c.loc(), c.resultTypeLike(0), inputs,
                     c.builder().getI64IntegerAttr(c.intAttr("axis", 0))));
  return success();
}

static LogicalResult sliceHandler(NodeContext &c) {
  if (!c.input(1) || !c.input(2))
    return c.error("expects starts and ends inputs");
  c.setResult(0, c.builder().create<llq::SliceOp>(
                     c.loc(), c.resultTypeLike(0), c.input(0), c.input(1),
                     c.input(2), c.input(3), c.input(4)));
  return success();
}

static LogicalResult splitHandler(NodeContext &c) {
  Value sizes = c.input(1);
  if (!sizes)
    if (auto split = c.intsAttr("split"))
      sizes = c.i64Constant(*split);
  SmallVector<Type> types;
  for (size_t i = 0; i < c.numOutputs(); ++i)
    types.push_back(c.resultTypeLike(i));
  auto op = c.builder().create<llq::SplitOp>(
      c.loc(), types, c.input(0), sizes,
      c.builder().getI64IntegerAttr(c.intAttr("axis", 0)));
  for (size_t i = 0; i < c.numOutputs(); ++i)
    c.setResult(i, op.getResult(i));
  return success();
}

template <typename OpTy> static LogicalResult twoOperandHandler(NodeContext &c) {
  c.setResult(0, c.builder().create<OpTy>(c.loc(), c.resultTypeLike(0),
                                          c.input(0), c.input(1)));
  return success();
}

template <typename OpTy> static LogicalResult gatherHandler(NodeContext &c) {
  c.setResult(0, c.builder().create<OpTy>(
                     c.loc(), c.resultTypeLike(0), c.input(0), c.input(1),
                     c.builder().getI64IntegerAttr(c.intAttr("axis", 0))));
  return success();
}

static LogicalResult gatherNDHandler(NodeContext &c) {
  c.setResult(0, c.builder().create<llq::GatherNDOp>(
                     c.loc(), c.resultTypeLike(0), c.input(0), c.input(1),
                     c.builder().getI64IntegerAttr(c.intAttr("batch_dims", 0))));
  return success();
}

static LogicalResult scatterNDHandler(NodeContext &c) {
  c.setResult(0, c.builder().create<llq::ScatterNDOp>(
                     c.loc(), c.resultTypeLike(0), c.input(0), c.input(1),
                     c.input(2), c.stringAttr("reduction", "none")));
  return success();
}

static LogicalResult scatterElementsHandler(NodeContext &c) {
  c.setResult(0, c.builder().create<llq::ScatterElementsOp>(
                     c.loc(), c.resultTypeLike(0), c.input(0), c.input(1),
                     c.input(2), c.intAttr("axis", 0),
                     c.stringAttr("reduction", "none")));
  return success();
}

static LogicalResult triluHandler(NodeContext &c) {
  c.setResult(0, c.builder().create<llq::TriluOp>(
                     c.loc(), c.resultTypeLike(0), c.input(0), c.input(1),
                     c.intAttr("upper", 1) != 0));
  return success();
}

static LogicalResult rangeHandler(NodeContext &c) {
  c.setResult(0, c.builder().create<llq::RangeOp>(
                     c.loc(), c.resultTypeLike(0), c.input(0), c.input(1),
                     c.input(2)));
  return success();
}

/// The value of a tensor attribute as an MLIR constant.
static FailureOr<Value> tensorAttrValue(NodeContext &c,
                                        const onnx::TensorData &t) {
  return c.importer.materialize(t, c.loc());
}

static LogicalResult constantOfShapeHandler(NodeContext &c) {
  DenseElementsAttr value;
  if (const onnx::Attribute *a = c.node.attribute("value")) {
    if (a->tensors.size() != 1)
      return c.error("expects a tensor 'value'");
    FailureOr<Value> v = tensorAttrValue(c, a->tensors.front());
    if (failed(v))
      return failure();
    auto cst = v->getDefiningOp<arith::ConstantOp>();
    value = cst ? dyn_cast<DenseElementsAttr>(cst.getValue()) : nullptr;
    if (cst)
      cst.erase();
    if (!value || value.getNumElements() != 1)
      return c.error("expects a one-element 'value'");
  } else {
    value = DenseElementsAttr::get(
        RankedTensorType::get({1}, c.builder().getF32Type()), 0.0f);
  }
  c.setResult(0, c.builder().create<llq::ConstantOfShapeOp>(
                     c.loc(), c.resultType(0, value.getElementType()),
                     c.input(0), value));
  return success();
}

static LogicalResult constantHandler(NodeContext &c) {
  const onnx::Attribute *a = c.node.attributes.empty()
                                 ? nullptr
                                 : &c.node.attributes.front();
  if (!a)
    return c.error("has no value attribute");
  OpBuilder &b = c.builder();
  Value result;
  auto scalarOrVector = [&](Type elt, auto values, bool scalar) {
    SmallVector<int64_t> shape;
    if (!scalar)
      shape.push_back(static_cast<int64_t>(values.size()));
    auto type = RankedTensorType::get(shape, elt);
    return b.create<arith::ConstantOp>(c.loc(),
                                       DenseElementsAttr::get(type, values))
        .getResult();
  };
  if (a->name == "value") {
    if (a->tensors.size() != 1)
      return c.error("expects one tensor in 'value'");
    FailureOr<Value> v = tensorAttrValue(c, a->tensors.front());
    if (failed(v))
      return failure();
    result = *v;
  } else if (a->name == "value_float") {
    result = scalarOrVector(b.getF32Type(), ArrayRef<float>(a->f), true);
  } else if (a->name == "value_floats") {
    result = scalarOrVector(b.getF32Type(), ArrayRef<float>(a->floats), false);
  } else if (a->name == "value_int") {
    result = scalarOrVector(b.getI64Type(), ArrayRef<int64_t>(a->i), true);
  } else if (a->name == "value_ints") {
    result = scalarOrVector(b.getI64Type(), ArrayRef<int64_t>(a->ints), false);
  } else {
    return c.error("does not support the '") << a->name << "' form";
  }
  c.setResult(0, result);
  return success();
}

static LogicalResult padHandler(NodeContext &c) {
  c.setResult(0, c.builder().create<llq::PadOp>(
                     c.loc(), c.resultTypeLike(0), c.input(0), c.input(1),
                     c.input(2), c.input(3), c.stringAttr("mode", "constant")));
  return success();
}

//===----------------------------------------------------------------------===//
// Normalizations (ONNX and ONNX Runtime fused forms)
//===----------------------------------------------------------------------===//

/// Only the outputs a handler produces may be consumed.
static LogicalResult onlyOutputs(NodeContext &c, size_t n) {
  for (size_t i = n; i < c.numOutputs(); ++i)
    if (!c.node.outputs[i].empty())
      return c.error("output ") << i << " ('" << c.node.outputs[i]
                                << "') is not supported";
  return success();
}

static LogicalResult layerNormHandler(NodeContext &c) {
  if (failed(onlyOutputs(c, 1)))
    return failure();
  c.setResult(0, c.builder().create<llq::LayerNormOp>(
                     c.loc(), c.resultTypeLike(0), c.input(0), c.input(1),
                     c.input(2), c.intAttr("axis", -1),
                     llvm::APFloat(c.floatAttr("epsilon", 1e-5f))));
  return success();
}

static LogicalResult rmsNormHandler(NodeContext &c) {
  if (failed(onlyOutputs(c, 1)))
    return failure();
  auto type = dyn_cast<RankedTensorType>(c.input(0).getType());
  int64_t axis = c.intAttr("axis", -1);
  if (axis != -1 && !(type && axis == type.getRank() - 1))
    return c.error("supports normalization over the last axis only, got axis ")
           << axis;
  c.setResult(0, c.builder().create<llq::RMSNormOp>(
                     c.loc(), c.resultTypeLike(0), c.input(0), c.input(1),
                     c.builder().getF32FloatAttr(c.floatAttr("epsilon", 1e-5f))));
  return success();
}

static LogicalResult skipRmsNormHandler(NodeContext &c) {
  // Outputs: y, mean (unused), inv_std_var (unused), input_skip_bias_sum.
  for (size_t i : {1, 2})
    if (i < c.numOutputs() && !c.node.outputs[i].empty())
      return c.error("output ") << i << " is not supported";
  auto op = c.builder().create<llq::SkipRMSNormOp>(
      c.loc(), c.resultTypeLike(0), c.resultTypeLike(3), c.input(0),
      c.input(1), c.input(2), c.input(3),
      c.builder().getF32FloatAttr(c.floatAttr("epsilon", 1e-5f)));
  c.setResult(0, op.getResult());
  c.setResult(3, op.getSum());
  return success();
}

//===----------------------------------------------------------------------===//
// The table
//===----------------------------------------------------------------------===//

LogicalResult importRotaryEmbedding(NodeContext &c);
LogicalResult importGroupQueryAttention(NodeContext &c);
LogicalResult importMatMulNBits(NodeContext &c);

const llvm::StringMap<OpHandler> &llq::getOpHandlers() {
  static const llvm::StringMap<OpHandler> table = {
      {"Add", binaryHandler<BinaryKind::add>},
      {"Sub", binaryHandler<BinaryKind::sub>},
      {"Mul", binaryHandler<BinaryKind::mul>},
      {"Div", binaryHandler<BinaryKind::div>},
      {"Pow", binaryHandler<BinaryKind::pow>},
      {"Mod", modHandler},
      {"BitShift", bitShiftHandler},
      {"Equal", binaryHandler<BinaryKind::equal>},
      {"Less", binaryHandler<BinaryKind::less>},
      {"LessOrEqual", binaryHandler<BinaryKind::less_equal>},
      {"Greater", binaryHandler<BinaryKind::greater>},
      {"GreaterOrEqual", binaryHandler<BinaryKind::greater_equal>},
      {"And", binaryHandler<BinaryKind::logical_and>},
      {"Or", binaryHandler<BinaryKind::logical_or>},
      {"Xor", binaryHandler<BinaryKind::logical_xor>},
      {"Max", variadicHandler<BinaryKind::max>},
      {"Min", variadicHandler<BinaryKind::min>},
      {"Sum", variadicHandler<BinaryKind::add>},
      {"Mean", variadicHandler<BinaryKind::add, true>},
      {"Neg", unaryHandler<UnaryKind::neg>},
      {"Abs", unaryHandler<UnaryKind::abs>},
      {"Sqrt", unaryHandler<UnaryKind::sqrt>},
      {"Reciprocal", unaryHandler<UnaryKind::reciprocal>},
      {"Exp", unaryHandler<UnaryKind::exp>},
      {"Log", unaryHandler<UnaryKind::log>},
      {"Sin", unaryHandler<UnaryKind::sin>},
      {"Cos", unaryHandler<UnaryKind::cos>},
      {"Tan", unaryHandler<UnaryKind::tan>},
      {"Tanh", unaryHandler<UnaryKind::tanh>},
      {"Sigmoid", unaryHandler<UnaryKind::sigmoid>},
      {"Relu", unaryHandler<UnaryKind::relu>},
      {"Erf", unaryHandler<UnaryKind::erf>},
      {"Floor", unaryHandler<UnaryKind::floor>},
      {"Ceil", unaryHandler<UnaryKind::ceil>},
      {"Round", unaryHandler<UnaryKind::round>},
      {"Sign", unaryHandler<UnaryKind::sign>},
      {"Not", unaryHandler<UnaryKind::logical_not>},
      {"IsNaN", unaryHandler<UnaryKind::isnan>},
      {"IsInf", unaryHandler<UnaryKind::isinf>},
      {"Softplus", unaryHandler<UnaryKind::softplus>},
      {"Gelu", geluHandler},
      {"Identity", identityHandler},
      {"Dropout", identityHandler},
      {"Cast", castHandler},
      {"CastLike", castLikeHandler},
      {"Where", whereHandler},
      {"Clip", clipHandler},
      {"MatMul", matmulHandler},
      {"Gemm", gemmHandler},
      {"ReduceMean", reduceHandler<ReduceKind::mean>},
      {"ReduceSum", reduceHandler<ReduceKind::sum>},
      {"ReduceMax", reduceHandler<ReduceKind::max>},
      {"ReduceMin", reduceHandler<ReduceKind::min>},
      {"ReduceProd", reduceHandler<ReduceKind::prod>},
      {"ReduceSumSquare", reduceHandler<ReduceKind::sum_square>},
      {"ReduceL2", reduceHandler<ReduceKind::l2>},
      {"ReduceLogSumExp", reduceHandler<ReduceKind::log_sum_exp>},
      {"ArgMax", argHandler<ReduceKind::argmax>},
      {"ArgMin", argHandler<ReduceKind::argmin>},
      {"Softmax", softmaxHandler<false>},
      {"LogSoftmax", softmaxHandler<true>},
      {"CumSum", cumsumHandler},
      {"Shape", shapeHandler},
      {"Size", sizeHandler},
      {"Reshape", reshapeHandler},
      {"Flatten", flattenHandler},
      {"Squeeze", squeezeHandler<llq::SqueezeOp>},
      {"Unsqueeze", squeezeHandler<llq::UnsqueezeOp>},
      {"Transpose", transposeHandler},
      {"Concat", concatHandler},
      {"Slice", sliceHandler},
      {"Split", splitHandler},
      {"Expand", twoOperandHandler<llq::ExpandOp>},
      {"Tile", twoOperandHandler<llq::TileOp>},
      {"Gather", gatherHandler<llq::GatherOp>},
      {"GatherElements", gatherHandler<llq::GatherElementsOp>},
      {"GatherND", gatherNDHandler},
      {"ScatterND", scatterNDHandler},
      {"ScatterElements", scatterElementsHandler},
      {"Trilu", triluHandler},
      {"Range", rangeHandler},
      {"ConstantOfShape", constantOfShapeHandler},
      {"Constant", constantHandler},
      {"Pad", padHandler},
      {"LayerNormalization", layerNormHandler},
      {"RMSNormalization", rmsNormHandler},
      {"SimplifiedLayerNormalization", rmsNormHandler},
      {"com.microsoft::SimplifiedLayerNormalization", rmsNormHandler},
      {"com.microsoft::SkipSimplifiedLayerNormalization", skipRmsNormHandler},
      {"com.microsoft::RotaryEmbedding", importRotaryEmbedding},
      {"com.microsoft::GroupQueryAttention", importGroupQueryAttention},
      {"com.microsoft::MatMulNBits", importMatMulNBits},
  };
  return table;
}
