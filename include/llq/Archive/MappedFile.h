//===- MappedFile.h - Read-only memory-mapped files -------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Weight archives are often many gigabytes; mapping them lets tensors be used
// in place and paged in on demand instead of being read into heap buffers.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_ARCHIVE_MAPPEDFILE_H
#define LLQ_ARCHIVE_MAPPEDFILE_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace llq {

/// Read-only memory map of a whole file (mmap, MAP_PRIVATE, PROT_READ). Empty
/// files are allowed and map to size 0 with a null data pointer.
///
/// The mapping reflects the file, so truncating the file while it is mapped
/// makes accesses past the new end fault (SIGBUS); callers own that risk.
class MappedFile {
public:
  /// Maps \p path. On failure returns null and sets \p error to a message
  /// naming the path and the OS error.
  static std::unique_ptr<MappedFile> open(const std::string &path,
                                          std::string &error);

  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;
  ~MappedFile();

  /// Start of the mapping; null for an empty file.
  const uint8_t *data() const { return base; }
  /// Size of the file in bytes.
  size_t size() const { return length; }
  /// The path the file was opened with.
  const std::string &path() const { return filePath; }

private:
  MappedFile(std::string path, const uint8_t *base, size_t length)
      : filePath(std::move(path)), base(base), length(length) {}

  std::string filePath;
  const uint8_t *base;
  size_t length;
};

} // namespace llq

#endif // LLQ_ARCHIVE_MAPPEDFILE_H
