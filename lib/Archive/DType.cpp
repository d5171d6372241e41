//===- DType.cpp - Tensor element types in weight archives ----------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Archive/DType.h"

namespace llq {

namespace {
constexpr DType allDTypes[] = {DType::F64, DType::F32, DType::F16, DType::BF16,
                               DType::I64, DType::I32, DType::I16, DType::I8,
                               DType::U8,  DType::U16, DType::U32, DType::U64,
                               DType::Bool};
} // namespace

size_t dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::F64:
  case DType::I64:
  case DType::U64:
    return 8;
  case DType::F32:
  case DType::I32:
  case DType::U32:
    return 4;
  case DType::F16:
  case DType::BF16:
  case DType::I16:
  case DType::U16:
    return 2;
  case DType::I8:
  case DType::U8:
  case DType::Bool:
    return 1;
  }
  // Only reachable through a value cast from outside the enumerators.
  return 0;
}

const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F64:
    return "F64";
  case DType::F32:
    return "F32";
  case DType::F16:
    return "F16";
  case DType::BF16:
    return "BF16";
  case DType::I64:
    return "I64";
  case DType::I32:
    return "I32";
  case DType::I16:
    return "I16";
  case DType::I8:
    return "I8";
  case DType::U8:
    return "U8";
  case DType::U16:
    return "U16";
  case DType::U32:
    return "U32";
  case DType::U64:
    return "U64";
  case DType::Bool:
    return "BOOL";
  }
  return "<invalid dtype>";
}

bool parseDType(std::string_view name, DType &out) {
  // The spelling is case-sensitive in the format; accepting "f32" would let
  // us read files the reference library rejects.
  for (DType dtype : allDTypes) {
    if (name == dtypeName(dtype)) {
      out = dtype;
      return true;
    }
  }
  return false;
}

} // namespace llq
