//===- Movement.cpp - Shape and data-movement kernels ---------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Most kernels here reduce to one of three copies:
//  * a strided copy (Transpose, Slice, Expand, Tile): the output is walked
//    in order while the input is read through per-dim strides, which may be
//    negative (reversed slices) or 0 (broadcast dims);
//  * a row copy (Concat, Split, Gather, GatherND): whole contiguous rows
//    move with memcpy, one per outer index;
//  * an element-wise indexed copy (GatherElements, Scatter*, Pad).
// None of them looks at element values, only at the element size.
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Kernels/Movement.h"
#include "llq/Quant/Half.h"
#include "llq/Runtime/Parallel.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>

using namespace llq;
using namespace llq::rt;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

namespace {

/// Bytes one parallel chunk moves at least: below that, waking the pool
/// costs more than the copy.
constexpr int64_t kChunkBytes = 64 * 1024;

/// Side of the square tiles through which a transpose of the innermost dim
/// copies, so that both the strided reads and the writes stay in cache.
constexpr int64_t kTile = 32;

/// Split makes a vector of outputs; a runaway count must not exhaust memory.
constexpr int64_t kMaxSplitOutputs = int64_t(1) << 16;

Status fail(const char *kernel, const std::string &message) {
  return Status::error(std::string(kernel) + ": " + message);
}

/// "[0, 0, 1]".
std::string listString(const std::vector<int64_t> &values) {
  std::string s = "[";
  for (size_t i = 0; i < values.size(); ++i)
    s += (i ? ", " : "") + std::to_string(values[i]);
  return s + "]";
}

/// Items per parallel chunk when each item moves `itemBytes`.
int64_t grainFor(int64_t itemBytes) {
  return std::max<int64_t>(1, kChunkBytes / std::max<int64_t>(itemBytes, 1));
}

/// Calls `fn` with a value of the unsigned integer type that has `size`
/// bytes, so that one body moves elements of every dtype of that size.
template <typename Fn> void withElementType(size_t size, Fn &&fn) {
  switch (size) {
  case 1:
    fn(uint8_t());
    break;
  case 2:
    fn(uint16_t());
    break;
  case 4:
    fn(uint32_t());
    break;
  default:
    fn(uint64_t());
    break;
  }
}

std::vector<int64_t> contiguousStrides(const Shape &shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t stride = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    strides[d] = stride;
    stride *= shape[d];
  }
  return strides;
}

/// Product of dims [begin, end) of an existing tensor's shape, which cannot
/// overflow since the tensor exists.
int64_t product(const Shape &shape, size_t begin, size_t end) {
  int64_t n = 1;
  for (size_t d = begin; d < end; ++d)
    n *= shape[d];
  return n;
}

/// Fails unless a tensor of `shape` and `dtype` can exist: no negative dims
/// and a byte size that fits in int64.
Status checkShape(const char *kernel, const Shape &shape, DType dtype) {
  int64_t bytes = static_cast<int64_t>(dtypeSize(dtype));
  for (int64_t d : shape)
    if (d < 0)
      return fail(kernel,
                  "shape " + shapeString(shape) + " has a negative dim");
  for (int64_t d : shape)
    if (__builtin_mul_overflow(bytes, d, &bytes))
      return fail(kernel, "shape " + shapeString(shape) + " is too large");
  return Status::ok();
}

/// Maps `axis` in [-rank, rank) to [0, rank).
Status normalizeAxis(const char *kernel, int64_t axis, int64_t rank,
                     int64_t &out) {
  if (axis < -rank || axis >= rank)
    return fail(kernel, "axis " + std::to_string(axis) +
                            " is out of range for rank " +
                            std::to_string(rank));
  out = axis < 0 ? axis + rank : axis;
  return Status::ok();
}

/// Normalizes a list of distinct axes.
Status normalizeAxes(const char *kernel, const std::vector<int64_t> &axes,
                     int64_t rank, std::vector<int64_t> &out) {
  std::vector<int64_t> result(axes.size());
  std::vector<bool> seen(rank, false);
  for (size_t i = 0; i < axes.size(); ++i) {
    LLQ_RT_TRY(normalizeAxis(kernel, axes[i], rank, result[i]));
    if (seen[result[i]])
      return fail(kernel, "axis " + std::to_string(axes[i]) + " appears twice");
    seen[result[i]] = true;
  }
  out = std::move(result);
  return Status::ok();
}

/// Reads an I64 or I32 tensor of any rank.
Status readIndices(const char *what, const Tensor &t,
                   std::vector<int64_t> &out) {
  if (t.dtype() != DType::I64 && t.dtype() != DType::I32)
    return Status::error(std::string(what) +
                         ": expected an I64 or I32 tensor, got " +
                         t.describe());
  out.resize(t.numel());
  if (t.dtype() == DType::I64)
    std::copy_n(t.data<int64_t>(), t.numel(), out.begin());
  else
    std::copy_n(t.data<int32_t>(), t.numel(), out.begin());
  return Status::ok();
}

/// Wraps a negative index once; fails if it is still outside [0, bound).
Status wrapIndex(const char *kernel, int64_t &index, int64_t axis,
                 int64_t bound) {
  int64_t wrapped = index < 0 ? index + bound : index;
  if (wrapped < 0 || wrapped >= bound)
    return fail(kernel, "index " + std::to_string(index) +
                            " is out of range for axis " +
                            std::to_string(axis) + " of size " +
                            std::to_string(bound));
  index = wrapped;
  return Status::ok();
}

/// An absent optional input: the executor passes a default Tensor, which
/// alone has no data pointer.
bool isAbsent(const Tensor &t) { return t.raw() == nullptr; }

//===----------------------------------------------------------------------===//
// Strided copies
//===----------------------------------------------------------------------===//

/// One loop of a copy nest: its trip count and the element strides of the
/// source and the destination.
struct Loop {
  int64_t size, src, dst;
};

/// The source and destination offsets of a loop nest's iterations, from a
/// flat starting position on.
class LoopWalker {
public:
  LoopWalker(const std::vector<Loop> &loops, int64_t position)
      : loops(loops), index(loops.size()) {
    for (size_t d = loops.size(); d-- > 0;) {
      index[d] = position % loops[d].size;
      position /= loops[d].size;
      src += index[d] * loops[d].src;
      dst += index[d] * loops[d].dst;
    }
  }

  void next() {
    for (size_t d = loops.size(); d-- > 0;) {
      src += loops[d].src;
      dst += loops[d].dst;
      if (++index[d] < loops[d].size)
        return;
      src -= loops[d].src * loops[d].size;
      dst -= loops[d].dst * loops[d].size;
      index[d] = 0;
    }
  }

  /// The current iteration of the innermost loop of the nest.
  int64_t innermost() const { return index.back(); }

  int64_t src = 0, dst = 0;

private:
  const std::vector<Loop> &loops;
  std::vector<int64_t> index;
};

int64_t tripCount(const std::vector<Loop> &loops) {
  int64_t n = 1;
  for (const Loop &l : loops)
    n *= l.size;
  return n;
}

