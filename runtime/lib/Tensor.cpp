//===- Tensor.cpp - Runtime tensors ---------------------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Tensor.h"

#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <mutex>

using namespace llq;
using namespace llq::rt;

int64_t rt::numElements(const Shape &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::string rt::shapeString(const Shape &shape) {
  if (shape.empty())
    return "scalar";
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? "x" : "") + std::to_string(shape[i]);
  return s;
}

/// Activations of tens of MB are allocated and freed for every kernel call.
/// glibc serves blocks that large with fresh mmaps, whose pages then fault
/// in one by one on first write (slower than the kernels themselves), and
/// returns them on free. Raising the mmap and trim thresholds keeps freed
/// blocks in the heap for the next call.
static void tuneAllocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  });
}

Tensor Tensor::empty(DType dtype, Shape shape) {
  tuneAllocator();
  Tensor t;
  t.type = dtype;
  t.elements = numElements(shape);
  t.dims = std::move(shape);
  size_t bytes = t.nbytes();
  // Rounded up to the alignment, as aligned_alloc requires; one byte at
  // least so that even empty tensors own storage.
  size_t rounded = ((bytes ? bytes : 1) + 63) / 64 * 64;
  void *p = std::aligned_alloc(64, rounded);
  assert(p && "out of memory");
  t.ptr = p;
  t.storage = std::shared_ptr<const void>(p, [](const void *q) {
    std::free(const_cast<void *>(q));
  });
  return t;
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  Tensor t = empty(dtype, std::move(shape));
  std::memset(t.ptr, 0, t.nbytes());
  return t;
}

Tensor Tensor::view(DType dtype, Shape shape, const void *data,
                    std::shared_ptr<const void> owner) {
  Tensor t;
  t.type = dtype;
  t.elements = numElements(shape);
  t.dims = std::move(shape);
  // Views are read-only by contract; the kernels never write their inputs.
  t.ptr = const_cast<void *>(data);
  t.storage = owner ? std::move(owner)
                    : std::shared_ptr<const void>(data, [](const void *) {});
  return t;
}

Tensor Tensor::reshaped(Shape shape) const {
  assert(numElements(shape) == elements && "reshape changes the size");
  Tensor t = *this;
  t.dims = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(type, dims);
  if (nbytes())
    std::memcpy(t.ptr, ptr, nbytes());
  return t;
}

std::string Tensor::describe() const {
  std::string name = dtypeName(type);
  for (char &c : name)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name + "[" + shapeString(dims) + "]";
}
