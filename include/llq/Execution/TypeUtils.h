//===- TypeUtils.h - MLIR types to runtime types ----------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_EXECUTION_TYPEUTILS_H
#define LLQ_EXECUTION_TYPEUTILS_H

#include "llq/Archive/DType.h"
#include "llq/Runtime/Tensor.h"

#include "mlir/IR/BuiltinTypes.h"

#include <optional>

namespace llq {

/// The runtime element type of an MLIR element type (i1 is Bool; signless
/// and signed integers are signed; ui8 is U8).
std::optional<DType> getRuntimeDType(mlir::Type elementType);

/// The shape of a statically shaped type.
rt::Shape getRuntimeShape(mlir::ShapedType type);

} // namespace llq

#endif // LLQ_EXECUTION_TYPEUTILS_H
