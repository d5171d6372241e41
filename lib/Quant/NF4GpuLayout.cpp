//===- NF4GpuLayout.cpp - NF4 layers in the GPU kernels' layout ----------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Apart from GpuLayout.cpp so that the k-chunk layout (what the GPU bench and
// runtime link) does not pull in the NF4 numerics.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/Codebook.h"
#include "llq/Quant/GpuLayout.h"

namespace llq::quant {

NF4GpuLayer makeNF4GpuLayer(const NF4Matrix &m) {
  NF4GpuLayer out;
  const int64_t n = m.rows, k = m.cols, blocks = m.blocksPerRow();
  out.codes.resize(kChunkWords(n, k, 4));
  repackBitstreamToKChunk(m.packed.data(), n, k, 4, out.codes.data(), 4);
  out.scales.resize(blocks * n);
  out.shifts.resize(blocks * n);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t b = 0; b < blocks; ++b) {
      out.scales[b * n + r] = m.blockScale(r * blocks + b);
      out.shifts[b * n + r] = m.blockShift(r * blocks + b);
    }
  out.levels = nf4Levels();
  return out;
}

} // namespace llq::quant
