//===- Text.h - Text for diagnostics ----------------------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_SUPPORT_TEXT_H
#define LLQ_SUPPORT_TEXT_H

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llq {

/// Quotes an untrusted name for an error message: escaped so it cannot
/// garble a terminal, and shortened so a huge name cannot flood the log.
std::string quoteUntrusted(std::string_view s);

/// "[2, 3, 4]".
std::string formatShape(const std::vector<int64_t> &dims);

} // namespace llq

#endif // LLQ_SUPPORT_TEXT_H
