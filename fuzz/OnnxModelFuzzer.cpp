//===- OnnxModelFuzzer.cpp - libFuzzer entry for the ONNX decoder ---------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Feeds arbitrary bytes to the ONNX decoder and, when they decode, to the
// verifier. Any input must yield either a model or an error naming the input;
// touching every embedded tensor byte lets the sanitizers catch offsets that
// decoding should have rejected. unittests/Import/Inputs/*.onnx make a good
// seed corpus.
//
//===----------------------------------------------------------------------===//

#include "llq/Import/OnnxModel.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

void touch(const llq::onnx::TensorData &tensor, const uint8_t *data,
           size_t size, uint8_t &checksum) {
  if (tensor.kind != llq::onnx::TensorData::Kind::Embedded)
    return;
  if (tensor.offset > size || tensor.length > size - tensor.offset)
    std::abort();
  for (uint64_t i = 0; i < tensor.length; ++i)
    checksum ^= data[tensor.offset + i];
}

void touchGraph(const llq::onnx::Graph &graph, const uint8_t *data, size_t size,
                uint8_t &checksum) {
  for (const llq::onnx::TensorData &tensor : graph.initializers)
    touch(tensor, data, size, checksum);
  for (const llq::onnx::Node &node : graph.nodes) {
    for (const llq::onnx::Attribute &attribute : node.attributes) {
      for (const llq::onnx::TensorData &tensor : attribute.tensors)
        touch(tensor, data, size, checksum);
      // Depth is bounded by the decoder's nesting limit.
      for (const auto &subgraph : attribute.graphs)
        touchGraph(*subgraph, data, size, checksum);
    }
  }
}

/// A rejection without a message would leave users with nothing to act on.
void checkError(const std::string &error) {
  if (error.rfind("fuzz: ", 0) != 0 || error.size() <= 6)
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llq::onnx::Model model;
  std::string error;
  if (!llq::onnx::parseModel(data, size, "fuzz", model, error)) {
    checkError(error);
    return 0;
  }
  uint8_t checksum = 0;
  touchGraph(model.graph, data, size, checksum);
  if (!llq::onnx::verifyModel(model, error))
    checkError(error);
  // Keeps the reads from being optimized away.
  volatile uint8_t sink = checksum;
  (void)sink;
  return 0;
}
