//===- QuantizeUtils.h - Shared pieces of the quantization passes -*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Every method pass does the same things around its numerics: find the
// linear layers it can quantize, load their float weights, replace each by a
// quantized op over packed in-memory constants, and report per-layer error.
// Those steps live here so that a method pass is only its algorithm.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_TRANSFORMS_QUANTIZEUTILS_H
#define LLQ_TRANSFORMS_QUANTIZEUTILS_H

#include "llq/Dialect/LLQ/IR/LLQ.h"
#include "llq/Dialect/LLQ/Utils/LayerNames.h"
#include "llq/Quant/PackedLayer.h"
#include "llq/Quant/Uniform.h"

#include "llvm/Support/raw_ostream.h"

#include <optional>
#include <string>
#include <vector>

namespace llq {

/// A linear layer whose weight is an llq.weight, with the names derived
/// from it ("model.layers.0.mlp.up_proj.weight" -> "model.layers.0.mlp.up_proj").
struct QuantizableLayer {
  LinearOp op;
  WeightOp weight;
  std::string name;
};

/// The linear layers of `module` that read their weight from an archive, in
/// program order. Layers with computed weights are left alone. When some
/// layers belong to decoder blocks ("...layers.N..."), the others (the LM
/// head) are left in float unless `includeOutsideBlocks`.
std::vector<QuantizableLayer>
collectQuantizableLayers(mlir::ModuleOp module,
                         bool includeOutsideBlocks = false);


/// Replaces `layer` by an llq.qlinear over `q` (codes packed in the
/// bitstream layout), with the packed tensors as dense_resource constants
/// named after the layer. `scheme` overrides the scheme attribute derived
/// from `q` (to add activation quantization); `actScale` is the per-tensor
/// activation step. Returns the new op.
QLinearOp replaceWithQLinear(const QuantizableLayer &layer,
                             const quant::UniformMatrix &q,
                             SchemeAttr scheme = {},
                             std::optional<float> actScale = std::nullopt);

/// Replaces `layer` by an llq.packed_linear of `format` over the parts of
/// `packed`, each a dense_resource constant named `<layer>.<part>`. Returns
/// the new op.
PackedLinearOp replaceWithPackedLinear(const QuantizableLayer &layer,
                                       const quant::PackedLayer &packed);

/// A dense_resource f32 constant of `shape` named `name`, inserted before
/// `before`: how passes give an op new float weights (folded scales).
mlir::Value createFloatConstant(mlir::Operation *before, llvm::StringRef name,
                                llvm::ArrayRef<int64_t> shape,
                                llvm::ArrayRef<float> values);

/// Converts a lib/Quant scheme into the IR's scheme attribute.
SchemeAttr getSchemeAttr(mlir::MLIRContext *ctx,
                         const quant::UniformScheme &scheme);

/// Erases llq.weight ops that nothing uses any more, then the archives no
/// weight refers to.
void eraseUnusedWeights(mlir::ModuleOp module);

/// Per-layer statistics of a quantization run.
struct LayerReport {
  std::string name;
  int64_t rows = 0, cols = 0;
  std::string scheme;
  uint64_t bytesBefore = 0, bytesAfter = 0;
  double meanAbsError = 0, maxAbsError = 0, relRmsError = 0;
  /// Relative output error on calibration activations, of this method and
  /// of round-to-nearest at the same scheme, when activations were seen.
  std::optional<double> outputError, rtnOutputError;
  /// What rtnOutputError and baselineRelRmsError measure: "rtn" at the
  /// layer's scheme, or another method at the same storage ("sign-g128").
  std::string baseline = "rtn";
  /// The relative RMS weight error of the baseline, when reported.
  std::optional<double> baselineRelRmsError;
};

/// Collects LayerReports and prints them as a table with a total row.
class QuantReport {
public:
  /// Records `layer`, comparing the original N x K weights `original` (with
  /// `bytesBefore` bytes in the archive) to their reconstruction `approx`.
  void add(const QuantizableLayer &layer, llvm::StringRef scheme,
           llvm::ArrayRef<float> original, llvm::ArrayRef<float> approx,
           uint64_t bytesBefore, uint64_t bytesAfter,
           std::optional<double> outputError = std::nullopt,
           std::optional<double> rtnOutputError = std::nullopt);
  /// Names the baseline of the last layer added and gives its relative
  /// RMS weight error.
  void setBaseline(llvm::StringRef name, std::optional<double> relRmsError);
  void print(llvm::raw_ostream &os) const;
  /// Writes the table to `path` ("-" for stderr, "" for nowhere).
  mlir::LogicalResult write(llvm::StringRef path, mlir::Location loc) const;

private:
  std::vector<LayerReport> layers;
};

/// Bytes the packed tensors of `q` take.
uint64_t getPackedBytes(const quant::UniformMatrix &q);

/// Bytes the tensor of `weight` takes in its archive.
uint64_t getStoredBytes(WeightOp weight);

} // namespace llq

#endif // LLQ_TRANSFORMS_QUANTIZEUTILS_H
