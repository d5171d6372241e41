//===- ModelRunner.cpp - Running causal language models -------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Execution/ModelRunner.h"
#include "llq/Dialect/LLQ/Utils/WeightStore.h"
#include "llq/Execution/TypeUtils.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/StringExtras.h"

#include <cstring>

using namespace mlir;
using namespace llq;
using rt::Status;
using rt::Tensor;

func::FuncOp llq::findFunction(ModuleOp module, StringRef name) {
  for (auto f : module.getOps<func::FuncOp>())
    if (!f.isExternal() && (name.empty() || f.getSymName() == name))
      return f;
  return nullptr;
}

std::unique_ptr<InputBinder> InputBinder::create(func::FuncOp func) {
  auto binder = std::unique_ptr<InputBinder>(new InputBinder());
  for (auto [i, type] : llvm::enumerate(func.getArgumentTypes())) {
    auto argName = func.getArgAttrOfType<StringAttr>(i, "llq.name");
    std::string n = argName ? argName.str() : "";
    auto ranked = dyn_cast<RankedTensorType>(type);
    std::optional<DType> dtype =
        ranked ? getRuntimeDType(ranked.getElementType()) : std::nullopt;
    if (!dtype) {
      emitError(func.getLoc(), "input '") << n << "' has unsupported type "
                                           << type;
      return nullptr;
    }
    InputSpec spec{Input::Tokens, *dtype, {}};
    for (int64_t d : ranked.getShape())
      spec.shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
    if (n == "input_ids")
      spec.kind = Input::Tokens;
    else if (n == "attention_mask")
      spec.kind = Input::AttentionMask;
    else if (n == "position_ids")
      spec.kind = Input::PositionIds;
    else if (n == "seqlens_k")
      spec.kind = Input::SeqLensK;
    else if (n == "total_sequence_length")
      spec.kind = Input::TotalSeqLen;
    else if (StringRef(n).starts_with("past")) {
      if (spec.shape.size() != 4 || spec.shape[1] < 0 || spec.shape[3] < 0) {
        emitError(func.getLoc(), "cache input '")
            << n << "' must be [batch, kv_heads, past, head_dim] with static "
            << "heads and head size, got " << type;
        return nullptr;
      }
      spec.kind = Input::PastKeyValue;
      binder->cacheInputs.push_back(i);
    } else {
      emitError(func.getLoc(), "input '")
          << n << "' is not one a causal LM takes (input_ids, attention_mask, "
          << "position_ids, past_*, seqlens_k, total_sequence_length)";
      return nullptr;
    }
    if (spec.kind != Input::PastKeyValue && spec.dtype != DType::I64 &&
        spec.dtype != DType::I32) {
      emitError(func.getLoc(), "input '") << n << "' must be i64 or i32";
      return nullptr;
    }
    binder->inputs.push_back(spec);
  }
  for (unsigned i = 0; i < func.getNumResults(); ++i) {
    auto resultName = func.getResultAttrOfType<StringAttr>(i, "llq.name");
    StringRef n = resultName ? resultName.getValue() : "";
    if (n.starts_with("present"))
      binder->presentOutputs.push_back(i);
    else if (n == "logits" || i == 0)
      binder->logits = i;
  }
  if (binder->cacheInputs.size() != binder->presentOutputs.size()) {
    emitError(func.getLoc(), "has ")
        << binder->cacheInputs.size() << " past inputs but "
        << binder->presentOutputs.size() << " present outputs";
    return nullptr;
  }
  return binder;
}

std::vector<Tensor> InputBinder::emptyCache() const {
  std::vector<Tensor> cache;
  for (size_t i : cacheInputs) {
    // [batch = 1, kv_heads, 0, head_dim]: one sequence, nothing cached yet.
    rt::Shape shape = inputs[i].shape;
    shape[0] = 1;
    shape[2] = 0;
    cache.push_back(Tensor::zeros(inputs[i].dtype, shape));
  }
  return cache;
}

/// A [1, n] integer tensor of `dtype` with values first, first + step, ...
static Tensor sequence(DType dtype, rt::Shape shape, int64_t first,
                       int64_t step) {
  Tensor t = Tensor::empty(dtype, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) {
    int64_t v = first + i * step;
    if (dtype == DType::I64)
      t.data<int64_t>()[i] = v;
    else
      t.data<int32_t>()[i] = static_cast<int32_t>(v);
  }
  return t;
}

Status InputBinder::bind(const std::vector<int64_t> &tokens, int64_t past,
                         const std::vector<Tensor> &cache,
                         std::vector<Tensor> &args) const {
  int64_t n = static_cast<int64_t>(tokens.size());
  int64_t total = past + n;
  args.clear();
  size_t cacheIndex = 0;
  for (const InputSpec &spec : inputs) {
    switch (spec.kind) {
    case Input::Tokens: {
      Tensor t = sequence(spec.dtype, {1, n}, 0, 0);
      for (int64_t i = 0; i < n; ++i)
        if (spec.dtype == DType::I64)
          t.data<int64_t>()[i] = tokens[i];
        else
          t.data<int32_t>()[i] = static_cast<int32_t>(tokens[i]);
      args.push_back(t);
      break;
    }
    case Input::AttentionMask:
      args.push_back(sequence(spec.dtype, {1, total}, 1, 0));
      break;
    case Input::PositionIds:
      args.push_back(sequence(spec.dtype, {1, n}, past, 1));
      break;
    case Input::SeqLensK:
      args.push_back(sequence(spec.dtype, {1}, total - 1, 0));
      break;
    case Input::TotalSeqLen:
      args.push_back(sequence(spec.dtype, {}, total, 0));
      break;
    case Input::PastKeyValue:
      if (cacheIndex >= cache.size())
        return Status::error("missing key/value cache tensors");
      args.push_back(cache[cacheIndex++]);
      break;
    }
  }
  return Status::ok();
}

std::unique_ptr<ModelRunner> ModelRunner::create(ModuleOp module,
                                                 StringRef name,
                                                 const ProgramOptions &options) {
  func::FuncOp func = findFunction(module, name);
  if (!func) {
    emitError(module.getLoc(), "no function '") << name << "' to run";
    return nullptr;
  }
  auto runner = std::unique_ptr<ModelRunner>(new ModelRunner());
  runner->binder = InputBinder::create(func);
  if (!runner->binder)
    return nullptr;
  auto weights = std::make_shared<WeightStore>();
  runner->compiled = compileProgram(func, weights, options);
  if (!runner->compiled)
    return nullptr;
  runner->reset();
  return runner;
}

void ModelRunner::reset() {
  past = 0;
  cache = binder->emptyCache();
}

Status ModelRunner::forward(const std::vector<int64_t> &tokens,
                            Tensor &logits) {
  std::vector<Tensor> args, results;
  LLQ_RT_TRY(binder->bind(tokens, past, cache, args));
  LLQ_RT_TRY(compiled->run(args, results));
  logits = results[binder->logitsOutput()];
  if (binder->hasCache()) {
    const std::vector<size_t> &outs = binder->cacheOutputs();
    for (size_t i = 0; i < outs.size(); ++i)
      cache[i] = results[outs[i]];
    past += static_cast<int64_t>(tokens.size());
  }
  return Status::ok();
}
