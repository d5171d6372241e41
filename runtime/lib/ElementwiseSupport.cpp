//===- ElementwiseSupport.cpp - Shared machinery of the kernels -----------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "ElementwiseSupport.h"

#include <cctype>

using namespace llq;
using namespace llq::rt;
using namespace llq::rt::detail;

std::string detail::dtypeString(DType dtype) {
  std::string name = dtypeName(dtype);
  for (char &c : name)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

Status detail::unsupportedDType(const std::string &kernel, DType dtype) {
  return Status::error(kernel + ": " + dtypeString(dtype) +
                       " is not supported");
}

bool detail::broadcastShape(const Shape &a, const Shape &b, Shape &out) {
  size_t rank = std::max(a.size(), b.size());
  Shape result(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < a.size() ? a[a.size() - 1 - i] : 1;
    int64_t db = i < b.size() ? b[b.size() - 1 - i] : 1;
    if (da != db && da != 1 && db != 1)
      return false;
    result[rank - 1 - i] = da == 1 ? db : da;
  }
  out = std::move(result);
  return true;
}

Status detail::normalizeAxis(const std::string &kernel, int64_t axis,
                             int64_t rank, int64_t &out) {
  if (axis < -rank || axis >= rank)
    return Status::error(kernel + ": axis " + std::to_string(axis) +
                         " is out of range for rank " + std::to_string(rank));
  out = axis < 0 ? axis + rank : axis;
  return Status::ok();
}

AxisView detail::axisView(const Shape &shape, int64_t axis) {
  AxisView view;
  for (int64_t i = 0; i < static_cast<int64_t>(shape.size()); ++i) {
    if (i < axis)
      view.outer *= shape[i];
    else if (i == axis)
      view.extent = shape[i];
    else
      view.inner *= shape[i];
  }
  return view;
}

void detail::forEachColumnBlock(
    int64_t outer, int64_t inner, int64_t costPerColumn, int64_t block,
    const std::function<void(int64_t, int64_t, int64_t)> &fn) {
  if (outer <= 0 || inner <= 0)
    return;
  block = std::max<int64_t>(1, std::min(block, inner));
  int64_t blocks = (inner + block - 1) / block;
  int64_t taskCost = std::max<int64_t>(1, costPerColumn * block);
  int64_t grain = std::max<int64_t>(1, kGrain / taskCost);
  parallelFor(outer * blocks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      int64_t o = t / blocks, i0 = (t % blocks) * block;
      fn(o, i0, std::min(inner, i0 + block));
    }
  });
}
