//===- QuantizeSmoothQuant.cpp - SmoothQuant as a pass --------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "CalibratedMethod.h"
#include "llq/Quant/SmoothQuant.h"
#include "llq/Quant/Statistics.h"
#include "llq/Transforms/Passes.h"

namespace llq {
#define GEN_PASS_DEF_QUANTIZESMOOTHQUANTPASS
#include "llq/Transforms/Passes.h.inc"
} // namespace llq

using namespace mlir;
using namespace llq;

constexpr int64_t kSampleRows = 512;

namespace {
struct QuantizeSmoothQuantPass
    : llq::impl::QuantizeSmoothQuantPassBase<QuantizeSmoothQuantPass> {
  using QuantizeSmoothQuantPassBase::QuantizeSmoothQuantPassBase;

  void runOnOperation() override {
    CalibratedOptions options = LLQ_CALIBRATED_OPTIONS("smoothquant");
    // Weights: symmetric per output channel, as SmoothQuant quantizes them.
    options.scheme = {static_cast<int>(bits), 0, /*symmetric=*/true};
    if (actBits < 2 || actBits > 8) {
      getOperation().emitError("llq-quantize-smoothquant: act-bits must be "
                               "2..8, got ")
          << actBits;
      return signalPassFailure();
    }
    auto quantizeBlock = [&](BlockContext &block) -> LogicalResult {
      std::vector<quant::ChannelStats> stats;
      std::vector<RowSample> samples;
      for (Value input : block.inputs) {
        int64_t k = cast<ShapedType>(input.getType()).getShape().back();
        stats.emplace_back(k);
        samples.emplace_back(k, kSampleRows, block.session.numWindows());
      }
      if (failed(block.observeInputs([&](size_t i, const rt::Tensor &x) {
            int64_t k = samples[i].columns();
            stats[i].add(x.data<float>(), x.numel() / k);
            samples[i].add(x);
          })))
        return failure();

      std::vector<std::vector<float>> weights(block.layers.size());
      for (size_t i = 0; i < block.layers.size(); ++i) {
        FailureOr<std::vector<float>> w = block.weights(i);
        if (failed(w))
          return failure();
        weights[i] = std::move(*w);
      }
      // Smooth the inputs that come straight from a norm; the others
      // (attention output, SwiGLU output) are quantized as they are.
      std::vector<std::vector<float>> inputScales(block.inputs.size());
      for (size_t in = 0; in < block.inputs.size(); ++in) {
        std::optional<ScaleFold> fold = getNormBefore(block.inputs[in]);
        if (!fold)
          continue;
        std::vector<const float *> ws;
        std::vector<int64_t> rows;
        for (size_t i = 0; i < block.layers.size(); ++i)
          if (block.inputOf[i] == in) {
            ws.push_back(weights[i].data());
            LinearOp op = block.layers[i].op;
            rows.push_back(op.getOutFeatures());
          }
        int64_t k = samples[in].columns();
        std::vector<float> s =
            quant::smoothQuantScales(stats[in].maxAbs(), ws, rows, k, alpha);
        size_t first = llvm::find(block.inputOf, in) - block.inputOf.begin();
        if (failed(foldIntoNorm(*fold, s, block.store,
                                block.layers[first].name)))
          return failure();
        inputScales[in] = std::move(s);
      }

      MLIRContext *ctx = &getContext();
      auto scheme = SchemeAttr::get(
          ctx, bits, 0, true, Codebook::uniform, actBits,
          perTensor ? ActGranularity::per_tensor : ActGranularity::per_token);
      for (size_t i = 0; i < block.layers.size(); ++i) {
        size_t in = block.inputOf[i];
        const std::vector<float> &s = inputScales[in];
        int64_t k = samples[in].columns();
        std::vector<float> scaled = weights[i];
        if (!s.empty())
          for (size_t j = 0; j < scaled.size(); ++j)
            scaled[j] *= s[j % k];
        quant::UniformMatrix q = quant::quantizeRTN(
            scaled.data(), scaled.size() / k, k, options.scheme);
        // The per-tensor step: the largest smoothed input over calibration.
        std::optional<float> step;
        if (perTensor) {
          float amax = 0;
          for (int64_t j = 0; j < k; ++j)
            amax = std::max(amax, stats[in].maxAbs()[j] / (s.empty() ? 1 : s[j]));
          step = std::max(amax, 1e-8f) / float((1 << (actBits - 1)) - 1);
        }
        // Report in the original space: undo the column scaling.
        if (!s.empty())
          for (size_t j = 0; j < scaled.size(); ++j)
            scaled[j] /= s[j % k];
        std::vector<float> approx(q.rows * q.cols);
        quant::dequantize(q, approx.data());
        if (!s.empty())
          for (size_t j = 0; j < approx.size(); ++j)
            approx[j] /= s[j % k];
        block.report.add(block.layers[i], scheme.getSpecString(), weights[i],
                         approx, getStoredBytes(block.layers[i].weight),
                         getPackedBytes(q));
        replaceWithQLinear(block.layers[i], q, scheme, step);
      }
      return success();
    };
    if (failed(runCalibratedMethod(getOperation(), options, quantizeBlock)))
      signalPassFailure();
  }
};
} // namespace
