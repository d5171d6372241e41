//===- llq-eval.cpp - Perplexity and log-likelihood scoring ---------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// llq-eval ppl MODEL.mlir --tokenizer tokenizer.json --text FILE
//          [--seqlen 2048] [--max-tokens N] [--random-windows N --seed S]
// llq-eval score MODEL.mlir --tokenizer tokenizer.json --requests FILE.jsonl
// llq-eval tokenize --tokenizer tokenizer.json --text FILE [-o ids.txt]
//
// Perplexity follows the study's protocol: the text is tokenized once and
// cut into non-overlapping windows of --seqlen tokens, the remainder
// dropped (WikiText2, PTB); --random-windows draws windows at random
// positions instead (the C4 protocol). PPL = exp(sum of token NLL / number
// of predicted tokens). Scoring computes, for each request, the summed log
// probability of a continuation after a context, as the lm-evaluation-
// harness does for multiple-choice tasks; requests sharing a context reuse
// its key/value cache. Everything runs on llq's CPU path.
//
//===----------------------------------------------------------------------===//

#include "llq/Execution/ModelRunner.h"
#include "llq/Runtime/Parallel.h"
#include "llq/Support/FileUtils.h"
#include "llq/Support/Progress.h"
#include "llq/Tokenizer/Tokenizer.h"
#include "llq/Tools/ToolUtils.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/WithColor.h"

#include <chrono>
#include <cmath>
#include <random>

using namespace mlir;
using namespace llq;
namespace cl = llvm::cl;

static cl::OptionCategory evalCategory("llq-eval options");

static cl::opt<std::string> command(cl::Positional, cl::Required,
                                    cl::desc("<ppl|score|tokenize>"),
                                    cl::cat(evalCategory));
static cl::opt<std::string> modelFile(cl::Positional, cl::desc("<model.mlir>"),
                                      cl::init(""), cl::cat(evalCategory));
static cl::opt<std::string>
    tokenizerFile("tokenizer", cl::desc("tokenizer.json (needed for --text "
                                        "and for score)"),
                  cl::cat(evalCategory));
static cl::opt<std::string> textFile("text", cl::desc("Text to evaluate"),
                                     cl::cat(evalCategory));
static cl::opt<std::string>
    idsFile("ids",
            cl::desc("Token ids to evaluate instead of --text "
                     "(whitespace- or comma-separated integers)"),
            cl::cat(evalCategory));
static cl::opt<std::string> requestsFile("requests",
                                         cl::desc("Scoring requests (JSONL)"),
                                         cl::cat(evalCategory));
static cl::opt<std::string> outputFile("o", cl::desc("Output file"),
                                       cl::init("-"), cl::cat(evalCategory));
static cl::opt<int64_t> seqLen("seqlen", cl::init(2048),
                               cl::desc("Tokens per window (default 2048)"),
                               cl::cat(evalCategory));
static cl::opt<int64_t> maxTokens("max-tokens", cl::init(0),
                                  cl::desc("Use only the first N tokens"),
                                  cl::cat(evalCategory));
static cl::opt<int64_t> randomWindows(
    "random-windows", cl::init(0),
    cl::desc("Draw this many windows at random positions (C4 protocol)"),
    cl::cat(evalCategory));
static cl::opt<uint64_t> seed("seed", cl::init(0),
                              cl::desc("Seed of --random-windows"),
                              cl::cat(evalCategory));
static cl::opt<bool> jsonOutput("json", cl::desc("Print results as JSON"),
                                cl::cat(evalCategory));
static cl::opt<int> threads("num-threads", cl::init(0),
                            cl::desc("Worker threads (default: all cores)"),
                            cl::cat(evalCategory));

static int fail(const llvm::Twine &message) {
  llvm::WithColor::error(llvm::errs(), "llq-eval") << message << "\n";
  return 1;
}