/// The loops that write a contiguous `shape` from `srcStrides`, without
/// size-1 dims and with adjacent dims merged where the source is contiguous
/// across them too, so inner runs come out as long as they can be.
std::vector<Loop> simplifiedLoops(const Shape &shape,
                                  const std::vector<int64_t> &srcStrides) {
  std::vector<int64_t> dstStrides = contiguousStrides(shape);
  std::vector<Loop> loops;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1)
      continue;
    Loop l{shape[d], srcStrides[d], dstStrides[d]};
    if (!loops.empty() && loops.back().src == l.src * l.size &&
        loops.back().dst == l.dst * l.size)
      loops.back() = {loops.back().size * l.size, l.src, l.dst};
    else
      loops.push_back(l);
  }
  return loops;
}

/// Copies contiguous runs of `runBytes`, one per iteration of `outer`;
/// offsets are in elements of `size` bytes and may be negative.
void copyRuns(const char *src, char *dst, const std::vector<Loop> &outer,
              int64_t runBytes, int64_t size) {
  parallelFor(tripCount(outer), grainFor(runBytes),
              [&](int64_t begin, int64_t end) {
                LoopWalker w(outer, begin);
                for (int64_t i = begin; i < end; ++i, w.next())
                  std::memcpy(dst + w.dst * size, src + w.src * size, runBytes);
              });
}

/// Copies the innermost loop element by element, for each iteration of
/// `outer`; the innermost destination stride is 1. A source stride of 0
/// (a broadcast innermost dim) is a fill.
template <typename T>
void copyElements(const T *src, T *dst, const std::vector<Loop> &outer,
                  const Loop &inner) {
  int64_t n = inner.size, stride = inner.src;
  parallelFor(tripCount(outer), grainFor(n * sizeof(T)),
              [&](int64_t begin, int64_t end) {
                LoopWalker w(outer, begin);
                for (int64_t i = begin; i < end; ++i, w.next()) {
                  const T *s = src + w.src;
                  T *d = dst + w.dst;
                  if (stride == 0) {
                    std::fill_n(d, n, *s);
                    continue;
                  }
                  for (int64_t j = 0; j < n; ++j)
                    d[j] = s[j * stride];
                }
              });
}

/// Copies a rows x cols block (rows <= kTile) whose source is contiguous
/// down the rows and `srcStride` apart along the cols. Each kTile-wide
/// strip goes through a buffer in L1: read with contiguous runs down the
/// rows, written with contiguous runs along them.
template <typename T>
void transposeBlock(const T *src, int64_t srcStride, T *dst, int64_t dstStride,
                    int64_t rows, int64_t cols) {
  T buffer[kTile][kTile];
  for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
    int64_t n = std::min(cols - c0, kTile);
    for (int64_t c = 0; c < n; ++c) {
      const T *s = src + (c0 + c) * srcStride;
      for (int64_t r = 0; r < rows; ++r)
        buffer[r][c] = s[r];
    }
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(dst + r * dstStride + c0, buffer[r], n * sizeof(T));
  }
}

/// A transpose of the innermost dim: `across` is the loop that reads the
/// source contiguously, `inner` the one that writes the destination
/// contiguously. The other loops and kTile blocks of `across` are split
/// over the pool.
template <typename T>
void copyTiles(const T *src, T *dst, std::vector<Loop> outer,
               const Loop &across, const Loop &inner) {
  int64_t blocks = (across.size + kTile - 1) / kTile;
  outer.push_back({blocks, across.src * kTile, across.dst * kTile});
  parallelFor(tripCount(outer), grainFor(kTile * inner.size * sizeof(T)),
              [&](int64_t begin, int64_t end) {
                LoopWalker w(outer, begin);
                for (int64_t i = begin; i < end; ++i, w.next()) {
                  int64_t rows =
                      std::min(kTile, across.size - w.innermost() * kTile);
                  transposeBlock(src + w.src, inner.src, dst + w.dst,
                                 across.dst, rows, inner.size);
                }
              });
}

/// Fills the contiguous `dst` of `shape` with the elements of `src` at
/// `base + sum(index[d] * srcStrides[d])`. Strides may be negative or 0.
void stridedCopy(const void *src, int64_t base, const Shape &shape,
                 const std::vector<int64_t> &srcStrides, size_t size,
                 void *dst) {
  if (numElements(shape) == 0)
    return;
  const char *from = static_cast<const char *>(src) + base * int64_t(size);
  char *to = static_cast<char *>(dst);
  std::vector<Loop> loops = simplifiedLoops(shape, srcStrides);
  if (loops.empty()) {
    std::memcpy(to, from, size);
    return;
  }
  Loop inner = loops.back();
  loops.pop_back();
  if (inner.src == 1)
    return copyRuns(from, to, loops, inner.size * int64_t(size), int64_t(size));
  // A transpose of the innermost dim: some outer loop reads contiguously.
  auto across = std::find_if(loops.begin(), loops.end(),
                             [](const Loop &l) { return l.src == 1; });
  if (inner.src == 0)
    across = loops.end();
  withElementType(size, [&](auto tag) {
    using T = decltype(tag);
    auto *s = reinterpret_cast<const T *>(from);
    auto *d = reinterpret_cast<T *>(to);
    if (across == loops.end())
      return copyElements(s, d, loops, inner);
    Loop tiled = *across;
    loops.erase(across);
    copyTiles(s, d, loops, tiled, inner);
  });
}

/// Copies `rows` rows of `rowBytes` between buffers whose rows are
/// `srcPitch` and `dstPitch` bytes apart: one input of a Concat, one
/// output of a Split.
void copyRows(const char *src, int64_t srcPitch, char *dst, int64_t dstPitch,
              int64_t rows, int64_t rowBytes) {
  if (rowBytes == 0)
    return;
  parallelFor(rows, grainFor(rowBytes), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      std::memcpy(dst + r * dstPitch, src + r * srcPitch, rowBytes);
  });
}

/// Copies rows of `rowElems` elements that start at the element offsets
/// `starts` of `src` to consecutive rows of `dst`.
void gatherRows(const void *src, const std::vector<int64_t> &starts,
                int64_t rowElems, size_t size, void *dst) {
  int64_t rowBytes = rowElems * static_cast<int64_t>(size);
  if (rowBytes == 0)
    return;
  auto *from = static_cast<const char *>(src);
  auto *to = static_cast<char *>(dst);
  int64_t n = static_cast<int64_t>(starts.size());
  parallelFor(n, grainFor(rowBytes), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      std::memcpy(to + i * rowBytes, from + starts[i] * int64_t(size),
                  rowBytes);
  });
}

//===----------------------------------------------------------------------===//
// Scatter reductions
//===----------------------------------------------------------------------===//

enum class Reduction { None, Add, Mul, Max, Min };

Status parseReduction(const char *kernel, const std::string &name, DType dtype,
                      Reduction &out) {
  static const std::pair<const char *, Reduction> names[] = {
      {"none", Reduction::None},
      {"add", Reduction::Add},
      {"mul", Reduction::Mul},
      {"max", Reduction::Max},
      {"min", Reduction::Min}};
  auto it = std::find_if(std::begin(names), std::end(names),
                         [&](const auto &n) { return name == n.first; });
  if (it == std::end(names))
    return fail(kernel, "unknown reduction '" + name + "'");
  if (it->second != Reduction::None && dtype == DType::Bool)
    return fail(kernel, "reduction " + name + " is not supported for " +
                            dtypeName(dtype));
  out = it->second;
  return Status::ok();
}

