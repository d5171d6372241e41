//===- FileUtils.h - Whole-or-nothing file output ---------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_SUPPORT_FILEUTILS_H
#define LLQ_SUPPORT_FILEUTILS_H

#include <string>
#include <string_view>

namespace llq {

/// Writes `contents` to a temporary file beside `path`, flushes it to disk
/// and renames it over `path`, so readers see the old file or the whole new
/// one, never a part. On failure the temporary is removed, `path` is left as
/// it was, and `error` names the path and the reason.
bool writeFileAtomically(const std::string &path, std::string_view contents,
                         std::string &error);

} // namespace llq

#endif // LLQ_SUPPORT_FILEUTILS_H
