//===- Calibration.cpp - Running decoder blocks on calibration data -------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Transforms/Calibration.h"
#include "llq/Dialect/LLQ/IR/LLQ.h"
#include "llq/Dialect/LLQ/Utils/WeightStore.h"

#include "mlir/IR/Builders.h"
#include "llvm/Support/MemoryBuffer.h"

#include <random>

using namespace mlir;
using namespace llq;

FailureOr<std::vector<int64_t>> llq::readTokenFile(const std::string &path,
                                                   Location loc) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return emitError(loc, "cannot read calibration data '")
           << path << "': " << buffer.getError().message();
  StringRef text = (*buffer)->getBuffer();
  std::vector<int64_t> tokens;
  size_t line = 1;
  while (!text.empty()) {
    size_t skip = text.find_first_not_of(" \t\r\n,");
    if (skip == StringRef::npos)
      break;
    line += text.take_front(skip).count('\n');
    text = text.drop_front(skip);
    StringRef word = text.take_until([](char c) {
      return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',';
    });
    int64_t id;
    if (word.getAsInteger(10, id) || id < 0)
      return emitError(loc, "calibration data '")
             << path << "' line " << line << ": expected a token id, got '"
             << word.take_front(40)
             << "' (a file of token ids)";
    tokens.push_back(id);
    text = text.drop_front(word.size());
  }
  if (tokens.empty())
    return emitError(loc, "calibration data '") << path << "' has no tokens";
  return tokens;
}

std::vector<std::vector<int64_t>>
llq::drawWindows(const std::vector<int64_t> &tokens, int64_t samples,
                 int64_t seqLen, uint64_t seed) {
  std::vector<std::vector<int64_t>> windows;
  int64_t n = static_cast<int64_t>(tokens.size());
  seqLen = std::min(seqLen, n);
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < samples; ++i) {
    int64_t start = static_cast<int64_t>(rng() % (n - seqLen + 1));
    windows.emplace_back(tokens.begin() + start,
                         tokens.begin() + start + seqLen);
  }
  return windows;
}

std::unique_ptr<CalibrationSession>
CalibrationSession::create(func::FuncOp func,
                           std::vector<std::vector<int64_t>> windows) {
  auto session = std::unique_ptr<CalibrationSession>(new CalibrationSession());
  session->func = func;
  session->binder = InputBinder::create(func);
  if (!session->binder)
    return nullptr;
  session->weights = std::make_shared<WeightStore>();
  session->windows = std::move(windows);
  FailureOr<std::unique_ptr<Program>> program = session->compile({});
  if (failed(program))
    return nullptr;
  session->blocks = (*program)->numBlocks();
  if (session->blocks == 0) {
    func.emitError("has no decoder blocks (layers named '...layers.N...') "
                   "to calibrate");
    return nullptr;
  }
  return session;
}

int64_t CalibrationSession::numTokens() const {
  int64_t n = 0;
  for (const auto &w : windows)
    n += static_cast<int64_t>(w.size());
  return n;
}

FailureOr<std::unique_ptr<Program>>
CalibrationSession::compile(const ProgramOptions &options) {
  std::unique_ptr<Program> program = compileProgram(func, weights, options);
  if (!program)
    return failure();
  return std::move(program);
}

LogicalResult CalibrationSession::runWindow(
    const Program &program, int block, int64_t w,
    const llvm::DenseMap<Value, rt::Tensor> &overrides, int stopSlot,
    std::vector<rt::Tensor> &slots) {
  std::vector<rt::Tensor> args;
  rt::Status status =
      binder->bind(windows[w], 0, binder->emptyCache(), args);
  if (status)
    status = program.initialSlots(args, slots);
  if (status)
    status = program.runStages(slots, Program::kPrologue, Program::kPrologue);
  if (!status)
    return func.emitError("calibration window ")
           << w << ": " << status.message();
  for (auto [value, tensors] : llvm::zip(carried, carriedValues))
    if (int slot = program.slotOf(value); slot >= 0)
      slots[slot] = tensors[w];
  for (const auto &[value, tensor] : overrides)
    if (int slot = program.slotOf(value); slot >= 0)
      slots[slot] = tensor;
  status = program.runStages(slots, block, block, stopSlot);
  if (!status)
    return func.emitError("calibration window ")
           << w << ", block " << block << ": " << status.message();
  return success();
}