/// One reduction step. Integers wrap on overflow (through uint64_t, whose
/// arithmetic is modular) instead of being undefined.
template <typename T> T reduceStep(Reduction r, T a, T b) {
  switch (r) {
  case Reduction::None:
    return b;
  case Reduction::Add:
    if constexpr (std::is_integral_v<T>)
      return static_cast<T>(uint64_t(a) + uint64_t(b));
    else
      return a + b;
  case Reduction::Mul:
    if constexpr (std::is_integral_v<T>)
      return static_cast<T>(uint64_t(a) * uint64_t(b));
    else
      return a * b;
  case Reduction::Max:
    return std::max(a, b);
  case Reduction::Min:
    return std::min(a, b);
  }
  return b;
}

template <typename T>
void combineTyped(Reduction r, void *dst, const void *src, int64_t n) {
  T *d = static_cast<T *>(dst);
  const T *s = static_cast<const T *>(src);
  for (int64_t i = 0; i < n; ++i)
    d[i] = reduceStep(r, d[i], s[i]);
}

/// 16-bit floats combine in float and round back, as onnxruntime does.
template <float (*ToFloat)(uint16_t), uint16_t (*FromFloat)(float)>
void combineHalf(Reduction r, void *dst, const void *src, int64_t n) {
  uint16_t *d = static_cast<uint16_t *>(dst);
  const uint16_t *s = static_cast<const uint16_t *>(src);
  for (int64_t i = 0; i < n; ++i)
    d[i] = FromFloat(reduceStep(r, ToFloat(d[i]), ToFloat(s[i])));
}

/// dst[i] = reduction(dst[i], src[i]) for `n` elements of `dtype`.
void combine(DType dtype, Reduction r, void *dst, const void *src, int64_t n) {
  if (r == Reduction::None) {
    std::memcpy(dst, src, n * dtypeSize(dtype));
    return;
  }
  switch (dtype) {
  case DType::F64:
    return combineTyped<double>(r, dst, src, n);
  case DType::F32:
    return combineTyped<float>(r, dst, src, n);
  case DType::F16:
    return combineHalf<quant::halfToFloat, quant::floatToHalf>(r, dst, src, n);
  case DType::BF16:
    return combineHalf<quant::bfloat16ToFloat, quant::floatToBFloat16>(r, dst,
                                                                       src, n);
  case DType::I64:
    return combineTyped<int64_t>(r, dst, src, n);
  case DType::I32:
    return combineTyped<int32_t>(r, dst, src, n);
  case DType::I16:
    return combineTyped<int16_t>(r, dst, src, n);
  case DType::I8:
    return combineTyped<int8_t>(r, dst, src, n);
  case DType::U8:
    return combineTyped<uint8_t>(r, dst, src, n);
  case DType::U16:
    return combineTyped<uint16_t>(r, dst, src, n);
  case DType::U32:
    return combineTyped<uint32_t>(r, dst, src, n);
  case DType::U64:
    return combineTyped<uint64_t>(r, dst, src, n);
  case DType::Bool: // Rejected by parseReduction.
    return;
  }
}

} // namespace

//===----------------------------------------------------------------------===//
// Index operands
//===----------------------------------------------------------------------===//

Status rt::toIndexVector(const Tensor &t, std::vector<int64_t> &out,
                         const char *what) {
  if ((t.dtype() != DType::I64 && t.dtype() != DType::I32) || t.rank() > 1)
    return Status::error(std::string(what) +
                         ": expected an I64 or I32 tensor of rank 0 or 1, "
                         "got " +
                         t.describe());
  return readIndices(what, t, out);
}

Tensor rt::indexTensor(const std::vector<int64_t> &values) {
  return Tensor::fromVector<int64_t>(
      DType::I64, {static_cast<int64_t>(values.size())}, values);
}

//===----------------------------------------------------------------------===//
// Shapes and views
//===----------------------------------------------------------------------===//

Status rt::shapeOf(const Tensor &x, int64_t start, std::optional<int64_t> end,
                   Tensor &out) {
  int64_t rank = x.rank();
  auto clampBound = [rank](int64_t b) {
    return std::clamp<int64_t>(b < 0 ? b + rank : b, 0, rank);
  };
  int64_t first = clampBound(start), last = clampBound(end.value_or(rank));
  last = std::max(first, last);
  out = indexTensor(Shape(x.shape().begin() + first, x.shape().begin() + last));
  return Status::ok();
}

Status rt::sizeOf(const Tensor &x, Tensor &out) {
  out = Tensor::scalar<int64_t>(DType::I64, x.numel());
  return Status::ok();
}

Status rt::reshape(const Tensor &x, const Tensor &shape, bool allowZero,
                   Tensor &out) {
  const char *kernel = "Reshape";
  std::vector<int64_t> requested;
  LLQ_RT_TRY(toIndexVector(shape, requested, "Reshape shape"));
  std::string asked = "shape " + shapeString(requested);
  Shape result(requested.size());
  int64_t inferAt = -1, known = 1;
  bool hasZero = false;
  for (size_t i = 0; i < requested.size(); ++i) {
    int64_t d = requested[i];
    if (d == -1) {
      if (inferAt >= 0)
        return fail(kernel, asked + " has more than one -1");
      inferAt = static_cast<int64_t>(i);
      continue;
    }
    if (d < -1)
      return fail(kernel, asked + " has a negative dim " + std::to_string(d));
    if (d == 0 && !allowZero) {
      if (static_cast<int64_t>(i) >= x.rank())
        return fail(kernel, asked + " copies input dim " + std::to_string(i) +
                                " but the input " + shapeString(x.shape()) +
                                " has rank " + std::to_string(x.rank()));
      d = x.dim(i);
    }
    hasZero |= d == 0;
    result[i] = d;
    if (__builtin_mul_overflow(known, d, &known))
      return fail(kernel, asked + " is too large");
  }
  if (allowZero && hasZero && inferAt >= 0)
    return fail(kernel, asked + " has both 0 and -1 under allowzero");
  std::string mismatch = "cannot reshape " + shapeString(x.shape()) + " (" +
                         std::to_string(x.numel()) + " elements) to " +
                         shapeString(requested);
  if (inferAt >= 0) {
    if (known == 0)
      return fail(kernel, "cannot infer the -1 in " + asked + " for " +
                              std::to_string(x.numel()) + " elements");
    if (x.numel() % known != 0)
      return fail(kernel, mismatch);
    result[inferAt] = x.numel() / known;
  } else if (known != x.numel()) {
    return fail(kernel, mismatch);
  }
  out = x.reshaped(std::move(result));
  return Status::ok();
}

Status rt::flatten(const Tensor &x, int64_t axis, Tensor &out) {
  int64_t rank = x.rank();
  if (axis < -rank || axis > rank)
    return fail("Flatten", "axis " + std::to_string(axis) +
                               " is out of range for rank " +
                               std::to_string(rank));
  size_t a = static_cast<size_t>(axis < 0 ? axis + rank : axis);
  const Shape &s = x.shape();
  out = x.reshaped({product(s, 0, a), product(s, a, s.size())});
  return Status::ok();
}

