//===- Program.h - Executable form of an llq function -----------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The CPU path compiles a function once into a Program: a straight-line
// list of runtime kernel calls over numbered value slots, with attributes
// decoded, constants and weights materialized (weights as views of their
// memory-mapped archives, quantized layers decoded for the GEMM), and every
// slot released after its last use. Running a Program touches no MLIR.
// Calibration, evaluation and llq-run all execute through this path.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_EXECUTION_PROGRAM_H
#define LLQ_EXECUTION_PROGRAM_H

#include "llq/Runtime/Status.h"
#include "llq/Runtime/Tensor.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mlir/IR/Value.h"
#include "llvm/ADT/DenseMap.h"

namespace mlir {
namespace func {
class FuncOp;
} // namespace func
} // namespace mlir

namespace llq {

class WeightStore;

/// Called by llq.observe ops with the observed key and value.
using ObserveFn =
    std::function<void(const std::string &key, const rt::Tensor &value)>;

struct ProgramOptions {
  /// Receives llq.observe values; observers are skipped when empty.
  ObserveFn observe;
};

class Program {
public:
  /// One kernel call: reads `inputs` slots, writes `outputs` slots.
  struct Step {
    std::function<rt::Status(const std::vector<rt::Tensor> &,
                             std::vector<rt::Tensor> &)>
        kernel;
    std::vector<int> inputs, outputs;
    /// Slots whose last reader is this step.
    std::vector<int> release;
    /// "llq.matmul at model.mlir:12:5", for error messages.
    std::string where;
    /// The decoder block the step belongs to (see stageOf()).
    int stage = kPrologue;
  };

  /// Stages: the ops before any decoder block (embedding, rotary tables,
  /// masks), one per block, and the ops after the last block (final norm,
  /// LM head). A block's ops are those that read its weights
  /// ("...layers.N...") or values computed in it.
  static constexpr int kPrologue = -1;
  int epilogue() const { return blocks; }
  int numBlocks() const { return blocks; }

  /// Runs the program on `args` (one per function argument).
  rt::Status run(const std::vector<rt::Tensor> &args,
                 std::vector<rt::Tensor> &results) const;

  /// The slots of a fresh run: constants, weights and `args`.
  rt::Status initialSlots(const std::vector<rt::Tensor> &args,
                          std::vector<rt::Tensor> &slots) const;
  /// Runs the steps of stages first..last on `slots`, stopping early once
  /// slot `stopAfter` (if >= 0) has been computed.
  rt::Status runStages(std::vector<rt::Tensor> &slots, int first, int last,
                       int stopAfter = -1) const;
  /// The slot holding `value`, or -1 if the program has none.
  int slotOf(mlir::Value value) const {
    auto it = valueSlots.find(value);
    return it == valueSlots.end() ? -1 : it->second;
  }
  /// Slots computed in blocks 0..stage and read by later stages: what a
  /// block hands to the next (the residual stream). Function results that
  /// no later stage reads (key/value caches) are not included.
  std::vector<int> liveOut(int stage) const;

  const std::vector<std::string> &argumentNames() const { return argNames; }
  const std::vector<std::string> &resultNames() const { return resultNames_; }
  size_t numSteps() const { return steps.size(); }

private:
  friend class ProgramBuilder;
  int numSlots = 0;
  std::vector<int> argSlots, resultSlots;
  std::vector<std::string> argNames, resultNames_;
  std::vector<std::pair<int, rt::Tensor>> constants;
  std::vector<Step> steps;
  std::shared_ptr<WeightStore> weights;
  llvm::DenseMap<mlir::Value, int> valueSlots;
  int blocks = 0;
};

/// Compiles `func` into a Program whose weights come from `weights`.
/// Emits a diagnostic on the first op it cannot execute and returns null.
std::unique_ptr<Program> compileProgram(mlir::func::FuncOp func,
                                        std::shared_ptr<WeightStore> weights,
                                        const ProgramOptions &options = {});

} // namespace llq

#endif // LLQ_EXECUTION_PROGRAM_H
