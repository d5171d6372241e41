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

//===----------------------------------------------------------------------===//
// PackedLinearOp
//===----------------------------------------------------------------------===//

quant::PackedFormat llq::getQuantFormat(PackedFormat format) {
  switch (format) {
  case PackedFormat::billm:
    return quant::PackedFormat::BiLLM;
  case PackedFormat::pbllm:
    return quant::PackedFormat::PBLLM;
  case PackedFormat::dbllm:
    return quant::PackedFormat::DBLLM;
  case PackedFormat::nf4:
    return quant::PackedFormat::NF4;
  case PackedFormat::quip:
    return quant::PackedFormat::QuIP;
  }
  llvm_unreachable("unknown packed format");
}

Type llq::getPartElementType(MLIRContext *ctx, quant::PartType type) {
  switch (type) {
  case quant::PartType::I32:
    return IntegerType::get(ctx, 32);
  case quant::PartType::I8:
    return IntegerType::get(ctx, 8);
  case quant::PartType::F16:
    return Float16Type::get(ctx);
  case quant::PartType::F32:
    return Float32Type::get(ctx);
  }
  llvm_unreachable("unknown part type");
}

int64_t PackedLinearOp::getInFeatures() {
  return cast<RankedTensorType>(getInput().getType()).getShape().back();
}

int64_t PackedLinearOp::getOutFeatures() {
  return cast<RankedTensorType>(getType()).getShape().back();
}

quant::PackedParams PackedLinearOp::getPackedParams() {
  quant::PackedParams p;
  p.groupSize = getGroupSize();
  p.bits = getBits() ? static_cast<int>(*getBits()) : 0;
  p.symmetric = getSymmetric();
  p.constantGroup = getConstantGroup() ? *getConstantGroup() : 0;
  if (getFormat() == PackedFormat::nf4)
    p.shifts = getParts().size() == 5;
  if (std::optional<ArrayRef<int64_t>> seeds = getSeeds();
      seeds && seeds->size() == 2) {
    p.seedU = static_cast<uint64_t>((*seeds)[0]);
    p.seedV = static_cast<uint64_t>((*seeds)[1]);
  }
  return p;
}

LogicalResult PackedLinearOp::verify() {
  auto input = cast<RankedTensorType>(getInput().getType());
  auto result = cast<RankedTensorType>(getType());
  if (input.getRank() < 1 || ShapedType::isDynamic(input.getShape().back()) ||
      result.getRank() < 1 || ShapedType::isDynamic(result.getShape().back()))
    return emitOpError("expects an input and a result whose last (feature) "
                       "dimensions are static, got ")
           << input << " and " << result;
  int64_t k = getInFeatures(), n = getOutFeatures();
  PackedFormat format = getFormat();
  bool quip = format == PackedFormat::quip, nf4 = format == PackedFormat::nf4;
  if (quip != getBits().has_value())
    return emitOpError(quip ? "needs 'bits' for the quip format"
                            : "has 'bits', which only the quip format takes");
  if (quip != (getSeeds().has_value()))
    return emitOpError(quip ? "needs 'seeds' = [U, V] for the quip format"
                            : "has 'seeds', which only the quip format takes");
  if (quip && getSeeds()->size() != 2)
    return emitOpError("expects 'seeds' = [U, V], two seeds");
  if (!quip && getSymmetric())
    return emitOpError("has 'symmetric', which only the quip format takes");
  if (nf4 != getConstantGroup().has_value())
    return emitOpError(nf4 ? "needs 'constant_group' for the nf4 format"
                           : "has 'constant_group', which only the nf4 "
                             "format takes");
  if (nf4 && getParts().size() != 4 && getParts().size() != 5)
    return emitOpError("expects 4 parts (or 5 with ICQ shifts) for the nf4 "
                       "format, got ")
           << getParts().size();
  std::vector<quant::PartSpec> specs;
  if (std::string why = quant::describeParts(getQuantFormat(format), n, k,
                                             getPackedParams(), specs);
      !why.empty())
    return emitOpError(why);
  if (specs.size() != getParts().size())
    return emitOpError("expects ")
           << specs.size() << " parts for the " << stringifyPackedFormat(format)
           << " format, got " << getParts().size();
  for (auto [i, spec] : llvm::enumerate(specs)) {
    auto type = cast<RankedTensorType>(getParts()[i].getType());
    Type element = getPartElementType(getContext(), spec.type);
    bool ok = type.getElementType() == element &&
              type.getRank() == static_cast<int64_t>(spec.shape.size()) &&
              type.hasStaticShape();
    for (size_t d = 0; ok && d < spec.shape.size(); ++d)
      ok = spec.shape[d] < 0 || spec.shape[d] == type.getDimSize(d);
    if (!ok) {
      std::string expected = "tensor<";
      llvm::raw_string_ostream os(expected);
      for (int64_t d : spec.shape)
        os << (d < 0 ? std::string("?") : std::to_string(d)) << "x";
      os << element << ">";
      return emitOpError("expects part ")
             << i << " (" << spec.name << ") of type " << expected
             << ", got " << type;
    }
  }
  if (failed(verifyLinearResult(*this, input, result, n)))
    return failure();
  return verifyBias(*this, getBias(), n, input.getElementType());
}
