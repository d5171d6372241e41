//===- PackingTest.cpp - Tests for bit packing of quantized codes ---------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/Packing.h"

#include "gtest/gtest.h"

#include <random>
#include <vector>

using namespace llq::quant;

namespace {

std::vector<uint32_t> packOneRow(const std::vector<uint8_t> &codes, int bits) {
  auto cols = static_cast<int64_t>(codes.size());
  std::vector<uint32_t> words(packedWordsPerRow(cols, bits));
  packRows(codes.data(), 1, cols, bits, words.data());
  return words;
}

/// The layout straight from its definition, one stream bit at a time.
std::vector<uint32_t> packBitByBit(const std::vector<uint8_t> &codes,
                                   int64_t rows, int64_t cols, int bits) {
  int64_t wordsPerRow = (cols * bits + 31) / 32;
  std::vector<uint32_t> words(rows * wordsPerRow, 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j)
      for (int k = 0; k < bits; ++k) {
        int64_t bit = j * bits + k;
        uint32_t value = (codes[r * cols + j] >> k) & 1u;
        words[r * wordsPerRow + bit / 32] |= value << (bit % 32);
      }
  return words;
}

std::vector<uint8_t> randomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> bytes(n);
  for (uint8_t &b : bytes)
    b = static_cast<uint8_t>(rng());
  return bytes;
}

constexpr int64_t kAwkwardCols[] = {1, 7, 31, 32, 33, 100, 576};

} // namespace

TEST(PackingTest, WordsPerRow) {
  EXPECT_EQ(packedWordsPerRow(0, 4), 0);
  EXPECT_EQ(packedWordsPerRow(1, 1), 1);
  EXPECT_EQ(packedWordsPerRow(32, 1), 1);
  EXPECT_EQ(packedWordsPerRow(33, 1), 2);
  EXPECT_EQ(packedWordsPerRow(7, 8), 2);    // 56 bits
  EXPECT_EQ(packedWordsPerRow(100, 3), 10); // 300 bits
  EXPECT_EQ(packedWordsPerRow(576, 3), 54); // 1728 bits, exact
  EXPECT_EQ(packedWordsPerRow(576, 4), 72);
  EXPECT_EQ(packedWordsPerRow(4096, 5), 640);
}

// One hand-packed row per width; each spills into a second word so both the
// first word and the zero padding of the last are pinned down.
TEST(PackingTest, HandPackedOneBit) {
  // Codes 1 at j = 0, 3, ..., 33: bits 0, 3, ..., 30 of word 0 and bit 1 of
  // word 1.
  std::vector<uint8_t> codes(35, 0);
  for (size_t j = 0; j < codes.size(); j += 3)
    codes[j] = 1;
  EXPECT_EQ(packOneRow(codes, 1), (std::vector<uint32_t>{0x49249249u, 0x2u}));
}

TEST(PackingTest, HandPackedTwoBits) {
  // Each byte holds codes 0,1,2,3 from its low bits up: 0b11'10'01'00 = 0xE4.
  std::vector<uint8_t> codes = {0, 1, 2, 3, 0, 1, 2, 3, 0,
                                1, 2, 3, 0, 1, 2, 3, 3};
  EXPECT_EQ(packOneRow(codes, 2), (std::vector<uint32_t>{0xE4E4E4E4u, 0x3u}));
}

TEST(PackingTest, HandPackedThreeBits) {
  // Ten codes are ten octal digits, 02107654321, and code 10 (7 = 0b111)
  // straddles: its low two bits are bits 30..31 of word 0, its top bit is
  // bit 0 of word 1. 02107654321 | 3 << 30 = 0xD11F58D1.
  std::vector<uint8_t> codes = {1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 7};
  EXPECT_EQ(packOneRow(codes, 3), (std::vector<uint32_t>{0xD11F58D1u, 0x1u}));
}

TEST(PackingTest, HandPackedFourBits) {
  std::vector<uint8_t> codes = {1, 2, 3, 4, 5, 6, 7, 8, 15};
  EXPECT_EQ(packOneRow(codes, 4), (std::vector<uint32_t>{0x87654321u, 0xFu}));
}

TEST(PackingTest, HandPackedFiveBits) {
  // 1 | 2<<5 | 31<<10 | 16<<15 | 0<<20 | 9<<25 | (17 & 3)<<30 = 0x52087C41;
  // word 1 = 17 >> 2 = 4.
  std::vector<uint8_t> codes = {1, 2, 31, 16, 0, 9, 17};
  EXPECT_EQ(packOneRow(codes, 5), (std::vector<uint32_t>{0x52087C41u, 0x4u}));
}

