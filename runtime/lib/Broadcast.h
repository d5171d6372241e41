//===- Broadcast.h - Offsets of broadcast operands --------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Kernels that read an operand broadcast against an iteration space (masks
// in attention, cos/sin in rotary embeddings, batch dims in matmul) walk
// the space's leading dimensions and need the operand's element offset for
// each position: the operand's strides with 0 on broadcast dimensions.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_RUNTIME_LIB_BROADCAST_H
#define LLQ_RUNTIME_LIB_BROADCAST_H

#include "llq/Runtime/Tensor.h"

#include <string>

namespace llq::rt {

/// Maps positions of `space` to element offsets in an operand of shape
/// `operand` that broadcasts to it (right-aligned, numpy rules).
class BroadcastIndexer {
public:
  /// False (with `error` set) if `operand` does not broadcast to `space`.
  bool init(const Shape &operand, const Shape &space, std::string &error);
  /// Offset of the operand element at flat position `index` of the space.
  int64_t offset(int64_t index) const {
    int64_t off = 0;
    for (int64_t d = static_cast<int64_t>(dims.size()) - 1; d >= 0; --d) {
      int64_t i = index % dims[d];
      index /= dims[d];
      off += i * strides[d];
    }
    return off;
  }

  /// The operand's stride along space dimension `d` (0 when broadcast).
  int64_t stride(size_t d) const { return strides[d]; }

private:
  Shape dims;
  std::vector<int64_t> strides;
};

/// The numpy broadcast of two shapes; false if they do not broadcast.
bool broadcastShapes(const Shape &a, const Shape &b, Shape &out);

} // namespace llq::rt

#endif // LLQ_RUNTIME_LIB_BROADCAST_H
