//===- ModelPlan.h - A LLaMA model's structure, read off its IR -*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The GPU runtime runs a LLaMA-family decoder as a fixed sequence of kernels.
// planModel reads that sequence's parameters from the raised IR by
// following the dataflow, not names: the embedding gather of the input ids,
// then per decoder block
//
//   h1 = h + o(attention(rope(q(n1)), rope(k(n1)), v(n1)))   n1 = rms_norm(h)
//   h2 = h1 + down(swiglu(gate(n2), up(n2)))                 n2 = rms_norm(h1)
//
// and logits = lm_head(rms_norm(h_last)). The rotary frequencies come from
// the constant that the cos/sin inputs of llq.rotary are computed from. A
// model that deviates (biases, another norm, a missing block part) is
// refused with an error on the op where the match failed.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_TOOLS_LLQCOMPILE_MODELPLAN_H
#define LLQ_TOOLS_LLQCOMPILE_MODELPLAN_H

#include "llq/Conversion/LLQToGPU/ModelKernels.h"
#include "llq/Dialect/LLQ/IR/LLQ.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <string>
#include <vector>

namespace llq {

struct ModelPlan {
  struct Block {
    /// Norm weights: llq.weight or (small models) an arith.constant.
    mlir::Value attnNorm, mlpNorm;
    // llq.linear, llq.qlinear or llq.packed_linear
    mlir::Operation *q, *k, *v, *o, *gate, *up, *down;
  };
  gpu::ModelDims dims; // maxContext left 0
  WeightOp embedding;  // [vocab][hidden]
  mlir::Value finalNorm;
  std::vector<Block> blocks;
  mlir::Operation *lmHead = nullptr;
  std::vector<float> invFreq; // headDim / 2
};

/// Reads the plan of \p func; errors are emitted on the IR.
mlir::FailureOr<ModelPlan> planModel(mlir::func::FuncOp func);

} // namespace llq

#endif // LLQ_TOOLS_LLQCOMPILE_MODELPLAN_H
