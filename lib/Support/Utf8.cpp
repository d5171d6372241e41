//===- Utf8.cpp - UTF-8 validation ----------------------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Support/Utf8.h"

namespace llq {

size_t utf8SequenceLength(std::string_view s, size_t pos) {
  auto byte = [&](size_t i) -> unsigned {
    return pos + i < s.size() ? static_cast<unsigned char>(s[pos + i]) : 0;
  };
  auto isCont = [&](size_t i, unsigned lo = 0x80, unsigned hi = 0xBF) {
    unsigned b = byte(i);
    return pos + i < s.size() && b >= lo && b <= hi;
  };
  unsigned b0 = byte(0);
  if (b0 < 0x80)
    return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF)
    return isCont(1) ? 2 : 0;
  if (b0 == 0xE0)
    return isCont(1, 0xA0) && isCont(2) ? 3 : 0;
  if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF)
    return isCont(1) && isCont(2) ? 3 : 0;
  if (b0 == 0xED)
    return isCont(1, 0x80, 0x9F) && isCont(2) ? 3 : 0;
  if (b0 == 0xF0)
    return isCont(1, 0x90) && isCont(2) && isCont(3) ? 4 : 0;
  if (b0 >= 0xF1 && b0 <= 0xF3)
    return isCont(1) && isCont(2) && isCont(3) ? 4 : 0;
  if (b0 == 0xF4)
    return isCont(1, 0x80, 0x8F) && isCont(2) && isCont(3) ? 4 : 0;
  return 0;
}

bool isValidUtf8(std::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    size_t n = utf8SequenceLength(s, pos);
    if (n == 0)
      return false;
    pos += n;
  }
  return true;
}

void appendUtf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

} // namespace llq
