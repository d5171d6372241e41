//===- LLQ.h - The llq dialect ----------------------------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The llq dialect: weight references, float and quantized linear layers,
// quantization schemes and calibration observers.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_DIALECT_LLQ_IR_LLQ_H
#define LLQ_DIALECT_LLQ_IR_LLQ_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "llq/Quant/PackedLayer.h"

#include "llq/Dialect/LLQ/IR/LLQDialect.h.inc"
#include "llq/Dialect/LLQ/IR/LLQEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "llq/Dialect/LLQ/IR/LLQAttrs.h.inc"

#define GET_OP_CLASSES
#include "llq/Dialect/LLQ/IR/LLQOps.h.inc"

namespace llq {

/// Number of groups of `groupSize` columns along `k` input columns; the last
/// group may be short. A group size of 0 means one group per row.
int64_t getNumGroups(int64_t k, int64_t groupSize);

/// Number of 32-bit words a bitstream row of `k` codes of `bits` bits takes.
int64_t getPackedWords(int64_t k, unsigned bits);

/// The lib/Quant form of a packed format.
quant::PackedFormat getQuantFormat(PackedFormat format);

/// The element type of a part type.
mlir::Type getPartElementType(mlir::MLIRContext *ctx, quant::PartType type);

} // namespace llq

#endif // LLQ_DIALECT_LLQ_IR_LLQ_H
