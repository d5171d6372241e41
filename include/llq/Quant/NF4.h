//===- NF4.h - NormalFloat-4, double quantization, ICQ, LoRA ----*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// NF4 (Dettmers et al. 2023, "QLoRA: Efficient Finetuning of Quantized
// LLMs"), as bitsandbytes quantizes the frozen base weights of QLoRA.
//
// Each row of W is cut into blocks along K (64 values; the last block of a
// row may be short). A block is divided by its absolute maximum a and every
// value rounded to the nearest of the 16 NF4 levels (Codebook.h, quantiles
// of N(0, 1) scaled to [-1, 1]): w ~ level[q] * a. A value exactly halfway
// between two levels takes the lower one, as bitsandbytes does.
//
// Double quantization (QLoRA, section 3) stores the block constants in 8
// bits instead of 32. Their mean is subtracted, and the centred constants
// are quantized in groups of 256 consecutive constants (row-major block
// order) to int8 codes c = round((a - mean) / s) with the group's absmax
// scale s = max|a - mean| / 127, decoding to a' = mean + c s. QLoRA codes
// them as 8-bit floats (bitsandbytes' dynamic map); linear int8 codes are
// used here, which bound the error uniformly by s / 2 and are easier to
// decode. Per 64 weights that is 1 byte, plus a float32 scale per 256 blocks
// and one float32 mean per matrix: 8/64 + 32/(64*256) = 0.127 bits/weight
// (plain float32 constants cost 0.5 bits/weight).
//
// The codes are computed against the decoded constants a', so that the
// stored constants reproduce exactly what the quantizer chose (as uniform
// scales are rounded to f16 before any code is computed); bitsandbytes
// rounds against the exact absmax.
//
// ICQ, the information calibration quantization of IR-QLoRA (Qin et al.
// 2024, "Accurate LoRA-Finetuning Quantization of LLMs via Information
// Retention"), quantizes w - tau instead of w, with one shift tau per block
// chosen to maximize the entropy of the block's 16-level code histogram, so
// that the 4 bits carry as much information as they can: w ~ level[q] a + tau
// with a = max|w - tau|. Following the reference (htqin/IR-QLoRA, utils.py)
// the candidates are tau = median + f max|w - median| for 2 * 51 + 1 values
// of f evenly spaced in [-0.0541, 0.0541] (0.1 times the reference's sigma,
// 1 / Phi^-1(0.9677083)); the median of an even-sized block is its lower
// middle value, as torch.median's. Two choices differ from the reference:
// tau = 0, plain NF4, is always a candidate, so the entropy never drops
// below NF4's; and among candidates of equal entropy (within 1e-9 bits) the
// one with the smaller squared reconstruction error wins (the reference
// keeps the first). tau is stored as an f16 per block, rounded before it is
// evaluated: 16/64 = 0.25 bits/weight (the reference stores it in 8 bits
// like a double-quantized constant).
//
// Every decoded value is fma(level[q], a', tau), one rounding, so any
// implementation with a fused multiply-add reproduces it bit for bit
// (tau = 0 without ICQ, which makes it the plain product).
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_QUANT_NF4_H
#define LLQ_QUANT_NF4_H

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace llq::quant {

/// How quantizeNF4 runs.
struct NF4Options {
  /// Values per block along K.
  int64_t blockSize = 64;
  /// Whether the block constants are double-quantized.
  bool doubleQuant = true;
  /// Block constants per double-quantization group.
  int64_t constantGroupSize = 256;
  /// Whether to search an entropy-maximizing shift per block (ICQ).
  bool calibrate = false;
  /// ICQ: the candidates span median +- shiftRange * max|w - median|...
  double shiftRange = 0.054108719661905474;
  /// ... in shiftSteps steps on each side of the median.
  int shiftSteps = 51;
};

/// Returns an empty string if \p options are usable, else what is wrong.
std::string validate(const NF4Options &options);

/// Returns the code of the NF4 level nearest \p x, which should lie in
/// [-1, 1]; halfway cases take the lower level.
uint8_t nearestNF4(float x);

/// Block constants after double quantization.
struct DoubleQuantizedConstants {
  int64_t groupSize = 256;
  /// The mean of all constants, subtracted before coding.
  float mean = 0;
  /// One code per constant.
  std::vector<int8_t> codes;
  /// One scale per group of groupSize codes: max|a - mean| / 127.
  std::vector<float> scales;

  /// Returns the decoded constant \p i, mean + codes[i] * scale.
  float value(int64_t i) const {
    return std::fma(static_cast<float>(codes[i]), scales[i / groupSize], mean);
  }
};

/// Double-quantizes \p constants in groups of \p groupSize (positive). A
/// group whose constants all equal the mean gets scale 0 and codes 0.
DoubleQuantizedConstants doubleQuantize(const std::vector<float> &constants,
                                        int64_t groupSize);

/// A rows x cols matrix in NF4.
struct NF4Matrix {
  int64_t rows = 0, cols = 0, blockSize = 64;
  /// The 4-bit codes in the bitstream layout of Packing.h,
  /// rows * packedWordsPerRow(cols, 4) words.
  std::vector<uint32_t> packed;
  /// Whether the constants are in quantizedAbsmax rather than absmax.
  bool doubleQuantized = false;
  /// rows * blocksPerRow() float32 constants, when not double-quantized.
  std::vector<float> absmax;
  /// The double-quantized constants, when doubleQuantized.
  DoubleQuantizedConstants quantizedAbsmax;
  /// ICQ's rows * blocksPerRow() shifts as f16 bits; empty without ICQ.
  std::vector<uint16_t> shifts;

  int64_t blocksPerRow() const;
  /// The decoded constant a' of block \p block (row * blocksPerRow() + b).
  float blockScale(int64_t block) const;
  /// The shift tau of block \p block; 0 without ICQ.
  float blockShift(int64_t block) const;
  /// Bytes of everything a runtime needs: packed codes, constants (with
  /// their double-quantization scales and mean) and shifts.
  int64_t storageBytes() const;
  /// 8 * storageBytes() / (rows * cols).
  double bitsPerWeight() const;
};

/// Quantizes the row-major \p rows x \p cols matrix \p w to NF4 per
/// \p options, which must be valid. An all-zero block decodes to zeros.
NF4Matrix quantizeNF4(const float *w, int64_t rows, int64_t cols,
                      const NF4Options &options);

/// Writes the rows * cols decoded values of \p m to \p out, row-major.
void dequantize(const NF4Matrix &m, float *out);

/// Merges a LoRA adapter (Hu et al. 2021, "LoRA: Low-Rank Adaptation of
/// Large Language Models") into the row-major \p n x \p k weights \p w:
/// W += (alpha / rank) B A for B (\p n x \p rank) and A (\p rank x \p k),
/// both row-major. A rank of 0 leaves \p w unchanged.
void mergeLoRA(float *w, int64_t n, int64_t k, const float *b, const float *a,
               int64_t rank, float alpha);

} // namespace llq::quant

#endif // LLQ_QUANT_NF4_H
