//===- GpuLayoutTest.cpp - The k-chunk layout of the GPU kernels ----------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/GpuLayout.h"
#include "llq/Quant/Half.h"
#include "llq/Quant/Packing.h"

#include <gtest/gtest.h>

#include <random>

using namespace llq::quant;

namespace {

TEST(GpuLayout, FourBitWordInterleavesPairsForTheHalfTrick) {
  // One row, one chunk: codes 0..15, 0..15.
  std::vector<uint8_t> codes(32);
  for (int i = 0; i < 32; ++i)
    codes[i] = i % 16;
  std::vector<uint32_t> w(4);
  packKChunk(codes.data(), 1, 32, 4, w.data());
  // Word 0 holds codes 0..7: even ones in the low half, odd in the high.
  EXPECT_EQ(w[0], 0x75316420u);
  EXPECT_EQ(w[1], 0xFDB9ECA8u);
  // (w >> 4j) & 0x000F000F | 0x64006400 is the half2 (1024 + c[2j], 1024 + c[2j+1]).
  for (int j = 0; j < 4; ++j) {
    uint32_t h2 = ((w[0] >> (4 * j)) & 0x000F000Fu) | 0x64006400u;
    EXPECT_EQ(halfToFloat(h2 & 0xFFFF), 1024.0f + codes[2 * j]);
    EXPECT_EQ(halfToFloat(h2 >> 16), 1024.0f + codes[2 * j + 1]);
  }
}

TEST(GpuLayout, ChunksAreChunkMajorAcrossRows) {
  const int64_t n = 3, k = 64;
  std::vector<uint8_t> codes(n * k);
  for (int64_t i = 0; i < n * k; ++i)
    codes[i] = (i / k) == 1 ? 0xF : 0;
  std::vector<uint32_t> w(kChunkWords(n, k, 4));
  packKChunk(codes.data(), n, k, 4, w.data());
  // Chunk c of row r is at word (c * n + r) * 4.
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t r = 0; r < n; ++r)
      for (int i = 0; i < 4; ++i)
        EXPECT_EQ(w[(c * n + r) * 4 + i], r == 1 ? 0xFFFFFFFFu : 0u);
}

TEST(GpuLayout, RoundTripsAndMatchesTheBitstreamRepack) {
  std::mt19937 rng(7);
  for (int bits : {2, 4, 8}) {
    const int64_t n = 37, k = 4 * kChunkCodes(bits);
    std::vector<uint8_t> codes(n * k), back(n * k);
    for (auto &c : codes)
      c = rng() & ((1u << bits) - 1);
    std::vector<uint32_t> direct(kChunkWords(n, k, bits)),
        viaStream(direct.size());
    packKChunk(codes.data(), n, k, bits, direct.data());
    unpackKChunk(direct.data(), n, k, bits, back.data());
    EXPECT_EQ(back, codes) << bits << "-bit";
    std::vector<uint32_t> stream(n * packedWordsPerRow(k, bits));
    packRows(codes.data(), n, k, bits, stream.data());
    repackBitstreamToKChunk(stream.data(), n, k, bits, viaStream.data());
    EXPECT_EQ(viaStream, direct) << bits << "-bit";
  }
}

TEST(GpuLayout, GroupConstantsAreGroupMajorWithTheBias) {
  const float scales[] = {0.5f, 0.25f, 2.0f, 4.0f}; // [n=2][g=2]
  const uint8_t zeros[] = {1, 2, 3, 4};
  KChunkGroupConstants c = makeKChunkGroupConstants(scales, zeros, 2, 2, 4);
  EXPECT_EQ(halfToFloat(c.scales[0]), 0.5f);  // g0 n0
  EXPECT_EQ(halfToFloat(c.scales[1]), 2.0f);  // g0 n1
  EXPECT_EQ(halfToFloat(c.scales[2]), 0.25f); // g1 n0
  EXPECT_EQ(halfToFloat(c.biases[1]), 1027.0f);
  KChunkGroupConstants sym = makeKChunkGroupConstants(scales, nullptr, 2, 2, 4);
  EXPECT_EQ(halfToFloat(sym.biases[3]), 1032.0f);
}

TEST(GpuLayout, ExplainsUnsupportedShapes) {
  EXPECT_EQ(kChunkUnsupportedReason(4096, 4096, 4, 128), "");
  EXPECT_NE(kChunkUnsupportedReason(4096, 4096, 3, 128), "");
  EXPECT_NE(kChunkUnsupportedReason(4096, 4080, 4, 128), "");
  EXPECT_NE(kChunkUnsupportedReason(4096, 4096, 2, 32), ""); // chunk is 64
}

} // namespace