LogicalResult CalibrationSession::observe(int block, ArrayRef<Value> values,
                                          const ObserveFn &fn, int64_t limit) {
  // Observers go into the IR for this run only: the program reports their
  // values through the callback, and they are erased afterwards.
  SmallVector<ObserveOp> observers;
  OpBuilder b(func.getContext());
  for (auto [i, v] : llvm::enumerate(values)) {
    if (Operation *def = v.getDefiningOp())
      b.setInsertionPointAfter(def);
    else
      b.setInsertionPointToStart(&func.getBody().front());
    observers.push_back(
        b.create<ObserveOp>(v.getLoc(), v, b.getStringAttr(std::to_string(i))));
  }
  int64_t window = 0;
  ProgramOptions options;
  options.observe = [&](const std::string &key, const rt::Tensor &t) {
    size_t index = 0;
    StringRef(key).getAsInteger(10, index);
    fn(index, window, t);
  };
  FailureOr<std::unique_ptr<Program>> program = compile(options);
  for (ObserveOp op : observers)
    op.erase();
  if (failed(program))
    return failure();
  int64_t n = limit < 0 ? numWindows() : std::min(limit, numWindows());
  std::vector<rt::Tensor> slots;
  for (window = 0; window < n; ++window)
    if (failed(runWindow(**program, block, window, {}, -1, slots)))
      return failure();
  return success();
}

LogicalResult CalibrationSession::evaluate(
    int block, const llvm::DenseMap<Value, rt::Tensor> &overrides, Value stop,
    const std::function<void(int64_t, const rt::Tensor &)> &fn,
    int64_t limit) {
  if (!cached) {
    FailureOr<std::unique_ptr<Program>> program = compile({});
    if (failed(program))
      return failure();
    cached = std::move(*program);
  }
  const Program &program = *cached;
  int stopSlot = program.slotOf(stop);
  if (stopSlot < 0)
    return func.emitError("calibration cannot evaluate a value the program "
                          "does not compute");
  int64_t n = limit < 0 ? numWindows() : std::min(limit, numWindows());
  std::vector<rt::Tensor> slots;
  for (int64_t w = 0; w < n; ++w) {
    if (failed(runWindow(program, block, w, overrides, stopSlot, slots)))
      return failure();
    fn(w, slots[stopSlot]);
  }
  return success();
}

LogicalResult CalibrationSession::advance(int block) {
  invalidate();
  FailureOr<std::unique_ptr<Program>> program = compile({});
  if (failed(program))
    return failure();
  std::vector<int> outs = (*program)->liveOut(block);
  // Map the handed-on slots back to IR values, which outlive this program.
  llvm::DenseMap<int, Value> slotValues;
  func.walk([&](Operation *op) {
    for (Value v : op->getResults())
      if (int slot = (*program)->slotOf(v); slot >= 0)
        slotValues[slot] = v;
  });
  std::vector<Value> next;
  for (int slot : outs)
    next.push_back(slotValues.lookup(slot));
  std::vector<std::vector<rt::Tensor>> nextValues(next.size());
  std::vector<rt::Tensor> slots;
  for (int64_t w = 0; w < numWindows(); ++w) {
    if (failed(runWindow(**program, block, w, {}, -1, slots)))
      return failure();
    for (size_t i = 0; i < outs.size(); ++i)
      nextValues[i].push_back(slots[outs[i]]);
  }
  carried = std::move(next);
  carriedValues = std::move(nextValues);
  return success();
}