static std::optional<std::string> readText(const std::string &path) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return std::nullopt;
  return (*buffer)->getBuffer().str();
}

/// A double printed with every significant digit.
static std::string exact(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  return buffer;
}

/// log softmax(row)[target], in double.
static double logProb(const float *row, int64_t vocab, int64_t target) {
  float mx = *std::max_element(row, row + vocab);
  double sum = 0;
  for (int64_t v = 0; v < vocab; ++v)
    sum += std::exp(double(row[v]) - mx);
  return double(row[target]) - mx - std::log(sum);
}

/// Parses whitespace- or comma-separated non-negative token ids.
static bool parseTokenIds(llvm::StringRef text, std::vector<int64_t> &ids,
                          std::string &error) {
  int64_t index = 0;
  while (true) {
    text = text.ltrim(" \t\r\n,");
    if (text.empty())
      return true;
    size_t end = text.find_first_of(" \t\r\n,");
    llvm::StringRef word = text.substr(0, end);
    text = text.substr(word.size());
    int64_t id;
    if (word.getAsInteger(10, id) || id < 0) {
      error = ("token " + llvm::Twine(index) + ": expected a non-negative "
               "integer, got '" + word + "'")
                  .str();
      return false;
    }
    ids.push_back(id);
    ++index;
  }
}

static int runPerplexity(ModelRunner &runner, const std::vector<int64_t> &ids) {
  std::vector<std::pair<int64_t, int64_t>> windows; // [start, start + len)
  int64_t n = static_cast<int64_t>(ids.size());
  if (n < 2)
    return fail("the text has fewer than 2 tokens");
  int64_t len = std::min<int64_t>(seqLen, n);
  if (randomWindows > 0) {
    std::mt19937_64 rng(seed);
    for (int64_t i = 0; i < randomWindows; ++i)
      windows.push_back({int64_t(rng() % (n - len + 1)), len});
  } else {
    for (int64_t start = 0; start + len <= n; start += len)
      windows.push_back({start, len});
  }
  Progress progress("ppl", static_cast<int64_t>(windows.size()));
  double nll = 0;
  int64_t predicted = 0;
  auto begin = std::chrono::steady_clock::now();
  for (auto [start, size] : windows) {
    std::vector<int64_t> window(ids.begin() + start,
                                ids.begin() + start + size);
    runner.reset();
    rt::Tensor logits;
    if (rt::Status s = runner.forward(window, logits); !s)
      return fail(s.message());
    int64_t vocab = logits.dim(-1);
    const float *p = logits.data<float>();
    std::vector<double> parts(size - 1);
    rt::parallelFor(size - 1, 16, [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; ++j)
        parts[j] = -logProb(p + j * vocab, vocab, window[j + 1]);
    });
    for (double v : parts)
      nll += v;
    predicted += size - 1;
    progress.advance(1, llvm::formatv("ppl so far {0:f3}",
                                      std::exp(nll / predicted))
                            .str());
  }
  progress.finish();
  double seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - begin)
                       .count();
  double ppl = std::exp(nll / predicted);
  if (jsonOutput)
    llvm::outs() << llvm::formatv(
        "{{\"ppl\": {0}, \"nll\": {1}, \"predicted_tokens\": {2}, "
        "\"windows\": {3}, \"seqlen\": {4}, \"text_tokens\": {5}, "
        "\"seconds\": {6}}\n",
        exact(ppl), exact(nll),
        predicted, windows.size(), len, n, seconds);
  else
    llvm::outs() << llvm::format(
        "ppl %.4f  (%lld predicted tokens, %zu windows of %lld, %.1f s)\n",
        ppl, (long long)predicted, windows.size(), (long long)len, seconds);
  return 0;
}

namespace {
struct Request {
  std::vector<int64_t> context, continuation;
};
} // namespace

