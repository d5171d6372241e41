//===- MappedFile.cpp - Read-only memory-mapped files ---------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Archive/MappedFile.h"

#include <cerrno>
#include <cstdint>
#include <system_error>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace llq {

namespace {
/// Formats "<path>: <what>: <OS message>" for the errno value \p err.
std::string osError(const std::string &path, const char *what, int err) {
  return path + ": " + what + ": " + std::generic_category().message(err);
}
} // namespace

std::unique_ptr<MappedFile> MappedFile::open(const std::string &path,
                                             std::string &error) {
  int fd;
  do
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    error = osError(path, "cannot open", errno);
    return nullptr;
  }

  struct stat st;
  if (::fstat(fd, &st) != 0) {
    error = osError(path, "cannot stat", errno);
    ::close(fd);
    return nullptr;
  }
  // Directories and devices either fail to map or report a meaningless size;
  // say so plainly rather than surfacing a confusing mmap error.
  if (!S_ISREG(st.st_mode)) {
    error = path + ": not a regular file";
    ::close(fd);
    return nullptr;
  }
  if (st.st_size < 0 || static_cast<uintmax_t>(st.st_size) > SIZE_MAX) {
    error = path + ": file is too large to map";
    ::close(fd);
    return nullptr;
  }

  size_t length = static_cast<size_t>(st.st_size);
  // mmap rejects zero-length mappings, yet an empty file is a legitimate
  // input (the caller decides whether it is a valid archive).
  if (length == 0) {
    ::close(fd);
    return std::unique_ptr<MappedFile>(new MappedFile(path, nullptr, 0));
  }

  void *addr = ::mmap(nullptr, length, PROT_READ, MAP_PRIVATE, fd, 0);
  int mmapErrno = errno;
  // The mapping keeps its own reference to the file.
  ::close(fd);
  if (addr == MAP_FAILED) {
    error = osError(path, "cannot mmap", mmapErrno);
    return nullptr;
  }
  return std::unique_ptr<MappedFile>(
      new MappedFile(path, static_cast<const uint8_t *>(addr), length));
}

MappedFile::~MappedFile() {
  if (base)
    ::munmap(const_cast<uint8_t *>(base), length);
}

} // namespace llq
