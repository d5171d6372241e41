//===- ToolUtils.cpp - Shared pieces of the llq tools ---------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Tools/ToolUtils.h"
#include "llq/Dialect/LLQ/IR/LLQ.h"
#include "llq/Support/FileUtils.h"
#include "llq/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

void llq::registerLLQDialects(DialectRegistry &registry) {
  registry.insert<LLQDialect, func::FuncDialect, arith::ArithDialect,
                  tensor::TensorDialect>();
}

std::string llq::directoryOf(const std::string &file) {
  if (file == "-")
    return ".";
  StringRef dir = llvm::sys::path::parent_path(file);
  return dir.empty() ? "." : dir.str();
}

static LogicalResult rebase(ModuleOp module, const std::string &inputDir,
                            const std::string &outputDir) {
  PassManager pm(module.getContext());
  pm.addPass(llq::createRebaseArchivePathsPass({inputDir, outputDir}));
  return pm.run(module);
}

OwningOpRef<ModuleOp> llq::readModule(const std::string &path,
                                      MLIRContext *context) {
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> buffer = openInputFile(path, &error);
  if (!buffer) {
    emitError(UnknownLoc::get(context)) << error;
    return nullptr;
  }
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(buffer), llvm::SMLoc());
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, context);
  if (!module || failed(rebase(*module, directoryOf(path), "")))
    return nullptr;
  return module;
}

bool llq::writeModule(ModuleOp module, const std::string &path,
                      std::string &error) {
  if (failed(rebase(module, ".", directoryOf(path)))) {
    error = "cannot rebase archive paths";
    return false;
  }
  std::string text;
  llvm::raw_string_ostream os(text);
  module.print(os);
  os.flush();
  if (path == "-") {
    llvm::outs() << text;
    return true;
  }
  return writeFileAtomically(path, text, error);
}