Status rt::squeeze(const Tensor &x, const std::vector<int64_t> &axes,
                   Tensor &out) {
  std::vector<int64_t> normalized;
  LLQ_RT_TRY(normalizeAxes("Squeeze", axes, x.rank(), normalized));
  std::vector<bool> drop(x.rank(), axes.empty());
  for (size_t i = 0; i < axes.size(); ++i) {
    if (x.dim(normalized[i]) != 1)
      return fail("Squeeze", "axis " + std::to_string(axes[i]) + " has size " +
                                 std::to_string(x.dim(normalized[i])) +
                                 ", not 1");
    drop[normalized[i]] = true;
  }
  Shape shape;
  for (int64_t d = 0; d < x.rank(); ++d)
    if (!drop[d] || x.dim(d) != 1)
      shape.push_back(x.dim(d));
  out = x.reshaped(std::move(shape));
  return Status::ok();
}

Status rt::unsqueeze(const Tensor &x, const std::vector<int64_t> &axes,
                     Tensor &out) {
  int64_t rank = x.rank() + static_cast<int64_t>(axes.size());
  std::vector<int64_t> normalized;
  LLQ_RT_TRY(normalizeAxes("Unsqueeze", axes, rank, normalized));
  std::vector<bool> inserted(rank, false);
  for (int64_t a : normalized)
    inserted[a] = true;
  Shape shape;
  for (int64_t d = 0, from = 0; d < rank; ++d)
    shape.push_back(inserted[d] ? 1 : x.dim(from++));
  out = x.reshaped(std::move(shape));
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Copies with a new layout
//===----------------------------------------------------------------------===//

Status rt::transpose(const Tensor &x, const std::vector<int64_t> &perm,
                     Tensor &out) {
  int64_t rank = x.rank();
  std::vector<int64_t> p = perm;
  if (p.empty())
    for (int64_t d = rank - 1; d >= 0; --d)
      p.push_back(d);
  if (static_cast<int64_t>(p.size()) != rank)
    return fail("Transpose", "perm " + listString(p) + " has " +
                                 std::to_string(p.size()) +
                                 " entries for rank " + std::to_string(rank) +
                                 " input " + x.describe());
  std::vector<bool> seen(rank, false);
  for (int64_t d : p) {
    if (d < 0 || d >= rank || seen[d])
      return fail("Transpose", "perm " + listString(p) +
                                   " is not a permutation of 0.." +
                                   std::to_string(rank - 1));
    seen[d] = true;
  }
  std::vector<int64_t> inStrides = contiguousStrides(x.shape());
  Shape shape(rank);
  std::vector<int64_t> strides(rank);
  for (int64_t i = 0; i < rank; ++i) {
    shape[i] = x.dim(p[i]);
    strides[i] = inStrides[p[i]];
  }
  Tensor result = Tensor::empty(x.dtype(), shape);
  stridedCopy(x.raw(), 0, shape, strides, dtypeSize(x.dtype()), result.raw());
  out = std::move(result);
  return Status::ok();
}

/// Checks that every input of a Concat matches the first outside `axis`
/// and sums their dims along it.
static Status concatShape(const std::vector<Tensor> &inputs, int64_t axis,
                          Shape &shape) {
  const Tensor &first = inputs.front();
  shape = first.shape();
  shape[axis] = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor &t = inputs[i];
    std::string which = "input " + std::to_string(i);
    if (t.dtype() != first.dtype()) {
      std::string type = first.describe();
      return fail("Concat", which + " is " + t.describe() + ", not " +
                                type.substr(0, type.find('[')));
    }
    bool same = t.rank() == first.rank();
    for (int64_t d = 0; same && d < t.rank(); ++d)
      same = d == axis || t.dim(d) == first.dim(d);
    if (!same)
      return fail("Concat", which + " has shape " + shapeString(t.shape()) +
                                ", which differs from " +
                                shapeString(first.shape()) + " outside axis " +
                                std::to_string(axis));
    if (__builtin_add_overflow(shape[axis], t.dim(axis), &shape[axis]))
      return fail("Concat", "the inputs are too large");
  }
  return checkShape("Concat", shape, first.dtype());
}

Status rt::concat(const std::vector<Tensor> &inputs, int64_t axis,
                  Tensor &out) {
  if (inputs.empty())
    return fail("Concat", "no inputs");
  int64_t a;
  LLQ_RT_TRY(normalizeAxis("Concat", axis, inputs.front().rank(), a));
  Shape shape;
  LLQ_RT_TRY(concatShape(inputs, a, shape));
  Tensor result = Tensor::empty(inputs.front().dtype(), shape);
  int64_t outer = product(shape, 0, a);
  int64_t unit = product(shape, a + 1, shape.size()) *
                 static_cast<int64_t>(dtypeSize(result.dtype()));
  char *dst = static_cast<char *>(result.raw());
  int64_t offset = 0;
  for (const Tensor &t : inputs) {
    int64_t rowBytes = t.dim(a) * unit;
    copyRows(static_cast<const char *>(t.raw()), rowBytes, dst + offset,
             shape[a] * unit, outer, rowBytes);
    offset += rowBytes;
  }
  out = std::move(result);
  return Status::ok();
}

namespace {
/// The first index and element count of one sliced dim.
struct SliceRange {
  int64_t start = 0, count = 0;
};
} // namespace

/// ONNX's clamping of one dim's bounds; `step` is not 0.
static SliceRange sliceRange(int64_t dim, int64_t start, int64_t end,
                             int64_t step) {
  if (dim == 0)
    return {};
  start = start < 0 ? start + dim : start;
  end = end < 0 ? end + dim : end;
  // |step| as unsigned, so that INT64_MIN has a magnitude too.
  uint64_t magnitude = step > 0 ? uint64_t(step) : 0 - uint64_t(step);
  int64_t distance;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    distance = std::clamp<int64_t>(end, 0, dim) - start;
  } else {
    start = std::clamp<int64_t>(start, 0, dim - 1);
    distance = start - std::clamp<int64_t>(end, -1, dim - 1);
  }
  if (distance <= 0)
    return {start, 0};
  return {start, static_cast<int64_t>(1 + uint64_t(distance - 1) / magnitude)};
}

Status rt::slice(const Tensor &x, const std::vector<int64_t> &starts,
                 const std::vector<int64_t> &ends,
                 const std::vector<int64_t> &axes,
                 const std::vector<int64_t> &steps, Tensor &out) {
  const char *kernel = "Slice";
  size_t n = starts.size();
  std::string count = std::to_string(n) + " starts but ";
  if (ends.size() != n)
    return fail(kernel, count + std::to_string(ends.size()) + " ends");
  if (!axes.empty() && axes.size() != n)
    return fail(kernel, count + std::to_string(axes.size()) + " axes");
  if (!steps.empty() && steps.size() != n)
    return fail(kernel, count + std::to_string(steps.size()) + " steps");
  std::vector<int64_t> ax = axes;
  for (size_t i = 0; axes.empty() && i < n; ++i)
    ax.push_back(static_cast<int64_t>(i));
  LLQ_RT_TRY(normalizeAxes(kernel, ax, x.rank(), ax));

  Shape shape = x.shape();
  std::vector<int64_t> strides = contiguousStrides(shape);
  int64_t base = 0;
  bool identity = true;
  for (size_t i = 0; i < n; ++i) {
    int64_t a = ax[i], step = steps.empty() ? 1 : steps[i];
    if (step == 0)
      return fail(kernel, "step 0 on axis " + std::to_string(a));
    SliceRange r = sliceRange(shape[a], starts[i], ends[i], step);
    identity &= r.count == shape[a] && (r.count <= 1 || step == 1);
    base += r.start * strides[a];
    shape[a] = r.count;
    // With one element the stride is never applied (and step may be huge).
    if (r.count > 1)
      strides[a] *= step;
  }
  if (identity && base == 0) {
    out = x;
    return Status::ok();
  }
  Tensor result = Tensor::empty(x.dtype(), shape);
  stridedCopy(x.raw(), base, shape, strides, dtypeSize(x.dtype()),
              result.raw());
  out = std::move(result);
  return Status::ok();
}

