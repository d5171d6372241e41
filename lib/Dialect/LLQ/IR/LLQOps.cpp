//===- LLQOps.cpp - llq operations ----------------------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Dialect/LLQ/IR/LLQ.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace llq;

#define GET_OP_CLASSES
#include "llq/Dialect/LLQ/IR/LLQOps.cpp.inc"

/// True for element types an archive can hold.
static bool isStorableElementType(Type t) {
  if (t.isF64() || t.isF32() || t.isF16() || t.isBF16())
    return true;
  if (auto i = dyn_cast<IntegerType>(t))
    return llvm::is_contained({1u, 8u, 16u, 32u, 64u}, i.getWidth());
  return false;
}

/// Checks that `result` has the shape of `input` with the last dimension
/// replaced by `n`, and the same element type.
static LogicalResult verifyLinearResult(Operation *op, RankedTensorType input,
                                        RankedTensorType result, int64_t n) {
  if (!isa<FloatType>(input.getElementType()))
    return op->emitOpError("expects a float input, got ") << input;
  if (result.getElementType() != input.getElementType())
    return op->emitOpError("expects the result element type ")
           << input.getElementType() << " of the input, got "
           << result.getElementType();
  if (result.getRank() != input.getRank())
    return op->emitOpError("expects a result of rank ")
           << input.getRank() << " like the input, got " << result;
  for (int64_t i = 0, e = input.getRank() - 1; i < e; ++i) {
    int64_t a = input.getDimSize(i), b = result.getDimSize(i);
    if (!ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b)
      return op->emitOpError("expects result dimension ")
             << i << " to be " << a << " like the input, got " << b;
  }
  int64_t last = result.getShape().back();
  if (!ShapedType::isDynamic(last) && last != n)
    return op->emitOpError("expects the result's last dimension to be the ")
           << n << " output features, got " << last;
  return success();
}

/// Checks an optional bias of `n` output features.
static LogicalResult verifyBias(Operation *op, Value bias, int64_t n,
                                Type elementType) {
  if (!bias)
    return success();
  auto type = cast<RankedTensorType>(bias.getType());
  if (type.getRank() != 1 || type.getDimSize(0) != n ||
      type.getElementType() != elementType)
    return op->emitOpError("expects a bias of type ")
           << RankedTensorType::get({n}, elementType) << ", got " << type;
  return success();
}

//===----------------------------------------------------------------------===//
// ArchiveOp
//===----------------------------------------------------------------------===//

LogicalResult ArchiveOp::verify() {
  if (getPath().empty())
    return emitOpError("expects a non-empty path");
  return success();
}

//===----------------------------------------------------------------------===//
// WeightOp
//===----------------------------------------------------------------------===//

ArchiveOp WeightOp::getArchiveOp() {
  return SymbolTable::lookupNearestSymbolFrom<ArchiveOp>(*this,
                                                         getArchiveAttr());
}

LogicalResult WeightOp::verify() {
  auto type = cast<RankedTensorType>(getType());
  if (!isStorableElementType(type.getElementType()))
    return emitOpError("expects an element type an archive can hold "
                       "(f64, f32, f16, bf16, i1, i8, i16, i32, i64), got ")
           << type.getElementType();
  if (getOffset().has_value() != getLength().has_value())
    return emitOpError("expects both 'offset' and 'length' or neither");
  // I64Attr hands out uint64_t; the IR spells offsets as signed i64.
  if (getOffset() && static_cast<int64_t>(*getOffset()) < 0)
    return emitOpError("expects a non-negative offset, got ")
           << static_cast<int64_t>(*getOffset());
  if (getLength()) {
    int64_t bits = type.getElementTypeBitWidth();
    int64_t bytes = type.getNumElements() * std::max<int64_t>(bits / 8, 1);
    if (static_cast<int64_t>(*getLength()) != bytes)
      return emitOpError("expects length ")
             << bytes << " for " << type << ", got "
             << static_cast<int64_t>(*getLength());
  }
  return success();
}

LogicalResult WeightOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto archive = symbolTable.lookupNearestSymbolFrom<ArchiveOp>(
      *this, getArchiveAttr());
  if (!archive)
    return emitOpError("refers to '")
           << getArchive() << "', which is not an llq.archive";
  bool raw = archive.getFormat() == ArchiveFormat::raw;
  if (raw && !getOffset())
    return emitOpError("refers to raw archive '")
           << getArchive() << "' and needs 'offset' and 'length'";
  if (!raw && getOffset())
    return emitOpError("refers to safetensors archive '")
           << getArchive() << "', which locates tensors by name; "
           << "'offset' and 'length' are only for raw archives";
  return success();
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

