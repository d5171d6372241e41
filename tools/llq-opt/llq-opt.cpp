//===- llq-opt.cpp - The llq optimizer driver -----------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// mlir-opt with the llq dialect and passes, plus `--quantize=<spec>`, which
// runs a whole quantization pipeline and writes the packed weights beside
// the output. Output files are written whole or not at all.
//
//===----------------------------------------------------------------------===//

#include "llq/Dialect/LLQ/IR/LLQ.h"
#include "llq/Support/FileUtils.h"
#include "llq/Tokenizer/Tokenizer.h"
#include "llq/Transforms/Passes.h"
#include "llq/Transforms/Pipelines.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/WithColor.h"

using namespace mlir;
using namespace llq;

static llvm::cl::OptionCategory llqCategory("llq options");

static llvm::cl::opt<std::string> quantizeSpec(
    "quantize", llvm::cl::value_desc("spec"), llvm::cl::cat(llqCategory),
    llvm::cl::desc("Quantize every linear layer, e.g. --quantize=rtn-w4-g128 "
                   "(grammar: <method>-w<bits>[-g<group>][-sym])"));

static llvm::cl::opt<std::string> weightsOut(
    "weights-out", llvm::cl::value_desc("file"), llvm::cl::cat(llqCategory),
    llvm::cl::desc("Where --quantize writes packed weights (default: the "
                   "output file with the extension .safetensors)"));

static llvm::cl::opt<std::string> reportOut(
    "quantize-report", llvm::cl::value_desc("file"), llvm::cl::init("-"),
    llvm::cl::cat(llqCategory),
    llvm::cl::desc("Where --quantize writes its per-layer report ('-': "
                   "stderr, 'none': nowhere)"));

static llvm::cl::opt<bool> quantizeHead(
    "quantize-head", llvm::cl::cat(llqCategory),
    llvm::cl::desc("Also quantize the linear layers outside the decoder "
                   "blocks (the LM head)"));

static llvm::cl::opt<std::string> calibData(
    "calib", llvm::cl::value_desc("file"), llvm::cl::cat(llqCategory),
    llvm::cl::desc("Calibration data for gptq/awq/smoothquant: token ids"));

static llvm::cl::opt<std::string> calibTokenizer(
    "calib-tokenizer", llvm::cl::value_desc("tokenizer.json"),
    llvm::cl::cat(llqCategory),
    llvm::cl::desc("Tokenizer for --calib text (default: tokenizer.json "
                   "beside the input model)"));

static llvm::cl::opt<std::string> loraAdapter(
    "lora", llvm::cl::value_desc("adapter.safetensors"),
    llvm::cl::cat(llqCategory),
    llvm::cl::desc("Merge a LoRA adapter (PEFT-style <layer>.lora_A.weight "
                   "and .lora_B.weight) into the weights before "
                   "--quantize (billm, pbllm, dbllm, nf4, quip)"));

static llvm::cl::opt<double> loraAlpha(
    "lora-alpha", llvm::cl::init(0), llvm::cl::cat(llqCategory),
    llvm::cl::desc("LoRA scaling alpha; the merge adds alpha / rank * B A "
                   "(default: the adapter's lora_alpha metadata, else the "
                   "rank)"));

static llvm::cl::opt<int64_t> calibSamples(
    "calib-samples", llvm::cl::init(128), llvm::cl::cat(llqCategory),
    llvm::cl::desc("Random calibration windows (default 128)"));

static llvm::cl::opt<int64_t> calibSeqLen(
    "calib-seqlen", llvm::cl::init(2048), llvm::cl::cat(llqCategory),
    llvm::cl::desc("Tokens per calibration window (default 2048)"));

static llvm::cl::opt<double> smoothAlpha(
    "alpha", llvm::cl::init(0.5), llvm::cl::cat(llqCategory),
    llvm::cl::desc("SmoothQuant's migration strength (default 0.5)"));

