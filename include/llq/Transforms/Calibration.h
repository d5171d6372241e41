//===- Calibration.h - Running decoder blocks on calibration data -*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The calibrated methods (GPTQ, AWQ, SmoothQuant) quantize a model one
// decoder block at a time, each block seeing the activations that the
// already-quantized blocks before it produce, as the GPTQ and AWQ
// references do. A CalibrationSession holds the calibration windows and,
// between blocks, only the values one block hands to the next (the
// residual stream of every window); everything else is recomputed. It runs
// the compiler's own CPU path on the IR as it stands, so each block sees
// exactly the quantized layers the passes have written so far.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_TRANSFORMS_CALIBRATION_H
#define LLQ_TRANSFORMS_CALIBRATION_H

#include "llq/Execution/ModelRunner.h"
#include "llq/Execution/Program.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace llq {

class WeightStore;

/// Where calibration data comes from and how it is cut.
struct CalibrationOptions {
  /// A file of token ids (integers separated by whitespace or commas).
  std::string path;
  /// Random windows to draw (the study: 128).
  int64_t samples = 128;
  /// Tokens per window (the study: 2048).
  int64_t seqLen = 2048;
  /// Seed of the window positions.
  uint64_t seed = 0;
};

/// Reads token ids from `path`; an error names the file and the offending
/// text.
mlir::FailureOr<std::vector<int64_t>> readTokenFile(const std::string &path,
                                                    mlir::Location loc);

/// `samples` windows of `seqLen` tokens at random positions of `tokens`
/// (a fixed seed gives fixed windows), or fewer if the data is short.
std::vector<std::vector<int64_t>> drawWindows(const std::vector<int64_t> &tokens,
                                             int64_t samples, int64_t seqLen,
                                             uint64_t seed);

class CalibrationSession {
public:
  /// Prepares calibration of `func` on `windows`. Emits a diagnostic and
  /// returns null if the function is not a causal LM llq can feed.
  static std::unique_ptr<CalibrationSession>
  create(mlir::func::FuncOp func, std::vector<std::vector<int64_t>> windows);

  int numBlocks() const { return blocks; }
  int64_t numWindows() const { return static_cast<int64_t>(windows.size()); }
  int64_t numTokens() const;
  mlir::func::FuncOp function() { return func; }

  /// Called with the index of an observed value, the window, and its value.
  using ObserveFn =
      std::function<void(size_t value, int64_t window, const rt::Tensor &)>;

  /// Runs block `block` as the IR now stands on the first `limit` windows
  /// (all if negative) and reports each of `values` (computed in the block).
  mlir::LogicalResult observe(int block, llvm::ArrayRef<mlir::Value> values,
                              const ObserveFn &fn, int64_t limit = -1);

  /// Runs block `block` with some values replaced (typically weights) up to
  /// `stop`, and reports `stop` per window.
  mlir::LogicalResult
  evaluate(int block, const llvm::DenseMap<mlir::Value, rt::Tensor> &overrides,
           mlir::Value stop,
           const std::function<void(int64_t, const rt::Tensor &)> &fn,
           int64_t limit = -1);

  /// Recomputes block `block` as the IR now stands (its layers quantized)
  /// and keeps its outputs as the inputs of the next block.
  mlir::LogicalResult advance(int block);

  /// Forgets the program evaluate() reuses; call after changing the IR
  /// between evaluations (advance() does).
  void invalidate() { cached.reset(); }

private:
  CalibrationSession() = default;
  mlir::FailureOr<std::unique_ptr<Program>> compile(const ProgramOptions &);
  /// Runs the prologue and block `block` of window `w` on `slots`.
  mlir::LogicalResult runWindow(const Program &program, int block, int64_t w,
                                const llvm::DenseMap<mlir::Value, rt::Tensor>
                                    &overrides,
                                int stopSlot, std::vector<rt::Tensor> &slots);

  mlir::func::FuncOp func;
  std::unique_ptr<InputBinder> binder;
  std::shared_ptr<WeightStore> weights;
  std::vector<std::vector<int64_t>> windows;
  int blocks = 0;
  /// The values the last advanced block handed on, and their tensors per
  /// window.
  std::vector<mlir::Value> carried;
  std::vector<std::vector<rt::Tensor>> carriedValues;
  /// The program evaluate() runs: a search evaluates many candidates on an
  /// unchanged IR, and compiling decodes every quantized layer.
  std::unique_ptr<Program> cached;
};

} // namespace llq

#endif // LLQ_TRANSFORMS_CALIBRATION_H
