//===- Importer.h - State shared by the ONNX op handlers --------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_LIB_CONVERSION_ONNXTOLLQ_IMPORTER_H
#define LLQ_LIB_CONVERSION_ONNXTOLLQ_IMPORTER_H

#include "llq/Conversion/ONNXToLLQ/ONNXToLLQ.h"
#include "llq/Dialect/LLQ/IR/LLQ.h"
#include "llq/Import/OnnxModel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringMap.h"

namespace llq {

class OnnxImporter;

/// What a handler sees of one node: its operands (null for omitted optional
/// inputs), and the means to build ops and set its results.
class NodeContext {
public:
  NodeContext(OnnxImporter &importer, const onnx::Node &node,
              llvm::SmallVector<mlir::Value> inputs, int64_t opset);

  const onnx::Node &node;
  OnnxImporter &importer;
  llvm::SmallVector<mlir::Value> inputs;
  int64_t opset;

  mlir::OpBuilder &builder();
  mlir::Location loc();
  mlir::MLIRContext *context();

  /// Operand i, or null if absent.
  mlir::Value input(size_t i) const {
    return i < inputs.size() ? inputs[i] : mlir::Value();
  }
  size_t numOutputs() const { return node.outputs.size(); }

  /// The type of result `i`: the model's declared type if it has one, else
  /// an unranked tensor of `elementType`.
  mlir::Type resultType(size_t i, mlir::Type elementType);
  /// Same, with the element type of operand `operand`.
  mlir::Type resultTypeLike(size_t i, size_t operand = 0);

  /// Binds result `i` of the node to `value`.
  void setResult(size_t i, mlir::Value value);

  /// An error at the node: "node 'n' (Op, opset 17): <message>".
  mlir::InFlightDiagnostic error(const llvm::Twine &message);

  // Attribute accessors with ONNX defaults.
  int64_t intAttr(llvm::StringRef name, int64_t dflt) const;
  float floatAttr(llvm::StringRef name, float dflt) const;
  std::string stringAttr(llvm::StringRef name, llvm::StringRef dflt) const;
  std::optional<std::vector<int64_t>> intsAttr(llvm::StringRef name) const;
  bool hasAttr(llvm::StringRef name) const;

  /// The values of a constant integer operand (folded at import time).
  mlir::FailureOr<std::vector<int64_t>> constantInts(size_t i,
                                                     llvm::StringRef what);
  /// A constant i64 1-d tensor.
  mlir::Value i64Constant(llvm::ArrayRef<int64_t> values);
  /// A constant f32 scalar tensor.
  mlir::Value f32Scalar(float value);
};

/// Converts one node. Handlers set every result or emit an error.
using OpHandler = mlir::LogicalResult (*)(NodeContext &);

/// The handler table: "Op" for the default domain, "domain::Op" otherwise.
const llvm::StringMap<OpHandler> &getOpHandlers();

/// Gives unranked results of `op` the ranked type its operands imply.
void refineResultTypes(mlir::Operation *op);

/// The integer values of `v` if they are known at import time.
std::optional<std::vector<int64_t>> foldImportInts(mlir::Value v);

/// The MLIR element type of an ONNX tensor element type, or null.
mlir::Type getElementType(mlir::MLIRContext *ctx, int32_t onnxType);

class OnnxImporter {
public:
  OnnxImporter(mlir::MLIRContext *ctx, const onnx::LoadedModel &model,
               const std::string &path, const ImportOptions &options);

  mlir::OwningOpRef<mlir::ModuleOp> run();

  /// The value of tensor `name` (an argument, initializer or node result).
  mlir::FailureOr<mlir::Value> lookup(const std::string &name);
  /// A value built from an ONNX tensor (initializer or attribute).
  mlir::FailureOr<mlir::Value> materialize(const onnx::TensorData &tensor,
                                           mlir::Location loc);
  /// The bytes of an initializer-backed value (weight or dense constant).
  mlir::FailureOr<std::vector<uint8_t>> valueBytes(mlir::Value v);
  /// The declared type of tensor `name`, or null.
  mlir::Type declaredType(const std::string &name);

  mlir::OpBuilder builder;
  mlir::Location currentLoc;
  const onnx::Node *currentNode = nullptr;
  llvm::StringMap<mlir::Value> values;

private:
  mlir::LogicalResult importNode(const onnx::Node &node);
  mlir::FailureOr<mlir::Value> weightReference(const onnx::TensorData &t,
                                               mlir::RankedTensorType type,
                                               mlir::Location loc);
  mlir::FailureOr<llvm::ArrayRef<uint8_t>> tensorBytes(const onnx::TensorData &t);
  mlir::FlatSymbolRefAttr archiveFor(const onnx::TensorData &t);
  mlir::Type typeOf(const onnx::ValueInfo &info);

  mlir::MLIRContext *ctx;
  const onnx::LoadedModel &model;
  std::string path, directory;
  ImportOptions options;
  mlir::ModuleOp module;
  llvm::StringMap<const onnx::TensorData *> initializers;
  llvm::StringMap<mlir::Type> declared;
  llvm::StringMap<mlir::FlatSymbolRefAttr> archives;
  llvm::StringMap<std::shared_ptr<MappedFile>> externalFiles;
};

} // namespace llq

#endif // LLQ_LIB_CONVERSION_ONNXTOLLQ_IMPORTER_H
