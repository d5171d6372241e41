//===- QuantizeUtils.cpp - Shared pieces of the quantization passes -------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Transforms/QuantizeUtils.h"
#include "llq/Dialect/LLQ/Utils/LayerNames.h"
#include "llq/Quant/Packing.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace mlir;
using namespace llq;

std::vector<QuantizableLayer>
llq::collectQuantizableLayers(ModuleOp module, bool includeOutsideBlocks) {
  std::vector<QuantizableLayer> layers;
  module.walk([&](LinearOp op) {
    auto weight = op.getWeight().getDefiningOp<WeightOp>();
    if (!weight)
      return;
    StringRef name = weight.getName();
    name.consume_back(".weight");
    layers.push_back({op, weight, name.str()});
  });
  // Models with decoder blocks keep their head (and anything else outside
  // the blocks) in float, as the study and the GPTQ/AWQ references do.
  bool hasBlocks = llvm::any_of(layers, [](const QuantizableLayer &l) {
    return getBlockIndex(l.name) >= 0;
  });
  if (hasBlocks && !includeOutsideBlocks)
    llvm::erase_if(layers, [](const QuantizableLayer &l) {
      return getBlockIndex(l.name) < 0;
    });
  return layers;
}

SchemeAttr llq::getSchemeAttr(MLIRContext *ctx,
                              const quant::UniformScheme &scheme) {
  return SchemeAttr::get(ctx, scheme.bits, scheme.groupSize, scheme.symmetric,
                         Codebook::uniform, /*actBits=*/0,
                         ActGranularity::per_token);
}

/// A constant holding `data` as a dense_resource blob named `name`.
template <typename T>
static Value createBlobConstant(OpBuilder &b, Location loc,
                                RankedTensorType type, StringRef name,
                                ArrayRef<T> data) {
  AsmResourceBlob blob = HeapAsmResourceBlob::allocateAndCopyInferAlign(data);
  auto attr = DenseResourceElementsAttr::get(type, name, std::move(blob));
  return b.create<arith::ConstantOp>(loc, attr);
}

Value llq::createFloatConstant(Operation *before, StringRef name,
                               ArrayRef<int64_t> shape, ArrayRef<float> values) {
  OpBuilder b(before);
  return createBlobConstant<float>(
      b, before->getLoc(), RankedTensorType::get(shape, b.getF32Type()), name,
      values);
}

QLinearOp llq::replaceWithQLinear(const QuantizableLayer &layer,
                                  const quant::UniformMatrix &q,
                                  SchemeAttr scheme,
                                  std::optional<float> actScale) {
  LinearOp op = layer.op;
  OpBuilder b(op);
  Location loc = op.getLoc();
  int64_t n = q.rows, k = q.cols, g = q.groups;
  int64_t words = quant::packedWordsPerRow(k, q.scheme.bits);

  std::vector<uint32_t> packed(n * words);
  quant::packRows(q.codes.data(), n, k, q.scheme.bits, packed.data());
  Value qweight = createBlobConstant<uint32_t>(
      b, loc, RankedTensorType::get({n, words}, b.getI32Type()),
      layer.name + ".qweight", packed);
  Value scales = createBlobConstant<uint16_t>(
      b, loc, RankedTensorType::get({n, g}, b.getF16Type()),
      layer.name + ".scales", q.scales);
  Value zeros;
  if (!q.scheme.symmetric)
    zeros = createBlobConstant<uint8_t>(
        b, loc, RankedTensorType::get({n, g}, b.getI8Type()),
        layer.name + ".qzeros", q.zeros);

  if (!scheme)
    scheme = getSchemeAttr(b.getContext(), q.scheme);
  FloatAttr actScaleAttr;
  if (actScale)
    actScaleAttr = b.getF32FloatAttr(*actScale);
  auto qlinear = b.create<QLinearOp>(
      loc, op.getType(), op.getInput(), qweight, scales, zeros, op.getBias(),
      scheme, PackLayoutAttr::get(b.getContext(), PackLayout::bitstream),
      actScaleAttr);
  op.replaceAllUsesWith(qlinear.getResult());
  op.erase();
  return qlinear;
}

