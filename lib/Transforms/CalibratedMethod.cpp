//===- CalibratedMethod.cpp - The block loop of calibrated methods --------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "CalibratedMethod.h"
#include "llq/Quant/OutputError.h"
#include "llq/Support/Progress.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace llq;

RowSample::RowSample(int64_t k, int64_t capacity, int64_t windows)
    : k(k), capacity(capacity),
      perWindow((capacity + std::max<int64_t>(windows, 1) - 1) /
                std::max<int64_t>(windows, 1)) {}

void RowSample::add(const rt::Tensor &x) {
  int64_t total = k ? x.numel() / k : 0;
  int64_t take = std::min({perWindow, total, capacity - count});
  if (take <= 0)
    return;
  const float *p = x.data<float>();
  for (int64_t i = 0; i < take; ++i) {
    int64_t row = i * total / take;
    rows.insert(rows.end(), p + row * k, p + (row + 1) * k);
  }
  count += take;
}

LogicalResult BlockContext::observeInputs(
    const std::function<void(size_t, const rt::Tensor &)> &fn,
    int64_t limit) {
  return session.observe(
      block, inputs,
      [&](size_t input, int64_t, const rt::Tensor &t) { fn(input, t); },
      limit);
}

LogicalResult
BlockContext::collectHessians(std::vector<quant::HessianAccumulator> &hessians,
                              std::vector<RowSample> &samples,
                              int64_t sampleRows) {
  hessians.clear();
  samples.clear();
  for (Value input : inputs) {
    int64_t k = cast<ShapedType>(input.getType()).getShape().back();
    hessians.emplace_back(k);
    samples.emplace_back(k, sampleRows, session.numWindows());
  }
  return observeInputs([&](size_t i, const rt::Tensor &x) {
    hessians[i].add(x.data<float>(), x.numel() / hessians[i].columns());
    samples[i].add(x);
  });
}

FailureOr<std::vector<float>> BlockContext::weights(size_t i) {
  return store.getMatrixNK(layers[i].weight, layers[i].op.getWeightKn());
}

void BlockContext::commit(size_t i, ArrayRef<float> original,
                          const quant::UniformMatrix &q,
                          const RowSample *sample, StringRef scheme) {
  std::vector<float> approx(original.size());
  quant::dequantize(q, approx.data());
  std::optional<double> outErr, rtnErr;
  if (sample && sample->size()) {
    outErr = quant::relativeOutputError(sample->data(), sample->size(), q.cols,
                                        original.data(), approx.data(), q.rows);
    quant::UniformMatrix rtn =
        quant::quantizeRTN(original.data(), q.rows, q.cols, q.scheme);
    std::vector<float> rtnApprox(original.size());
    quant::dequantize(rtn, rtnApprox.data());
    rtnErr = quant::relativeOutputError(sample->data(), sample->size(), q.cols,
                                        original.data(), rtnApprox.data(),
                                        q.rows);
  }
  report.add(layers[i], scheme, original, approx,
             getStoredBytes(layers[i].weight), getPackedBytes(q), outErr,
             rtnErr);
  replaceWithQLinear(layers[i], q);
}

std::optional<ScaleFold> llq::getNormBefore(Value input) {
  Operation *def = input.getDefiningOp();
  if (isa_and_nonnull<RMSNormOp>(def))
    return ScaleFold{def, 1};
  if (auto skip = dyn_cast_or_null<SkipRMSNormOp>(def);
      skip && input == skip.getResult())
    return ScaleFold{def, 2};
  return std::nullopt;
}

FailureOr<std::vector<float>> llq::getVectorValues(Value v,
                                                   WeightStore &store) {
  if (auto weight = v.getDefiningOp<WeightOp>())
    return store.getFloats(weight);
  DenseElementsAttr dense;
  if (auto cst = v.getDefiningOp<arith::ConstantOp>())
    dense = dyn_cast<DenseElementsAttr>(cst.getValue());
  if (!dense || !isa<FloatType>(dense.getElementType()))
    return failure();
  std::vector<float> out;
  for (const APFloat &x : dense.getValues<APFloat>())
    out.push_back(x.convertToFloat());
  return out;
}

LogicalResult llq::foldIntoNorm(const ScaleFold &fold, ArrayRef<float> scales,
                                WeightStore &store, StringRef consumer) {
  Value weight = fold.op->getOperand(fold.operand);
  FailureOr<std::vector<float>> values = getVectorValues(weight, store);
  if (failed(values) || values->size() != scales.size())
    return fold.op->emitError("cannot fold per-channel scales into this "
                              "norm's weight");
  for (size_t i = 0; i < values->size(); ++i)
    (*values)[i] /= scales[i];
  std::string name = consumer.str() + ".input_norm.scaled";
  if (auto w = weight.getDefiningOp<WeightOp>())
    name = w.getName().str() + ".scaled";
  fold.op->setOperand(fold.operand,
                      createFloatConstant(fold.op, name,
                                          {int64_t(values->size())}, *values));
  return success();
}

LogicalResult llq::runCalibratedMethod(
    ModuleOp module, const CalibratedOptions &options,
    const std::function<LogicalResult(BlockContext &)> &quantizeBlock) {
  Location loc = module.getLoc();
  if (std::string why = quant::validate(options.scheme); !why.empty())
    return emitError(loc, "llq-quantize-") << options.method << ": " << why;
  if (options.calib.empty())
    return emitError(loc, "llq-quantize-")
           << options.method
           << " needs calibration data (--calib=FILE of token ids)";
  if (options.samples <= 0 || options.seqLen <= 0)
    return emitError(loc, "calibration needs positive --calib-samples and "
                          "--calib-seqlen");
  FailureOr<std::vector<int64_t>> tokens = readTokenFile(options.calib, loc);
  if (failed(tokens))
    return failure();

  std::vector<QuantizableLayer> all =
      collectQuantizableLayers(module, options.includeHead);
  func::FuncOp func;
  for (auto f : module.getOps<func::FuncOp>())
    if (!f.isExternal())
      func = f;
  if (!func)
    return emitError(loc, "no function to calibrate");
  std::unique_ptr<CalibrationSession> session = CalibrationSession::create(
      func, drawWindows(*tokens, options.samples, options.seqLen,
                        options.seed));
  if (!session)
    return failure();

  WeightStore store;
  QuantReport report;
  Progress progress(options.method, session->numBlocks());
  for (int b = 0; b < session->numBlocks(); ++b) {
    BlockContext context{*session, b, {}, {}, {}, store, report, options};
    for (QuantizableLayer &layer : all) {
      if (getBlockIndex(layer.name) != b || !layer.op)
        continue;
      Value input = layer.op.getInput();
      auto it = llvm::find(context.inputs, input);
      context.inputOf.push_back(it - context.inputs.begin());
      if (it == context.inputs.end())
        context.inputs.push_back(input);
      context.layers.push_back(layer);
    }
    if (!context.layers.empty() && failed(quantizeBlock(context)))
      return failure();
    if (failed(session->advance(b)))
      return failure();
    progress.advance(1, "block " + std::to_string(b));
  }
  progress.finish();
  eraseUnusedWeights(module);
  return report.write(options.report, loc);
}