TEST(PackingTest, HandPackedSixBits) {
  // 63 | 1<<6 | 2<<12 | 3<<18 | 4<<24 | (45 & 3)<<30 = 0x440C207F;
  // word 1 = 45 >> 2 | 58 << 4 = 0xB | 0x3A0 = 0x3AB.
  std::vector<uint8_t> codes = {63, 1, 2, 3, 4, 45, 58};
  EXPECT_EQ(packOneRow(codes, 6), (std::vector<uint32_t>{0x440C207Fu, 0x3ABu}));
}

TEST(PackingTest, HandPackedSevenBits) {
  // 127 | 1<<7 | 2<<14 | 3<<21 | (100 & 15)<<28 = 0x406080FF;
  // word 1 = 100 >> 4 | 5 << 3 = 6 | 40 = 0x2E.
  std::vector<uint8_t> codes = {127, 1, 2, 3, 100, 5};
  EXPECT_EQ(packOneRow(codes, 7), (std::vector<uint32_t>{0x406080FFu, 0x2Eu}));
}

TEST(PackingTest, HandPackedEightBits) {
  std::vector<uint8_t> codes = {1, 2, 3, 4, 5};
  EXPECT_EQ(packOneRow(codes, 8), (std::vector<uint32_t>{0x04030201u, 0x5u}));
}

TEST(PackingTest, RowsStartOnWordBoundaries) {
  // Two rows of three 3-bit codes: each row pads its 9 bits to a full word.
  std::vector<uint8_t> codes = {1, 2, 3, 4, 5, 6};
  std::vector<uint32_t> words(2);
  packRows(codes.data(), 2, 3, 3, words.data());
  EXPECT_EQ(words, (std::vector<uint32_t>{0321u, 0654u}));
}

TEST(PackingTest, MatchesBitByBitDefinition) {
  const int64_t rows = 3;
  for (int bits = 1; bits <= 8; ++bits) {
    for (int64_t cols : kAwkwardCols) {
      SCOPED_TRACE("bits " + std::to_string(bits) + ", cols " +
                   std::to_string(cols));
      std::vector<uint8_t> codes = randomBytes(rows * cols, bits * 1000 + cols);
      for (uint8_t &c : codes)
        c &= (1u << bits) - 1;
      std::vector<uint32_t> words(rows * packedWordsPerRow(cols, bits));
      packRows(codes.data(), rows, cols, bits, words.data());
      EXPECT_EQ(words, packBitByBit(codes, rows, cols, bits));
    }
  }
}

TEST(PackingTest, RoundTripPadsWithZerosAndStaysInBounds) {
  const int64_t rows = 3;
  const uint32_t guardWord = 0xDEADBEEFu;
  const uint8_t guardByte = 0xA5;
  for (int bits = 1; bits <= 8; ++bits) {
    for (int64_t cols : kAwkwardCols) {
      SCOPED_TRACE("bits " + std::to_string(bits) + ", cols " +
                   std::to_string(cols));
      // Full bytes: bits above the code width must be ignored by packRows.
      std::vector<uint8_t> codes = randomBytes(rows * cols, bits * 7 + cols);
      int64_t wordsPerRow = packedWordsPerRow(cols, bits);
      // Pre-filled with ones so every bit packRows leaves alone shows up.
      std::vector<uint32_t> words(rows * wordsPerRow + 1, 0xFFFFFFFFu);
      words.back() = guardWord;
      packRows(codes.data(), rows, cols, bits, words.data());
      EXPECT_EQ(words.back(), guardWord);

      int usedBits = static_cast<int>(cols * bits % 32);
      if (usedBits != 0) {
        for (int64_t r = 0; r < rows; ++r)
          EXPECT_EQ(words[(r + 1) * wordsPerRow - 1] >> usedBits, 0u);
      }

      std::vector<uint8_t> unpacked(rows * cols + 1, 0xFF);
      unpacked.back() = guardByte;
      unpackRows(words.data(), rows, cols, bits, unpacked.data());
      EXPECT_EQ(unpacked.back(), guardByte);
      for (int64_t i = 0; i < rows * cols; ++i)
        ASSERT_EQ(unpacked[i], codes[i] & ((1u << bits) - 1)) << "at " << i;
    }
  }
}
