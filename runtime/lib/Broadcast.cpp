//===- Broadcast.cpp - Offsets of broadcast operands ----------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "Broadcast.h"

using namespace llq::rt;

bool BroadcastIndexer::init(const Shape &operand, const Shape &space,
                            std::string &error) {
  size_t rank = space.size();
  if (operand.size() > rank) {
    error = shapeString(operand) + " has more dimensions than " +
            shapeString(space);
    return false;
  }
  dims = space;
  strides.assign(rank, 0);
  int64_t stride = 1;
  for (size_t i = 0; i < operand.size(); ++i) {
    size_t o = operand.size() - 1 - i, s = rank - 1 - i;
    if (operand[o] == space[s]) {
      strides[s] = space[s] == 1 ? 0 : stride;
    } else if (operand[o] != 1) {
      error = shapeString(operand) + " does not broadcast to " +
              shapeString(space);
      return false;
    }
    stride *= operand[o];
  }
  return true;
}

bool llq::rt::broadcastShapes(const Shape &a, const Shape &b, Shape &out) {
  size_t rank = std::max(a.size(), b.size());
  out.assign(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < a.size() ? a[a.size() - 1 - i] : 1;
    int64_t db = i < b.size() ? b[b.size() - 1 - i] : 1;
    if (da != db && da != 1 && db != 1)
      return false;
    out[rank - 1 - i] = da == 1 ? db : da;
  }
  return true;
}
