//===- Passes.h - llq transformation passes ---------------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_TRANSFORMS_PASSES_H
#define LLQ_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace llq {

#define GEN_PASS_DECL
#include "llq/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "llq/Transforms/Passes.h.inc"

} // namespace llq

#endif // LLQ_TRANSFORMS_PASSES_H
