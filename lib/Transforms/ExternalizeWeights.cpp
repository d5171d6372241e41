//===- ExternalizeWeights.cpp - Move weight constants to an archive -------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Archive/SafeTensors.h"
#include "llq/Dialect/LLQ/IR/LLQ.h"
#include "llq/Dialect/LLQ/Utils/WeightStore.h"
#include "llq/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

namespace llq {
#define GEN_PASS_DEF_EXTERNALIZEWEIGHTSPASS
#include "llq/Transforms/Passes.h.inc"
} // namespace llq

using namespace mlir;
using namespace llq;

namespace {
/// Writes dense_resource constants feeding llq ops into one safetensors file
/// and replaces them with llq.weight references to it.
struct ExternalizeWeightsPass
    : llq::impl::ExternalizeWeightsPassBase<ExternalizeWeightsPass> {
  using ExternalizeWeightsPassBase::ExternalizeWeightsPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<arith::ConstantOp> constants;
    module.walk([&](arith::ConstantOp op) {
      if (!isa<DenseResourceElementsAttr>(op.getValue()))
        return;
      if (llvm::any_of(op->getUsers(), [](Operation *user) {
            return isa<LLQDialect>(user->getDialect());
          }))
        constants.push_back(op);
    });
    if (constants.empty())
      return;
    if (archive.empty()) {
      emitError(module.getLoc(),
                "llq-externalize-weights needs an 'archive' path to write ")
          << constants.size() << " weight tensors to";
      return signalPassFailure();
    }

    SafeTensorsWriter writer;
    writer.setMetadata("format", "llq");
    SmallVector<std::string> names;
    for (arith::ConstantOp op : constants) {
      auto attr = cast<DenseResourceElementsAttr>(op.getValue());
      auto type = cast<RankedTensorType>(attr.getType());
      DType dtype;
      const AsmResourceBlob *blob = attr.getRawHandle().getBlob();
      if (!getArchiveDType(type.getElementType(), dtype) || !blob) {
        op.emitError("cannot store ") << type << " in a safetensors archive";
        return signalPassFailure();
      }
      ArrayRef<char> data = blob->getData();
      std::string name = attr.getRawHandle().getKey().str();
      std::string error;
      if (!writer.add(name, dtype,
                      std::vector<int64_t>(type.getShape().begin(),
                                           type.getShape().end()),
                      data.data(), data.size(), error)) {
        op.emitError("cannot add '") << name << "' to the archive: " << error;
        return signalPassFailure();
      }
      names.push_back(std::move(name));
    }

    SmallString<256> path(archive);
    llvm::sys::fs::make_absolute(path);
    llvm::sys::path::remove_dots(path, /*remove_dot_dot=*/true);
    std::string error;
    if (!writer.write(path.str().str(), error)) {
      emitError(module.getLoc(), "cannot write weights: ") << error;
      return signalPassFailure();
    }

    OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
    auto archiveOp = b.create<ArchiveOp>(module.getLoc(), symbol,
                                         ArchiveFormat::safetensors, path);
    SymbolTable(module).insert(archiveOp, module.getBody()->begin());
    auto symbolRef = FlatSymbolRefAttr::get(archiveOp.getSymNameAttr());
    for (auto [op, name] : llvm::zip(constants, names)) {
      b.setInsertionPoint(op);
      auto weight = b.create<WeightOp>(op.getLoc(), op.getType(), symbolRef,
                                       b.getStringAttr(name), IntegerAttr(),
                                       IntegerAttr());
      op.replaceAllUsesWith(weight.getResult());
      op.erase();
    }
  }
};
} // namespace