int64_t LinearOp::getInFeatures() {
  auto shape = getWeight().getType().getShape();
  return getWeightKn() ? shape[0] : shape[1];
}

int64_t LinearOp::getOutFeatures() {
  auto shape = getWeight().getType().getShape();
  return getWeightKn() ? shape[1] : shape[0];
}

LogicalResult LinearOp::verify() {
  auto input = cast<RankedTensorType>(getInput().getType());
  auto weight = cast<RankedTensorType>(getWeight().getType());
  if (input.getRank() < 1)
    return emitOpError("expects an input of rank >= 1");
  if (weight.getRank() != 2)
    return emitOpError("expects a 2-d weight, got ") << weight;
  if (!isa<FloatType>(weight.getElementType()))
    return emitOpError("expects a float weight, got ") << weight;
  int64_t k = getInFeatures(), n = getOutFeatures();
  int64_t inK = input.getShape().back();
  if (!ShapedType::isDynamic(inK) && inK != k)
    return emitOpError("expects the input's last dimension to be the ")
           << k << " input features of the " << (getWeightKn() ? "KxN" : "NxK")
           << " weight " << weight << ", got " << inK;
  if (failed(verifyLinearResult(*this, input, getType(), n)))
    return failure();
  return verifyBias(*this, getBias(), n, input.getElementType());
}

//===----------------------------------------------------------------------===//
// QLinearOp
//===----------------------------------------------------------------------===//

int64_t QLinearOp::getInFeatures() {
  return cast<RankedTensorType>(getInput().getType()).getShape().back();
}

int64_t QLinearOp::getOutFeatures() {
  return cast<RankedTensorType>(getQweight().getType()).getDimSize(0);
}

LogicalResult QLinearOp::verify() {
  auto input = cast<RankedTensorType>(getInput().getType());
  if (input.getRank() < 1 || ShapedType::isDynamic(input.getShape().back()))
    return emitOpError("expects an input whose last (feature) dimension is "
                       "static, got ")
           << input;
  SchemeAttr scheme = getScheme();
  int64_t k = getInFeatures();
  auto qweight = cast<RankedTensorType>(getQweight().getType());
  if (qweight.getRank() != 2 || !qweight.hasStaticShape())
    return emitOpError("expects a static 2-d packed weight, got ") << qweight;
  int64_t n = qweight.getDimSize(0);
  int64_t words = getPackedWords(k, scheme.getBits());
  if (qweight.getDimSize(1) != words)
    return emitOpError("expects packed weight ")
           << n << "x" << words << "xi32 (" << k << " codes of "
           << scheme.getBits() << " bits per row in "
           << stringifyPackLayout(getLayout()) << " layout), got " << qweight;

  int64_t groups = scheme.getNumGroups(k);
  auto checkGroupTensor = [&](Value v, StringRef what) -> LogicalResult {
    auto t = cast<RankedTensorType>(v.getType());
    if (t.getRank() == 2 && t.getDimSize(0) == n && t.getDimSize(1) == groups)
      return success();
    return emitOpError("expects ")
           << what << " of shape " << n << "x" << groups << " (" << n
           << " rows x " << groups << " groups of "
           << (scheme.isPerChannel() ? std::string("per_channel")
                                     : std::to_string(scheme.getGroupSize()))
           << " along K = " << k << "), got " << t;
  };
  if (failed(checkGroupTensor(getScales(), "scales")))
    return failure();
  if (scheme.hasZeroPoints() && !getZeros())
    return emitOpError("expects zero points for the asymmetric scheme ")
           << scheme;
  if (!scheme.hasZeroPoints() && getZeros())
    return emitOpError("expects no zero points for the scheme ") << scheme;
  if (getZeros() && failed(checkGroupTensor(getZeros(), "zeros")))
    return failure();
  if (failed(verifyLinearResult(*this, input, getType(), n)))
    return failure();
  bool perTensor = scheme.getActBits() &&
                   scheme.getActGranularity() == ActGranularity::per_tensor;
  if (perTensor != getActScale().has_value())
    return emitOpError(perTensor ? "needs 'act_scale' for per-tensor "
                                   "activation quantization"
                                 : "has 'act_scale' but no per-tensor "
                                   "activation scheme");
  if (getActScale() && !(getActScale()->convertToFloat() > 0.0f))
    return emitOpError("expects a positive 'act_scale'");
  return verifyBias(*this, getBias(), n, input.getElementType());
}
