//===- TypeUtils.cpp - MLIR types to runtime types ------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Execution/TypeUtils.h"

using namespace mlir;

std::optional<llq::DType> llq::getRuntimeDType(Type t) {
  if (t.isF32())
    return DType::F32;
  if (t.isF16())
    return DType::F16;
  if (t.isBF16())
    return DType::BF16;
  if (t.isF64())
    return DType::F64;
  if (t.isInteger(1))
    return DType::Bool;
  if (t.isUnsignedInteger(8))
    return DType::U8;
  if (t.isInteger(8))
    return DType::I8;
  if (t.isUnsignedInteger(16))
    return DType::U16;
  if (t.isInteger(16))
    return DType::I16;
  if (t.isUnsignedInteger(32))
    return DType::U32;
  if (t.isInteger(32))
    return DType::I32;
  if (t.isUnsignedInteger(64))
    return DType::U64;
  if (t.isInteger(64))
    return DType::I64;
  return std::nullopt;
}

llq::rt::Shape llq::getRuntimeShape(ShapedType type) {
  return rt::Shape(type.getShape().begin(), type.getShape().end());
}
