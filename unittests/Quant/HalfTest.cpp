//===- HalfTest.cpp - Tests for float16 and bfloat16 conversions ----------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/Half.h"

#include "gtest/gtest.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

using namespace llq::quant;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

/// A 16-bit float format as seen through its two conversions.
struct Format16 {
  const char *name;
  uint16_t (*narrow)(float);
  float (*widen)(uint16_t);
  int mantissaBits;
  /// 2^(max exponent + 1): what the largest finite value would round up to.
  double overflowValue;
};

const Format16 kHalf = {"f16", floatToHalf, halfToFloat, 10, 65536.0};
const Format16 kBFloat16 = {"bf16", floatToBFloat16, bfloat16ToFloat, 7,
                            std::ldexp(1.0, 128)};

bool isNaNBits(const Format16 &format, uint16_t bits) {
  uint16_t mantissaMask = (1u << format.mantissaBits) - 1;
  uint16_t exponentMask = 0x7FFF & ~mantissaMask;
  return (bits & exponentMask) == exponentMask && (bits & mantissaMask) != 0;
}

void expectRoundTripOfAllPatterns(const Format16 &format) {
  for (uint32_t b = 0; b <= 0xFFFF; ++b) {
    auto bits = static_cast<uint16_t>(b);
    float value = format.widen(bits);
    if (isNaNBits(format, bits)) {
      EXPECT_TRUE(std::isnan(value)) << format.name << " " << b;
      EXPECT_TRUE(isNaNBits(format, format.narrow(value)));
      continue;
    }
    ASSERT_EQ(format.narrow(value), bits) << format.name << " " << b;
  }
}

/// Between every pair of adjacent positive finite values (and between the
/// largest one and overflow) the exact midpoint must round to the one with an
/// even significand and its float neighbours to the nearer one. Midpoints are
/// exact floats because both formats have far fewer significand bits.
void expectRoundToNearestEven(const Format16 &format) {
  uint16_t infBits = format.narrow(kInf);
  for (uint16_t lo = 0; lo < infBits; ++lo) {
    auto hi = static_cast<uint16_t>(lo + 1);
    double hiValue = hi == infBits ? format.overflowValue : format.widen(hi);
    auto mid = static_cast<float>((format.widen(lo) + hiValue) / 2);
    uint16_t even = (lo & 1) ? hi : lo;
    ASSERT_EQ(format.narrow(mid), even) << format.name << " " << lo;
    ASSERT_EQ(format.narrow(std::nextafter(mid, 0.0f)), lo);
    ASSERT_EQ(format.narrow(std::nextafter(mid, kInf)), hi);
    ASSERT_EQ(format.narrow(-mid), even | 0x8000);
  }
}

} // namespace

