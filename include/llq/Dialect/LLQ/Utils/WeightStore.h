//===- WeightStore.h - Access to the data behind llq.weight -----*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Passes and executors read weights through a WeightStore: it opens each
// archive once, memory-maps it, and checks every tensor against the type the
// IR declares before handing out its bytes.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_DIALECT_LLQ_UTILS_WEIGHTSTORE_H
#define LLQ_DIALECT_LLQ_UTILS_WEIGHTSTORE_H

#include "llq/Archive/MappedFile.h"
#include "llq/Archive/SafeTensors.h"
#include "llq/Dialect/LLQ/IR/LLQ.h"

#include "llvm/ADT/StringMap.h"

#include <memory>
#include <vector>

namespace llq {

/// Maps an MLIR element type to an archive dtype; false if it has none.
bool getArchiveDType(mlir::Type elementType, DType &dtype);

/// Opens archives on demand and serves the bytes of llq.weight ops.
class WeightStore {
public:
  /// The raw bytes of `op`'s tensor, checked against its declared type.
  /// Emits an error on `op` and fails if the archive or tensor is missing or
  /// does not match.
  mlir::FailureOr<llvm::ArrayRef<uint8_t>> getBytes(WeightOp op);

  /// The tensor of `op` converted to f32, in its declared shape. Fails (with
  /// an error on `op`) for non-float tensors.
  mlir::FailureOr<std::vector<float>> getFloats(WeightOp op);

  /// The float weight of a linear layer `weight` as a row-major N x K
  /// matrix (out x in), transposing when it is stored K x N.
  mlir::FailureOr<std::vector<float>> getMatrixNK(WeightOp weight,
                                                  bool storedKN);

private:
  mlir::FailureOr<const SafeTensorsReader *> openSafeTensors(WeightOp op,
                                                             ArchiveOp archive);
  mlir::FailureOr<const MappedFile *> openRaw(WeightOp op, ArchiveOp archive);

  llvm::StringMap<std::unique_ptr<SafeTensorsReader>> safetensors;
  llvm::StringMap<std::unique_ptr<MappedFile>> rawFiles;
};

} // namespace llq

#endif // LLQ_DIALECT_LLQ_UTILS_WEIGHTSTORE_H
