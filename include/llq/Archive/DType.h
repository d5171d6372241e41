//===- DType.h - Tensor element types in weight archives --------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The element types a safetensors archive can declare. The spelling of each
// type is the one the safetensors format uses in its JSON header, so archives
// written here interoperate with the reference library.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_ARCHIVE_DTYPE_H
#define LLQ_ARCHIVE_DTYPE_H

#include <cstddef>
#include <string_view>

namespace llq {

/// Element type of a tensor stored in a weight archive.
enum class DType {
  F64,
  F32,
  F16,
  BF16,
  I64,
  I32,
  I16,
  I8,
  U8,
  U16,
  U32,
  U64,
  Bool
};

/// Returns the number of bytes one element of \p dtype occupies.
size_t dtypeSize(DType dtype);

/// Returns the safetensors spelling of \p dtype ("F32", "BF16", "BOOL", ...).
const char *dtypeName(DType dtype);

/// Parses a safetensors dtype spelling. Returns false, leaving \p out
/// untouched, if \p name is not a dtype this library supports.
bool parseDType(std::string_view name, DType &out);

} // namespace llq

#endif // LLQ_ARCHIVE_DTYPE_H