PackedLinearOp llq::replaceWithPackedLinear(const QuantizableLayer &layer,
                                            const quant::PackedLayer &packed) {
  LinearOp op = layer.op;
  OpBuilder b(op);
  Location loc = op.getLoc();
  SmallVector<Value> parts;
  for (const quant::PackedPart &part : packed.parts) {
    auto type = RankedTensorType::get(
        part.spec.shape, getPartElementType(b.getContext(), part.spec.type));
    parts.push_back(createBlobConstant<char>(
        b, loc, type, layer.name + "." + part.spec.name, part.data));
  }
  const quant::PackedParams &p = packed.params;
  PackedFormat format = [&] {
    switch (packed.format) {
    case quant::PackedFormat::BiLLM:
      return PackedFormat::billm;
    case quant::PackedFormat::PBLLM:
      return PackedFormat::pbllm;
    case quant::PackedFormat::DBLLM:
      return PackedFormat::dbllm;
    case quant::PackedFormat::NF4:
      return PackedFormat::nf4;
    case quant::PackedFormat::QuIP:
      return PackedFormat::quip;
    }
    llvm_unreachable("unknown packed format");
  }();
  bool quip = format == PackedFormat::quip;
  auto result = b.create<PackedLinearOp>(
      loc, op.getType(), PackedFormatAttr::get(b.getContext(), format),
      op.getInput(), parts, op.getBias(), b.getI64IntegerAttr(p.groupSize),
      quip ? b.getI64IntegerAttr(p.bits) : IntegerAttr(),
      quip && p.symmetric ? b.getUnitAttr() : UnitAttr(),
      format == PackedFormat::nf4 ? b.getI64IntegerAttr(p.constantGroup)
                                  : IntegerAttr(),
      quip ? b.getDenseI64ArrayAttr({static_cast<int64_t>(p.seedU),
                                     static_cast<int64_t>(p.seedV)})
           : DenseI64ArrayAttr());
  op.replaceAllUsesWith(result.getResult());
  op.erase();
  return result;
}

void llq::eraseUnusedWeights(ModuleOp module) {
  llvm::StringSet<> referenced;
  module.walk([&](WeightOp op) {
    if (op->use_empty())
      op.erase();
    else
      referenced.insert(op.getArchive());
  });
  for (ArchiveOp archive :
       llvm::make_early_inc_range(module.getOps<ArchiveOp>()))
    if (!referenced.contains(archive.getSymName()))
      archive.erase();
}

uint64_t llq::getPackedBytes(const quant::UniformMatrix &q) {
  uint64_t words = quant::packedWordsPerRow(q.cols, q.scheme.bits);
  return q.rows * words * 4 + q.scales.size() * 2 + q.zeros.size();
}

uint64_t llq::getStoredBytes(WeightOp weight) {
  auto type = cast<RankedTensorType>(weight.getType());
  return type.getNumElements() * type.getElementTypeBitWidth() / 8;
}

//===----------------------------------------------------------------------===//
// QuantReport
//===----------------------------------------------------------------------===//

void QuantReport::add(const QuantizableLayer &layer, StringRef scheme,
                      ArrayRef<float> original, ArrayRef<float> approx,
                      uint64_t bytesBefore, uint64_t bytesAfter,
                      std::optional<double> outputError,
                      std::optional<double> rtnOutputError) {
  LayerReport r;
  r.outputError = outputError;
  r.rtnOutputError = rtnOutputError;
  r.name = layer.name;
  LinearOp op = layer.op;
  r.rows = op.getOutFeatures();
  r.cols = op.getInFeatures();
  r.scheme = scheme.str();
  r.bytesBefore = bytesBefore;
  r.bytesAfter = bytesAfter;
  double sumAbs = 0, sumSq = 0, sumRef = 0;
  for (size_t i = 0, e = original.size(); i < e; ++i) {
    double d = std::fabs(double(approx[i]) - double(original[i]));
    sumAbs += d;
    sumSq += d * d;
    sumRef += double(original[i]) * double(original[i]);
    r.maxAbsError = std::max(r.maxAbsError, d);
  }
  if (!original.empty())
    r.meanAbsError = sumAbs / original.size();
  r.relRmsError = sumRef > 0 ? std::sqrt(sumSq / sumRef) : 0.0;
  layers.push_back(std::move(r));
}