TEST(HalfTest, ExactValues) {
  EXPECT_EQ(floatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(floatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(floatToHalf(0.5f), 0x3800);
  EXPECT_EQ(floatToHalf(0.0f), 0x0000);
  EXPECT_EQ(floatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(floatToHalf(0.1f), 0x2E66); // 0.0999755859375
  EXPECT_EQ(floatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(floatToHalf(0x1p-14f), 0x0400);     // Smallest normal.
  EXPECT_EQ(floatToHalf(0x1.ff8p-15f), 0x03FF); // Largest subnormal.
  EXPECT_EQ(floatToHalf(0x1p-24f), 0x0001);     // Smallest subnormal.
  EXPECT_EQ(floatToHalf(-0x1p-24f), 0x8001);
}

TEST(HalfTest, RoundsToNearestEven) {
  // Near 2048 the f16 spacing is 2: 2049 ties down to even 2048 (0x6800),
  // 2051 ties up to 2052 (significand ...10) and 2050 is exact.
  EXPECT_EQ(floatToHalf(2049.0f), 0x6800);
  EXPECT_EQ(floatToHalf(2050.0f), 0x6801);
  EXPECT_EQ(floatToHalf(2051.0f), 0x6802);
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(floatToHalf(1.0f + 0x1p-11f), 0x3C00);
  EXPECT_EQ(floatToHalf(1.0f + 0x3p-11f), 0x3C02);
  // Subnormal ties: 2^-25 is half the smallest subnormal and goes to zero,
  // 1.5 * 2^-24 goes to 2 * 2^-24, and 1023.5 * 2^-24 carries into the
  // smallest normal.
  EXPECT_EQ(floatToHalf(0x1p-25f), 0x0000);
  EXPECT_EQ(floatToHalf(0x1.8p-25f), 0x0001);
  EXPECT_EQ(floatToHalf(0x1.8p-24f), 0x0002);
  EXPECT_EQ(floatToHalf(0x1.ffcp-15f), 0x0400);
  EXPECT_EQ(floatToHalf(1e-10f), 0x0000);
  EXPECT_EQ(floatToHalf(-1e-10f), 0x8000);
}

TEST(HalfTest, Overflow) {
  // 65520 is the tie between 65504 (odd significand) and 65536, so it and
  // everything above becomes infinity; just below it stays finite.
  EXPECT_EQ(floatToHalf(65519.0f), 0x7BFF);
  EXPECT_EQ(floatToHalf(std::nextafter(65520.0f, 0.0f)), 0x7BFF);
  EXPECT_EQ(floatToHalf(65520.0f), 0x7C00);
  EXPECT_EQ(floatToHalf(-65520.0f), 0xFC00);
  EXPECT_EQ(floatToHalf(1e10f), 0x7C00);
  EXPECT_EQ(floatToHalf(FLT_MAX), 0x7C00);
  EXPECT_EQ(floatToHalf(kInf), 0x7C00);
  EXPECT_EQ(floatToHalf(-kInf), 0xFC00);
}

TEST(HalfTest, NaN) {
  EXPECT_TRUE(isNaNBits(kHalf, floatToHalf(kNaN)));
  EXPECT_TRUE(isNaNBits(kHalf, floatToHalf(-kNaN)));
  // A NaN whose payload lives only in low float bits must not become inf.
  float lowPayloadNaN;
  uint32_t nanBits = 0x7F800001u;
  std::memcpy(&lowPayloadNaN, &nanBits, sizeof(nanBits));
  EXPECT_TRUE(isNaNBits(kHalf, floatToHalf(lowPayloadNaN)));
  EXPECT_TRUE(std::isnan(halfToFloat(0x7E00)));
  EXPECT_TRUE(std::isnan(halfToFloat(0x7C01)));
  EXPECT_TRUE(std::isnan(halfToFloat(0xFFFF)));
}

TEST(HalfTest, HalfToFloat) {
  EXPECT_EQ(halfToFloat(0x3C00), 1.0f);
  EXPECT_EQ(halfToFloat(0xC000), -2.0f);
  EXPECT_EQ(halfToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(halfToFloat(0x0400), 0x1p-14f);
  EXPECT_EQ(halfToFloat(0x0001), 0x1p-24f);
  EXPECT_EQ(halfToFloat(0x03FF), 0x1.ff8p-15f);
  EXPECT_EQ(halfToFloat(0x7C00), kInf);
  EXPECT_EQ(halfToFloat(0xFC00), -kInf);
  EXPECT_TRUE(std::signbit(halfToFloat(0x8000)));
  EXPECT_EQ(halfToFloat(0x8000), 0.0f);
}

TEST(HalfTest, RoundToHalf) {
  EXPECT_EQ(roundToHalf(0.1f), 0.0999755859375f);
  EXPECT_EQ(roundToHalf(1.0f / 15.0f), 0.066650390625f);
  EXPECT_EQ(roundToHalf(2049.0f), 2048.0f);
  EXPECT_EQ(roundToHalf(1e6f), kInf);
}

TEST(HalfTest, AllPatternsRoundTrip) { expectRoundTripOfAllPatterns(kHalf); }

TEST(HalfTest, AllMidpointsRoundToNearestEven) {
  expectRoundToNearestEven(kHalf);
}

TEST(BFloat16Test, ExactValues) {
  EXPECT_EQ(floatToBFloat16(1.0f), 0x3F80);
  EXPECT_EQ(floatToBFloat16(-2.0f), 0xC000);
  EXPECT_EQ(floatToBFloat16(3.0f), 0x4040);
  EXPECT_EQ(floatToBFloat16(-0.0f), 0x8000);
  EXPECT_EQ(floatToBFloat16(0x1p-130f), 0x0008); // Subnormal, exact.
  EXPECT_EQ(bfloat16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(bfloat16ToFloat(0xC040), -3.0f);
  EXPECT_EQ(bfloat16ToFloat(0x7F80), kInf);
}

TEST(BFloat16Test, RoundsToNearestEven) {
  // bf16 keeps 7 fraction bits: 1 + 2^-8 ties down to 1, 1 + 3 * 2^-8 ties
  // up to 1 + 2^-6 (0x3F82), and anything past the tie rounds up.
  EXPECT_EQ(floatToBFloat16(1.0f + 0x1p-8f), 0x3F80);
  EXPECT_EQ(floatToBFloat16(1.0f + 0x3p-8f), 0x3F82);
  EXPECT_EQ(floatToBFloat16(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);
  EXPECT_EQ(floatToBFloat16(FLT_MAX), 0x7F80);
  EXPECT_EQ(floatToBFloat16(-FLT_MAX), 0xFF80);
}

TEST(BFloat16Test, NaN) {
  EXPECT_TRUE(isNaNBits(kBFloat16, floatToBFloat16(kNaN)));
  EXPECT_TRUE(isNaNBits(kBFloat16, floatToBFloat16(-kNaN)));
  float lowPayloadNaN;
  uint32_t nanBits = 0x7F800001u;
  std::memcpy(&lowPayloadNaN, &nanBits, sizeof(nanBits));
  EXPECT_TRUE(isNaNBits(kBFloat16, floatToBFloat16(lowPayloadNaN)));
  EXPECT_TRUE(std::isnan(bfloat16ToFloat(0x7FC0)));
}

TEST(BFloat16Test, AllPatternsRoundTrip) {
  expectRoundTripOfAllPatterns(kBFloat16);
}

TEST(BFloat16Test, AllMidpointsRoundToNearestEven) {
  expectRoundToNearestEven(kBFloat16);
}