/// The part sizes of a Split.
static Status splitSizes(int64_t dim, int64_t axis,
                         const std::vector<int64_t> &sizes, int64_t numOutputs,
                         std::vector<int64_t> &parts) {
  const char *kernel = "Split";
  int64_t n = static_cast<int64_t>(sizes.size());
  if (!sizes.empty()) {
    if (numOutputs > 0 && numOutputs != n)
      return fail(kernel, std::to_string(n) + " sizes for " +
                              std::to_string(numOutputs) + " outputs");
    int64_t sum = 0;
    for (int64_t s : sizes) {
      if (s < 0)
        return fail(kernel,
                    "sizes " + listString(sizes) + " include a negative size");
      if (__builtin_add_overflow(sum, s, &sum))
        sum = -1;
    }
    if (sum != dim)
      return fail(kernel,
                  "sizes " + listString(sizes) + " sum to " +
                      (sum < 0 ? "more than 2^63" : std::to_string(sum)) +
                      ", not the dim " + std::to_string(dim) + " of axis " +
                      std::to_string(axis));
    parts = sizes;
    return Status::ok();
  }
  if (numOutputs <= 0)
    return fail(kernel, "neither sizes nor a positive number of outputs");
  int64_t chunk = dim / numOutputs + (dim % numOutputs != 0), used, last;
  if (numOutputs > kMaxSplitOutputs ||
      __builtin_mul_overflow(chunk, numOutputs - 1, &used) ||
      (last = dim - used) < 0)
    return fail(kernel, "cannot split dim " + std::to_string(dim) +
                            " of axis " + std::to_string(axis) + " into " +
                            std::to_string(numOutputs) + " parts");
  parts.assign(numOutputs, chunk);
  parts.back() = last;
  return Status::ok();
}

Status rt::split(const Tensor &x, int64_t axis,
                 const std::vector<int64_t> &sizes, int64_t numOutputs,
                 std::vector<Tensor> &outs) {
  int64_t a;
  LLQ_RT_TRY(normalizeAxis("Split", axis, x.rank(), a));
  std::vector<int64_t> parts;
  LLQ_RT_TRY(splitSizes(x.dim(a), axis, sizes, numOutputs, parts));
  int64_t outer = product(x.shape(), 0, a);
  int64_t unit = product(x.shape(), a + 1, x.rank()) *
                 static_cast<int64_t>(dtypeSize(x.dtype()));
  const char *src = static_cast<const char *>(x.raw());
  std::vector<Tensor> results;
  int64_t offset = 0;
  for (int64_t part : parts) {
    Shape shape = x.shape();
    shape[a] = part;
    Tensor t = Tensor::empty(x.dtype(), shape);
    copyRows(src + offset * unit, x.dim(a) * unit, static_cast<char *>(t.raw()),
             part * unit, outer, part * unit);
    offset += part;
    results.push_back(std::move(t));
  }
  outs = std::move(results);
  return Status::ok();
}

Status rt::expand(const Tensor &x, const std::vector<int64_t> &shape,
                  Tensor &out) {
  const char *kernel = "Expand";
  if (std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; }))
    return fail(kernel, "shape " + shapeString(shape) + " has a negative dim");
  int64_t rank = std::max<int64_t>(x.rank(), shape.size());
  int64_t xOffset = rank - x.rank();
  int64_t sOffset = rank - static_cast<int64_t>(shape.size());
  std::vector<int64_t> inStrides = contiguousStrides(x.shape());
  Shape result(rank);
  std::vector<int64_t> strides(rank, 0);
  for (int64_t d = 0; d < rank; ++d) {
    int64_t xd = d >= xOffset ? x.dim(d - xOffset) : 1;
    int64_t sd = d >= sOffset ? shape[d - sOffset] : 1;
    if (xd != sd && xd != 1 && sd != 1)
      return fail(kernel, "cannot broadcast " + shapeString(x.shape()) +
                              " to " + shapeString(shape));
    result[d] = xd == 1 ? sd : xd;
    if (xd != 1)
      strides[d] = inStrides[d - xOffset];
  }
  LLQ_RT_TRY(checkShape(kernel, result, x.dtype()));
  if (result == x.shape()) {
    out = x;
    return Status::ok();
  }
  Tensor t = Tensor::empty(x.dtype(), result);
  stridedCopy(x.raw(), 0, result, strides, dtypeSize(x.dtype()), t.raw());
  out = std::move(t);
  return Status::ok();
}

Status rt::tile(const Tensor &x, const std::vector<int64_t> &repeats,
                Tensor &out) {
  const char *kernel = "Tile";
  if (static_cast<int64_t>(repeats.size()) != x.rank())
    return fail(kernel, std::to_string(repeats.size()) + " repeats for rank " +
                            std::to_string(x.rank()) + " input " +
                            x.describe());
  if (std::any_of(repeats.begin(), repeats.end(),
                  [](int64_t r) { return r < 0; }))
    return fail(kernel, "repeats " + listString(repeats) +
                            " include a negative repeat");
  // Output dim d is [repeats[d], dim[d]] in row-major order, so Tile is a
  // strided copy over twice the dims, with stride 0 on the repeats.
  std::vector<int64_t> inStrides = contiguousStrides(x.shape());
  Shape loops, strides, shape(x.rank());
  for (int64_t d = 0; d < x.rank(); ++d) {
    if (__builtin_mul_overflow(x.dim(d), repeats[d], &shape[d]))
      return fail(kernel, "shape " + shapeString(x.shape()) + " tiled " +
                              listString(repeats) + " is too large");
    loops.insert(loops.end(), {repeats[d], x.dim(d)});
    strides.insert(strides.end(), {0, inStrides[d]});
  }
  LLQ_RT_TRY(checkShape(kernel, shape, x.dtype()));
  Tensor result = Tensor::empty(x.dtype(), shape);
  stridedCopy(x.raw(), 0, loops, strides, dtypeSize(x.dtype()), result.raw());
  out = std::move(result);
  return Status::ok();
}

Status rt::copy(const Tensor &x, Tensor &out) {
  out = x.clone();
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Indexed reads and writes
//===----------------------------------------------------------------------===//

Status rt::gather(const Tensor &data, const Tensor &indices, int64_t axis,
                  Tensor &out) {
  const char *kernel = "Gather";
  int64_t a;
  LLQ_RT_TRY(normalizeAxis(kernel, axis, data.rank(), a));
  std::vector<int64_t> idx;
  LLQ_RT_TRY(readIndices("Gather indices", indices, idx));
  int64_t bound = data.dim(a);
  for (int64_t &i : idx)
    LLQ_RT_TRY(wrapIndex(kernel, i, a, bound));

  const Shape &ds = data.shape();
  Shape shape(ds.begin(), ds.begin() + a);
  shape.insert(shape.end(), indices.shape().begin(), indices.shape().end());
  shape.insert(shape.end(), ds.begin() + a + 1, ds.end());
  LLQ_RT_TRY(checkShape(kernel, shape, data.dtype()));
  // Output row (o, j) of the inner dims is input row (o, idx[j]).
  int64_t outer = product(ds, 0, a), n = static_cast<int64_t>(idx.size());
  int64_t inner = product(ds, a + 1, ds.size());
  std::vector<int64_t> starts(outer * n);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < n; ++j)
      starts[o * n + j] = (o * bound + idx[j]) * inner;
  Tensor result = Tensor::empty(data.dtype(), shape);
  gatherRows(data.raw(), starts, inner, dtypeSize(data.dtype()), result.raw());
  out = std::move(result);
  return Status::ok();
}

