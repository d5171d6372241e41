//===- Utf8.h - UTF-8 validation --------------------------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_SUPPORT_UTF8_H
#define LLQ_SUPPORT_UTF8_H

#include <cstddef>
#include <string_view>

namespace llq {

/// Returns the length of the well-formed UTF-8 sequence at \p pos, or 0 if the
/// bytes there are not one (overlong, surrogate, above U+10FFFF, truncated).
size_t utf8SequenceLength(std::string_view s, size_t pos);

} // namespace llq

#endif // LLQ_SUPPORT_UTF8_H
