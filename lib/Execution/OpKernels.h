//===- OpKernels.h - The kernel of each executable op -----------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_LIB_EXECUTION_OPKERNELS_H
#define LLQ_LIB_EXECUTION_OPKERNELS_H

#include "llq/Execution/Program.h"

#include "mlir/IR/Operation.h"

namespace llq::detail {

using Inputs = std::vector<rt::Tensor>;
using Outputs = std::vector<rt::Tensor>;
/// A step's work: reads its inputs, fills its outputs.
using KernelFn = std::function<rt::Status(const Inputs &, Outputs &)>;

/// The kernel of a graph or model-level op whose operands are all runtime
/// values. `handled` is false when no kernel exists for the op's kind; an
/// empty KernelFn means the op needs no step (an observer nobody reads).
mlir::FailureOr<KernelFn> lookupOpKernel(mlir::Operation *op,
                                         const ProgramOptions &options,
                                         bool &handled);

} // namespace llq::detail

#endif // LLQ_LIB_EXECUTION_OPKERNELS_H
