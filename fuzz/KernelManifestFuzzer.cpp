//===- KernelManifestFuzzer.cpp - libFuzzer entry for kernels.txt ---------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Feeds arbitrary bytes to the GPU runtime's manifest parser. Any input must
// yield a manifest or an error with a message; every kernel of an accepted
// manifest must have a launch grid the runtime can compute for the rows it
// says it handles (no division by zero, no overflow into a zero grid).
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Cuda/KernelManifest.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace llq::rt::cuda;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view text(reinterpret_cast<const char *>(data), size);
  Expected<KernelManifest> manifest = KernelManifest::parse(text, "fuzz");
  if (!manifest.ok()) {
    if (manifest.message().empty())
      std::abort();
    return 0;
  }
  for (const ManifestKernel &kernel : manifest->kernels) {
    const bool quantized = kernel.kind == QGemmKernelKind::Decode ||
                           kernel.kind == QGemmKernelKind::Prefill;
    if (manifest->find(kernel.name) == nullptr ||
        (quantized && kernel.groups() <= 0))
      std::abort();
    for (int64_t m : {int64_t(1), int64_t(kernel.mTile), int64_t(4096)}) {
      if (!kernel.handles(m))
        continue;
      std::array<uint32_t, 3> grid = kernel.grid(m);
      if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0)
        std::abort();
    }
  }
  return 0;
}
