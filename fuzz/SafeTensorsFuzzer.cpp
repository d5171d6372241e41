//===- SafeTensorsFuzzer.cpp - libFuzzer entry for the reader -------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Feeds arbitrary bytes to the safetensors reader. Any input must yield either
// a reader or an error; touching every tensor byte lets the sanitizers catch
// offsets that validation should have rejected.
//
//===----------------------------------------------------------------------===//

#include "llq/Archive/SafeTensors.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string error;
  std::unique_ptr<llq::SafeTensorsReader> reader =
      llq::SafeTensorsReader::fromBuffer(data, size, "fuzz", error);
  if (!reader) {
    // A rejection without a message would leave users with nothing to act on.
    if (error.empty())
      std::abort();
    return 0;
  }

  uint8_t checksum = 0;
  for (const llq::TensorInfo &tensor : reader->tensors()) {
    if (reader->find(tensor.name) != &tensor)
      std::abort();
    const uint8_t *bytes = reader->data(tensor);
    for (uint64_t i = 0; i < tensor.nbytes; ++i)
      checksum ^= bytes[i];
  }
  for (const auto &entry : reader->metadata())
    checksum ^= static_cast<uint8_t>(entry.first.size() + entry.second.size());
  // Keeps the reads from being optimized away.
  volatile uint8_t sink = checksum;
  (void)sink;
  return 0;
}
