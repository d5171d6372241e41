//===- CalibratedMethod.h - The block loop of calibrated methods -*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// GPTQ, AWQ and SmoothQuant share everything around their numerics: read
// the calibration data, walk the decoder blocks in order with progress,
// observe the inputs of each block's layers, report per-layer errors, and
// hand the quantized block's outputs to the next. A method supplies only
// what it does with one block.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_LIB_TRANSFORMS_CALIBRATEDMETHOD_H
#define LLQ_LIB_TRANSFORMS_CALIBRATEDMETHOD_H

#include "llq/Dialect/LLQ/Utils/WeightStore.h"
#include "llq/Quant/Statistics.h"
#include "llq/Transforms/Calibration.h"
#include "llq/Transforms/QuantizeUtils.h"

#include <functional>

namespace llq {

/// The options every calibrated pass has.
struct CalibratedOptions {
  std::string method;
  std::string calib;
  int64_t samples = 128, seqLen = 2048;
  uint64_t seed = 0;
  bool includeHead = false;
  std::string report;
  quant::UniformScheme scheme;
};

/// Up to `capacity` token rows of one layer input, taken evenly from every
/// window: the sample that output errors (and AWQ's searches) are measured
/// on.
class RowSample {
public:
  RowSample(int64_t k, int64_t capacity, int64_t windows);
  void add(const rt::Tensor &x);
  const float *data() const { return rows.data(); }
  int64_t size() const { return count; }
  int64_t columns() const { return k; }

private:
  int64_t k, capacity, perWindow, count = 0;
  std::vector<float> rows;
};

/// One decoder block being quantized.
struct BlockContext {
  CalibrationSession &session;
  int block;
  /// The block's layers in program order, and for each the index of its
  /// input in `inputs` (layers fed by one value share it).
  std::vector<QuantizableLayer> layers;
  std::vector<size_t> inputOf;
  std::vector<mlir::Value> inputs;
  WeightStore &store;
  QuantReport &report;
  const CalibratedOptions &options;

  /// Runs the block and feeds every input's tensors to `fn(input, tensor)`.
  mlir::LogicalResult observeInputs(
      const std::function<void(size_t, const rt::Tensor &)> &fn,
      int64_t limit = -1);
  /// Runs the block and collects, for every input, the Hessian H = 2 X^T X
  /// over all its tokens and a sample of `sampleRows` rows (what GPTQ-style
  /// methods need).
  mlir::LogicalResult
  collectHessians(std::vector<quant::HessianAccumulator> &hessians,
                  std::vector<RowSample> &samples, int64_t sampleRows = 512);
  /// The float N x K weights of layer `i`.
  mlir::FailureOr<std::vector<float>> weights(size_t i);
  /// Replaces layer `i` by its quantization `q`, recording in the report
  /// the weight error and the output error on `sample` (and RTN's for
  /// comparison).
  void commit(size_t i, llvm::ArrayRef<float> original,
              const quant::UniformMatrix &q, const RowSample *sample,
              llvm::StringRef scheme);
};

/// An op whose per-channel weight multiplies a layer input, and into which
/// smoothing or AWQ scales fold: an RMSNorm (weight operand 1) or a skip
/// RMSNorm (operand 2).
struct ScaleFold {
  mlir::Operation *op = nullptr;
  unsigned operand = 0;
};

/// The norm that directly produces `input`, if any.
std::optional<ScaleFold> getNormBefore(mlir::Value input);

/// The float values of a 1-d weight or constant.
mlir::FailureOr<std::vector<float>> getVectorValues(mlir::Value v,
                                                    WeightStore &store);

/// Divides the norm's weight by `scales`, giving the norm op a new constant
/// (other users of the old weight keep it) named after the old weight, or
/// after `consumer`, the first layer the norm feeds, if the old weight has
/// no name.
mlir::LogicalResult foldIntoNorm(const ScaleFold &fold,
                                 llvm::ArrayRef<float> scales,
                                 WeightStore &store, llvm::StringRef consumer);

/// Runs `quantizeBlock` on every decoder block, in order, each seeing the
/// outputs of the blocks quantized before it; then writes the report.
mlir::LogicalResult
runCalibratedMethod(mlir::ModuleOp module, const CalibratedOptions &options,
                    const std::function<mlir::LogicalResult(BlockContext &)>
                        &quantizeBlock);

/// The common options of a calibrated pass, read inside one of its member
/// functions (the generated option members are protected).
#define LLQ_CALIBRATED_OPTIONS(name)                                           \
  [&] {                                                                        \
    ::llq::CalibratedOptions o;                                                \
    o.method = name;                                                           \
    o.calib = calib;                                                           \
    o.samples = calibSamples;                                                  \
    o.seqLen = calibSeqLen;                                                    \
    o.seed = seed;                                                             \
    o.includeHead = includeHead;                                               \
    o.report = report;                                                         \
    o.scheme.bits = bits;                                                      \
    o.scheme.groupSize = groupSize;                                            \
    o.scheme.symmetric = symmetric;                                            \
    return o;                                                                  \
  }()

} // namespace llq

#endif // LLQ_LIB_TRANSFORMS_CALIBRATEDMETHOD_H