/// The shared part of GatherElements and ScatterElements: validates the
/// indices against `data` along `axis` and computes the flat data offset
/// that each names.
static Status elementOffsets(const char *kernel, const Tensor &data,
                             const Tensor &indices, int64_t axis,
                             std::vector<int64_t> &offsets) {
  int64_t rank = data.rank();
  if (indices.rank() != rank)
    return fail(kernel, "indices " + indices.describe() + " and data " +
                            data.describe() + " differ in rank");
  int64_t a;
  LLQ_RT_TRY(normalizeAxis(kernel, axis, rank, a));
  for (int64_t d = 0; d < rank; ++d)
    if (d != a && indices.dim(d) > data.dim(d))
      return fail(kernel, "indices " + indices.describe() + " exceed data " +
                              data.describe() + " on axis " +
                              std::to_string(d));
  std::vector<int64_t> idx;
  LLQ_RT_TRY(
      readIndices((std::string(kernel) + " indices").c_str(), indices, idx));
  offsets.clear();
  if (idx.empty())
    return Status::ok();
  std::vector<int64_t> dataStrides = contiguousStrides(data.shape());
  std::vector<Loop> loops;
  for (int64_t d = 0; d < rank; ++d)
    loops.push_back({indices.dim(d), d == a ? 0 : dataStrides[d], 0});
  LoopWalker w(loops, 0);
  for (size_t i = 0; i < idx.size(); ++i, w.next()) {
    LLQ_RT_TRY(wrapIndex(kernel, idx[i], a, data.dim(a)));
    idx[i] = w.src + idx[i] * dataStrides[a];
  }
  offsets = std::move(idx);
  return Status::ok();
}

Status rt::gatherElements(const Tensor &data, const Tensor &indices,
                          int64_t axis, Tensor &out) {
  std::vector<int64_t> offsets;
  LLQ_RT_TRY(elementOffsets("GatherElements", data, indices, axis, offsets));
  Tensor result = Tensor::empty(data.dtype(), indices.shape());
  withElementType(dtypeSize(data.dtype()), [&](auto tag) {
    using T = decltype(tag);
    const T *src = static_cast<const T *>(data.raw());
    T *dst = static_cast<T *>(result.raw());
    parallelFor(static_cast<int64_t>(offsets.size()), grainFor(64 * sizeof(T)),
                [&](int64_t begin, int64_t end) {
                  for (int64_t i = begin; i < end; ++i)
                    dst[i] = src[offsets[i]];
                });
  });
  out = std::move(result);
  return Status::ok();
}

/// The data offsets (in elements) of the slices that index tuples name,
/// for GatherND (with batch dims) and ScatterND (`batchDims` 0). Tuples of
/// batch b index data[b].
static Status tupleOffsets(const char *kernel, const Tensor &data,
                           const Tensor &indices, int64_t batchDims,
                           std::vector<int64_t> &offsets) {
  int64_t k = indices.dim(-1), b = batchDims;
  std::vector<int64_t> idx;
  LLQ_RT_TRY(
      readIndices((std::string(kernel) + " indices").c_str(), indices, idx));
  std::vector<int64_t> strides = contiguousStrides(data.shape());
  int64_t batchStride = b > 0 ? strides[b - 1] : 0;
  int64_t tuples = product(indices.shape(), 0, indices.rank() - 1);
  int64_t perBatch = product(indices.shape(), b, indices.rank() - 1);
  offsets.assign(tuples, 0);
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t offset = perBatch ? t / perBatch * batchStride : 0;
    for (int64_t j = 0; j < k; ++j) {
      int64_t i = idx[t * k + j];
      LLQ_RT_TRY(wrapIndex(kernel, i, b + j, data.dim(b + j)));
      offset += i * strides[b + j];
    }
    offsets[t] = offset;
  }
  return Status::ok();
}

Status rt::gatherND(const Tensor &data, const Tensor &indices,
                    int64_t batchDims, Tensor &out) {
  const char *kernel = "GatherND";
  int64_t r = data.rank(), q = indices.rank(), b = batchDims;
  if (b < 0 || b >= std::min(r, q))
    return fail(kernel, std::to_string(b) + " batch dims for indices " +
                            indices.describe() + " and data " +
                            data.describe());
  for (int64_t d = 0; d < b; ++d)
    if (indices.dim(d) != data.dim(d))
      return fail(kernel, "batch dims of indices " + indices.describe() +
                              " and data " + data.describe() + " differ");
  int64_t k = indices.dim(-1);
  if (k < 1 || k > r - b)
    return fail(kernel, "index tuples of length " + std::to_string(k) +
                            " for data " + data.describe() + " with " +
                            std::to_string(b) + " batch dims");
  std::vector<int64_t> offsets;
  LLQ_RT_TRY(tupleOffsets(kernel, data, indices, b, offsets));
  Shape shape(indices.shape().begin(), indices.shape().end() - 1);
  shape.insert(shape.end(), data.shape().begin() + b + k, data.shape().end());
  LLQ_RT_TRY(checkShape(kernel, shape, data.dtype()));
  Tensor result = Tensor::empty(data.dtype(), shape);
  gatherRows(data.raw(), offsets, product(data.shape(), b + k, r),
             dtypeSize(data.dtype()), result.raw());
  out = std::move(result);
  return Status::ok();
}

/// Checks that `updates` has data's dtype and the given shape.
static Status checkUpdates(const char *kernel, const Tensor &data,
                           const Tensor &updates, const Shape &shape) {
  if (updates.dtype() != data.dtype())
    return fail(kernel, "updates " + updates.describe() +
                            " differ in dtype from data " + data.describe());
  if (updates.shape() != shape)
    return fail(kernel, "updates " + updates.describe() +
                            " should have shape " + shapeString(shape));
  return Status::ok();
}

Status rt::scatterND(const Tensor &data, const Tensor &indices,
                     const Tensor &updates, const std::string &reduction,
                     Tensor &out) {
  const char *kernel = "ScatterND";
  int64_t r = data.rank(), q = indices.rank();
  if (q < 1 || indices.dim(-1) > r)
    return fail(kernel, "index tuples of length " +
                            std::to_string(q ? indices.dim(-1) : 0) +
                            " for data " + data.describe());
  int64_t k = indices.dim(-1);
  Shape shape(indices.shape().begin(), indices.shape().end() - 1);
  shape.insert(shape.end(), data.shape().begin() + k, data.shape().end());
  LLQ_RT_TRY(checkUpdates(kernel, data, updates, shape));
  Reduction red;
  LLQ_RT_TRY(parseReduction(kernel, reduction, data.dtype(), red));
  std::vector<int64_t> offsets;
  LLQ_RT_TRY(tupleOffsets(kernel, data, indices, 0, offsets));

  Tensor result = data.clone();
  size_t size = dtypeSize(data.dtype());
  int64_t sliceElems = product(data.shape(), k, r);
  auto *dst = static_cast<char *>(result.raw());
  auto *src = static_cast<const char *>(updates.raw());
  // In index order: duplicates combine (or, for "none", the last wins).
  for (size_t t = 0; t < offsets.size(); ++t)
    combine(data.dtype(), red, dst + offsets[t] * size,
            src + t * sliceElems * size, sliceElems);
  out = std::move(result);
  return Status::ok();
}

