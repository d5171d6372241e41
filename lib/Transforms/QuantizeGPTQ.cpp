//===- QuantizeGPTQ.cpp - GPTQ as a pass ----------------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "CalibratedMethod.h"
#include "llq/Quant/GPTQ.h"
#include "llq/Quant/Statistics.h"
#include "llq/Transforms/Passes.h"

namespace llq {
#define GEN_PASS_DEF_QUANTIZEGPTQPASS
#include "llq/Transforms/Passes.h.inc"
} // namespace llq

using namespace mlir;
using namespace llq;

/// Rows of each layer input kept to measure output errors.
constexpr int64_t kSampleRows = 512;

namespace {
struct QuantizeGPTQPass : llq::impl::QuantizeGPTQPassBase<QuantizeGPTQPass> {
  using QuantizeGPTQPassBase::QuantizeGPTQPassBase;

  void runOnOperation() override {
    CalibratedOptions options = LLQ_CALIBRATED_OPTIONS("gptq");
    quant::GPTQOptions gptq;
    gptq.scheme = options.scheme;
    gptq.blockSize = blockSize;
    gptq.dampPercent = damp;
    gptq.actOrder = actOrder;
    gptq.staticGroups = staticGroups;
    auto quantizeBlock = [&](BlockContext &block) -> LogicalResult {
      // H = 2 X X^T of every distinct input, from the block as it stands
      // (its inputs come from the quantized blocks before it).
      std::vector<quant::HessianAccumulator> hessians;
      std::vector<RowSample> samples;
      if (failed(block.collectHessians(hessians, samples, kSampleRows)))
        return failure();
      for (size_t i = 0; i < block.layers.size(); ++i) {
        FailureOr<std::vector<float>> w = block.weights(i);
        if (failed(w))
          return failure();
        const QuantizableLayer &layer = block.layers[i];
        LinearOp op = layer.op;
        int64_t n = op.getOutFeatures(), k = op.getInFeatures();
        quant::UniformMatrix q;
        std::string error;
        // A Hessian that is not positive definite after damping (too few
        // tokens for a wide input) gets more damping, as practitioners do.
        quant::GPTQOptions attempt = gptq;
        bool ok = false;
        for (int tries = 0; tries < 4 && !ok; ++tries, attempt.dampPercent *= 10)
          ok = quant::gptqQuantize(w->data(), n, k,
                                   hessians[block.inputOf[i]].matrix(),
                                   attempt, q, error);
        if (!ok)
          return op.emitError("GPTQ failed on ")
                 << layer.name << ": " << error;
        block.commit(i, *w, q, &samples[block.inputOf[i]],
                     "gptq-" + getSchemeAttr(&getContext(), gptq.scheme)
                                   .getSpecString() +
                         (actOrder ? "-act" : ""));
      }
      return success();
    };
    if (failed(runCalibratedMethod(getOperation(), options, quantizeBlock)))
      signalPassFailure();
  }
};
} // namespace
