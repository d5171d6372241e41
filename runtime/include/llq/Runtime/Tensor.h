//===- Tensor.h - Runtime tensors -------------------------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// A dense, row-major tensor: an element type, a shape and a reference to
// storage. Storage is shared, so copying a Tensor is cheap and a reshape is
// a new shape over the same bytes; weights are views into memory-mapped
// archives that keep their mapping alive.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_RUNTIME_TENSOR_H
#define LLQ_RUNTIME_TENSOR_H

#include "llq/Archive/DType.h"

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llq::rt {

using Shape = std::vector<int64_t>;

/// Number of elements of a shape (1 for a scalar).
int64_t numElements(const Shape &shape);

/// "2x3x4" ("scalar" for rank 0).
std::string shapeString(const Shape &shape);

class Tensor {
public:
  Tensor() = default;

  /// Uninitialized storage, 64-byte aligned.
  static Tensor empty(DType dtype, Shape shape);
  /// Zero-filled storage.
  static Tensor zeros(DType dtype, Shape shape);
  /// A view of `data`, which `owner` keeps alive (may be null for memory
  /// that outlives every use, e.g. in tests).
  static Tensor view(DType dtype, Shape shape, const void *data,
                     std::shared_ptr<const void> owner);
  /// A tensor holding a copy of `values` (for tests and small constants).
  template <typename T>
  static Tensor fromVector(DType dtype, Shape shape,
                           const std::vector<T> &values);
  /// A rank-0 tensor.
  template <typename T> static Tensor scalar(DType dtype, T value) {
    return fromVector<T>(dtype, {}, {value});
  }

  /// False for a default-constructed Tensor (an absent optional input).
  bool defined() const { return storage != nullptr; }
  DType dtype() const { return type; }
  const Shape &shape() const { return dims; }
  int64_t rank() const { return static_cast<int64_t>(dims.size()); }
  /// Dimension `i`; negative `i` counts from the back.
  int64_t dim(int64_t i) const { return dims[i < 0 ? i + rank() : i]; }
  int64_t numel() const { return elements; }
  size_t nbytes() const { return static_cast<size_t>(elements) * dtypeSize(type); }

  /// Typed access. T must have the element size of the dtype (F16 and BF16
  /// are uint16_t bit patterns, Bool is uint8_t).
  template <typename T> T *data() {
    assert(sizeof(T) == dtypeSize(type) && "element type size mismatch");
    return static_cast<T *>(ptr);
  }
  template <typename T> const T *data() const {
    assert(sizeof(T) == dtypeSize(type) && "element type size mismatch");
    return static_cast<const T *>(ptr);
  }
  void *raw() { return ptr; }
  const void *raw() const { return ptr; }

  /// The same storage under another shape with as many elements.
  Tensor reshaped(Shape shape) const;
  /// A deep copy with its own storage.
  Tensor clone() const;
  /// "f32[2x3]".
  std::string describe() const;

private:
  DType type = DType::F32;
  Shape dims;
  int64_t elements = 0;
  void *ptr = nullptr;
  std::shared_ptr<const void> storage;
};

template <typename T>
Tensor Tensor::fromVector(DType dtype, Shape shape,
                          const std::vector<T> &values) {
  Tensor t = empty(dtype, std::move(shape));
  assert(sizeof(T) == dtypeSize(dtype) && "element type size mismatch");
  assert(static_cast<int64_t>(values.size()) == t.numel() && "size mismatch");
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}

} // namespace llq::rt

#endif // LLQ_RUNTIME_TENSOR_H
