//===- llq-run.cpp - Run a model on the CPU -------------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// llq-run model.mlir --tokens 1,2,3 [--print-logits | --top-k 5]
//                    [--generate N] [--time]
// llq-run DIR --device cuda|cpu --tokens 1,2,3 [...]
//
// Compiles the model for the CPU path and runs it on the given token ids:
// prints the logits (one line per position) or the top-k tokens of the last
// position, optionally continues with greedy decoding through the KV cache.
// Given a directory that llq-compile wrote for a whole model, runs it with
// the deployable runtime instead (runtime/cuda's ModelEngine): on the GPU,
// or with --device cpu on the host library of --target=cpu.
//
//===----------------------------------------------------------------------===//

#include "llq/Execution/ModelRunner.h"
#include "llq/Runtime/Cuda/ModelEngine.h"
#include "llq/Runtime/Parallel.h"
#include "llq/Tools/ToolUtils.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/WithColor.h"

#include <algorithm>
#include <chrono>
#include <numeric>

using namespace mlir;
using namespace llq;
namespace cl = llvm::cl;

static cl::opt<std::string> inputFile(cl::Positional, cl::desc("<model.mlir>"),
                                      cl::init("-"));
static cl::opt<std::string> tokensArg("tokens", cl::Required,
                                      cl::desc("Comma-separated token ids"));
static cl::opt<std::string> functionName("function", cl::init(""),
                                         cl::desc("Function to run"));
static cl::opt<bool> printLogits("print-logits",
                                 cl::desc("Print every position's logits"));
static cl::opt<unsigned> topK("top-k", cl::init(0),
                              cl::desc("Print the k most likely next tokens"));
static cl::opt<unsigned> generate("generate", cl::init(0),
                                  cl::desc("Greedily decode this many tokens "
                                           "after the prompt"));
static cl::opt<bool> timing("time", cl::desc("Report prefill and decode speed "
                                             "on stderr"));
static cl::opt<std::string>
    deviceArg("device", cl::init("auto"),
              cl::desc("For a compiled model directory (llq-compile -o DIR): "
                       "cuda, cpu or auto"));
static cl::opt<int> threads("num-threads", cl::init(0),
                            cl::desc("Worker threads (default: all cores)"));

static int fail(const llvm::Twine &message) {
  llvm::WithColor::error(llvm::errs(), "llq-run") << message << "\n";
  return 1;
}

/// The logits of position `pos` of [1, n, vocab].
static const float *row(const rt::Tensor &logits, int64_t pos) {
  return logits.data<float>() + pos * logits.dim(-1);
}

static int64_t argmax(const float *p, int64_t n) {
  return std::max_element(p, p + n) - p;
}

static void printTopK(const float *r, int64_t vocab) {
  std::vector<int64_t> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  int64_t k = std::min<int64_t>(topK, vocab);
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int64_t a, int64_t b) { return r[a] > r[b]; });
  for (int64_t i = 0; i < k; ++i)
    llvm::outs() << order[i] << " " << llvm::format("%.6f", r[order[i]])
                 << "\n";
}

static void printRow(const float *r, int64_t vocab) {
  for (int64_t v = 0; v < vocab; ++v)
    llvm::outs() << (v ? " " : "") << llvm::format("%.9g", r[v]);
  llvm::outs() << "\n";
}

using Clock = std::chrono::steady_clock;

static double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

/// The --time line: setup (compile or load), prefill and decode speed; then
/// the generated tokens.
static void report(const char *setup, Clock::time_point start,
                   Clock::time_point ready, Clock::time_point prefilled,
                   Clock::time_point done, size_t prompt,
                   const std::vector<int64_t> &generated) {
  if (!generated.empty()) {
    llvm::outs() << "generated:";
    for (int64_t t : generated)
      llvm::outs() << " " << t;
    llvm::outs() << "\n";
  }
  if (!timing)
    return;
  llvm::errs() << llvm::format("%s %.3f s, prefill %zu tokens %.3f s "
                               "(%.1f tok/s)",
                               setup, seconds(start, ready), prompt,
                               seconds(ready, prefilled),
                               prompt / seconds(ready, prefilled));
  if (!generated.empty())
    llvm::errs() << llvm::format(", decode %zu tokens %.3f s (%.1f tok/s)",
                                 generated.size(), seconds(prefilled, done),
                                 generated.size() / seconds(prefilled, done));
  llvm::errs() << "\n";
}

