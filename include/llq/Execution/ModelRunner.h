//===- ModelRunner.h - Running causal language models -----------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// A causal LM exported to ONNX takes token ids and, depending on the
// exporter, an attention mask, position ids, past key/value tensors and
// sequence lengths; it returns logits and, with a cache, the present
// key/values. ModelRunner recognizes those inputs by name, feeds them, and
// keeps the cache between calls, so tools and evaluators see one call:
// tokens in, logits out.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_EXECUTION_MODELRUNNER_H
#define LLQ_EXECUTION_MODELRUNNER_H

#include "llq/Execution/Program.h"

#include "mlir/IR/BuiltinOps.h"

namespace mlir::func {
class FuncOp;
} // namespace mlir::func

namespace llq {

/// Builds the arguments of a causal LM's function for one sequence of
/// tokens: the inputs are recognized by name.
class InputBinder {
public:
  /// Emits a diagnostic and returns null if an input is not recognized.
  static std::unique_ptr<InputBinder> create(mlir::func::FuncOp func);

  /// Arguments for `tokens` following `past` cached tokens held in `cache`
  /// (one tensor per past input, in argument order).
  rt::Status bind(const std::vector<int64_t> &tokens, int64_t past,
                  const std::vector<rt::Tensor> &cache,
                  std::vector<rt::Tensor> &args) const;
  /// Empty caches [1, kv_heads, 0, head_dim], one per past input.
  std::vector<rt::Tensor> emptyCache() const;

  bool hasCache() const { return !cacheInputs.empty(); }
  const std::vector<size_t> &cacheOutputs() const { return presentOutputs; }
  size_t logitsOutput() const { return logits; }

private:
  enum class Input {
    Tokens,
    AttentionMask,
    PositionIds,
    PastKeyValue,
    SeqLensK,
    TotalSeqLen
  };
  struct InputSpec {
    Input kind;
    DType dtype;
    rt::Shape shape; // static dims; -1 where dynamic
  };
  std::vector<InputSpec> inputs;
  std::vector<size_t> cacheInputs;    // argument indices of past tensors
  std::vector<size_t> presentOutputs; // result indices of present tensors
  size_t logits = 0;
};

class ModelRunner {
public:
  /// Compiles function `name` of `module` (the first function if empty).
  /// Emits diagnostics and returns null if an input is not recognized.
  static std::unique_ptr<ModelRunner>
  create(mlir::ModuleOp module, llvm::StringRef name,
         const ProgramOptions &options = {});

  /// Runs `tokens` (one sequence) after the cached ones, appending to the
  /// cache when the model has one, and returns logits [1, n, vocab].
  rt::Status forward(const std::vector<int64_t> &tokens, rt::Tensor &logits);

  /// Forgets the cached tokens.
  void reset();

  /// The cache state, to return to after trying continuations of a shared
  /// prefix (tensors are shared, so this is cheap).
  struct Snapshot {
    std::vector<rt::Tensor> cache;
    int64_t past = 0;
  };
  Snapshot snapshot() const { return {cache, past}; }
  void restore(const Snapshot &s) {
    cache = s.cache;
    past = s.past;
  }
  int64_t cachedTokens() const { return past; }
  bool hasCache() const { return binder->hasCache(); }
  const Program &program() const { return *compiled; }

private:
  std::unique_ptr<InputBinder> binder;
  std::unique_ptr<Program> compiled;
  std::vector<rt::Tensor> cache;
  int64_t past = 0;
};

/// The function named `name` in `module` (the first with a body if `name`
/// is empty), or null.
mlir::func::FuncOp findFunction(mlir::ModuleOp module, llvm::StringRef name);

} // namespace llq

#endif // LLQ_EXECUTION_MODELRUNNER_H
