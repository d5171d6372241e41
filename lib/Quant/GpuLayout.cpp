//===- GpuLayout.cpp - Weight layout of the GPU quantized GEMM kernels ----===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/GpuLayout.h"

#include "llq/Quant/Half.h"
#include "llq/Quant/Packing.h"

#include <cassert>

namespace llq::quant {

bool isKChunkBits(int bits) { return bits == 2 || bits == 4 || bits == 8; }

int kChunkContainerBits(int bits) {
  return bits <= 2 ? 2 : bits <= 4 ? 4 : 8;
}

std::string kChunkUnsupportedReason(int64_t n, int64_t k, int bits,
                                    int64_t group) {
  if (!isKChunkBits(bits))
    return "the GPU kernels read 2-, 4- or 8-bit codes, not " +
           std::to_string(bits) + "-bit";
  int64_t chunk = kChunkCodes(bits);
  if (n <= 0 || k <= 0)
    return "empty layer";
  if (k % chunk != 0)
    return "in features " + std::to_string(k) + " are not a multiple of the " +
           std::to_string(chunk) + " codes of a 128-bit chunk";
  if (group <= 0 || group % chunk != 0)
    return "group " + std::to_string(group) + " is not a multiple of the " +
           std::to_string(chunk) + " codes of a 128-bit chunk";
  return "";
}

int64_t kChunkWords(int64_t n, int64_t k, int bits) {
  return k / kChunkCodes(bits) * n * 4;
}

namespace {
/// Bit offset of local code i (0 .. 32/b - 1) inside its word.
inline int codeShift(int64_t i, int bits) {
  return (i % 2 ? 16 : 0) + static_cast<int>(i / 2) * bits;
}
} // namespace

void packKChunk(const uint8_t *codes, int64_t n, int64_t k, int bits,
                uint32_t *out) {
  assert(isKChunkBits(bits) && k % kChunkCodes(bits) == 0);
  const int64_t chunk = kChunkCodes(bits), perWord = 32 / bits;
  const int64_t chunks = k / chunk;
  const uint32_t mask = (1u << bits) - 1;
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t r = 0; r < n; ++r) {
      const uint8_t *src = codes + r * k + c * chunk;
      uint32_t *dst = out + (c * n + r) * 4;
      for (int w = 0; w < 4; ++w) {
        uint32_t word = 0;
        for (int64_t i = 0; i < perWord; ++i)
          word |= (src[w * perWord + i] & mask) << codeShift(i, bits);
        dst[w] = word;
      }
    }
}

void repackBitstreamToKChunk(const uint32_t *bitstream, int64_t n, int64_t k,
                             int bits, uint32_t *out, int containerBits) {
  const int64_t words = packedWordsPerRow(k, bits);
  std::vector<uint8_t> row(k);
  if (containerBits == 0)
    containerBits = bits;
  assert(containerBits >= bits && isKChunkBits(containerBits));
  const int64_t chunk = kChunkCodes(containerBits),
                perWord = 32 / containerBits;
  const int64_t chunks = k / chunk;
  for (int64_t r = 0; r < n; ++r) {
    unpackRows(bitstream + r * words, 1, k, bits, row.data());
    for (int64_t c = 0; c < chunks; ++c) {
      uint32_t *dst = out + (c * n + r) * 4;
      for (int w = 0; w < 4; ++w) {
        uint32_t word = 0;
        for (int64_t i = 0; i < perWord; ++i)
          word |= uint32_t(row[c * chunk + w * perWord + i])
                  << codeShift(i, containerBits);
        dst[w] = word;
      }
    }
  }
}

void unpackKChunk(const uint32_t *packed, int64_t n, int64_t k, int bits,
                  uint8_t *out) {
  const int64_t chunk = kChunkCodes(bits), perWord = 32 / bits;
  const int64_t chunks = k / chunk;
  const uint32_t mask = (1u << bits) - 1;
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t r = 0; r < n; ++r) {
      const uint32_t *src = packed + (c * n + r) * 4;
      uint8_t *dst = out + r * k + c * chunk;
      for (int w = 0; w < 4; ++w)
        for (int64_t i = 0; i < perWord; ++i)
          dst[w * perWord + i] = (src[w] >> codeShift(i, bits)) & mask;
    }
}

