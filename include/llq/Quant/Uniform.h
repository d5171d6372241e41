//===- Uniform.h - Uniform (RTN) quantization -------------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The project's definition of uniform quantization of a row-major weight
// matrix W (rows = output channels, cols = input features). Groups run along
// the columns and the last group of a row may be short. Codes are unsigned
// b-bit integers q and dequantize to (q - z) * s.
//
// Scales are rounded to float16 before any code is computed, so that a
// runtime which stores f16 scales reproduces dequantized values bit for bit.
// All arithmetic is float32 so that numpy float32 gives identical results.
//
// Scale floor: the raw scale is clamped below at 1e-5 and rounded to f16; a
// result that is NaN or below 2^-14 (the smallest normal f16, which covers
// zero and every f16 subnormal) becomes 2^-14, and one above 65504 (i.e. an
// f16 infinity) becomes 65504. Every scale is therefore a finite, positive,
// normal f16 value. Since 1e-5 < 2^-14 the 1e-5 clamp never decides a scale.
//
// The per-group primitives are public because error-compensating quantizers
// (GPTQ, AWQ, clipping searches) call them inside their own loops.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_QUANT_UNIFORM_H
#define LLQ_QUANT_UNIFORM_H

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace llq::quant {

/// How a matrix is quantized.
struct UniformScheme {
  /// Code width, 1..8 (2..8 when symmetric).
  int bits = 4;
  /// Columns per group; 0 means one group per row (per output channel).
  int64_t groupSize = 0;
  /// Symmetric around the implicit zero 2^(bits-1); no zeros are stored.
  bool symmetric = false;
};

/// Returns an empty string if \p scheme is usable, else a message saying what
/// is wrong with it, e.g. "bits must be in 1..8, got 9".
std::string validate(const UniformScheme &scheme);

/// Returns the number of groups in a row of \p cols columns: 1 when
/// \p groupSize is 0, else ceil(cols / groupSize). A row with no columns has
/// no groups.
int64_t numGroups(int64_t cols, int64_t groupSize);

/// Returns the largest code of width \p bits, 2^bits - 1.
inline int maxCode(int bits) { return (1 << bits) - 1; }

/// Returns the implicit zero point of symmetric codes of width \p bits.
inline int symmetricZero(int bits) { return 1 << (bits - 1); }

/// Quantization parameters of one group.
struct GroupParams {
  /// A finite, positive, f16-representable scale (see the scale floor).
  float scale;
  /// Zero point; symmetricZero(bits) for symmetric schemes.
  uint8_t zero;
};

/// Returns the parameters of the group \p values[0..n) (n >= 1): from its min
/// and max when asymmetric, from its largest magnitude when symmetric. NaN
/// values are ignored.
GroupParams computeGroupParams(const float *values, int64_t n,
                               const UniformScheme &scheme);

/// Returns the parameters of a group whose values span [\p mn, \p mx], so that
/// clipping searches can try shrunken ranges without rescanning the values.
/// Symmetric schemes use max(|mn|, |mx|).
GroupParams groupParamsFromRange(float mn, float mx,
                                 const UniformScheme &scheme);

/// Rounds \p v to the nearest integer, halves away from zero, exactly like
/// std::round but inline and without a libm call; |v| must be below 2^31.
inline int roundHalfAway(float v) {
  int truncated = static_cast<int>(v);
  float fraction = v - static_cast<float>(truncated); // Exact.
  return truncated + (fraction >= 0.5f) - (fraction <= -0.5f);
}

/// Returns the code of \p x: clamp(round(x / s) + z, 0, 2^bits - 1), with
/// round half away from zero and NaN mapping to 0. For symmetric parameters
/// this equals clamp(round(x / s), -z, z - 1) + z.
inline uint8_t quantizeValue(float x, GroupParams p, int bits) {
  // Codes saturate long before +-1024, so clamping x / s there first changes
  // no result but keeps the int conversion defined. The operand order makes
  // NaN come out as -1024.
  float ratio = std::min(std::max(-1024.0f, x / p.scale), 1024.0f);
  int code = roundHalfAway(ratio) + p.zero;
  return static_cast<uint8_t>(std::clamp(code, 0, maxCode(bits)));
}

/// Returns the value that code \p q stands for.
inline float dequantizeValue(uint8_t q, GroupParams p) {
  return static_cast<float>(int(q) - int(p.zero)) * p.scale;
}

/// A quantized rows x cols matrix.
struct UniformMatrix {
  int64_t rows = 0, cols = 0, groups = 0;
  UniformScheme scheme;
  /// rows * cols codes, row-major.
  std::vector<uint8_t> codes;
  /// rows * groups scales as f16 bits, row-major.
  std::vector<uint16_t> scales;
  /// rows * groups zero points when asymmetric; empty when symmetric.
  std::vector<uint8_t> zeros;

  /// Returns the parameters of group \p group of row \p row.
  GroupParams params(int64_t row, int64_t group) const;
};

/// Quantizes the row-major \p rows x \p cols matrix \p w by rounding each
/// value to the nearest code of its group. \p scheme must be valid.
UniformMatrix quantizeRTN(const float *w, int64_t rows, int64_t cols,
                          const UniformScheme &scheme);

/// Writes the rows * cols dequantized values of \p m to \p out, row-major.
void dequantize(const UniformMatrix &m, float *out);

} // namespace llq::quant

#endif // LLQ_QUANT_UNIFORM_H
