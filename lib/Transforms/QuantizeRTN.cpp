//===- QuantizeRTN.cpp - Round-to-nearest quantization pass ---------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Dialect/LLQ/Utils/WeightStore.h"
#include "llq/Support/Progress.h"
#include "llq/Transforms/Passes.h"
#include "llq/Transforms/QuantizeUtils.h"

namespace llq {
#define GEN_PASS_DEF_QUANTIZERTNPASS
#include "llq/Transforms/Passes.h.inc"
} // namespace llq

using namespace mlir;
using namespace llq;

namespace {
/// Quantizes every archived linear layer to the nearest grid point.
struct QuantizeRTNPass : llq::impl::QuantizeRTNPassBase<QuantizeRTNPass> {
  using QuantizeRTNPassBase::QuantizeRTNPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    quant::UniformScheme scheme;
    scheme.bits = bits;
    scheme.groupSize = groupSize;
    scheme.symmetric = symmetric;
    if (std::string why = quant::validate(scheme); !why.empty()) {
      emitError(module.getLoc(), "llq-quantize-rtn: ") << why;
      return signalPassFailure();
    }

    std::vector<QuantizableLayer> layers = collectQuantizableLayers(module, includeHead);
    WeightStore store;
    QuantReport table;
    Progress progress("rtn", layers.size());
    for (QuantizableLayer &layer : layers) {
      int64_t n = layer.op.getOutFeatures(), k = layer.op.getInFeatures();
      FailureOr<std::vector<float>> w =
          store.getMatrixNK(layer.weight, layer.op.getWeightKn());
      if (failed(w))
        return signalPassFailure();
      quant::UniformMatrix q = quant::quantizeRTN(w->data(), n, k, scheme);
      std::vector<float> approx(w->size());
      quant::dequantize(q, approx.data());
      table.add(layer, getSchemeAttr(&getContext(), scheme).getSpecString(),
                 *w, approx, getStoredBytes(layer.weight), getPackedBytes(q));
      replaceWithQLinear(layer, q);
      progress.advance(1, layer.name);
    }
    progress.finish();
    eraseUnusedWeights(module);
    if (failed(table.write(report, module.getLoc())))
      return signalPassFailure();
  }
};
} // namespace