/// Scores one continuation after the runner's current state, whose last
/// logits row (`last`) predicts the continuation's first token.
static std::pair<double, bool> scoreContinuation(ModelRunner &runner,
                                                 const std::vector<float> &last,
                                                 const Request &r,
                                                 std::string &error) {
  int64_t vocab = static_cast<int64_t>(last.size());
  double lp = logProb(last.data(), vocab, r.continuation[0]);
  bool greedy = std::max_element(last.begin(), last.end()) - last.begin() ==
                r.continuation[0];
  if (r.continuation.size() > 1) {
    std::vector<int64_t> rest(r.continuation.begin(),
                              r.continuation.end() - 1);
    rt::Tensor logits;
    if (rt::Status s = runner.forward(rest, logits); !s) {
      error = s.message();
      return {0, false};
    }
    const float *p = logits.data<float>();
    for (size_t j = 0; j + 1 < r.continuation.size(); ++j) {
      const float *row = p + j * vocab;
      lp += logProb(row, vocab, r.continuation[j + 1]);
      greedy &= std::max_element(row, row + vocab) - row ==
                r.continuation[j + 1];
    }
  }
  return {lp, greedy};
}

/// One JSONL result line; the log-probability keeps full double precision.
static std::string scoreLine(double logprob, bool greedy, size_t tokens) {
  return llvm::formatv("{{\"logprob\": {0}, \"greedy\": {1}, "
                       "\"tokens\": {2}}\n",
                       exact(logprob),
                       greedy ? "true" : "false", tokens)
      .str();
}

static int runScore(ModelRunner &runner, const Tokenizer &tokenizer) {
  std::optional<std::string> text = readText(requestsFile);
  if (!text)
    return fail("cannot read requests '" + requestsFile + "'");
  std::vector<Request> requests;
  int64_t line = 0;
  std::optional<int64_t> fallback = tokenizer.bosId();
  if (!fallback)
    fallback = tokenizer.eosId();
  for (llvm::StringRef l : llvm::split(llvm::StringRef(*text), '\n')) {
    ++line;
    if (l.trim().empty())
      continue;
    llvm::Expected<llvm::json::Value> v = llvm::json::parse(l);
    const llvm::json::Object *o = v ? v->getAsObject() : nullptr;
    std::optional<llvm::StringRef> ctx = o ? o->getString("context") : std::nullopt;
    std::optional<llvm::StringRef> cont =
        o ? o->getString("continuation") : std::nullopt;
    if (!v)
      llvm::consumeError(v.takeError());
    if (!ctx || !cont)
      return fail(requestsFile + ":" + llvm::Twine(line) +
                  ": expected {\"context\": string, \"continuation\": string}");
    Request r{tokenizer.encode(*ctx, false), tokenizer.encode(*cont, false)};
    // An empty context conditions on the beginning-of-text token, as the
    // harness does with end-of-text.
    if (r.context.empty() && fallback)
      r.context.push_back(*fallback);
    if (r.context.empty() || r.continuation.empty())
      return fail(requestsFile + ":" + llvm::Twine(line) +
                  ": empty context or continuation");
    requests.push_back(std::move(r));
  }

  std::string out;
  Progress progress("score", static_cast<int64_t>(requests.size()));
  std::vector<float> last;
  const std::vector<int64_t> *context = nullptr;
  ModelRunner::Snapshot afterContext;
  for (const Request &r : requests) {
    bool reuse = runner.hasCache() && context && *context == r.context;
    if (reuse) {
      runner.restore(afterContext);
    } else {
      runner.reset();
      rt::Tensor logits;
      std::vector<int64_t> ctx = r.context;
      if (!runner.hasCache()) {
        // Without a cache every request runs whole.
        ctx.insert(ctx.end(), r.continuation.begin(), r.continuation.end() - 1);
      }
      if (rt::Status s = runner.forward(ctx, logits); !s)
        return fail(s.message());
      int64_t vocab = logits.dim(-1);
      int64_t row = static_cast<int64_t>(r.context.size()) - 1;
      const float *p = logits.data<float>();
      last.assign(p + row * vocab, p + (row + 1) * vocab);
      if (!runner.hasCache()) {
        double lp = 0;
        bool greedy = true;
        for (size_t j = 0; j < r.continuation.size(); ++j) {
          const float *q = p + (row + j) * vocab;
          lp += logProb(q, vocab, r.continuation[j]);
          greedy &= std::max_element(q, q + vocab) - q == r.continuation[j];
        }
        out += scoreLine(lp, greedy, r.continuation.size());
        progress.advance();
        continue;
      }
      context = &r.context;
      afterContext = runner.snapshot();
    }
    std::string error;
    auto [lp, greedy] = scoreContinuation(runner, last, r, error);
    if (!error.empty())
      return fail(error);
    out += scoreLine(lp, greedy, r.continuation.size());
    progress.advance();
  }
  progress.finish();
  if (outputFile == "-") {
    llvm::outs() << out;
    return 0;
  }
  std::string error;
  return writeFileAtomically(outputFile, out, error) ? 0 : fail(error);
}

