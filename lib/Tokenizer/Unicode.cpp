//===- Unicode.cpp - UTF-8 and character classes for tokenizers -----------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The generated tables are sorted code point ranges, which are compact to
// review but slow to search per character. On first use they are expanded
// into a two-stage lookup table (256-code-point blocks, identical blocks
// shared), so classifying a character costs two array loads.
//
//===----------------------------------------------------------------------===//

#include "Unicode.h"

#include <map>
#include <vector>

namespace llq {
namespace tok {

namespace {

struct CodePointRange {
  uint32_t first;
  uint32_t last;
};

#include "UnicodeTables.inc"

constexpr uint32_t kMaxCodePoint = 0x10FFFF;
constexpr uint32_t kBlockBits = 8;
constexpr uint32_t kBlockSize = 1u << kBlockBits;
constexpr uint32_t kNumBlocks = (kMaxCodePoint + 1) / kBlockSize;

class ClassTable {
public:
  ClassTable() {
    std::vector<uint8_t> flat(kMaxCodePoint + 1, 0);
    fill(flat, kLetterRanges, kLetter);
    fill(flat, kNumberRanges, kNumber);
    fill(flat, kWhiteSpaceRanges, kWhiteSpace);
    fill(flat, kRustNumericRanges, kRustNumeric);
    compress(flat);
  }

  uint8_t lookup(uint32_t cp) const {
    if (cp > kMaxCodePoint)
      return 0;
    return blocks[blockIndex[cp >> kBlockBits] * kBlockSize +
                  (cp & (kBlockSize - 1))];
  }

private:
  template <size_t N>
  static void fill(std::vector<uint8_t> &flat,
                   const CodePointRange (&ranges)[N], uint8_t bit) {
    for (const CodePointRange &r : ranges)
      for (uint32_t cp = r.first; cp <= r.last; ++cp)
        flat[cp] |= bit;
  }

  /// Stores each distinct 256-entry block once.
  void compress(const std::vector<uint8_t> &flat) {
    std::map<std::vector<uint8_t>, uint16_t> seen;
    blockIndex.resize(kNumBlocks);
    for (uint32_t b = 0; b < kNumBlocks; ++b) {
      std::vector<uint8_t> block(flat.begin() + b * kBlockSize,
                                 flat.begin() + (b + 1) * kBlockSize);
      auto [it, inserted] =
          seen.try_emplace(block, static_cast<uint16_t>(seen.size()));
      if (inserted)
        blocks.insert(blocks.end(), block.begin(), block.end());
      blockIndex[b] = it->second;
    }
  }

  std::vector<uint16_t> blockIndex;
  std::vector<uint8_t> blocks;
};

const ClassTable &classTable() {
  static const ClassTable table;
  return table;
}

} // namespace

uint8_t charClass(uint32_t cp) {
  // ASCII dominates real text; answer it without touching the big table.
  static const uint8_t *ascii = [] {
    static uint8_t table[128];
    for (uint32_t c = 0; c < 128; ++c)
      table[c] = classTable().lookup(c);
    return table;
  }();
  if (cp < 128)
    return ascii[cp];
  return classTable().lookup(cp);
}

const char *unicodeTablesVersion() { return LLQ_UNICODE_TABLES_VERSION; }

size_t utf8InvalidLength(std::string_view s, size_t pos) {
  auto inRange = [&](size_t i, unsigned lo, unsigned hi) {
    if (pos + i >= s.size())
      return false;
    unsigned b = static_cast<unsigned char>(s[pos + i]);
    return b >= lo && b <= hi;
  };
  unsigned b0 = static_cast<unsigned char>(s[pos]);
  // The allowed range of the second byte depends on the lead byte (this is
  // what excludes overlong forms, surrogates and values above U+10FFFF).
  unsigned lo = 0x80, hi = 0xBF;
  size_t expected;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    expected = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    expected = 3;
    if (b0 == 0xE0)
      lo = 0xA0;
    else if (b0 == 0xED)
      hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    expected = 4;
    if (b0 == 0xF0)
      lo = 0x90;
    else if (b0 == 0xF4)
      hi = 0x8F;
  } else {
    return 1;
  }
  if (!inRange(1, lo, hi))
    return 1;
  size_t n = 2;
  while (n < expected && inRange(n, 0x80, 0xBF))
    ++n;
  return n;
}

std::string repairUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t pos = 0; pos < s.size();) {
    size_t n = utf8SequenceLength(s, pos);
    if (n != 0) {
      out.append(s.substr(pos, n));
      pos += n;
    } else {
      out.append(kReplacementChar);
      pos += utf8InvalidLength(s, pos);
    }
  }
  return out;
}

namespace {

/// tokenizers' bytes_char(): bytes that are printable Latin-1 map to
/// themselves, the rest, in order, to 256, 257, ...
struct ByteLevelAlphabet {
  uint32_t codePoint[256];
  std::string spelling[256];
  int16_t byteOf[512];

  ByteLevelAlphabet() {
    auto printable = [](unsigned b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
             (b >= 0xAE && b <= 0xFF);
    };
    uint32_t next = 256;
    for (unsigned b = 0; b < 256; ++b)
      codePoint[b] = printable(b) ? b : next++;
    for (int16_t &v : byteOf)
      v = -1;
    for (unsigned b = 0; b < 256; ++b) {
      appendUtf8(spelling[b], codePoint[b]);
      byteOf[codePoint[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteLevelAlphabet &byteLevelAlphabet() {
  static const ByteLevelAlphabet alphabet;
  return alphabet;
}

} // namespace

uint32_t byteLevelCodePoint(uint8_t b) {
  return byteLevelAlphabet().codePoint[b];
}

const std::string &byteLevelChar(uint8_t b) {
  return byteLevelAlphabet().spelling[b];
}

int byteFromByteLevel(uint32_t cp) {
  return cp < 512 ? byteLevelAlphabet().byteOf[cp] : -1;
}

} // namespace tok
} // namespace llq
