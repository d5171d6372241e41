//===- Text.cpp - Text for diagnostics ------------------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Support/Text.h"

namespace llq {

std::string quoteUntrusted(std::string_view s) {
  constexpr size_t kMaxShown = 80;
  constexpr char kHexDigits[] = "0123456789abcdef";
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      out += kHexDigits[c >> 4];
      out += kHexDigits[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMaxShown)
    out += "...";
  out += '\'';
  return out;
}

std::string formatShape(const std::vector<int64_t> &dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i)
      out += ", ";
    out += std::to_string(dims[i]);
  }
  out += ']';
  return out;
}

} // namespace llq