int main(int argc, char **argv) {
  llvm::InitLLVM y(argc, argv);
  cl::HideUnrelatedOptions(evalCategory);
  cl::ParseCommandLineOptions(argc, argv,
                              "llq-eval: perplexity, scoring, tokenizing\n");
  if (threads > 0)
    rt::setNumThreads(threads);
  if (command != "ppl" && command != "score" && command != "tokenize")
    return fail("unknown command '" + command +
                "' (expected ppl, score or tokenize)");
  if (command == "ppl" && textFile.empty() == idsFile.empty())
    return fail("ppl needs exactly one of --text FILE and --ids FILE");
  if (command == "tokenize" && textFile.empty())
    return fail("tokenize needs --text FILE");
  if (command == "score" && requestsFile.empty())
    return fail("score needs --requests FILE.jsonl");
  bool needTokenizer = command != "ppl" || !textFile.empty();
  if (needTokenizer && tokenizerFile.empty())
    return fail(command + " needs --tokenizer tokenizer.json");
  std::string error;
  std::unique_ptr<Tokenizer> tokenizer;
  if (needTokenizer) {
    tokenizer = Tokenizer::load(tokenizerFile, error);
    if (!tokenizer)
      return fail(error);
  }

  std::vector<int64_t> ids;
  if (!idsFile.empty()) {
    std::optional<std::string> text = readText(idsFile);
    if (!text)
      return fail("cannot read token ids '" + idsFile + "'");
    if (!parseTokenIds(*text, ids, error))
      return fail(idsFile + ": " + error);
  } else if (command != "score") {
    std::optional<std::string> text = readText(textFile);
    if (!text)
      return fail("cannot read text '" + textFile + "'");
    ids = tokenizer->encode(*text, true);
  }
  if (maxTokens > 0 && int64_t(ids.size()) > maxTokens)
    ids.resize(maxTokens);
  if (command == "tokenize") {
    std::string out;
    for (size_t i = 0; i < ids.size(); ++i)
      out += std::to_string(ids[i]) + ((i + 1) % 32 ? " " : "\n");
    out += "\n";
    if (outputFile == "-") {
      llvm::outs() << out;
      return 0;
    }
    return writeFileAtomically(outputFile, out, error) ? 0 : fail(error);
  }

  if (modelFile.empty())
    return fail(command + " needs a model (llq-eval " + command +
                " model.mlir ...)");
  DialectRegistry registry;
  registerLLQDialects(registry);
  MLIRContext context(registry);
  OwningOpRef<ModuleOp> module = readModule(modelFile, &context);
  if (!module)
    return 1;
  std::unique_ptr<ModelRunner> runner = ModelRunner::create(*module, "");
  if (!runner)
    return 1;
  return command == "ppl" ? runPerplexity(*runner, ids)
                          : runScore(*runner, *tokenizer);
}
