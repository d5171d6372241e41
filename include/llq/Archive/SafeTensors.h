//===- SafeTensors.h - safetensors archives ---------------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Reading and writing the safetensors format
// (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON describing each tensor, then the raw tensor bytes.
//
// Archives are untrusted input, so the reader validates everything it relies
// on and reports problems as error strings; it never aborts or reads outside
// the image.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_ARCHIVE_SAFETENSORS_H
#define LLQ_ARCHIVE_SAFETENSORS_H

#include "llq/Archive/DType.h"
#include "llq/Archive/MappedFile.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace llq {

/// The largest JSON header the reader accepts, matching the reference
/// implementation so both reject the same oversized headers.
constexpr uint64_t kSafeTensorsMaxHeaderSize = 100'000'000;

/// One tensor of an archive.
struct TensorInfo {
  std::string name;
  DType dtype = DType::U8;
  std::vector<int64_t> shape;
  /// Absolute byte offset of the tensor's data in the file/image.
  uint64_t offset = 0;
  uint64_t nbytes = 0;

  /// Product of the dimensions; 1 for a scalar (empty shape). Returns -1 for
  /// a hand-built shape with a negative dimension or an overflowing product;
  /// tensors from the reader never have either.
  int64_t numElements() const;
};

/// A parsed safetensors archive, memory-mapped; tensor bytes are never copied.
class SafeTensorsReader {
public:
  /// Maps and parses the file at \p path. On failure returns null and sets
  /// \p error to a message naming the path.
  static std::unique_ptr<SafeTensorsReader> open(const std::string &path,
                                                 std::string &error);

  /// Parses an in-memory image (the caller keeps the bytes alive). \p name
  /// stands in for the path in messages and path(). Used by the fuzzer and
  /// tests.
  static std::unique_ptr<SafeTensorsReader> fromBuffer(const uint8_t *data,
                                                       size_t size,
                                                       std::string name,
                                                       std::string &error);

  /// All tensors in file order (sorted by offset).
  const std::vector<TensorInfo> &tensors() const { return tensorList; }

  /// Returns the tensor called \p name, or null if there is none.
  const TensorInfo *find(std::string_view name) const;

  /// Returns the first byte of \p t's data; \p t must come from this reader.
  const uint8_t *data(const TensorInfo &t) const { return image + t.offset; }

  /// The "__metadata__" string map (empty if the archive has none).
  const std::map<std::string, std::string> &metadata() const {
    return metadataMap;
  }

  /// The path, or the name given to fromBuffer.
  const std::string &path() const { return archiveName; }

private:
  SafeTensorsReader() = default;

  std::unique_ptr<MappedFile> file;
  const uint8_t *image = nullptr;
  std::string archiveName;
  std::vector<TensorInfo> tensorList;
  /// Maps names to indices into tensorList; std::less<> allows lookups by
  /// string_view without building a std::string.
  std::map<std::string, size_t, std::less<>> index;
  std::map<std::string, std::string> metadataMap;
};

/// Collects tensors and writes a safetensors file atomically.
class SafeTensorsWriter {
public:
  /// Sets (or replaces) the "__metadata__" entry \p key.
  void setMetadata(std::string key, std::string value);

  /// Copies the bytes. Fails (returns false, sets \p error) on a duplicate
  /// name, nbytes != product(shape) * dtypeSize, a negative dim, or a name
  /// that cannot be stored (the reserved "__metadata__", invalid UTF-8).
  bool add(std::string name, DType dtype, std::vector<int64_t> shape,
           const void *data, size_t nbytes, std::string &error);

  /// Number of tensors added.
  size_t size() const { return entries.size(); }
  /// Whether a tensor called \p name was added.
  bool contains(std::string_view name) const {
    return names.find(name) != names.end();
  }

  /// Writes to "<path>.tmp.<pid>" in the same directory, fsyncs, then
  /// rename()s over \p path. On any failure the temporary is removed, the
  /// target is untouched, and \p error names the path and the OS error.
  bool write(const std::string &path, std::string &error) const;

  /// Returns the complete file image that write() would produce, or an empty
  /// vector and \p error if the metadata cannot be encoded.
  std::vector<uint8_t> serialize(std::string &error) const;

private:
  struct Entry {
    std::string name;
    DType dtype = DType::U8;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };

  /// Builds the 8-byte length prefix plus the padded JSON header.
  bool buildHeader(std::string &header, std::string &error) const;

  std::vector<Entry> entries;
  std::set<std::string, std::less<>> names;
  std::map<std::string, std::string> metadataMap;
};

} // namespace llq

#endif // LLQ_ARCHIVE_SAFETENSORS_H