Status rt::scatterElements(const Tensor &data, const Tensor &indices,
                           const Tensor &updates, int64_t axis,
                           const std::string &reduction, Tensor &out) {
  const char *kernel = "ScatterElements";
  std::vector<int64_t> offsets;
  LLQ_RT_TRY(elementOffsets(kernel, data, indices, axis, offsets));
  LLQ_RT_TRY(checkUpdates(kernel, data, updates, indices.shape()));
  Reduction red;
  LLQ_RT_TRY(parseReduction(kernel, reduction, data.dtype(), red));
  Tensor result = data.clone();
  size_t size = dtypeSize(data.dtype());
  auto *dst = static_cast<char *>(result.raw());
  auto *src = static_cast<const char *>(updates.raw());
  for (size_t i = 0; i < offsets.size(); ++i)
    combine(data.dtype(), red, dst + offsets[i] * size, src + i * size, 1);
  out = std::move(result);
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// Generated tensors
//===----------------------------------------------------------------------===//

Status rt::trilu(const Tensor &x, bool upper, int64_t k, Tensor &out) {
  if (x.rank() < 2)
    return fail("Trilu", "input " + x.describe() + " has rank " +
                             std::to_string(x.rank()) + ", needs at least 2");
  int64_t rows = x.dim(-2), cols = x.dim(-1);
  // Beyond these bounds k keeps everything or nothing; clamping it keeps
  // row + k from overflowing.
  k = std::clamp<int64_t>(k, -rows - 1, cols + 1);
  int64_t size = static_cast<int64_t>(dtypeSize(x.dtype()));
  int64_t rowBytes = cols * size;
  Tensor result = Tensor::empty(x.dtype(), x.shape());
  auto *src = static_cast<const char *>(x.raw());
  auto *dst = static_cast<char *>(result.raw());
  int64_t allRows = cols ? x.numel() / cols : 0;
  parallelFor(allRows, grainFor(rowBytes), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      int64_t i = row % rows;
      // Columns [lo, hi) are kept: j - i >= k above, j - i <= k below.
      int64_t lo = upper ? std::clamp<int64_t>(i + k, 0, cols) : 0;
      int64_t hi = upper ? cols : std::clamp<int64_t>(i + k + 1, 0, cols);
      hi = std::max(lo, hi);
      char *d = dst + row * rowBytes;
      std::memset(d, 0, lo * size);
      std::memcpy(d + lo * size, src + row * rowBytes + lo * size,
                  (hi - lo) * size);
      std::memset(d + hi * size, 0, (cols - hi) * size);
    }
  });
  out = std::move(result);
  return Status::ok();
}

namespace {
constexpr int64_t kMaxRangeElements = int64_t(1) << 31;

std::string tooManyElements(const std::string &count) {
  return count + " elements is more than 2^31";
}

template <typename T> T scalarOf(const Tensor &t) { return t.data<T>()[0]; }

template <typename T>
Status floatRange(const Tensor &start, const Tensor &limit, const Tensor &delta,
                  Tensor &out) {
  T s = scalarOf<T>(start), l = scalarOf<T>(limit), d = scalarOf<T>(delta);
  if (d == 0)
    return fail("Range", "delta is 0");
  // In T, as the operator's definition computes it.
  T count = std::ceil((l - s) / d);
  if (std::isnan(count))
    return fail("Range", "start " + std::to_string(s) + ", limit " +
                             std::to_string(l) + " and delta " +
                             std::to_string(d) + " give no element count");
  if (count > T(kMaxRangeElements)) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.17g", double(count));
    return fail("Range", tooManyElements(text));
  }
  int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
  Tensor result = Tensor::empty(start.dtype(), {n});
  T *values = result.data<T>();
  for (int64_t i = 0; i < n; ++i)
    values[i] = s + T(i) * d;
  out = std::move(result);
  return Status::ok();
}

template <typename T>
Status intRange(const Tensor &start, const Tensor &limit, const Tensor &delta,
                Tensor &out) {
  int64_t s = scalarOf<T>(start), l = scalarOf<T>(limit),
          d = scalarOf<T>(delta);
  if (d == 0)
    return fail("Range", "delta is 0");
  // The distance can exceed int64 (INT64_MIN to INT64_MAX).
  __int128 distance = static_cast<__int128>(l) - s;
  __int128 count = 0;
  if (distance != 0 && (distance > 0) == (d > 0)) {
    __int128 span = distance > 0 ? distance : -distance;
    __int128 step = d > 0 ? __int128(d) : -__int128(d);
    count = (span + step - 1) / step;
  }
  if (count > kMaxRangeElements)
    return fail("Range", tooManyElements(std::to_string(uint64_t(count))));
  int64_t n = static_cast<int64_t>(count);
  Tensor result = Tensor::empty(start.dtype(), {n});
  T *values = result.data<T>();
  // Every value lies between start and limit, so it fits in T; computed
  // modulo 2^64 so that no intermediate overflows.
  for (int64_t i = 0; i < n; ++i)
    values[i] = static_cast<T>(uint64_t(s) + uint64_t(i) * uint64_t(d));
  out = std::move(result);
  return Status::ok();
}
} // namespace

Status rt::range(const Tensor &start, const Tensor &limit, const Tensor &delta,
                 Tensor &out) {
  const std::pair<const char *, const Tensor *> operands[] = {
      {"start", &start}, {"limit", &limit}, {"delta", &delta}};
  for (const auto &[name, t] : operands)
    if (t->numel() != 1 || t->rank() > 1)
      return fail("Range", std::string(name) + " " + t->describe() +
                               " is not a single element");
  if (limit.dtype() != start.dtype() || delta.dtype() != start.dtype())
    return fail("Range", "start " + start.describe() + ", limit " +
                             limit.describe() + " and delta " +
                             delta.describe() + " differ in dtype");
  switch (start.dtype()) {
  case DType::F32:
    return floatRange<float>(start, limit, delta, out);
  case DType::F64:
    return floatRange<double>(start, limit, delta, out);
  case DType::I64:
    return intRange<int64_t>(start, limit, delta, out);
  case DType::I32:
    return intRange<int32_t>(start, limit, delta, out);
  default:
    return fail("Range", std::string("dtype ") + dtypeName(start.dtype()) +
                             " is not supported (F32, F64, I64, I32)");
  }
}

/// Fills `n` elements of `dst` with the element at `value`.
static void fillElements(void *dst, int64_t n, const void *value, size_t size) {
  withElementType(size, [&](auto tag) {
    using T = decltype(tag);
    T v;
    std::memcpy(&v, value, sizeof(T));
    std::fill_n(static_cast<T *>(dst), n, v);
  });
}