void QuantReport::setBaseline(StringRef name,
                              std::optional<double> relRmsError) {
  assert(!layers.empty() && "no layer to set the baseline of");
  layers.back().baseline = name.str();
  layers.back().baselineRelRmsError = relRmsError;
}

void QuantReport::print(raw_ostream &os) const {
  bool outputs = llvm::any_of(
      layers, [](const LayerReport &r) { return r.outputError.has_value(); });
  bool baselineRms = llvm::any_of(layers, [](const LayerReport &r) {
    return r.baselineRelRmsError.has_value();
  });
  // The baseline's name heads its columns when every layer has the same.
  std::string baseline = layers.empty() ? "rtn" : layers.front().baseline;
  if (llvm::any_of(layers, [&](const LayerReport &r) {
        return r.baseline != baseline;
      }))
    baseline = "baseline";
  os << "| layer | shape | scheme | bytes before | bytes after | bits/weight "
        "| mean abs err | max abs err | rel rms err |";
  if (baselineRms)
    os << " " << baseline << " rel rms err |";
  if (outputs)
    os << " rel out err | " << baseline << " rel out err |";
  os << "\n|---|---|---|---:|---:|---:|---:|---:|---:|"
     << (baselineRms ? "---:|" : "") << (outputs ? "---:|---:|" : "") << "\n";
  auto optional = [](std::optional<double> v) {
    std::string s;
    if (v)
      llvm::raw_string_ostream(s) << llvm::format("%.3e", *v);
    return s;
  };
  uint64_t before = 0, after = 0, weights = 0;
  double outSum = 0, rtnSum = 0;
  for (const LayerReport &r : layers) {
    double bpw = 8.0 * r.bytesAfter / double(r.rows * r.cols);
    os << "| " << r.name << " | " << r.rows << "x" << r.cols << " | "
       << r.scheme << " | " << r.bytesBefore << " | " << r.bytesAfter << " | "
       << llvm::format("%.3f", bpw) << " | "
       << llvm::format("%.3e", r.meanAbsError) << " | "
       << llvm::format("%.3e", r.maxAbsError) << " | "
       << llvm::format("%.4f", r.relRmsError) << " |";
    if (baselineRms)
      os << " "
         << (r.baselineRelRmsError
                 ? std::string(llvm::formatv("{0:F4}", *r.baselineRelRmsError))
                 : std::string())
         << " |";
    if (outputs)
      os << " " << optional(r.outputError) << " | "
         << optional(r.rtnOutputError) << " |";
    os << "\n";
    before += r.bytesBefore;
    after += r.bytesAfter;
    weights += r.rows * r.cols;
    outSum += r.outputError.value_or(0);
    rtnSum += r.rtnOutputError.value_or(0);
  }
  if (weights) {
    os << "| total (" << layers.size() << " layers) | | | " << before << " | "
       << after << " | " << llvm::format("%.3f", 8.0 * after / weights)
       << " | | |";
    if (baselineRms) {
      // Methods compared with a baseline get both mean weight errors.
      double sum = 0, base = 0;
      for (const LayerReport &r : layers) {
        sum += r.relRmsError;
        base += r.baselineRelRmsError.value_or(0);
      }
      os << " " << llvm::format("%.4f", sum / layers.size()) << " (mean) | "
         << llvm::format("%.4f", base / layers.size()) << " (mean) |";
    } else {
      os << " |";
    }
    if (outputs)
      os << " " << llvm::format("%.3e", outSum / layers.size()) << " (mean) | "
         << llvm::format("%.3e", rtnSum / layers.size()) << " (mean) |";
    os << "\n";
  }
}

LogicalResult QuantReport::write(StringRef path, Location loc) const {
  if (path.empty())
    return success();
  if (path == "-") {
    print(llvm::errs());
    return success();
  }
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_Text);
  if (ec)
    return emitError(loc, "cannot write the quantization report '")
           << path << "': " << ec.message();
  print(os);
  return success();
}