static llvm::cl::opt<int64_t> awqSearchWindows(
    "awq-search-windows", llvm::cl::init(4), llvm::cl::cat(llqCategory),
    llvm::cl::desc("Calibration windows AWQ evaluates candidate scales on "
                   "(default 4)"));

static llvm::cl::opt<bool> listMethods(
    "list-methods", llvm::cl::cat(llqCategory),
    llvm::cl::desc("List the quantization methods and exit"));

/// The directory of `file`, or the current directory for stdin/stdout.
static std::string directoryOf(StringRef file) {
  if (file == "-")
    return ".";
  StringRef dir = llvm::sys::path::parent_path(file);
  return dir.empty() ? "." : dir.str();
}

/// The default archive for the packed weights of output `output`.
static std::string defaultWeightsPath(StringRef output) {
  SmallString<256> path(output);
  if (llvm::sys::path::extension(path) == ".mlir")
    llvm::sys::path::replace_extension(path, ".safetensors");
  else
    path += ".safetensors";
  return path.str().str();
}

static int fail(const Twine &message) {
  llvm::WithColor::error(llvm::errs(), "llq-opt") << message << "\n";
  return 1;
}

/// A temporary file removed when the tool exits.
struct TemporaryFile {
  std::string path;
  ~TemporaryFile() {
    if (!path.empty())
      llvm::sys::fs::remove(path);
  }
};

/// Whether `text` is a list of token ids (digits, whitespace and commas).
static bool isTokenIdList(llvm::StringRef text) {
  return llvm::all_of(text, [](char c) {
    return llvm::isDigit(c) || c == ',' || c == ' ' || c == '\t' ||
           c == '\n' || c == '\r';
  });
}

/// Calibration data as a token-id file for the passes: token ids are used as
/// they are; text is tokenized with --calib-tokenizer (or the tokenizer.json
/// beside the input model) into `tokens`, a temporary file.
static bool prepareCalibration(const std::string &path,
                               llvm::StringRef modelPath, TemporaryFile &tokens,
                               std::string &idsPath, std::string &error) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer) {
    error = "cannot read calibration data '" + path +
            "': " + buffer.getError().message();
    return false;
  }
  llvm::StringRef text = (*buffer)->getBuffer();
  if (isTokenIdList(text) && calibTokenizer.empty()) {
    idsPath = path;
    return true;
  }
  std::string tokenizerPath = calibTokenizer;
  if (tokenizerPath.empty()) {
    llvm::SmallString<256> beside(directoryOf(modelPath.str()));
    llvm::sys::path::append(beside, "tokenizer.json");
    if (!llvm::sys::fs::exists(beside)) {
      error = "calibration data '" + path + "' is text: give "
              "--calib-tokenizer=tokenizer.json (there is none beside the "
              "input model), or a file of token ids";
      return false;
    }
    tokenizerPath = std::string(beside);
  }
  std::unique_ptr<Tokenizer> tokenizer = Tokenizer::load(tokenizerPath, error);
  if (!tokenizer)
    return false;
  std::vector<int64_t> ids = tokenizer->encode(text, /*addSpecial=*/false);
  if (ids.empty()) {
    error = "calibration data '" + path + "' has no tokens";
    return false;
  }
  llvm::SmallString<128> temp;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("llq-calib", "ids", temp)) {
    error = "cannot create a temporary file: " + ec.message();
    return false;
  }
  tokens.path = std::string(temp);
  std::string out;
  for (int64_t id : ids)
    out += std::to_string(id) + "\n";
  if (!writeFileAtomically(tokens.path, out, error))
    return false;
  idsPath = tokens.path;
  return true;
}

