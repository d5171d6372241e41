//===- Utf8.h - UTF-8 validation --------------------------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_SUPPORT_UTF8_H
#define LLQ_SUPPORT_UTF8_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llq {

/// Returns the length of the well-formed UTF-8 sequence at \p pos, or 0 if the
/// bytes there are not one (overlong, surrogate, above U+10FFFF, truncated).
size_t utf8SequenceLength(std::string_view s, size_t pos);

/// Whether \p s is well-formed UTF-8 throughout.
bool isValidUtf8(std::string_view s);

/// Appends the UTF-8 encoding of code point \p cp (at most U+10FFFF).
void appendUtf8(std::string &out, uint32_t cp);

} // namespace llq

#endif // LLQ_SUPPORT_UTF8_H
