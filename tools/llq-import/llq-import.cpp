//===- llq-import.cpp - ONNX to llq IR ------------------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// llq-import model.onnx -o model.mlir
//
// Imports an ONNX model (opsets 13-23, external data, ONNX Runtime's fused
// LLM ops), raises linear layers, normalizations, rotary embeddings,
// attention and SwiGLU to llq's model-level ops, and writes the IR. Weights
// stay where they are: the IR points into the .onnx file or its external
// data. Tensors that have no such home (typed data in the protobuf, unpacked
// zero points) go to `<output>.safetensors`.
//
//===----------------------------------------------------------------------===//

#include "llq/Conversion/ONNXToLLQ/ONNXToLLQ.h"
#include "llq/Tools/ToolUtils.h"
#include "llq/Transforms/Passes.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/WithColor.h"

using namespace mlir;
using namespace llq;
namespace cl = llvm::cl;

static cl::opt<std::string> inputFile(cl::Positional, cl::desc("<model.onnx>"));
static cl::opt<std::string> outputFile("o", cl::desc("Output IR file"),
                                       cl::value_desc("file"), cl::init("-"));
static cl::opt<std::string> functionName("function",
                                         cl::desc("Name of the function"),
                                         cl::init("main"));
static cl::opt<bool> noRaise("no-raise",
                             cl::desc("Keep the graph as imported, without "
                                      "raising to model-level ops"));
static cl::opt<bool> listOps("list-ops",
                             cl::desc("List the supported ONNX ops and exit"));
static cl::opt<int64_t> inlineElements(
    "inline-elements", cl::init(64),
    cl::desc("Initializers up to this many elements become constants"));

static int fail(const llvm::Twine &message) {
  llvm::WithColor::error(llvm::errs(), "llq-import") << message << "\n";
  return 1;
}

int main(int argc, char **argv) {
  llvm::InitLLVM y(argc, argv);
  registerLLQPasses();
  cl::ParseCommandLineOptions(argc, argv, "llq-import: ONNX to llq IR\n");
  if (listOps) {
    llvm::outs() << getSupportedOnnxOps();
    return 0;
  }
  if (inputFile.empty())
    return fail("no input model (llq-import model.onnx -o model.mlir)");

  DialectRegistry registry;
  registerLLQDialects(registry);
  MLIRContext context(registry);
  ImportOptions options;
  options.functionName = functionName;
  options.inlineElements = inlineElements;
  OwningOpRef<ModuleOp> module = importOnnxModel(&context, inputFile, options);
  if (!module)
    return 1;

  PassManager pm(&context);
  if (!noRaise) {
    pm.addPass(createRaiseToModelOpsPass());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
  }
  ExternalizeWeightsPassOptions externalize;
  std::string side = outputFile == "-" ? inputFile + ".llq.safetensors"
                                       : outputFile + ".safetensors";
  externalize.archive = side;
  externalize.symbol = "imported";
  pm.addPass(createExternalizeWeightsPass(externalize));
  if (failed(pm.run(*module)))
    return 1;

  std::string error;
  if (!writeModule(*module, outputFile, error))
    return fail(error);
  return 0;
}
