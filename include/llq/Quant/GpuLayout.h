//===- GpuLayout.h - Weight layout of the GPU quantized GEMM kernels -*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The "k-chunk" layout that llq's generated GPU kernels read, written by the
// pack step of llq-compile from the row-major bitstream of llq.qlinear.
//
// A chunk is 16 bytes (four 32-bit words, one 128-bit load) holding the
// C = 128 / b consecutive codes of one output row n for k in
// [c*C, (c+1)*C). Chunks are stored chunk-major: chunk c of row n is at
// word (c * N + n) * 4, so the 32 lanes of a warp that handle 32 consecutive
// rows read 512 contiguous bytes.
//
// Word w of a chunk holds the 32 / b codes for k = c*C + w*(32/b) + i. Within
// a word the codes are interleaved for the int-to-half trick: with
// P = 16 / b, code i = 2j sits at bits [j*b, j*b + b) and code i = 2j + 1 at
// bits [16 + j*b, 16 + j*b + b). So (word >> (j*b)) & mask(b) * 0x00010001,
// OR-ed with 0x64006400, is the half2 (1024 + code[2j], 1024 + code[2j+1]):
// one shift, one AND-OR per pair, no conversion instruction.
//
// Per-group constants are f16 and group-major ([G][N], coalesced like the
// chunks): the scale s and the bias 1024 + z (z the zero point; 2^(b-1) for a
// symmetric scheme), so a weight is ((1024 + code) - (1024 + z)) * s, the
// subtraction exact in f16.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_QUANT_GPULAYOUT_H
#define LLQ_QUANT_GPULAYOUT_H

#include "llq/Quant/NF4.h"

#include <cstdint>
#include <string>
#include <vector>

namespace llq::quant {

/// Code widths the k-chunk layout supports (those that divide 16).
bool isKChunkBits(int bits);

/// The k-chunk width that holds \p bits-bit codes (1..8): 2, 4 or 8. Codes
/// of 3, 5, 6 and 7 bits run in the next wider container until the kernels
/// read bit planes.
int kChunkContainerBits(int bits);

/// Codes per 16-byte chunk, 128 / bits.
inline int64_t kChunkCodes(int bits) { return 128 / bits; }

/// Why an (n, k, bits, group) layer cannot use the k-chunk layout, or ""
/// when it can: bits in {2, 4, 8}, K a multiple of the chunk, and the group
/// a multiple of the chunk (the last group may be short, as K need not be a
/// multiple of the group).
std::string kChunkUnsupportedReason(int64_t n, int64_t k, int bits,
                                    int64_t group);

/// Words of the k-chunk layout for an N x K layer: (K / C) * N * 4.
int64_t kChunkWords(int64_t n, int64_t k, int bits);

/// The integer prefill kernels spread each k-chunk word into bytes with
/// shifts and masks alone: spread word t (of 8 / bits) of a word takes the
/// codes at bits t * bits + 8p, p = 0..3. Its byte p is therefore the word's
/// code 2 * ((p % 2) * (8 / bits) + t) + p / 2, and the quantized
/// activations are stored in the same order: within each run of 32 / bits
/// values (one word's codes), byte position j holds k offset
/// kChunkByteOrder(bits, j).
inline int64_t kChunkByteOrder(int bits, int64_t j) {
  const int64_t t = j / 4, p = j % 4;
  return 2 * ((p % 2) * (8 / bits) + t) + p / 2;
}

/// Repacks row-major codes (one byte each, N x K) into the k-chunk layout.
void packKChunk(const uint8_t *codes, int64_t n, int64_t k, int bits,
                uint32_t *out);

/// Repacks llq.qlinear's row-major bitstream of \p bits-bit codes (see
/// Packing.h) into the k-chunk layout of \p containerBits-bit codes
/// (>= bits), one row at a time.
void repackBitstreamToKChunk(const uint32_t *bitstream, int64_t n, int64_t k,
                             int bits, uint32_t *out, int containerBits = 0);

/// Inverse of packKChunk.
void unpackKChunk(const uint32_t *packed, int64_t n, int64_t k, int bits,
                  uint8_t *out);

/// Per-group constants in the kernels' [G][N] f16 layout, from row-major
/// [N][G] scales (f32 values) and zero points (nullptr for symmetric).
struct KChunkGroupConstants {
  std::vector<uint16_t> scales; ///< f16 bits, [G][N]
  std::vector<uint16_t> biases; ///< f16 bits of 1024 + z, [G][N]
};
KChunkGroupConstants makeKChunkGroupConstants(const float *scales,
                                              const uint8_t *zeros, int64_t n,
                                              int64_t groups, int bits);

/// The float64 reference product the kernels are checked against:
/// y[m, n] = sum_k x[m, k] * (code[n, k] - z[n, g]) * s[n, g], with x, s
/// taken as given (already rounded to f16 by the caller where the kernel
/// reads f16). \p rows selects the output rows m to compute (all when empty);
/// y is M x N (rows not selected are left untouched).
void referenceQGemm(const float *x, int64_t m, const uint8_t *codes,
                    const float *scales, const uint8_t *zeros, int64_t n,
                    int64_t k, int bits, int64_t group, double *y,
                    const std::vector<int64_t> &rows = {});

/// Binarized layers for the GPU GEMVs (llq/Conversion/LLQToGPU/
/// ModelKernels.h). Bit planes are transposed to [K / 32][N] words so a warp
/// reads consecutive rows.
void transposeWords(const uint32_t *rowMajor, int64_t n, int64_t words,
                    uint32_t *out);
/// Per-row, per-group constants [N][groups][per] to [groups][N][per].
void transposeGroupParams(const uint16_t *rowMajor, int64_t n, int64_t groups,
                          int64_t per, uint16_t *out);

/// A BiLLM layer's parts (PackedLayer.h: salient_columns, signs,
/// residual_signs, sparse, alphas) with its two compressed bit strings (the
/// residual signs of the salient columns, the sparse-group bits of the
/// others) expanded into one second plane over every column, which the
/// shared salient columns make possible without growing the layer.
struct BiLLMGpuPlanes {
  std::vector<uint32_t> mask;   ///< [K / 32]: salient columns
  std::vector<uint32_t> first;  ///< [K / 32][N]: signs (B1)
  std::vector<uint32_t> second; ///< [K / 32][N]: B2 or sparse-group bits
  std::vector<uint16_t> alphas; ///< [blocks][N][4] f16: a1, a2, conc., sparse
};
/// Returns false with a message when \p k is not a multiple of 32.
bool makeBiLLMGpuPlanes(int64_t n, int64_t k, int64_t blockSize,
                        const uint32_t *salientColumns, const uint32_t *signs,
                        const uint32_t *residualSigns, const uint32_t *sparse,
                        const uint16_t *alphas, BiLLMGpuPlanes &out,
                        std::string &error);

/// An NF4 layer for the GPU GEMV: its 4-bit codes in the k-chunk layout and
/// every block's decoded constant and ICQ shift (0 without ICQ) as f32
/// [blocks][N], so the kernel computes fma(level, a, tau) exactly as NF4's
/// dequantize does. K and the block size must be multiples of 32.
struct NF4GpuLayer {
  std::vector<uint32_t> codes;
  std::vector<float> scales, shifts;
  /// The 16 NF4 levels.
  std::vector<float> levels;
};
NF4GpuLayer makeNF4GpuLayer(const NF4Matrix &m);

} // namespace llq::quant

#endif // LLQ_QUANT_GPULAYOUT_H