int main(int argc, char **argv) {
  llvm::InitLLVM y(argc, argv);
  DialectRegistry registry;
  registry.insert<LLQDialect, func::FuncDialect, arith::ArithDialect,
                  tensor::TensorDialect>();
  registerLLQPasses();
  registerCanonicalizerPass();
  registerCSEPass();
  registerSymbolDCEPass();

  auto [inputFile, outputFile] = registerAndParseCLIOptions(
      argc, argv, "llq optimizer: passes and quantization pipelines\n",
      registry);

  if (listMethods) {
    llvm::outs() << "quantization methods:\n" << getQuantizeMethodsHelp();
    return 0;
  }

  // Everything about the quantization spec is checked before any work.
  std::optional<QuantizeSpec> spec;
  QuantizeOptions outputs;
  TemporaryFile calibTokens;
  if (quantizeSpec.empty() && !loraAdapter.empty())
    return fail("--lora is merged when quantizing: give --quantize=<spec>");
  if (!quantizeSpec.empty()) {
    llvm::Expected<QuantizeSpec> parsed = parseQuantizeSpec(quantizeSpec);
    if (!parsed)
      return fail(llvm::toString(parsed.takeError()));
    spec = *parsed;
    outputs.weights = weightsOut;
    if (outputs.weights.empty()) {
      if (outputFile == "-")
        return fail("--quantize writing to stdout needs --weights-out=FILE "
                    "for the packed weights");
      outputs.weights = defaultWeightsPath(outputFile);
    }
    outputs.report = reportOut == "none" ? std::string() : reportOut.getValue();
    outputs.includeHead = quantizeHead;
    outputs.calibSamples = calibSamples;
    outputs.calibSeqLen = calibSeqLen;
    outputs.alpha = smoothAlpha;
    outputs.searchWindows = awqSearchWindows;
    outputs.lora = loraAdapter;
    outputs.loraAlpha = loraAlpha;
    if (!loraAdapter.empty() && !spec->packed)
      return fail("--lora is merged by the packed methods (billm, pbllm, "
                  "dbllm, nf4, quip), not by --quantize=" + quantizeSpec);
    if (!loraAdapter.empty() && !llvm::sys::fs::exists(loraAdapter.getValue()))
      return fail("LoRA adapter '" + loraAdapter + "' does not exist");
    if (loraAlpha < 0)
      return fail("--lora-alpha must not be negative");
    if (spec->needsCalibration && calibData.empty())
      return fail("--quantize=" + quantizeSpec + " runs the model on "
                  "calibration data: give --calib=FILE (text or token ids)");
    if (!calibData.empty() && !llvm::sys::fs::exists(calibData.getValue()))
      return fail("calibration data '" + calibData + "' does not exist");
    if (calibSamples <= 0 || calibSeqLen <= 0)
      return fail("--calib-samples and --calib-seqlen must be positive");
    if (!calibData.empty()) {
      std::string error;
      if (!prepareCalibration(calibData, inputFile, calibTokens, outputs.calib,
                              error))
        return fail(error);
    }
  }

  std::string errorMessage;
  std::unique_ptr<llvm::MemoryBuffer> input =
      openInputFile(inputFile, &errorMessage);
  if (!input)
    return fail(errorMessage);

  // Archive paths are absolute while passes run and relative to the output
  // (stdout counts as the input's directory) when printed.
  std::string inputDir = directoryOf(inputFile);
  std::string outputDir =
      outputFile == "-" ? inputDir : directoryOf(outputFile);
  MlirOptMainConfig cliConfig = MlirOptMainConfig::createFromCLOptions();
  MlirOptMainConfig config = cliConfig;
  config.setPassPipelineSetupFn([&](PassManager &pm) -> LogicalResult {
    pm.addPass(createRebaseArchivePathsPass({inputDir, ""}));
    if (failed(cliConfig.setupPassPipeline(pm)))
      return failure();
    if (spec)
      buildQuantizePipeline(pm, *spec, outputs);
    pm.addPass(createRebaseArchivePathsPass({".", outputDir}));
    return success();
  });

  std::string result;
  llvm::raw_string_ostream os(result);
  if (failed(MlirOptMain(os, std::move(input), registry, config)))
    return 1;
  os.flush();
  if (outputFile == "-") {
    llvm::outs() << result;
    return 0;
  }
  if (std::string error; !writeFileAtomically(outputFile, result, error))
    return fail(error);
  return 0;
}
