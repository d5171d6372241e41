//===- ONNXToLLQ.h - Importing ONNX models ----------------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Turns an ONNX model into an llq module: one function whose arguments and
// results are the graph's inputs and outputs (named by `llq.name`), one op
// (or a few) per node, and every large initializer an llq.weight that points
// into the model file or its external data, never a copy.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_CONVERSION_ONNXTOLLQ_ONNXTOLLQ_H
#define LLQ_CONVERSION_ONNXTOLLQ_ONNXTOLLQ_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <string>

namespace llq {

struct ImportOptions {
  /// Name of the generated function.
  std::string functionName = "main";
  /// Initializers with more elements than this become llq.weight
  /// references; smaller ones (shapes, axes, scalars) become constants.
  int64_t inlineElements = 64;
};

/// The ONNX opset versions of the default domain the importer supports.
constexpr int64_t kMinOnnxOpset = 13;
constexpr int64_t kMaxOnnxOpset = 23;

/// Imports the model at `path`. Archive paths in the result are absolute.
/// On failure emits diagnostics (naming the file, node and op) and returns
/// null.
mlir::OwningOpRef<mlir::ModuleOp> importOnnxModel(mlir::MLIRContext *context,
                                                  const std::string &path,
                                                  const ImportOptions &options);

/// The ops the importer handles, one "domain::Op" (or "Op") per line.
std::string getSupportedOnnxOps();

} // namespace llq

#endif // LLQ_CONVERSION_ONNXTOLLQ_ONNXTOLLQ_H
