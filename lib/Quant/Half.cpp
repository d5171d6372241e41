//===- Half.cpp - Float16 and bfloat16 conversions ------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/Half.h"

#include <cstring>

namespace llq::quant {

namespace {

constexpr uint32_t kF32SignMask = 0x80000000u;
constexpr uint32_t kF32Inf = 0x7F800000u;
constexpr uint16_t kF16Inf = 0x7C00;
constexpr uint16_t kF16QuietBit = 0x0200;
constexpr uint16_t kBF16QuietBit = 0x0040;
// Smallest float32 magnitude that rounds to the binary16 infinity: 65520 is
// the tie between 65504 (odd significand) and 65536, so it rounds up.
constexpr uint32_t kF32HalfOverflow = 0x477FF000u;
// 2^-14, the smallest normal binary16; below it results are subnormal.
constexpr uint32_t kF32HalfMinNormal = 0x38800000u;
// 2^-25, half the smallest subnormal; it and everything below round to zero.
constexpr uint32_t kF32HalfUnderflow = 0x33000000u;
// Moves a float32 exponent onto the binary16 bias (127 - 15 = 112).
constexpr uint32_t kF32ToF16Rebias = 112u << 23;

uint32_t floatBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

float bitsToFloat(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

/// Shifts \p value right by \p shift (1..31) bits, rounding the discarded bits
/// to nearest even. A carry out of the kept significand bits propagates into
/// the exponent field, which is what both narrowing formats want.
uint32_t shiftRightRoundEven(uint32_t value, int shift) {
  uint32_t kept = value >> shift;
  uint32_t rest = value & ((1u << shift) - 1);
  uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (kept & 1)))
    ++kept;
  return kept;
}

} // namespace

uint16_t floatToHalf(float value) {
  uint32_t bits = floatBits(value);
  auto sign = static_cast<uint16_t>((bits & kF32SignMask) >> 16);
  uint32_t mag = bits & ~kF32SignMask;
  if (mag > kF32Inf) // Keep the top payload bits so NaN boxing survives.
    return sign | kF16Inf | kF16QuietBit | static_cast<uint16_t>(mag >> 13);
  if (mag >= kF32HalfOverflow)
    return sign | kF16Inf;
  if (mag >= kF32HalfMinNormal)
    return sign | static_cast<uint16_t>(
                      shiftRightRoundEven(mag - kF32ToF16Rebias, 13));
  if (mag <= kF32HalfUnderflow)
    return sign;
  // Subnormal result: the value in units of 2^-24 is the float significand
  // (implicit bit included) shifted by 126 - exponent, which is 14..24 here.
  uint32_t significand = (mag & 0x7FFFFFu) | 0x800000u;
  int shift = 126 - static_cast<int>(mag >> 23);
  return sign | static_cast<uint16_t>(shiftRightRoundEven(significand, shift));
}

float halfToFloat(uint16_t bits) {
  uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  uint32_t exponent = (bits >> 10) & 0x1F;
  uint32_t mantissa = bits & 0x3FF;
  if (exponent == 0) {
    // Subnormals (and zero) are exact in float32 as mantissa * 2^-24.
    float mag = static_cast<float>(mantissa) * 0x1p-24f;
    return bitsToFloat(floatBits(mag) | sign);
  }
  if (exponent == 0x1F)
    return bitsToFloat(sign | kF32Inf | (mantissa << 13));
  return bitsToFloat(sign | ((exponent << 23) + kF32ToF16Rebias) |
                     (mantissa << 13));
}

uint16_t floatToBFloat16(float value) {
  uint32_t bits = floatBits(value);
  uint32_t mag = bits & ~kF32SignMask;
  if (mag > kF32Inf)
    return static_cast<uint16_t>(bits >> 16) | kBF16QuietBit;
  // bfloat16 shares float32's exponent, so rounding the low half away is the
  // whole conversion; overflow carries into an all-ones exponent, i.e. inf.
  return static_cast<uint16_t>(((bits & kF32SignMask) >> 16) |
                               shiftRightRoundEven(mag, 16));
}

float bfloat16ToFloat(uint16_t bits) {
  return bitsToFloat(static_cast<uint32_t>(bits) << 16);
}

} // namespace llq::quant