/// Runs a compiled model directory with runtime/cuda's engine.
static int runArtifact(const std::vector<int64_t> &tokens) {
  auto start = std::chrono::steady_clock::now();
  auto engine = rt::cuda::ModelEngine::load(inputFile, deviceArg);
  if (!engine)
    return fail(engine.message());
  auto loaded = std::chrono::steady_clock::now();
  const int64_t vocab = (*engine)->description().vocab;
  std::vector<float> logits(vocab);
  std::vector<int32_t> ids(tokens.begin(), tokens.end());
  // The greedy token comes from the device (its argmax kernel); the logits
  // cross only where they are printed.
  int32_t next = 0;
  if (printLogits) {
    // Every position's logits: the prompt one token at a time.
    for (int32_t id : ids) {
      if (auto s = (*engine)->decode(id, logits.data(), &next); !s)
        return fail(s.message());
      printRow(logits.data(), vocab);
    }
  } else if (auto s = (*engine)->prefill(ids.data(), int64_t(ids.size()),
                                         topK ? logits.data() : nullptr,
                                         &next);
             !s) {
    return fail(s.message());
  }
  auto prefilled = std::chrono::steady_clock::now();
  if (topK)
    printTopK(logits.data(), vocab);
  std::vector<int64_t> generated;
  for (unsigned i = 0; i < generate; ++i) {
    generated.push_back(next);
    if (auto s = (*engine)->decode(next, nullptr, &next); !s)
      return fail(s.message());
  }
  auto done = Clock::now();
  if (timing)
    llvm::errs() << "device " << (*engine)->backend().describe() << "\n";
  report("load", start, loaded, prefilled, done, tokens.size(), generated);
  return 0;
}

int main(int argc, char **argv) {
  llvm::InitLLVM y(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "llq-run: run a model on the CPU\n");
  if (threads > 0)
    rt::setNumThreads(threads);

  std::vector<int64_t> tokens;
  for (StringRef part : llvm::split(StringRef(tokensArg), ',')) {
    int64_t id;
    if (part.trim().getAsInteger(10, id) || id < 0)
      return fail("--tokens expects comma-separated non-negative integers, "
                  "got '" + part + "'");
    tokens.push_back(id);
  }
  if (tokens.empty())
    return fail("--tokens is empty");
  if (llvm::sys::fs::is_directory(inputFile))
    return runArtifact(tokens);
  if (deviceArg != "auto" && deviceArg != "cpu")
    return fail("--device " + deviceArg + " runs a compiled model directory "
                "(llq-compile model.q.mlir --target=... -o DIR); give DIR");

  DialectRegistry registry;
  registerLLQDialects(registry);
  MLIRContext context(registry);
  OwningOpRef<ModuleOp> module = readModule(inputFile, &context);
  if (!module)
    return 1;
  auto start = std::chrono::steady_clock::now();
  std::unique_ptr<ModelRunner> runner =
      ModelRunner::create(*module, functionName);
  if (!runner)
    return 1;
  auto compiled = std::chrono::steady_clock::now();

  rt::Tensor logits;
  if (rt::Status s = runner->forward(tokens, logits); !s)
    return fail(s.message());
  auto prefilled = std::chrono::steady_clock::now();
  if (logits.dtype() != DType::F32 || logits.rank() != 3)
    return fail("expected f32 logits [1, n, vocab], got " + logits.describe());
  int64_t vocab = logits.dim(-1);

  if (printLogits)
    for (int64_t p = 0; p < logits.dim(1); ++p)
      printRow(row(logits, p), vocab);
  if (topK)
    printTopK(row(logits, logits.dim(1) - 1), vocab);

  std::vector<int64_t> generated;
  int64_t next = argmax(row(logits, logits.dim(1) - 1), vocab);
  for (unsigned i = 0; i < generate; ++i) {
    generated.push_back(next);
    std::vector<int64_t> step = {next};
    if (!runner->hasCache()) {
      // Without a cache every step runs the whole sequence again.
      step = tokens;
      step.insert(step.end(), generated.begin(), generated.end());
    }
    if (rt::Status s = runner->forward(step, logits); !s)
      return fail(s.message());
    next = argmax(row(logits, logits.dim(1) - 1), vocab);
  }
  auto done = Clock::now();
  report("compile", start, compiled, prefilled, done, tokens.size(),
         generated);
  return 0;
}