KChunkGroupConstants makeKChunkGroupConstants(const float *scales,
                                              const uint8_t *zeros, int64_t n,
                                              int64_t groups, int bits) {
  KChunkGroupConstants c;
  c.scales.resize(groups * n);
  c.biases.resize(groups * n);
  const float symmetricZero = float(1 << (bits - 1));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < groups; ++g) {
      c.scales[g * n + r] = floatToHalf(scales[r * groups + g]);
      float z = zeros ? float(zeros[r * groups + g]) : symmetricZero;
      c.biases[g * n + r] = floatToHalf(1024.0f + z);
    }
  return c;
}

void referenceQGemm(const float *x, int64_t m, const uint8_t *codes,
                    const float *scales, const uint8_t *zeros, int64_t n,
                    int64_t k, int bits, int64_t group, double *y,
                    const std::vector<int64_t> &rows) {
  const int64_t groups = (k + group - 1) / group;
  const double symmetricZero = double(1 << (bits - 1));
  std::vector<int64_t> all;
  const std::vector<int64_t> *selected = &rows;
  if (rows.empty()) {
    all.resize(m);
    for (int64_t i = 0; i < m; ++i)
      all[i] = i;
    selected = &all;
  }
  std::vector<double> w(k);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < k; ++j) {
      int64_t g = j / group;
      double z = zeros ? double(zeros[r * groups + g]) : symmetricZero;
      w[j] = (double(codes[r * k + j]) - z) * double(scales[r * groups + g]);
    }
    for (int64_t i : *selected) {
      double acc = 0;
      const float *xr = x + i * k;
      for (int64_t j = 0; j < k; ++j)
        acc += double(xr[j]) * w[j];
      y[i * n + r] = acc;
    }
  }
}

} // namespace llq::quant

namespace llq::quant {

void transposeWords(const uint32_t *rowMajor, int64_t n, int64_t words,
                    uint32_t *out) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t w = 0; w < words; ++w)
      out[w * n + r] = rowMajor[r * words + w];
}

void transposeGroupParams(const uint16_t *rowMajor, int64_t n, int64_t groups,
                          int64_t per, uint16_t *out) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t q = 0; q < per; ++q)
        out[(g * n + r) * per + q] = rowMajor[(r * groups + g) * per + q];
}

bool makeBiLLMGpuPlanes(int64_t n, int64_t k, int64_t blockSize,
                        const uint32_t *salientColumns, const uint32_t *signs,
                        const uint32_t *residualSigns, const uint32_t *sparse,
                        const uint16_t *alphas, BiLLMGpuPlanes &out,
                        std::string &error) {
  if (k % 32 || blockSize <= 0 || blockSize % 32) {
    error = "the BiLLM GPU layout needs K (" + std::to_string(k) +
            ") and the block (" + std::to_string(blockSize) +
            ") to be multiples of 32";
    return false;
  }
  const int64_t words = k / 32, blocks = (k + blockSize - 1) / blockSize;
  auto bit = [](const uint32_t *p, int64_t i) {
    return (p[i / 32] >> (i % 32)) & 1u;
  };
  int64_t salientCount = 0;
  for (int64_t j = 0; j < k; ++j)
    salientCount += bit(salientColumns, j);
  const int64_t residualWords = (salientCount + 31) / 32,
                sparseWords = (k - salientCount + 31) / 32;
  out.mask.assign(salientColumns, salientColumns + words);
  out.first.assign(words * n, 0);
  out.second.assign(words * n, 0);
  transposeWords(signs, n, words, out.first.data());
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0, si = 0, oi = 0; j < k; ++j) {
      uint32_t b2 = bit(salientColumns, j)
                        ? bit(residualSigns + r * residualWords, si++)
                        : bit(sparse + r * sparseWords, oi++);
      out.second[(j / 32) * n + r] |= b2 << (j % 32);
    }
  out.alphas.assign(blocks * n * 4, 0);
  transposeGroupParams(alphas, n, blocks, 4, out.alphas.data());
  return true;
}

} // namespace llq::quant
