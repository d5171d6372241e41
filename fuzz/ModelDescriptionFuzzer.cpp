//===- ModelDescriptionFuzzer.cpp - libFuzzer entry for model.txt ---------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Feeds arbitrary bytes to the runtime's parsers of a compiled model's
// model.txt and layers.txt. Any input must yield a description or an error
// with a message; an accepted description has positive dimensions, at least
// one block, and every kernel the runtime launches.
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Cuda/ModelEngine.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

using namespace llq::rt::cuda;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  Expected<ModelDescription> model = ModelDescription::parse(text, "fuzz");
  if (!model.ok()) {
    if (model.message().empty())
      std::abort();
  } else {
    const ModelDescription &d = *model;
    if (d.hidden <= 0 || d.heads <= 0 || d.kvHeads <= 0 || d.headDim <= 0 ||
        d.vocab <= 0 || d.maxContext <= 0 || d.prefillRows <= 0 ||
        d.blocks.empty() || d.heads % d.kvHeads != 0)
      std::abort();
    for (const char *op : {"embed", "add_sumsq", "rmsnorm", "rope", "scores",
                           "softmax", "values", "swiglu"})
      if (!d.kernels.count(op))
        std::abort();
  }
  Expected<std::map<std::string, LayerEntry>> layers =
      parseLayerTable(text, "fuzz");
  if (!layers.ok()) {
    if (layers.message().empty())
      std::abort();
    return 0;
  }
  for (const auto &[name, l] : *layers)
    if (l.n <= 0 || l.k <= 0 || (l.decode.empty() && l.prefill.empty()) ||
        l.w.empty() || (!l.f16 && l.format.empty() && l.groups <= 0) ||
        (l.format == "pbllm" && l.parts.size() != 6) ||
        ((l.format == "billm" || l.format == "dbllm" || l.format == "nf4") &&
         l.parts.size() != 4))
      std::abort();
  return 0;
}
