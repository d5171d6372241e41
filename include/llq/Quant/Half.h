//===- Half.h - Float16 and bfloat16 conversions ----------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Bit-exact conversions between float32 and the two 16-bit float formats that
// quantized checkpoints store scales in. They are written out by hand rather
// than taken from the compiler (_Float16, F16C) so that every host rounds the
// same way and results can be reproduced from numpy.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_QUANT_HALF_H
#define LLQ_QUANT_HALF_H

#include <cstdint>

namespace llq::quant {

/// Converts \p value to IEEE binary16 bits, rounding to nearest even.
/// Magnitudes that round beyond 65504 become infinity, tiny values become
/// subnormals or signed zero, and NaN stays a (quiet) NaN.
uint16_t floatToHalf(float value);

/// Converts IEEE binary16 bits to float32; exact for every input.
float halfToFloat(uint16_t bits);

/// Returns \p value rounded to the nearest binary16 value, as a float.
inline float roundToHalf(float value) {
  return halfToFloat(floatToHalf(value));
}

/// Converts \p value to bfloat16 bits, rounding to nearest even. Finite values
/// that round past the largest bfloat16 become infinity; NaN stays NaN.
uint16_t floatToBFloat16(float value);

/// Converts bfloat16 bits to float32; exact for every input.
float bfloat16ToFloat(uint16_t bits);

} // namespace llq::quant

#endif // LLQ_QUANT_HALF_H