Status rt::constantOfShape(const std::vector<int64_t> &shape,
                           const Tensor &value, Tensor &out) {
  Tensor v = isAbsent(value) ? Tensor::scalar<float>(DType::F32, 0) : value;
  if (v.numel() != 1)
    return fail("ConstantOfShape",
                "value " + v.describe() + " is not a single element");
  LLQ_RT_TRY(checkShape("ConstantOfShape", shape, v.dtype()));
  Tensor result = Tensor::empty(v.dtype(), shape);
  fillElements(result.raw(), result.numel(), v.raw(), dtypeSize(v.dtype()));
  out = std::move(result);
  return Status::ok();
}

namespace {
enum class PadMode { Constant, Reflect, Edge, Wrap };

/// How Pad treats one dim. Negative pads crop first (as onnxruntime does),
/// leaving the input window [crop, crop + kept); positive pads then extend
/// that window, `before` elements in front.
struct PadDim {
  int64_t crop = 0, kept = 0, before = 0;
};

/// The source index along a dim of the output position `o`; -1 for the
/// constant.
int64_t padSource(PadMode mode, int64_t o, const PadDim &dim) {
  int64_t i = o - dim.before, n = dim.kept;
  if (i < 0 || i >= n) {
    switch (mode) {
    case PadMode::Constant:
      return -1;
    case PadMode::Edge:
      i = i < 0 ? 0 : n - 1;
      break;
    case PadMode::Wrap:
      i = (i % n + n) % n;
      break;
    case PadMode::Reflect: {
      // Reflection without repeating the edge has period 2 * (n - 1).
      int64_t period = std::max<int64_t>(2 * (n - 1), 1);
      int64_t p = (i % period + period) % period;
      i = p < n ? p : period - p;
      break;
    }
    }
  }
  return dim.crop + i;
}

Status parsePadMode(const std::string &name, PadMode &mode) {
  static const std::pair<const char *, PadMode> modes[] = {
      {"constant", PadMode::Constant},
      {"reflect", PadMode::Reflect},
      {"edge", PadMode::Edge},
      {"wrap", PadMode::Wrap}};
  for (const auto &[text, m] : modes)
    if (name == text) {
      mode = m;
      return Status::ok();
    }
  return fail("Pad", "unknown mode '" + name + "'");
}

/// One dim of a Pad, padded by `b` in front and `e` at the back.
Status padDim(int64_t axis, int64_t size, int64_t b, int64_t e,
              const std::string &mode, PadDim &dim, int64_t &outSize) {
  std::string what = "axis " + std::to_string(axis) + " of size " +
                     std::to_string(size) + " padded by " + std::to_string(b) +
                     " and " + std::to_string(e);
  int64_t kept;
  if (__builtin_add_overflow(size, std::min<int64_t>(b, 0), &kept) ||
      __builtin_add_overflow(kept, std::min<int64_t>(e, 0), &kept) || kept < 0)
    return fail("Pad", what + " leaves a negative size");
  if (__builtin_add_overflow(kept, std::max<int64_t>(b, 0), &outSize) ||
      __builtin_add_overflow(outSize, std::max<int64_t>(e, 0), &outSize))
    return fail("Pad", what + " is too large");
  if (kept == 0 && outSize > 0 && mode != "constant")
    return fail("Pad", "cannot " + mode + "-pad axis " + std::to_string(axis) +
                           " of size 0");
  dim = {-std::min<int64_t>(b, 0), kept, std::max<int64_t>(b, 0)};
  return Status::ok();
}

/// Every dim of a Pad, and its output shape.
Status padDims(const Tensor &x, const std::vector<int64_t> &pads,
               const std::vector<int64_t> &axes, const std::string &mode,
               std::vector<PadDim> &dims, Shape &shape) {
  std::vector<int64_t> ax = axes;
  for (int64_t d = 0; axes.empty() && d < x.rank(); ++d)
    ax.push_back(d);
  LLQ_RT_TRY(normalizeAxes("Pad", ax, x.rank(), ax));
  size_t n = ax.size();
  if (pads.size() != 2 * n)
    return fail("Pad", std::to_string(pads.size()) + " pads for " +
                           std::to_string(n) + " axes");
  shape = x.shape();
  dims.assign(x.rank(), PadDim());
  for (int64_t d = 0; d < x.rank(); ++d)
    dims[d].kept = x.dim(d);
  for (size_t i = 0; i < n; ++i)
    LLQ_RT_TRY(padDim(ax[i], x.dim(ax[i]), pads[i], pads[n + i], mode,
                      dims[ax[i]], shape[ax[i]]));
  return checkShape("Pad", shape, x.dtype());
}
} // namespace

Status rt::pad(const Tensor &x, const std::vector<int64_t> &pads,
               const Tensor &constantValue, const std::vector<int64_t> &axes,
               const std::string &mode, Tensor &out) {
  PadMode padMode;
  LLQ_RT_TRY(parsePadMode(mode, padMode));
  std::vector<PadDim> dims;
  Shape shape;
  LLQ_RT_TRY(padDims(x, pads, axes, mode, dims, shape));
  size_t size = dtypeSize(x.dtype());
  std::vector<uint8_t> value(size, 0);
  if (!isAbsent(constantValue)) {
    if (constantValue.dtype() != x.dtype())
      return fail("Pad", "constant value " + constantValue.describe() +
                             " differs in dtype from input " + x.describe());
    if (constantValue.numel() != 1)
      return fail("Pad", "constant value " + constantValue.describe() +
                             " is not a single element");
    std::memcpy(value.data(), constantValue.raw(), size);
  }

  // Where each output position of each dim reads from.
  int64_t rank = x.rank();
  std::vector<std::vector<int64_t>> sources(rank);
  for (int64_t d = 0; d < rank; ++d)
    for (int64_t o = 0; o < shape[d]; ++o)
      sources[d].push_back(padSource(padMode, o, dims[d]));
  std::vector<int64_t> strides = contiguousStrides(x.shape());
  Tensor result = Tensor::empty(x.dtype(), shape);
  int64_t cols = rank ? shape.back() : 1;
  int64_t rows = cols ? result.numel() / cols : 0;
  Shape rowShape(shape.begin(), shape.end() - (rank ? 1 : 0));
  withElementType(size, [&](auto tag) {
    using T = decltype(tag);
    const T *src = static_cast<const T *>(x.raw());
    T *dst = static_cast<T *>(result.raw());
    T fill;
    std::memcpy(&fill, value.data(), sizeof(T));
    const std::vector<int64_t> *last = rank ? &sources.back() : nullptr;
    parallelFor(
        rows, grainFor(cols * sizeof(T)), [&](int64_t begin, int64_t end) {
          for (int64_t row = begin; row < end; ++row) {
            // The source row, or -1 if a leading dim is in the constant pad.
            int64_t offset = 0;
            for (int64_t d = rank - 2, rest = row; d >= 0 && offset >= 0; --d) {
              int64_t s = sources[d][rest % rowShape[d]];
              rest /= rowShape[d];
              offset = s < 0 ? -1 : offset + s * strides[d];
            }
            T *line = dst + row * cols;
            for (int64_t j = 0; j < cols; ++j) {
              int64_t s = last ? (*last)[j] : 0;
              line[j] = offset < 0 || s < 0 ? fill : src[offset + s];
            }
          }
        });
  });
  out = std::move(result);
  return Status::ok();
}
