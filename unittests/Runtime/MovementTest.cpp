//===- MovementTest.cpp - Tests for shape and data-movement kernels -------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Each kernel is checked three ways: the examples from the ONNX operator
// documentation, written out by hand; random shapes (rank 0, zero-size
// dims, negative axes and indices, 1/2/4/8-byte elements) against a naive
// reference that computes every output element's source index on its own;
// and the errors, by message.
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Kernels/Movement.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <random>

using namespace llq;
using namespace llq::rt;

namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

Tensor f32(Shape shape, std::vector<float> values) {
  return Tensor::fromVector<float>(DType::F32, std::move(shape), values);
}
Tensor i64(Shape shape, std::vector<int64_t> values) {
  return Tensor::fromVector<int64_t>(DType::I64, std::move(shape), values);
}
Tensor i32(Shape shape, std::vector<int32_t> values) {
  return Tensor::fromVector<int32_t>(DType::I32, std::move(shape), values);
}
Tensor i64s(std::vector<int64_t> values) {
  Shape shape{static_cast<int64_t>(values.size())};
  return i64(shape, std::move(values));
}

/// 0, 1, 2, ... as f32 of `shape`.
Tensor iota(Shape shape) {
  std::vector<float> values(numElements(shape));
  std::iota(values.begin(), values.end(), 0.0f);
  return f32(std::move(shape), values);
}

template <typename T> std::vector<T> valuesOf(const Tensor &t) {
  const T *p = t.data<T>();
  return std::vector<T>(p, p + t.numel());
}

Shape unravel(int64_t flat, const Shape &shape) {
  Shape index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return index;
}

int64_t ravel(const Shape &index, const Shape &shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    flat = flat * shape[d] + index[d];
  return flat;
}

const DType kSizes[] = {DType::U8, DType::F16, DType::F32, DType::I64};

/// Random bytes, so that an element read from the wrong place shows up.
Tensor randomTensor(DType dtype, const Shape &shape, std::mt19937 &rng) {
  Tensor t = Tensor::empty(dtype, shape);
  auto *bytes = static_cast<uint8_t *>(t.raw());
  for (size_t i = 0; i < t.nbytes(); ++i)
    bytes[i] = static_cast<uint8_t>(rng());
  return t;
}

Shape randomShape(std::mt19937 &rng, int64_t rank, int64_t maxDim) {
  Shape shape(rank);
  for (int64_t &d : shape)
    d = std::uniform_int_distribution<int64_t>(0, maxDim)(rng);
  // Zero-size dims, but not so often that nothing is ever copied.
  for (int64_t &d : shape)
    if (d == 0 && rng() % 3)
      d = 1;
  return shape;
}

int64_t randomInt(std::mt19937 &rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

/// Expects every element of `out` to equal, byte for byte, the element of
/// `in` at the flat index `source(outIndex)`, or zero bytes where `source`
/// returns -1.
::testing::AssertionResult
expectMoved(const Tensor &out, const Tensor &in,
            const std::function<int64_t(const Shape &)> &source) {
  if (out.dtype() != in.dtype())
    return ::testing::AssertionFailure() << "dtype " << out.describe();
  size_t size = dtypeSize(out.dtype());
  auto *outBytes = static_cast<const uint8_t *>(out.raw());
  auto *inBytes = static_cast<const uint8_t *>(in.raw());
  std::vector<uint8_t> zero(size, 0);
  for (int64_t i = 0; i < out.numel(); ++i) {
    Shape index = unravel(i, out.shape());
    int64_t from = source(index);
    const uint8_t *want = from < 0 ? zero.data() : inBytes + from * size;
    if (std::memcmp(outBytes + i * size, want, size) != 0)
      return ::testing::AssertionFailure()
             << "element " << i << " of " << out.describe()
             << " differs from source " << from << " of " << in.describe();
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult failsWith(const Status &status,
                                     const std::string &text) {
  if (status.isOk())
    return ::testing::AssertionFailure() << "succeeded, expected: " << text;
  if (status.message().find(text) == std::string::npos)
    return ::testing::AssertionFailure()
           << "message '" << status.message() << "' lacks '" << text << "'";
  return ::testing::AssertionSuccess();
}

bool sameStorage(const Tensor &a, const Tensor &b) {
  return a.raw() == b.raw();
}

//===----------------------------------------------------------------------===//
// Index operands
//===----------------------------------------------------------------------===//

TEST(IndexVectorTest, AcceptsI64AndI32OfRankZeroOrOne) {
  std::vector<int64_t> v;
  ASSERT_TRUE(toIndexVector(i64({3}, {1, -2, kMax}), v, "test"));
  EXPECT_EQ(v, (std::vector<int64_t>{1, -2, kMax}));
  ASSERT_TRUE(toIndexVector(i32({2}, {-7, 9}), v, "test"));
  EXPECT_EQ(v, (std::vector<int64_t>{-7, 9}));
  ASSERT_TRUE(toIndexVector(Tensor::scalar<int64_t>(DType::I64, 5), v, "t"));
  EXPECT_EQ(v, (std::vector<int64_t>{5}));
  ASSERT_TRUE(toIndexVector(i64({0}, {}), v, "test"));
  EXPECT_TRUE(v.empty());
}

TEST(IndexVectorTest, RejectsOtherDTypesAndRanks) {
  std::vector<int64_t> v;
  Status s = toIndexVector(f32({2}, {1, 2}), v, "Reshape shape");
  EXPECT_EQ(s.message(), "Reshape shape: expected an I64 or I32 tensor of "
                         "rank 0 or 1, got f32[2]");
  EXPECT_TRUE(failsWith(toIndexVector(i64({1, 2}, {1, 2}), v, "Slice starts"),
                        "Slice starts: expected an I64 or I32 tensor of rank "
                        "0 or 1, got i64[1x2]"));
}

TEST(IndexVectorTest, IndexTensorIsOneDimensionalI64) {
  Tensor t = indexTensor({4, -1, 0});
  EXPECT_EQ(t.dtype(), DType::I64);
  EXPECT_EQ(t.shape(), (Shape{3}));
  EXPECT_EQ(valuesOf<int64_t>(t), (std::vector<int64_t>{4, -1, 0}));
  EXPECT_EQ(indexTensor({}).shape(), (Shape{0}));
}

//===----------------------------------------------------------------------===//
// Shape, Size
//===----------------------------------------------------------------------===//

std::vector<int64_t> shapeValues(const Tensor &x, int64_t start,
                                 std::optional<int64_t> end) {
  Tensor out;
  EXPECT_TRUE(shapeOf(x, start, end, out));
  EXPECT_EQ(out.dtype(), DType::I64);
  EXPECT_EQ(out.rank(), 1);
  return valuesOf<int64_t>(out);
}

TEST(ShapeTest, OnnxExamples) {
  Tensor x = Tensor::zeros(DType::F32, {3, 4, 5});
  using V = std::vector<int64_t>;
  EXPECT_EQ(shapeValues(x, 0, std::nullopt), (V{3, 4, 5}));
  EXPECT_EQ(shapeValues(x, -1, std::nullopt), (V{5}));
  EXPECT_EQ(shapeValues(x, 0, -1), (V{3, 4}));
  EXPECT_EQ(shapeValues(x, 1, 2), (V{4}));
  EXPECT_EQ(shapeValues(x, 10, std::nullopt), (V{}));
  EXPECT_EQ(shapeValues(x, 0, 10), (V{3, 4, 5}));
  EXPECT_EQ(shapeValues(x, -10, 10), (V{3, 4, 5}));
  EXPECT_EQ(shapeValues(x, 2, 1), (V{}));
  EXPECT_EQ(shapeValues(x, kMin, kMax), (V{3, 4, 5}));
  EXPECT_EQ(shapeValues(Tensor::scalar<float>(DType::F32, 1), 0, {}), (V{}));
}

TEST(SizeTest, CountsElements) {
  Tensor out;
  ASSERT_TRUE(sizeOf(Tensor::zeros(DType::F16, {3, 4, 5}), out));
  EXPECT_EQ(out.dtype(), DType::I64);
  EXPECT_EQ(out.rank(), 0);
  EXPECT_EQ(out.data<int64_t>()[0], 60);
  ASSERT_TRUE(sizeOf(Tensor::scalar<float>(DType::F32, 2), out));
  EXPECT_EQ(out.data<int64_t>()[0], 1);
  ASSERT_TRUE(sizeOf(Tensor::zeros(DType::U8, {3, 0}), out));
  EXPECT_EQ(out.data<int64_t>()[0], 0);
}

//===----------------------------------------------------------------------===//
// Reshape, Flatten, Squeeze, Unsqueeze
//===----------------------------------------------------------------------===//

Shape reshapedShape(const Tensor &x, std::vector<int64_t> shape,
                    bool allowZero = false) {
  Tensor out;
  Status s = reshape(x, i64s(shape), allowZero, out);
  EXPECT_TRUE(s) << s.message();
  if (!s)
    return {};
  EXPECT_TRUE(sameStorage(out, x));
  EXPECT_EQ(out.dtype(), x.dtype());
  return out.shape();
}

TEST(ReshapeTest, OnnxExamples) {
  Tensor x = iota({2, 3, 4});
  EXPECT_EQ(reshapedShape(x, {4, 2, 3}), (Shape{4, 2, 3}));
  EXPECT_EQ(reshapedShape(x, {2, 4, 3}), (Shape{2, 4, 3}));
  EXPECT_EQ(reshapedShape(x, {2, 12}), (Shape{2, 12}));
  EXPECT_EQ(reshapedShape(x, {2, 3, 2, 2}), (Shape{2, 3, 2, 2}));
  EXPECT_EQ(reshapedShape(x, {24}), (Shape{24}));
  EXPECT_EQ(reshapedShape(x, {2, -1, 2}), (Shape{2, 6, 2}));
  EXPECT_EQ(reshapedShape(x, {-1, 2, 3, 4}), (Shape{1, 2, 3, 4}));
  EXPECT_EQ(reshapedShape(x, {2, 0, 4, 1}), (Shape{2, 3, 4, 1}));
  EXPECT_EQ(reshapedShape(x, {2, 0, 1, -1}), (Shape{2, 3, 1, 4}));
  EXPECT_EQ(reshapedShape(Tensor::zeros(DType::F32, {0, 3, 4}), {3, 4, 0},
                          /*allowZero=*/true),
            (Shape{3, 4, 0}));
}

TEST(ReshapeTest, ScalarsZeroSizeAndI32Shapes) {
  Tensor x = iota({1, 1});
  EXPECT_EQ(reshapedShape(x, {}), (Shape{}));
  EXPECT_EQ(reshapedShape(Tensor::scalar<float>(DType::F32, 3), {1, -1}),
            (Shape{1, 1}));
  EXPECT_EQ(reshapedShape(Tensor::zeros(DType::F32, {2, 0}), {0, 0, 7}),
            (Shape{2, 0, 7}));
  EXPECT_EQ(reshapedShape(Tensor::zeros(DType::F32, {2, 0}), {-1, 2}),
            (Shape{0, 2}));
  Tensor out;
  Tensor y = iota({2, 3});
  ASSERT_TRUE(reshape(y, i32({2}, {3, -1}), false, out));
  EXPECT_EQ(out.shape(), (Shape{3, 2}));
  EXPECT_EQ(valuesOf<float>(out), valuesOf<float>(y));
  // `out` may be the input itself.
  ASSERT_TRUE(reshape(y, i64s({6}), false, y));
  EXPECT_EQ(y.shape(), (Shape{6}));
}

TEST(ReshapeTest, Errors) {
  Tensor x = iota({2, 3});
  Tensor out;
  EXPECT_EQ(reshape(x, i64s({4, 2}), false, out).message(),
            "Reshape: cannot reshape 2x3 (6 elements) to 4x2");
  EXPECT_TRUE(failsWith(reshape(x, i64s({-1, -1}), false, out),
                        "Reshape: shape -1x-1 has more than one -1"));
  EXPECT_TRUE(failsWith(reshape(x, i64s({-2, -3}), false, out),
                        "Reshape: shape -2x-3 has a negative dim -2"));
  EXPECT_TRUE(failsWith(reshape(x, i64s({4, -1}), false, out),
                        "Reshape: cannot reshape 2x3 (6 elements) to 4x-1"));
  EXPECT_TRUE(failsWith(reshape(x, i64s({0, 0, 0}), false, out),
                        "Reshape: shape 0x0x0 copies input dim 2"));
  EXPECT_TRUE(failsWith(reshape(x, i64s({0, -1}), true, out),
                        "Reshape: shape 0x-1 has both 0 and -1"));
  EXPECT_TRUE(failsWith(
      reshape(Tensor::zeros(DType::F32, {0}), i64s({0, -1}), false, out),
      "cannot infer"));
  EXPECT_TRUE(
      failsWith(reshape(x, i64s({kMax, 4, -1}), false, out), "Reshape: shape"));
  EXPECT_TRUE(failsWith(reshape(x, f32({2}, {3, 2}), false, out),
                        "Reshape shape: expected an I64 or I32 tensor"));
  // A failed kernel leaves `out` alone.
  out = iota({5});
  EXPECT_FALSE(reshape(x, i64s({7}), false, out));
  EXPECT_EQ(out.shape(), (Shape{5}));
}

TEST(FlattenTest, OnnxExamples) {
  Tensor x = iota({2, 3, 4, 5});
  Tensor out;
  const std::pair<int64_t, Shape> cases[] = {
      {0, {1, 120}}, {1, {2, 60}},  {2, {6, 20}},  {3, {24, 5}},
      {4, {120, 1}}, {-1, {24, 5}}, {-4, {1, 120}}};
  for (const auto &[axis, shape] : cases) {
    ASSERT_TRUE(flatten(x, axis, out));
    EXPECT_EQ(out.shape(), shape) << "axis " << axis;
    EXPECT_TRUE(sameStorage(out, x));
  }
  ASSERT_TRUE(flatten(Tensor::scalar<float>(DType::F32, 1), 0, out));
  EXPECT_EQ(out.shape(), (Shape{1, 1}));
  EXPECT_TRUE(failsWith(flatten(x, 5, out),
                        "Flatten: axis 5 is out of range for rank 4"));
  EXPECT_TRUE(failsWith(flatten(x, -5, out),
                        "Flatten: axis -5 is out of range for rank 4"));
}

TEST(SqueezeTest, OnnxExamplesAndErrors) {
  Tensor x = iota({1, 3, 1, 5});
  Tensor out;
  ASSERT_TRUE(squeeze(x, {0}, out));
  EXPECT_EQ(out.shape(), (Shape{3, 1, 5}));
  EXPECT_TRUE(sameStorage(out, x));
  ASSERT_TRUE(squeeze(x, {-2}, out));
  EXPECT_EQ(out.shape(), (Shape{1, 3, 5}));
  ASSERT_TRUE(squeeze(x, {2, 0}, out));
  EXPECT_EQ(out.shape(), (Shape{3, 5}));
  ASSERT_TRUE(squeeze(x, {}, out));
  EXPECT_EQ(out.shape(), (Shape{3, 5}));
  ASSERT_TRUE(squeeze(iota({1, 1}), {}, out));
  EXPECT_EQ(out.shape(), (Shape{}));
  EXPECT_TRUE(
      failsWith(squeeze(x, {1}, out), "Squeeze: axis 1 has size 3, not 1"));
  EXPECT_TRUE(failsWith(squeeze(x, {4}, out),
                        "Squeeze: axis 4 is out of range for rank 4"));
  EXPECT_TRUE(
      failsWith(squeeze(x, {0, -4}, out), "Squeeze: axis -4 appears twice"));
}

TEST(UnsqueezeTest, OnnxExamplesAndErrors) {
  Tensor x = iota({3, 4, 5});
  Tensor out;
  ASSERT_TRUE(unsqueeze(x, {0}, out));
  EXPECT_EQ(out.shape(), (Shape{1, 3, 4, 5}));
  EXPECT_TRUE(sameStorage(out, x));
  ASSERT_TRUE(unsqueeze(x, {3}, out));
  EXPECT_EQ(out.shape(), (Shape{3, 4, 5, 1}));
  ASSERT_TRUE(unsqueeze(x, {0, 4}, out));
  EXPECT_EQ(out.shape(), (Shape{1, 3, 4, 5, 1}));
  ASSERT_TRUE(unsqueeze(x, {5, 4, 2}, out));
  EXPECT_EQ(out.shape(), (Shape{3, 4, 1, 5, 1, 1}));
  ASSERT_TRUE(unsqueeze(iota({1, 3, 1, 5}), {-2}, out));
  EXPECT_EQ(out.shape(), (Shape{1, 3, 1, 1, 5}));
  ASSERT_TRUE(unsqueeze(Tensor::scalar<float>(DType::F32, 1), {0}, out));
  EXPECT_EQ(out.shape(), (Shape{1}));
  ASSERT_TRUE(unsqueeze(x, {}, out));
  EXPECT_EQ(out.shape(), (Shape{3, 4, 5}));
  EXPECT_TRUE(failsWith(unsqueeze(x, {4}, out),
                        "Unsqueeze: axis 4 is out of range for rank 4"));
  EXPECT_TRUE(failsWith(unsqueeze(x, {0, -5}, out),
                        "Unsqueeze: axis -5 appears twice"));
}

//===----------------------------------------------------------------------===//
// Transpose
//===----------------------------------------------------------------------===//

::testing::AssertionResult checkTranspose(const Tensor &x,
                                          const std::vector<int64_t> &perm) {
  Tensor out;
  Status s = transpose(x, perm, out);
  if (!s)
    return ::testing::AssertionFailure() << s.message();
  std::vector<int64_t> p = perm;
  if (p.empty())
    for (int64_t i = x.rank() - 1; i >= 0; --i)
      p.push_back(i);
  Shape want(p.size());
  for (size_t i = 0; i < p.size(); ++i)
    want[i] = x.dim(p[i]);
  if (out.shape() != want)
    return ::testing::AssertionFailure() << "shape " << out.describe();
  return expectMoved(out, x, [&](const Shape &o) {
    Shape in(o.size());
    for (size_t i = 0; i < p.size(); ++i)
      in[p[i]] = o[i];
    return ravel(in, x.shape());
  });
}

TEST(TransposeTest, OnnxExamplesAllPermutations) {
  Tensor x = iota({2, 3, 4});
  std::vector<int64_t> perm{0, 1, 2};
  do {
    EXPECT_TRUE(checkTranspose(x, perm));
  } while (std::next_permutation(perm.begin(), perm.end()));
  EXPECT_TRUE(checkTranspose(x, {}));
  Tensor out;
  ASSERT_TRUE(transpose(iota({2, 3}), {}, out));
  EXPECT_EQ(out.shape(), (Shape{3, 2}));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_FALSE(sameStorage(out, x));
}

TEST(TransposeTest, AttentionShapesAndTiles) {
  std::mt19937 rng(1);
  for (DType dtype : kSizes) {
    // [batch, seq, heads, 64] <-> [batch, heads, seq, 64]: contiguous runs.
    EXPECT_TRUE(
        checkTranspose(randomTensor(dtype, {2, 33, 8, 64}, rng), {0, 2, 1, 3}));
    // Moving the innermost dim: tiled, with partial tiles at both edges.
    EXPECT_TRUE(
        checkTranspose(randomTensor(dtype, {3, 70, 45}, rng), {0, 2, 1}));
    EXPECT_TRUE(
        checkTranspose(randomTensor(dtype, {40, 3, 37}, rng), {2, 1, 0}));
    EXPECT_TRUE(checkTranspose(randomTensor(dtype, {129, 65}, rng), {1, 0}));
    EXPECT_TRUE(
        checkTranspose(randomTensor(dtype, {2, 4, 50, 64}, rng), {0, 1, 3, 2}));
  }
}

TEST(TransposeTest, RandomAgainstReference) {
  std::mt19937 rng(2);
  for (int trial = 0; trial < 300; ++trial) {
    int64_t rank = randomInt(rng, 0, 5);
    Shape shape = randomShape(rng, rank, 5);
    std::vector<int64_t> perm(rank);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    if (trial % 7 == 0)
      perm.clear();
    Tensor x = randomTensor(kSizes[trial % 4], shape, rng);
    EXPECT_TRUE(checkTranspose(x, perm)) << "trial " << trial;
  }
}

TEST(TransposeTest, Errors) {
  Tensor x = iota({2, 3, 4});
  Tensor out;
  EXPECT_EQ(transpose(x, {0, 0, 1}, out).message(),
            "Transpose: perm [0, 0, 1] is not a permutation of 0..2");
  EXPECT_TRUE(failsWith(transpose(x, {0, 1, 3}, out),
                        "Transpose: perm [0, 1, 3] is not a permutation"));
  EXPECT_TRUE(failsWith(transpose(x, {0, -1, 1}, out),
                        "Transpose: perm [0, -1, 1] is not a permutation"));
  EXPECT_TRUE(failsWith(transpose(x, {1, 0}, out),
                        "Transpose: perm [1, 0] has 2 entries for rank 3"));
}

//===----------------------------------------------------------------------===//
// Concat
//===----------------------------------------------------------------------===//

TEST(ConcatTest, OnnxExamples) {
  Tensor out;
  ASSERT_TRUE(concat({f32({2}, {1, 2}), f32({2}, {3, 4})}, 0, out));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{1, 2, 3, 4}));
  Tensor a = f32({2, 2}, {1, 2, 3, 4}), b = f32({2, 2}, {5, 6, 7, 8});
  ASSERT_TRUE(concat({a, b}, 0, out));
  EXPECT_EQ(out.shape(), (Shape{4, 2}));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}));
  ASSERT_TRUE(concat({a, b}, 1, out));
  EXPECT_EQ(out.shape(), (Shape{2, 4}));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{1, 2, 5, 6, 3, 4, 7, 8}));
  ASSERT_TRUE(concat({a, b}, -1, out));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{1, 2, 5, 6, 3, 4, 7, 8}));
  ASSERT_TRUE(concat({a, b}, -2, out));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}));
  ASSERT_TRUE(concat({a}, 0, out));
  EXPECT_EQ(valuesOf<float>(out), valuesOf<float>(a));
  EXPECT_FALSE(sameStorage(out, a));
}

TEST(ConcatTest, KvCacheAppendWithEmptyPast) {
  std::mt19937 rng(3);
  for (DType dtype : kSizes) {
    Tensor past = randomTensor(dtype, {2, 4, 0, 16}, rng);
    Tensor now = randomTensor(dtype, {2, 4, 3, 16}, rng);
    Tensor out;
    ASSERT_TRUE(concat({past, now}, 2, out));
    EXPECT_EQ(out.shape(), now.shape());
    EXPECT_EQ(std::memcmp(out.raw(), now.raw(), now.nbytes()), 0);
    Tensor next = randomTensor(dtype, {2, 4, 1, 16}, rng);
    ASSERT_TRUE(concat({out, next}, -2, out));
    EXPECT_EQ(out.shape(), (Shape{2, 4, 4, 16}));
    Tensor head, tail;
    ASSERT_TRUE(slice(out, {0}, {3}, {2}, {}, head));
    ASSERT_TRUE(slice(out, {3}, {4}, {2}, {}, tail));
    EXPECT_TRUE(expectMoved(
        head, now, [&](const Shape &o) { return ravel(o, now.shape()); }));
    EXPECT_TRUE(expectMoved(
        tail, next, [&](const Shape &o) { return ravel(o, next.shape()); }));
  }
}

TEST(ConcatTest, RandomAgainstReference) {
  std::mt19937 rng(4);
  for (int trial = 0; trial < 200; ++trial) {
    int64_t rank = randomInt(rng, 1, 4);
    int64_t axis = randomInt(rng, -rank, rank - 1);
    int64_t a = axis < 0 ? axis + rank : axis;
    Shape base = randomShape(rng, rank, 4);
    int64_t count = randomInt(rng, 1, 4);
    DType dtype = kSizes[trial % 4];
    std::vector<Tensor> inputs;
    // All inputs concatenated along the axis, as one tensor to index into.
    std::vector<int64_t> offsets;
    int64_t total = 0;
    for (int64_t i = 0; i < count; ++i) {
      Shape s = base;
      s[a] = randomInt(rng, 0, 3);
      offsets.push_back(total);
      total += s[a];
      inputs.push_back(randomTensor(dtype, s, rng));
    }
    Tensor out;
    ASSERT_TRUE(concat(inputs, axis, out));
    Shape want = base;
    want[a] = total;
    ASSERT_EQ(out.shape(), want);
    for (int64_t i = 0; i < count; ++i) {
      // Check the part of `out` that came from input i.
      Tensor part;
      ASSERT_TRUE(slice(out, {offsets[i]}, {offsets[i] + inputs[i].dim(a)}, {a},
                        {}, part));
      EXPECT_TRUE(expectMoved(
          part, inputs[i],
          [&](const Shape &o) { return ravel(o, inputs[i].shape()); }))
          << "trial " << trial << " input " << i;
    }
  }
}

TEST(ConcatTest, Errors) {
  Tensor out;
  Tensor a = iota({2, 3});
  EXPECT_TRUE(failsWith(concat({}, 0, out), "Concat: no inputs"));
  EXPECT_EQ(concat({a, iota({2, 4})}, 0, out).message(),
            "Concat: input 1 has shape 2x4, which differs from 2x3 outside "
            "axis 0");
  EXPECT_TRUE(failsWith(concat({a, iota({2, 3, 1})}, 0, out),
                        "Concat: input 1 has shape 2x3x1"));
  EXPECT_TRUE(failsWith(concat({a, Tensor::zeros(DType::F16, {2, 3})}, 0, out),
                        "Concat: input 1 is f16[2x3], not f32"));
  EXPECT_TRUE(failsWith(concat({a}, 2, out),
                        "Concat: axis 2 is out of range for rank 2"));
  EXPECT_TRUE(failsWith(concat({Tensor::scalar<float>(DType::F32, 1)}, 0, out),
                        "Concat: axis 0 is out of range for rank 0"));
}

//===----------------------------------------------------------------------===//
// Slice
//===----------------------------------------------------------------------===//

/// The indices a Python-style slice of one dim visits, with ONNX's
/// clamping, written as the loop the operator describes.
std::vector<int64_t> sliceIndices(int64_t dim, int64_t start, int64_t end,
                                  int64_t step) {
  std::vector<int64_t> indices;
  if (dim == 0)
    return indices;
  if (start < 0)
    start += dim;
  if (end < 0)
    end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    // Stops before i + step could overflow.
    for (int64_t i = start; i < end; i += step) {
      indices.push_back(i);
      if (end - i <= step)
        break;
    }
  } else {
    start = std::clamp<int64_t>(start, 0, dim - 1);
    end = std::clamp<int64_t>(end, -1, dim - 1);
    for (int64_t i = start; i > end; i += step) {
      indices.push_back(i);
      if (step <= end - i)
        break;
    }
  }
  return indices;
}

::testing::AssertionResult checkSlice(const Tensor &x,
                                      const std::vector<int64_t> &starts,
                                      const std::vector<int64_t> &ends,
                                      const std::vector<int64_t> &axes,
                                      const std::vector<int64_t> &steps) {
  Tensor out;
  Status s = slice(x, starts, ends, axes, steps, out);
  if (!s)
    return ::testing::AssertionFailure() << s.message();
  std::vector<std::vector<int64_t>> picks(x.rank());
  for (int64_t d = 0; d < x.rank(); ++d)
    picks[d] = sliceIndices(x.dim(d), 0, kMax, 1);
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t axis = axes.empty() ? static_cast<int64_t>(i) : axes[i];
    if (axis < 0)
      axis += x.rank();
    picks[axis] = sliceIndices(x.dim(axis), starts[i], ends[i],
                               steps.empty() ? 1 : steps[i]);
  }
  Shape want;
  for (const auto &p : picks)
    want.push_back(static_cast<int64_t>(p.size()));
  if (out.shape() != want)
    return ::testing::AssertionFailure()
           << "shape " << out.describe() << ", want " << shapeString(want);
  return expectMoved(out, x, [&](const Shape &o) {
    Shape in(o.size());
    for (size_t d = 0; d < o.size(); ++d)
      in[d] = picks[d][o[d]];
    return ravel(in, x.shape());
  });
}

TEST(SliceTest, OnnxExamples) {
  Tensor x = iota({20, 10, 5});
  EXPECT_TRUE(checkSlice(x, {0, 0}, {3, 10}, {0, 1}, {1, 1}));
  EXPECT_TRUE(checkSlice(x, {0}, {-1}, {1}, {1}));
  EXPECT_TRUE(checkSlice(x, {1000}, {1000}, {1}, {1}));
  EXPECT_TRUE(checkSlice(x, {1}, {1000}, {1}, {1}));
  EXPECT_TRUE(checkSlice(x, {0, 0, 3}, {20, 10, 4}, {}, {}));
  EXPECT_TRUE(checkSlice(x, {20, 10, 4}, {0, 0, 1}, {0, 1, 2}, {-1, -3, -2}));
  EXPECT_TRUE(checkSlice(x, {0, 0, 3}, {20, 10, 4}, {0, -2, -1}, {}));
  EXPECT_TRUE(checkSlice(x, {-1}, {kMin}, {1}, {-1}));
  EXPECT_TRUE(checkSlice(x, {-1}, {kMin}, {0}, {-1}));
  EXPECT_TRUE(checkSlice(x, {-3, 1}, {kMin, -1}, {0, 1}, {-2, 1}));
  EXPECT_TRUE(checkSlice(x, {kMin}, {kMax}, {2}, {kMax}));
  EXPECT_TRUE(checkSlice(x, {kMax}, {kMin}, {0}, {kMin}));

  Tensor out;
  ASSERT_TRUE(slice(x, {1000}, {1000}, {1}, {1}, out));
  EXPECT_EQ(out.shape(), (Shape{20, 0, 5}));
  ASSERT_TRUE(slice(x, {20, 10, 4}, {0, 0, 1}, {0, 1, 2}, {-1, -3, -2}, out));
  EXPECT_EQ(out.shape(), (Shape{19, 3, 2}));
  // x[19, 10 - 1, 4], the first element of x[20:0:-1, 10:0:-3, 4:1:-2].
  EXPECT_EQ(out.data<float>()[0], 19 * 50 + 9 * 5 + 4);
  Tensor y = f32({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  ASSERT_TRUE(slice(y, {1, 0}, {2, 3}, {0, 1}, {1, 2}, out));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{5, 7}));
  ASSERT_TRUE(slice(y, {0, 1}, {-1, 1000}, {}, {}, out));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{2, 3, 4}));
}

TEST(SliceTest, IdentityIsAView) {
  Tensor x = iota({4, 5});
  Tensor out;
  ASSERT_TRUE(slice(x, {0, kMin}, {kMax, 5}, {}, {1, 1}, out));
  EXPECT_TRUE(sameStorage(out, x));
  EXPECT_EQ(out.shape(), x.shape());
  ASSERT_TRUE(slice(x, {1}, {kMax}, {0}, {}, out));
  EXPECT_FALSE(sameStorage(out, x));
}

TEST(SliceTest, RandomAgainstReference) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 400; ++trial) {
    int64_t rank = randomInt(rng, 1, 4);
    Shape shape = randomShape(rng, rank, 6);
    Tensor x = randomTensor(kSizes[trial % 4], shape, rng);
    std::vector<int64_t> axes(rank);
    std::iota(axes.begin(), axes.end(), 0);
    std::shuffle(axes.begin(), axes.end(), rng);
    axes.resize(randomInt(rng, 0, rank));
    for (int64_t &a : axes)
      if (rng() % 2)
        a -= rank;
    std::vector<int64_t> starts, ends, steps;
    auto bound = [&](int64_t dim) -> int64_t {
      switch (rng() % 8) {
      case 0:
        return kMax;
      case 1:
        return kMin;
      default:
        return randomInt(rng, -dim - 3, dim + 3);
      }
    };
    for (int64_t a : axes) {
      int64_t dim = shape[a < 0 ? a + rank : a];
      starts.push_back(bound(dim));
      ends.push_back(bound(dim));
      int64_t step = randomInt(rng, 1, 4) * (rng() % 2 ? 1 : -1);
      steps.push_back(rng() % 10 ? step : (step > 0 ? kMax : kMin));
    }
    bool defaultAxes = trial % 5 == 0;
    if (defaultAxes) {
      axes.clear();
      for (size_t i = 0; i < starts.size(); ++i)
        axes.push_back(static_cast<int64_t>(i));
      // Redraw bounds against the dims they now apply to.
      for (size_t i = 0; i < starts.size(); ++i) {
        starts[i] = bound(shape[i]);
        ends[i] = bound(shape[i]);
      }
    }
    if (trial % 6 == 0)
      for (int64_t &s : steps)
        s = s == kMax || s == kMin ? 1 : std::abs(s);
    bool defaultSteps = trial % 6 == 0 && trial % 12 == 0;
    EXPECT_TRUE(checkSlice(x, starts, ends,
                           defaultAxes ? std::vector<int64_t>{} : axes,
                           defaultSteps ? std::vector<int64_t>{} : steps))
        << "trial " << trial << ": x " << x.describe() << " starts "
        << ::testing::PrintToString(starts) << " ends "
        << ::testing::PrintToString(ends) << " axes "
        << ::testing::PrintToString(axes) << " steps "
        << ::testing::PrintToString(steps);
  }
}

TEST(SliceTest, LargeContiguousRuns) {
  std::mt19937 rng(6);
  for (DType dtype : kSizes) {
    Tensor x = randomTensor(dtype, {2, 8, 300, 64}, rng);
    EXPECT_TRUE(checkSlice(x, {10}, {290}, {2}, {}));
    EXPECT_TRUE(checkSlice(x, {-1, 1}, {kMin, 60}, {2, 3}, {-3, 2}));
  }
}

TEST(SliceTest, Errors) {
  Tensor x = iota({4, 5});
  Tensor out;
  EXPECT_EQ(slice(x, {0}, {1}, {0}, {0}, out).message(),
            "Slice: step 0 on axis 0");
  EXPECT_TRUE(failsWith(slice(x, {0, 0}, {1}, {}, {}, out),
                        "Slice: 2 starts but 1 ends"));
  EXPECT_TRUE(failsWith(slice(x, {0}, {1}, {0, 1}, {}, out),
                        "Slice: 1 starts but 2 axes"));
  EXPECT_TRUE(failsWith(slice(x, {0}, {1}, {0}, {1, 1}, out),
                        "Slice: 1 starts but 2 steps"));
  EXPECT_TRUE(failsWith(slice(x, {0, 0}, {1, 1}, {1, -1}, {}, out),
                        "Slice: axis -1 appears twice"));
  EXPECT_TRUE(failsWith(slice(x, {0}, {1}, {2}, {}, out),
                        "Slice: axis 2 is out of range for rank 2"));
  EXPECT_TRUE(failsWith(slice(x, {0, 0, 0}, {1, 1, 1}, {}, {}, out),
                        "Slice: axis 2 is out of range for rank 2"));
}

//===----------------------------------------------------------------------===//
// Split
//===----------------------------------------------------------------------===//

std::vector<std::vector<float>> splitValues(const Tensor &x, int64_t axis,
                                            std::vector<int64_t> sizes,
                                            int64_t numOutputs) {
  std::vector<Tensor> outs;
  Status s = split(x, axis, sizes, numOutputs, outs);
  EXPECT_TRUE(s) << s.message();
  std::vector<std::vector<float>> values;
  for (const Tensor &t : outs)
    values.push_back(valuesOf<float>(t));
  return values;
}

TEST(SplitTest, OnnxExamples) {
  using VV = std::vector<std::vector<float>>;
  Tensor x = f32({6}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(splitValues(x, 0, {}, 3), (VV{{1, 2}, {3, 4}, {5, 6}}));
  EXPECT_EQ(splitValues(x, 0, {2, 4}, 0), (VV{{1, 2}, {3, 4, 5, 6}}));
  EXPECT_EQ(splitValues(x, 0, {2, 4}, 2), (VV{{1, 2}, {3, 4, 5, 6}}));
  Tensor y = f32({2, 6}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  EXPECT_EQ(splitValues(y, 1, {}, 2),
            (VV{{1, 2, 3, 7, 8, 9}, {4, 5, 6, 10, 11, 12}}));
  EXPECT_EQ(splitValues(y, -1, {2, 4}, 0),
            (VV{{1, 2, 7, 8}, {3, 4, 5, 6, 9, 10, 11, 12}}));
  // Opset 18: the last part is smaller.
  Tensor z = f32({7}, {1, 2, 3, 4, 5, 6, 7});
  EXPECT_EQ(splitValues(z, 0, {}, 4), (VV{{1, 2}, {3, 4}, {5, 6}, {7}}));
  EXPECT_EQ(splitValues(z, 0, {}, 2), (VV{{1, 2, 3, 4}, {5, 6, 7}}));
  // Zero-size splits.
  EXPECT_EQ(splitValues(f32({0}, {}), 0, {0, 0, 0}, 0), (VV{{}, {}, {}}));
  EXPECT_EQ(splitValues(x, 0, {0, 6, 0}, 0), (VV{{}, {1, 2, 3, 4, 5, 6}, {}}));
  std::vector<Tensor> outs;
  ASSERT_TRUE(split(y, 1, {}, 2, outs));
  EXPECT_EQ(outs[1].shape(), (Shape{2, 3}));
}

TEST(SplitTest, RandomAgainstReference) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 150; ++trial) {
    int64_t rank = randomInt(rng, 1, 4);
    Shape shape = randomShape(rng, rank, 6);
    int64_t axis = randomInt(rng, -rank, rank - 1);
    int64_t a = axis < 0 ? axis + rank : axis;
    Tensor x = randomTensor(kSizes[trial % 4], shape, rng);
    std::vector<int64_t> sizes;
    for (int64_t left = shape[a]; left > 0;) {
      sizes.push_back(randomInt(rng, 0, left));
      left -= sizes.back();
    }
    if (sizes.empty())
      sizes.push_back(0);
    std::vector<Tensor> outs;
    ASSERT_TRUE(split(x, axis, sizes, 0, outs));
    ASSERT_EQ(outs.size(), sizes.size());
    int64_t offset = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      Shape want = shape;
      want[a] = sizes[i];
      EXPECT_EQ(outs[i].shape(), want);
      EXPECT_TRUE(expectMoved(outs[i], x, [&](const Shape &o) {
        Shape in = o;
        in[a] += offset;
        return ravel(in, shape);
      }));
      offset += sizes[i];
    }
  }
}

TEST(SplitTest, Errors) {
  Tensor x = iota({2, 6});
  std::vector<Tensor> outs;
  EXPECT_EQ(split(x, 1, {2, 3}, 0, outs).message(),
            "Split: sizes [2, 3] sum to 5, not the dim 6 of axis 1");
  EXPECT_TRUE(failsWith(split(x, 1, {7, -1}, 0, outs),
                        "Split: sizes [7, -1] include a negative size"));
  EXPECT_TRUE(
      failsWith(split(x, 1, {}, 0, outs),
                "Split: neither sizes nor a positive number of outputs"));
  EXPECT_TRUE(
      failsWith(split(x, 1, {2, 4}, 3, outs), "Split: 2 sizes for 3 outputs"));
  EXPECT_TRUE(failsWith(split(x, 1, {}, 5, outs),
                        "Split: cannot split dim 6 of axis 1 into 5 parts"));
  EXPECT_TRUE(failsWith(split(x, 2, {}, 2, outs),
                        "Split: axis 2 is out of range for rank 2"));
}

//===----------------------------------------------------------------------===//
// Expand, Tile
//===----------------------------------------------------------------------===//

::testing::AssertionResult checkExpand(const Tensor &x,
                                       const std::vector<int64_t> &shape) {
  Tensor out;
  Status s = expand(x, shape, out);
  if (!s)
    return ::testing::AssertionFailure() << s.message();
  int64_t rank = std::max<int64_t>(x.rank(), shape.size());
  Shape want(rank);
  for (int64_t i = 0; i < rank; ++i) {
    int64_t xi = i - (rank - x.rank()), si = i - (rank - (int64_t)shape.size());
    int64_t a = xi >= 0 ? x.dim(xi) : 1, b = si >= 0 ? shape[si] : 1;
    want[i] = a == 1 ? b : a;
  }
  if (out.shape() != want)
    return ::testing::AssertionFailure() << "shape " << out.describe();
  return expectMoved(out, x, [&](const Shape &o) {
    Shape in(x.rank());
    for (int64_t d = 0; d < x.rank(); ++d)
      in[d] = x.dim(d) == 1 ? 0 : o[d + rank - x.rank()];
    return ravel(in, x.shape());
  });
}

TEST(ExpandTest, OnnxExamples) {
  Tensor x = f32({3, 1}, {1, 2, 3});
  Tensor out;
  ASSERT_TRUE(expand(x, {2, 1, 6}, out));
  EXPECT_EQ(out.shape(), (Shape{2, 3, 6}));
  EXPECT_TRUE(checkExpand(x, {2, 1, 6}));
  ASSERT_TRUE(expand(x, {3, 4}, out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3}));
  // Bidirectional: 1s in the shape keep the input's dims, and then it is
  // the identity, a view.
  Tensor y = iota({3, 4});
  ASSERT_TRUE(expand(y, {1, 1}, out));
  EXPECT_EQ(out.shape(), (Shape{3, 4}));
  EXPECT_TRUE(sameStorage(out, y));
  ASSERT_TRUE(expand(y, {}, out));
  EXPECT_TRUE(sameStorage(out, y));
  ASSERT_TRUE(expand(y, {2, 1, 1}, out));
  EXPECT_EQ(out.shape(), (Shape{2, 3, 4}));
  EXPECT_FALSE(sameStorage(out, y));
  ASSERT_TRUE(expand(Tensor::scalar<float>(DType::F32, 7), {2, 2}, out));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{7, 7, 7, 7}));
  ASSERT_TRUE(expand(f32({1}, {7}), {0, 3}, out));
  EXPECT_EQ(out.shape(), (Shape{0, 3}));
}

TEST(ExpandTest, RandomAgainstReference) {
  std::mt19937 rng(8);
  for (int trial = 0; trial < 300; ++trial) {
    int64_t rank = randomInt(rng, 0, 4);
    Shape xs = randomShape(rng, rank, 4);
    int64_t srank = randomInt(rng, 0, 5);
    Shape shape = randomShape(rng, srank, 4);
    // Make them compatible: each aligned pair equal or with a 1.
    for (int64_t i = 0; i < std::min(rank, srank); ++i) {
      int64_t &a = xs[rank - 1 - i], &b = shape[srank - 1 - i];
      switch (rng() % 3) {
      case 0:
        a = 1;
        break;
      case 1:
        b = 1;
        break;
      default:
        b = a;
      }
    }
    Tensor x = randomTensor(kSizes[trial % 4], xs, rng);
    EXPECT_TRUE(checkExpand(x, shape))
        << shapeString(xs) << " to " << shapeString(shape);
  }
}

TEST(ExpandTest, LargeBroadcasts) {
  std::mt19937 rng(9);
  for (DType dtype : kSizes) {
    EXPECT_TRUE(
        checkExpand(randomTensor(dtype, {1, 1, 64, 64}, rng), {4, 8, 64, 64}));
    EXPECT_TRUE(checkExpand(randomTensor(dtype, {2, 4, 1, 30, 64}, rng),
                            {2, 4, 3, 30, 64}));
    EXPECT_TRUE(checkExpand(randomTensor(dtype, {50, 1}, rng), {50, 300}));
  }
}

TEST(ExpandTest, Errors) {
  Tensor out;
  EXPECT_EQ(expand(iota({3, 4}), {2, 4}, out).message(),
            "Expand: cannot broadcast 3x4 to 2x4");
  EXPECT_TRUE(failsWith(expand(iota({3}), {2, -1}, out),
                        "Expand: shape 2x-1 has a negative dim"));
  EXPECT_TRUE(failsWith(expand(iota({1}), {kMax, kMax}, out), "Expand: shape"));
}

TEST(TileTest, OnnxExamplesAndReference) {
  Tensor x = f32({2, 2}, {0, 1, 2, 3});
  Tensor out;
  ASSERT_TRUE(tile(x, {2, 2}, out));
  EXPECT_EQ(out.shape(), (Shape{4, 4}));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{0, 1, 0, 1, 2, 3, 2, 3, 0,
                                                      1, 0, 1, 2, 3, 2, 3}));
  ASSERT_TRUE(tile(f32({2, 2}, {1, 2, 3, 4}), {1, 2}, out));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{1, 2, 1, 2, 3, 4, 3, 4}));
  ASSERT_TRUE(tile(x, {0, 3}, out));
  EXPECT_EQ(out.shape(), (Shape{0, 6}));

  std::mt19937 rng(10);
  for (int trial = 0; trial < 200; ++trial) {
    int64_t rank = randomInt(rng, 0, 4);
    Shape shape = randomShape(rng, rank, 4);
    std::vector<int64_t> repeats(rank);
    for (int64_t &r : repeats)
      r = randomInt(rng, 0, 3);
    Tensor t = randomTensor(kSizes[trial % 4], shape, rng);
    ASSERT_TRUE(tile(t, repeats, out));
    Shape want = shape;
    for (int64_t d = 0; d < rank; ++d)
      want[d] *= repeats[d];
    ASSERT_EQ(out.shape(), want);
    EXPECT_TRUE(expectMoved(out, t, [&](const Shape &o) {
      Shape in(rank);
      for (int64_t d = 0; d < rank; ++d)
        in[d] = o[d] % shape[d];
      return ravel(in, shape);
    }));
  }
}

TEST(TileTest, Errors) {
  Tensor out;
  EXPECT_EQ(tile(iota({2, 3}), {2}, out).message(),
            "Tile: 1 repeats for rank 2 input f32[2x3]");
  EXPECT_TRUE(failsWith(tile(iota({2, 3}), {2, -1}, out),
                        "Tile: repeats [2, -1] include a negative repeat"));
  EXPECT_TRUE(failsWith(tile(iota({2, 3}), {kMax, 2}, out), "Tile: shape"));
}

TEST(CopyTest, MakesFreshStorage) {
  Tensor x = iota({3, 4});
  Tensor view;
  ASSERT_TRUE(reshape(x, i64s({12}), false, view));
  Tensor out;
  ASSERT_TRUE(copy(view, out));
  EXPECT_FALSE(sameStorage(out, x));
  EXPECT_EQ(out.shape(), (Shape{12}));
  EXPECT_EQ(valuesOf<float>(out), valuesOf<float>(x));
  ASSERT_TRUE(copy(Tensor::zeros(DType::I64, {0, 2}), out));
  EXPECT_EQ(out.shape(), (Shape{0, 2}));
  EXPECT_EQ(out.dtype(), DType::I64);
}

//===----------------------------------------------------------------------===//
// Gather, GatherElements, GatherND
//===----------------------------------------------------------------------===//

int64_t wrapped(int64_t i, int64_t bound) { return i < 0 ? i + bound : i; }

std::vector<int64_t> indexValues(const Tensor &t) {
  std::vector<int64_t> values(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i)
    values[i] =
        t.dtype() == DType::I64 ? t.data<int64_t>()[i] : t.data<int32_t>()[i];
  return values;
}

/// Random indices in [-bound, bound), as I64 or I32.
Tensor randomIndices(const Shape &shape, int64_t bound, bool wide,
                     std::mt19937 &rng) {
  std::vector<int64_t> values(numElements(shape));
  for (int64_t &v : values)
    v = randomInt(rng, -bound, bound - 1);
  if (wide)
    return i64(shape, values);
  return i32(shape, std::vector<int32_t>(values.begin(), values.end()));
}

TEST(GatherTest, OnnxExamples) {
  Tensor out;
  Tensor data = iota({5, 4, 3, 2});
  ASSERT_TRUE(gather(data, i64({3}, {0, 1, 3}), 0, out));
  EXPECT_EQ(out.shape(), (Shape{3, 4, 3, 2}));
  EXPECT_EQ(out.data<float>()[24 * 2], 3 * 24);
  Tensor d =
      f32({3, 3}, {1.0f, 1.2f, 1.9f, 2.3f, 3.4f, 3.9f, 4.5f, 5.7f, 5.9f});
  ASSERT_TRUE(gather(d, i64({1, 2}, {0, 2}), 1, out));
  EXPECT_EQ(out.shape(), (Shape{3, 1, 2}));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{1.0f, 1.9f, 2.3f, 3.9f, 4.5f, 5.9f}));
  ASSERT_TRUE(gather(f32({3, 2}, {1.0f, 1.2f, 2.3f, 3.4f, 4.5f, 5.7f}),
                     i64({2, 2}, {0, 1, 1, 2}), 0, out));
  EXPECT_EQ(out.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{1.0f, 1.2f, 2.3f, 3.4f,
                                                      2.3f, 3.4f, 4.5f, 5.7f}));
  ASSERT_TRUE(gather(iota({10}), i64({3}, {0, -9, -10}), 0, out));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{0, 1, 0}));
  // A scalar index drops the axis.
  ASSERT_TRUE(
      gather(iota({3, 4}), Tensor::scalar<int32_t>(DType::I32, -1), 1, out));
  EXPECT_EQ(out.shape(), (Shape{3}));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{3, 7, 11}));
}

TEST(GatherTest, RandomAgainstReference) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    int64_t rank = randomInt(rng, 1, 4);
    Shape shape = randomShape(rng, rank, 5);
    int64_t axis = randomInt(rng, -rank, rank - 1);
    int64_t a = axis < 0 ? axis + rank : axis;
    if (shape[a] == 0)
      shape[a] = 1;
    Shape ishape = randomShape(rng, randomInt(rng, 0, 3), 4);
    Tensor data = randomTensor(kSizes[trial % 4], shape, rng);
    Tensor indices = randomIndices(ishape, shape[a], trial % 2, rng);
    std::vector<int64_t> idx = indexValues(indices);
    Tensor out;
    ASSERT_TRUE(gather(data, indices, axis, out));
    Shape want(shape.begin(), shape.begin() + a);
    want.insert(want.end(), ishape.begin(), ishape.end());
    want.insert(want.end(), shape.begin() + a + 1, shape.end());
    ASSERT_EQ(out.shape(), want);
    int64_t q = static_cast<int64_t>(ishape.size());
    EXPECT_TRUE(expectMoved(out, data,
                            [&](const Shape &o) {
                              Shape in(o.begin(), o.begin() + a);
                              Shape ii(o.begin() + a, o.begin() + a + q);
                              in.push_back(
                                  wrapped(idx[ravel(ii, ishape)], shape[a]));
                              in.insert(in.end(), o.begin() + a + q, o.end());
                              return ravel(in, shape);
                            }))
        << "trial " << trial;
  }
}

TEST(GatherTest, EmbeddingLookup) {
  std::mt19937 rng(12);
  for (DType dtype : kSizes) {
    Tensor table = randomTensor(dtype, {1000, 64}, rng);
    Tensor ids = randomIndices({2, 300}, 1000, true, rng);
    Tensor out;
    ASSERT_TRUE(gather(table, ids, 0, out));
    std::vector<int64_t> idx = indexValues(ids);
    EXPECT_TRUE(expectMoved(out, table, [&](const Shape &o) {
      return wrapped(idx[o[0] * 300 + o[1]], 1000) * 64 + o[2];
    }));
  }
}

TEST(GatherTest, Errors) {
  Tensor out;
  Tensor data = iota({5, 2});
  EXPECT_EQ(gather(data, i64({2}, {1, 5}), 0, out).message(),
            "Gather: index 5 is out of range for axis 0 of size 5");
  EXPECT_TRUE(failsWith(gather(data, i32({1}, {-6}), 0, out),
                        "Gather: index -6 is out of range for axis 0 of size "
                        "5"));
  EXPECT_TRUE(failsWith(gather(data, i64({1}, {0}), 2, out),
                        "Gather: axis 2 is out of range for rank 2"));
  EXPECT_TRUE(failsWith(gather(data, f32({1}, {0}), 0, out),
                        "Gather indices: expected an I64 or I32 tensor, got "
                        "f32[1]"));
  EXPECT_TRUE(failsWith(
      gather(Tensor::zeros(DType::F32, {0, 2}), i64({1}, {0}), 0, out),
      "index 0 is out of range for axis 0 of size 0"));
}

TEST(GatherElementsTest, OnnxExamples) {
  Tensor out;
  ASSERT_TRUE(gatherElements(f32({2, 2}, {1, 2, 3, 4}),
                             i64({2, 2}, {0, 0, 1, 0}), 1, out));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{1, 1, 4, 3}));
  Tensor d = f32({3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  ASSERT_TRUE(gatherElements(d, i32({2, 3}, {1, 2, 0, 2, 0, 0}), 0, out));
  EXPECT_EQ(out.shape(), (Shape{2, 3}));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{4, 8, 3, 7, 2, 3}));
  ASSERT_TRUE(gatherElements(d, i64({2, 3}, {-1, -2, 0, -2, 0, 0}), 0, out));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{7, 5, 3, 4, 2, 3}));
}

TEST(GatherElementsTest, RandomAgainstReference) {
  std::mt19937 rng(13);
  for (int trial = 0; trial < 300; ++trial) {
    int64_t rank = randomInt(rng, 1, 4);
    Shape shape = randomShape(rng, rank, 5);
    int64_t axis = randomInt(rng, -rank, rank - 1);
    int64_t a = axis < 0 ? axis + rank : axis;
    if (shape[a] == 0)
      shape[a] = 1;
    Shape ishape = shape;
    for (int64_t d = 0; d < rank; ++d)
      ishape[d] = d == a ? randomInt(rng, 0, 6) : randomInt(rng, 0, shape[d]);
    Tensor data = randomTensor(kSizes[trial % 4], shape, rng);
    Tensor indices = randomIndices(ishape, shape[a], trial % 2, rng);
    std::vector<int64_t> idx = indexValues(indices);
    Tensor out;
    ASSERT_TRUE(gatherElements(data, indices, axis, out));
    ASSERT_EQ(out.shape(), ishape);
    EXPECT_TRUE(expectMoved(out, data,
                            [&](const Shape &o) {
                              Shape in = o;
                              in[a] = wrapped(idx[ravel(o, ishape)], shape[a]);
                              return ravel(in, shape);
                            }))
        << "trial " << trial;
  }
}

TEST(GatherElementsTest, Errors) {
  Tensor out;
  Tensor d = iota({2, 3});
  EXPECT_EQ(gatherElements(d, i64({1, 1}, {3}), 1, out).message(),
            "GatherElements: index 3 is out of range for axis 1 of size 3");
  EXPECT_TRUE(failsWith(gatherElements(d, i64({2}, {0, 0}), 1, out),
                        "GatherElements: indices i64[2] and data f32[2x3] "
                        "differ in rank"));
  EXPECT_TRUE(failsWith(gatherElements(d, i64({3, 1}, {0, 0, 0}), 1, out),
                        "GatherElements: indices i64[3x1] exceed data "
                        "f32[2x3] on axis 0"));
  EXPECT_TRUE(failsWith(gatherElements(d, i64({1, 1}, {0}), -3, out),
                        "GatherElements: axis -3 is out of range for rank 2"));
}

TEST(GatherNDTest, OnnxExamples) {
  Tensor out;
  ASSERT_TRUE(
      gatherND(i32({2, 2}, {0, 1, 2, 3}), i64({2, 2}, {0, 0, 1, 1}), 0, out));
  EXPECT_EQ(out.shape(), (Shape{2}));
  EXPECT_EQ(valuesOf<int32_t>(out), (std::vector<int32_t>{0, 3}));
  ASSERT_TRUE(gatherND(i32({2, 2}, {0, 1, 2, 3}), i64({2, 1}, {1, 0}), 0, out));
  EXPECT_EQ(out.shape(), (Shape{2, 2}));
  EXPECT_EQ(valuesOf<int32_t>(out), (std::vector<int32_t>{2, 3, 0, 1}));
  Tensor d = iota({2, 2, 2});
  ASSERT_TRUE(gatherND(d, i64({2, 2}, {0, 1, 1, 0}), 0, out));
  EXPECT_EQ(out.shape(), (Shape{2, 2}));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{2, 3, 4, 5}));
  ASSERT_TRUE(gatherND(d, i64({2, 1, 2}, {0, 1, 1, 0}), 0, out));
  EXPECT_EQ(out.shape(), (Shape{2, 1, 2}));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{2, 3, 4, 5}));
  ASSERT_TRUE(gatherND(d, i64({2, 1}, {1, 0}), 1, out));
  EXPECT_EQ(out.shape(), (Shape{2, 2}));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{2, 3, 4, 5}));
}

TEST(GatherNDTest, RandomAgainstReference) {
  std::mt19937 rng(14);
  for (int trial = 0; trial < 300; ++trial) {
    int64_t rank = randomInt(rng, 1, 4);
    int64_t b = randomInt(rng, 0, rank - 1);
    int64_t k = randomInt(rng, 1, rank - b);
    Shape shape = randomShape(rng, rank, 4);
    for (int64_t d = b; d < b + k; ++d)
      shape[d] = std::max<int64_t>(shape[d], 1);
    Shape ishape(shape.begin(), shape.begin() + b);
    Shape mid = randomShape(rng, randomInt(rng, 0, 2), 3);
    ishape.insert(ishape.end(), mid.begin(), mid.end());
    ishape.push_back(k);
    std::vector<int64_t> idx(numElements(ishape));
    for (size_t i = 0; i < idx.size(); ++i) {
      int64_t dim = shape[b + static_cast<int64_t>(i) % k];
      idx[i] = randomInt(rng, -dim, dim - 1);
    }
    Tensor data = randomTensor(kSizes[trial % 4], shape, rng);
    Tensor out;
    ASSERT_TRUE(gatherND(data, i64(ishape, idx), b, out));
    Shape want(ishape.begin(), ishape.end() - 1);
    want.insert(want.end(), shape.begin() + b + k, shape.end());
    ASSERT_EQ(out.shape(), want);
    int64_t tupleRank = static_cast<int64_t>(ishape.size()) - 1;
    EXPECT_TRUE(
        expectMoved(out, data,
                    [&](const Shape &o) {
                      Shape tuple(o.begin(), o.begin() + tupleRank);
                      tuple.push_back(0);
                      int64_t first = ravel(tuple, ishape);
                      Shape in(o.begin(), o.begin() + b);
                      for (int64_t j = 0; j < k; ++j)
                        in.push_back(wrapped(idx[first + j], shape[b + j]));
                      in.insert(in.end(), o.begin() + tupleRank, o.end());
                      return ravel(in, shape);
                    }))
        << "trial " << trial;
  }
}

TEST(GatherNDTest, Errors) {
  Tensor out;
  Tensor d = iota({2, 3});
  EXPECT_EQ(gatherND(d, i64({1, 2}, {1, 3}), 0, out).message(),
            "GatherND: index 3 is out of range for axis 1 of size 3");
  EXPECT_TRUE(failsWith(gatherND(d, i64({1, 3}, {0, 0, 0}), 0, out),
                        "GatherND: index tuples of length 3 for data "
                        "f32[2x3] with 0 batch dims"));
  EXPECT_TRUE(failsWith(gatherND(d, i64({3, 1}, {0, 0, 0}), 1, out),
                        "GatherND: batch dims of indices i64[3x1] and data "
                        "f32[2x3] differ"));
  EXPECT_TRUE(failsWith(gatherND(d, i64({2, 1}, {0, 0}), 2, out),
                        "GatherND: 2 batch dims"));
}

//===----------------------------------------------------------------------===//
// ScatterND, ScatterElements
//===----------------------------------------------------------------------===//

TEST(ScatterNDTest, OnnxExamples) {
  Tensor out;
  ASSERT_TRUE(scatterND(f32({8}, {1, 2, 3, 4, 5, 6, 7, 8}),
                        i64({4, 1}, {4, 3, 1, 7}), f32({4}, {9, 10, 11, 12}),
                        "none", out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{1, 11, 3, 10, 9, 6, 7, 12}));

  std::vector<float> cube = {1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1,
                             1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1,
                             8, 7, 6, 5, 4, 3, 2, 1, 1, 2, 3, 4, 5, 6, 7, 8,
                             8, 7, 6, 5, 4, 3, 2, 1, 1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<float> ups = {5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8, 8, 8,
                            1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4};
  Tensor data = f32({4, 4, 4}, cube), updates = f32({2, 4, 4}, ups);
  ASSERT_TRUE(scatterND(data, i64({2, 1}, {0, 2}), updates, "none", out));
  std::vector<float> want = cube;
  std::copy(ups.begin(), ups.begin() + 16, want.begin());
  std::copy(ups.begin() + 16, ups.end(), want.begin() + 32);
  EXPECT_EQ(valuesOf<float>(out), want);
  // The input is untouched.
  EXPECT_EQ(valuesOf<float>(data), cube);

  // Duplicate indices combine in order under a reduction.
  auto combined = [&](auto op) {
    std::vector<float> w = cube;
    for (int i = 0; i < 16; ++i)
      w[i] = op(op(w[i], ups[i]), ups[16 + i]);
    return w;
  };
  Tensor twice = i64({2, 1}, {0, 0});
  ASSERT_TRUE(scatterND(data, twice, updates, "add", out));
  EXPECT_EQ(valuesOf<float>(out), combined(std::plus<float>()));
  ASSERT_TRUE(scatterND(data, twice, updates, "mul", out));
  EXPECT_EQ(valuesOf<float>(out), combined(std::multiplies<float>()));
  ASSERT_TRUE(scatterND(data, twice, updates, "max", out));
  EXPECT_EQ(valuesOf<float>(out),
            combined([](float a, float b) { return std::max(a, b); }));
  ASSERT_TRUE(scatterND(data, twice, updates, "min", out));
  EXPECT_EQ(valuesOf<float>(out),
            combined([](float a, float b) { return std::min(a, b); }));
}

TEST(ScatterNDTest, DTypesAndElementIndices) {
  Tensor out;
  ASSERT_TRUE(scatterND(i64({2, 2}, {1, 2, 3, 4}), i32({2, 2}, {1, 0, -1, -1}),
                        i64({2}, {10, 20}), "add", out));
  EXPECT_EQ(valuesOf<int64_t>(out), (std::vector<int64_t>{1, 2, 13, 24}));
  // 16-bit floats combine in float: 1.5 + 2.25 = 3.75 exactly.
  Tensor h = Tensor::fromVector<uint16_t>(DType::F16, {2}, {0x3E00, 0x3C00});
  Tensor hu = Tensor::fromVector<uint16_t>(DType::F16, {1}, {0x4080});
  ASSERT_TRUE(scatterND(h, i64({1, 1}, {0}), hu, "add", out));
  EXPECT_EQ(valuesOf<uint16_t>(out), (std::vector<uint16_t>{0x4380, 0x3C00}));
  Tensor b = Tensor::fromVector<uint16_t>(DType::BF16, {1}, {0x3FC0});
  Tensor bu = Tensor::fromVector<uint16_t>(DType::BF16, {1}, {0x4010});
  ASSERT_TRUE(scatterND(b, i64({1, 1}, {0}), bu, "mul", out));
  EXPECT_EQ(valuesOf<uint16_t>(out), (std::vector<uint16_t>{0x4058}));
  // Integer overflow wraps rather than being undefined.
  ASSERT_TRUE(scatterND(i32({1}, {INT32_MAX}), i64({1, 1}, {0}), i32({1}, {1}),
                        "add", out));
  EXPECT_EQ(valuesOf<int32_t>(out), (std::vector<int32_t>{INT32_MIN}));
  // Pure replacement works on any element size.
  ASSERT_TRUE(scatterND(Tensor::zeros(DType::U8, {3}), i64({1, 1}, {2}),
                        Tensor::fromVector<uint8_t>(DType::U8, {1}, {7}),
                        "none", out));
  EXPECT_EQ(valuesOf<uint8_t>(out), (std::vector<uint8_t>{0, 0, 7}));
}

TEST(ScatterNDTest, RandomAgainstReference) {
  std::mt19937 rng(15);
  for (int trial = 0; trial < 200; ++trial) {
    int64_t rank = randomInt(rng, 1, 4);
    int64_t k = randomInt(rng, 1, rank);
    Shape shape = randomShape(rng, rank, 4);
    for (int64_t d = 0; d < k; ++d)
      shape[d] = std::max<int64_t>(shape[d], 1);
    Shape ishape = randomShape(rng, randomInt(rng, 0, 2), 3);
    ishape.push_back(k);
    std::vector<int64_t> idx(numElements(ishape));
    for (size_t i = 0; i < idx.size(); ++i) {
      int64_t dim = shape[static_cast<int64_t>(i) % k];
      idx[i] = randomInt(rng, -dim, dim - 1);
    }
    Shape ushape(ishape.begin(), ishape.end() - 1);
    ushape.insert(ushape.end(), shape.begin() + k, shape.end());
    std::vector<float> dv(numElements(shape)), uv(numElements(ushape));
    for (float &v : dv)
      v = static_cast<float>(randomInt(rng, -9, 9));
    for (float &v : uv)
      v = static_cast<float>(randomInt(rng, -9, 9));
    bool add = trial % 2;
    Tensor out;
    ASSERT_TRUE(scatterND(f32(shape, dv), i64(ishape, idx), f32(ushape, uv),
                          add ? "add" : "none", out));
    std::vector<float> want = dv;
    int64_t sliceSize = numElements(Shape(shape.begin() + k, shape.end()));
    for (int64_t t = 0; t < static_cast<int64_t>(idx.size()) / k; ++t) {
      int64_t offset = 0;
      for (int64_t j = 0; j < k; ++j)
        offset = offset * shape[j] + wrapped(idx[t * k + j], shape[j]);
      for (int64_t e = 0; e < sliceSize; ++e) {
        float &w = want[offset * sliceSize + e];
        w = add ? w + uv[t * sliceSize + e] : uv[t * sliceSize + e];
      }
    }
    EXPECT_EQ(valuesOf<float>(out), want) << "trial " << trial;
  }
}

TEST(ScatterNDTest, Errors) {
  Tensor out;
  Tensor d = iota({4});
  EXPECT_EQ(
      scatterND(d, i64({1, 1}, {4}), f32({1}, {1}), "none", out).message(),
      "ScatterND: index 4 is out of range for axis 0 of size 4");
  EXPECT_TRUE(
      failsWith(scatterND(d, i64({1, 1}, {0}), f32({2}, {1, 2}), "none", out),
                "ScatterND: updates f32[2] should have shape 1"));
  EXPECT_TRUE(
      failsWith(scatterND(d, i64({1, 1}, {0}), f32({1}, {1}), "sum", out),
                "ScatterND: unknown reduction 'sum'"));
  EXPECT_TRUE(
      failsWith(scatterND(d, i64({1, 2}, {0, 0}), f32({1}, {1}), "none", out),
                "ScatterND: index tuples of length 2 for data f32[4]"));
  EXPECT_TRUE(failsWith(scatterND(d, i64({1, 1}, {0}),
                                  Tensor::zeros(DType::F16, {1}), "none", out),
                        "ScatterND: updates f16[1] differ in dtype from data "
                        "f32[4]"));
  Tensor flags = Tensor::zeros(DType::Bool, {2});
  EXPECT_TRUE(failsWith(scatterND(flags, i64({1, 1}, {0}),
                                  Tensor::zeros(DType::Bool, {1}), "add", out),
                        "ScatterND: reduction add is not supported for BOOL"));
}

TEST(ScatterElementsTest, OnnxExamples) {
  Tensor out;
  ASSERT_TRUE(scatterElements(
      Tensor::zeros(DType::F32, {3, 3}), i64({2, 3}, {1, 0, 2, 0, 2, 1}),
      f32({2, 3}, {1.0f, 1.1f, 1.2f, 2.0f, 2.1f, 2.2f}), 0, "none", out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{2.0f, 1.1f, 0.0f, 1.0f, 0.0f, 2.2f, 0.0f, 2.1f,
                                1.2f}));
  Tensor d = f32({1, 5}, {1, 2, 3, 4, 5});
  ASSERT_TRUE(scatterElements(d, i64({1, 2}, {1, 3}), f32({1, 2}, {1.1f, 2.1f}),
                              1, "none", out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{1.0f, 1.1f, 3.0f, 2.1f, 5.0f}));
  ASSERT_TRUE(scatterElements(d, i32({1, 2}, {1, -3}),
                              f32({1, 2}, {1.1f, 2.1f}), -1, "none", out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{1.0f, 1.1f, 2.1f, 4.0f, 5.0f}));
  ASSERT_TRUE(scatterElements(d, i64({1, 2}, {1, 1}), f32({1, 2}, {1.1f, 2.1f}),
                              1, "add", out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{1.0f, 2.0f + 1.1f + 2.1f, 3.0f, 4.0f, 5.0f}));
  ASSERT_TRUE(scatterElements(d, i64({1, 2}, {1, 1}), f32({1, 2}, {1.1f, 2.1f}),
                              1, "max", out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{1.0f, 2.1f, 3.0f, 4.0f, 5.0f}));
}

TEST(ScatterElementsTest, RandomAgainstReference) {
  std::mt19937 rng(16);
  for (int trial = 0; trial < 300; ++trial) {
    int64_t rank = randomInt(rng, 1, 4);
    Shape shape = randomShape(rng, rank, 5);
    int64_t axis = randomInt(rng, -rank, rank - 1);
    int64_t a = axis < 0 ? axis + rank : axis;
    if (shape[a] == 0)
      shape[a] = 1;
    Shape ishape = shape;
    for (int64_t d = 0; d < rank; ++d)
      ishape[d] = d == a ? randomInt(rng, 0, 6) : randomInt(rng, 0, shape[d]);
    Tensor indices = randomIndices(ishape, shape[a], trial % 2, rng);
    std::vector<int64_t> idx = indexValues(indices);
    std::vector<int32_t> dv(numElements(shape)), uv(numElements(ishape));
    for (int32_t &v : dv)
      v = static_cast<int32_t>(randomInt(rng, -99, 99));
    for (int32_t &v : uv)
      v = static_cast<int32_t>(randomInt(rng, -99, 99));
    bool add = trial % 3 == 0;
    Tensor out;
    ASSERT_TRUE(scatterElements(i32(shape, dv), indices, i32(ishape, uv), axis,
                                add ? "add" : "none", out));
    std::vector<int32_t> want = dv;
    for (int64_t i = 0; i < numElements(ishape); ++i) {
      Shape at = unravel(i, ishape);
      at[a] = wrapped(idx[i], shape[a]);
      int32_t &w = want[ravel(at, shape)];
      w = add ? w + uv[i] : uv[i];
    }
    EXPECT_EQ(valuesOf<int32_t>(out), want) << "trial " << trial;
  }
}

TEST(ScatterElementsTest, Errors) {
  Tensor out;
  Tensor d = iota({2, 3});
  EXPECT_EQ(
      scatterElements(d, i64({1, 1}, {-4}), f32({1, 1}, {0}), 1, "none", out)
          .message(),
      "ScatterElements: index -4 is out of range for axis 1 of size 3");
  EXPECT_TRUE(failsWith(
      scatterElements(d, i64({1, 1}, {0}), f32({1}, {0}), 1, "none", out),
      "ScatterElements: updates f32[1] should have shape 1x1"));
  EXPECT_TRUE(failsWith(
      scatterElements(d, i64({1, 1}, {0}), f32({1, 1}, {0}), 2, "none", out),
      "ScatterElements: axis 2 is out of range for rank 2"));
  EXPECT_TRUE(failsWith(
      scatterElements(d, i64({1, 1}, {0}), f32({1, 1}, {0}), 1, "avg", out),
      "ScatterElements: unknown reduction 'avg'"));
}

//===----------------------------------------------------------------------===//
// Trilu
//===----------------------------------------------------------------------===//

::testing::AssertionResult checkTrilu(const Tensor &x, bool upper, int64_t k) {
  Tensor out;
  Status s = trilu(x, upper, k, out);
  if (!s)
    return ::testing::AssertionFailure() << s.message();
  if (out.shape() != x.shape())
    return ::testing::AssertionFailure() << "shape " << out.describe();
  return expectMoved(out, x, [&](const Shape &o) -> int64_t {
    // In double, so that k near the int64 limits cannot overflow.
    double diff = double(o[o.size() - 1]) - double(o[o.size() - 2]);
    bool keep = upper ? diff >= double(k) : diff <= double(k);
    return keep ? ravel(o, x.shape()) : -1;
  });
}

TEST(TriluTest, OnnxExamples) {
  Tensor x =
      f32({4, 5}, {4, 7, 3, 7, 9, 1, 2, 8, 6, 9, 9, 4, 0, 8, 7, 4, 1, 7, 3, 9});
  Tensor out;
  ASSERT_TRUE(trilu(x, true, 0, out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{4, 7, 3, 7, 9, 0, 2, 8, 6, 9,
                                0, 0, 0, 8, 7, 0, 0, 0, 3, 9}));
  ASSERT_TRUE(trilu(x, true, 1, out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{0, 7, 3, 7, 9, 0, 0, 8, 6, 9,
                                0, 0, 0, 8, 7, 0, 0, 0, 0, 9}));
  ASSERT_TRUE(trilu(x, true, -1, out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{4, 7, 3, 7, 9, 1, 2, 8, 6, 9,
                                0, 4, 0, 8, 7, 0, 0, 7, 3, 9}));
  ASSERT_TRUE(trilu(x, false, 0, out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{4, 0, 0, 0, 0, 1, 2, 0, 0, 0,
                                9, 4, 0, 0, 0, 4, 1, 7, 3, 0}));
  ASSERT_TRUE(trilu(x, false, 1, out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{4, 7, 0, 0, 0, 1, 2, 8, 0, 0,
                                9, 4, 0, 8, 0, 4, 1, 7, 3, 9}));
  ASSERT_TRUE(trilu(x, false, -7, out));
  EXPECT_EQ(valuesOf<float>(out), std::vector<float>(20, 0));
  ASSERT_TRUE(trilu(x, true, -7, out));
  EXPECT_EQ(valuesOf<float>(out), valuesOf<float>(x));
}

TEST(TriluTest, RandomAgainstReference) {
  std::mt19937 rng(17);
  for (int trial = 0; trial < 200; ++trial) {
    Shape shape = randomShape(rng, randomInt(rng, 2, 4), 6);
    Tensor x = randomTensor(kSizes[trial % 4], shape, rng);
    int64_t k =
        trial % 20 == 0 ? (trial % 40 ? kMax : kMin) : randomInt(rng, -7, 7);
    EXPECT_TRUE(checkTrilu(x, trial % 2, k)) << "trial " << trial;
  }
}

TEST(TriluTest, Errors) {
  Tensor out;
  EXPECT_EQ(trilu(iota({3}), true, 0, out).message(),
            "Trilu: input f32[3] has rank 1, needs at least 2");
}

//===----------------------------------------------------------------------===//
// Range, ConstantOfShape
//===----------------------------------------------------------------------===//

TEST(RangeTest, OnnxExamples) {
  Tensor out;
  auto s32 = [](int32_t v) { return Tensor::scalar<int32_t>(DType::I32, v); };
  auto s64 = [](int64_t v) { return Tensor::scalar<int64_t>(DType::I64, v); };
  auto sf = [](float v) { return Tensor::scalar<float>(DType::F32, v); };
  auto sd = [](double v) { return Tensor::scalar<double>(DType::F64, v); };
  ASSERT_TRUE(range(s32(10), s32(4), s32(-2), out));
  EXPECT_EQ(out.dtype(), DType::I32);
  EXPECT_EQ(valuesOf<int32_t>(out), (std::vector<int32_t>{10, 8, 6}));
  ASSERT_TRUE(range(sf(3), sf(9), sf(3), out));
  EXPECT_EQ(out.dtype(), DType::F32);
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{3, 6}));
  ASSERT_TRUE(range(sf(1), sf(3), sf(0.5f), out));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{1, 1.5f, 2, 2.5f}));
  ASSERT_TRUE(range(s64(0), s64(10), s64(3), out));
  EXPECT_EQ(valuesOf<int64_t>(out), (std::vector<int64_t>{0, 3, 6, 9}));
  ASSERT_TRUE(range(s64(5), s64(1), s64(1), out));
  EXPECT_EQ(out.shape(), (Shape{0}));
  ASSERT_TRUE(range(sd(0.25), sd(1), sd(0.25), out));
  EXPECT_EQ(valuesOf<double>(out), (std::vector<double>{0.25, 0.5, 0.75}));
  // Near the limits of the type, with no overflow on the way.
  ASSERT_TRUE(range(s64(kMin), s64(kMax), s64(kMax), out));
  EXPECT_EQ(valuesOf<int64_t>(out), (std::vector<int64_t>{kMin, -1, kMax - 1}));
  ASSERT_TRUE(range(s32(INT32_MAX), s32(INT32_MIN), s32(INT32_MIN), out));
  EXPECT_EQ(valuesOf<int32_t>(out), (std::vector<int32_t>{INT32_MAX, -1}));
  // One-element 1-D operands work like scalars.
  ASSERT_TRUE(range(i64({1}, {2}), i64({1}, {4}), i64({1}, {1}), out));
  EXPECT_EQ(valuesOf<int64_t>(out), (std::vector<int64_t>{2, 3}));
}

TEST(RangeTest, Errors) {
  Tensor out;
  auto s64 = [](int64_t v) { return Tensor::scalar<int64_t>(DType::I64, v); };
  auto sf = [](float v) { return Tensor::scalar<float>(DType::F32, v); };
  EXPECT_EQ(range(s64(0), s64(4), s64(0), out).message(), "Range: delta is 0");
  EXPECT_TRUE(failsWith(range(sf(0), sf(4), sf(0), out), "Range: delta is 0"));
  EXPECT_TRUE(failsWith(range(s64(0), s64(kMax), s64(1), out),
                        "Range: 9223372036854775807 elements is more than "
                        "2^31"));
  EXPECT_TRUE(failsWith(range(sf(0), sf(1e10f), sf(1), out), "more than 2^31"));
  EXPECT_TRUE(
      failsWith(range(sf(0), sf(INFINITY), sf(1), out), "more than 2^31"));
  EXPECT_TRUE(failsWith(range(sf(0), sf(NAN), sf(1), out), "Range"));
  EXPECT_TRUE(failsWith(range(s64(0), sf(4), s64(1), out),
                        "Range: start i64[scalar], limit f32[scalar] and "
                        "delta i64[scalar] differ in dtype"));
  EXPECT_TRUE(failsWith(range(s64(0), i64({2}, {1, 2}), s64(1), out),
                        "Range: limit i64[2] is not a single element"));
  Tensor h = Tensor::scalar<uint16_t>(DType::F16, 0);
  EXPECT_TRUE(
      failsWith(range(h, h, h, out), "Range: dtype F16 is not supported"));
}

TEST(ConstantOfShapeTest, FillsWithTheValue) {
  Tensor out;
  ASSERT_TRUE(constantOfShape({4, 3, 2}, f32({1}, {1}), out));
  EXPECT_EQ(out.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(valuesOf<float>(out), std::vector<float>(24, 1));
  ASSERT_TRUE(constantOfShape({3}, i32({1}, {-5}), out));
  EXPECT_EQ(out.dtype(), DType::I32);
  EXPECT_EQ(valuesOf<int32_t>(out), (std::vector<int32_t>{-5, -5, -5}));
  ASSERT_TRUE(constantOfShape({2, 2}, Tensor(), out));
  EXPECT_EQ(out.dtype(), DType::F32);
  EXPECT_EQ(valuesOf<float>(out), std::vector<float>(4, 0));
  ASSERT_TRUE(constantOfShape({}, i64({1}, {kMin}), out));
  EXPECT_EQ(out.shape(), (Shape{}));
  EXPECT_EQ(valuesOf<int64_t>(out), (std::vector<int64_t>{kMin}));
  ASSERT_TRUE(
      constantOfShape({2, 0}, Tensor::scalar<uint8_t>(DType::Bool, 1), out));
  EXPECT_EQ(out.shape(), (Shape{2, 0}));
  ASSERT_TRUE(constantOfShape(
      {3}, Tensor::fromVector<uint16_t>(DType::F16, {1}, {0x3C00}), out));
  EXPECT_EQ(valuesOf<uint16_t>(out),
            (std::vector<uint16_t>{0x3C00, 0x3C00, 0x3C00}));
}

TEST(ConstantOfShapeTest, Errors) {
  Tensor out;
  EXPECT_EQ(constantOfShape({2, -1}, Tensor(), out).message(),
            "ConstantOfShape: shape 2x-1 has a negative dim");
  EXPECT_TRUE(
      failsWith(constantOfShape({1 << 30, 1 << 30, 1 << 30}, Tensor(), out),
                "ConstantOfShape: shape 1073741824x1073741824x"
                "1073741824 is too large"));
  EXPECT_TRUE(failsWith(constantOfShape({2}, f32({2}, {1, 2}), out),
                        "ConstantOfShape: value f32[2] is not a single "
                        "element"));
}

//===----------------------------------------------------------------------===//
// Pad
//===----------------------------------------------------------------------===//

/// The source index along a dim of size `dim` of output position `o` for
/// pads `begin` and `end`, or -1 for the constant. Negative pads crop the
/// input before the positive ones extend it, as in onnxruntime.
int64_t padSource(int64_t o, int64_t begin, int64_t end, int64_t dim,
                  const std::string &mode) {
  int64_t crop = std::max<int64_t>(-begin, 0);
  dim -= crop + std::max<int64_t>(-end, 0);
  int64_t i = o - std::max<int64_t>(begin, 0);
  if (i < 0 || i >= dim) {
    if (mode == "constant")
      return -1;
    if (mode == "edge")
      i = i < 0 ? 0 : dim - 1;
    else if (mode == "wrap")
      i = ((i % dim) + dim) % dim;
    else // Reflect: bounce off both ends until inside.
      while (dim > 1 && (i < 0 || i >= dim))
        i = i < 0 ? -i : 2 * (dim - 1) - i;
    if (dim == 1)
      i = 0;
  }
  return crop + i;
}

TEST(PadTest, OnnxExamples) {
  Tensor x = f32({3, 2}, {1.0f, 1.2f, 2.3f, 3.4f, 4.5f, 5.7f});
  Tensor out;
  ASSERT_TRUE(pad(x, {0, 2, 0, 0}, f32({1}, {0}), {}, "constant", out));
  EXPECT_EQ(out.shape(), (Shape{3, 4}));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{0, 0, 1.0f, 1.2f, 0, 0, 2.3f, 3.4f, 0, 0, 4.5f,
                                5.7f}));
  ASSERT_TRUE(pad(x, {0, 2, 0, 0}, Tensor(), {}, "reflect", out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{1.0f, 1.2f, 1.0f, 1.2f, 2.3f, 3.4f, 2.3f, 3.4f,
                                4.5f, 5.7f, 4.5f, 5.7f}));
  ASSERT_TRUE(pad(x, {0, 2, 0, 0}, Tensor(), {}, "edge", out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{1.0f, 1.0f, 1.0f, 1.2f, 2.3f, 2.3f, 2.3f, 3.4f,
                                4.5f, 4.5f, 4.5f, 5.7f}));
  ASSERT_TRUE(pad(x, {0, 1, 0, 1}, Tensor(), {}, "wrap", out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{1.2f, 1.0f, 1.2f, 1.0f, 3.4f, 2.3f, 3.4f, 2.3f,
                                5.7f, 4.5f, 5.7f, 4.5f}));
  // Axes: pads only the last dim, with a constant.
  ASSERT_TRUE(pad(x, {1, 1}, f32({}, {9}), {-1}, "constant", out));
  EXPECT_EQ(valuesOf<float>(out),
            (std::vector<float>{9, 1.0f, 1.2f, 9, 9, 2.3f, 3.4f, 9, 9, 4.5f,
                                5.7f, 9}));
  // Negative pads crop.
  ASSERT_TRUE(pad(x, {-1, 0, 0, -1}, Tensor(), {}, "constant", out));
  EXPECT_EQ(out.shape(), (Shape{2, 1}));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{2.3f, 4.5f}));
  // Cropping comes first: reflect [2, 3, 4], not [1, 2, 3, 4].
  ASSERT_TRUE(
      pad(f32({4}, {1, 2, 3, 4}), {-1, 2}, Tensor(), {}, "reflect", out));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{2, 3, 4, 3, 2}));
  ASSERT_TRUE(pad(f32({4}, {1, 2, 3, 4}), {3, -3}, Tensor(), {}, "edge", out));
  EXPECT_EQ(valuesOf<float>(out), (std::vector<float>{1, 1, 1, 1}));
}

TEST(PadTest, RandomAgainstReference) {
  std::mt19937 rng(18);
  const char *modes[] = {"constant", "reflect", "edge", "wrap"};
  for (int trial = 0; trial < 300; ++trial) {
    int64_t rank = randomInt(rng, 0, 4);
    Shape shape = randomShape(rng, rank, 5);
    std::string mode = modes[trial % 4];
    std::vector<int64_t> axes(rank);
    std::iota(axes.begin(), axes.end(), 0);
    // Every other trial pads all dims with `axes` left empty.
    bool allAxes = (trial / 4) % 2;
    if (!allAxes) {
      std::shuffle(axes.begin(), axes.end(), rng);
      // Not empty: that would mean all dims.
      axes.resize(randomInt(rng, std::min<int64_t>(rank, 1), rank));
    }
    Shape begin(rank, 0), end(rank, 0);
    std::vector<int64_t> pads(2 * axes.size());
    for (size_t i = 0; i < axes.size(); ++i) {
      int64_t dim = shape[axes[i]];
      bool canPad = mode == "constant" || dim > 0;
      auto draw = [&] {
        return canPad ? randomInt(rng, -dim / 2, 6) : randomInt(rng, -dim, 0);
      };
      begin[axes[i]] = pads[i] = draw();
      end[axes[i]] = pads[axes.size() + i] = draw();
    }
    DType dtype = kSizes[(trial / 8) % 4];
    Tensor x = randomTensor(dtype, shape, rng);
    Tensor value = trial % 3 ? randomTensor(dtype, {}, rng) : Tensor();
    Tensor out;
    Status s =
        pad(x, pads, value, allAxes ? std::vector<int64_t>{} : axes, mode, out);
    ASSERT_TRUE(s) << s.message();
    Shape want = shape;
    for (int64_t d = 0; d < rank; ++d)
      want[d] += begin[d] + end[d];
    ASSERT_EQ(out.shape(), want) << "trial " << trial;
    // Constant elements are checked against the value separately.
    Tensor both = Tensor::empty(dtype, {x.numel() + 1});
    size_t size = dtypeSize(dtype);
    std::memcpy(both.raw(), x.raw(), x.nbytes());
    if (value.defined() && value.raw())
      std::memcpy(static_cast<char *>(both.raw()) + x.nbytes(), value.raw(),
                  size);
    else
      std::memset(static_cast<char *>(both.raw()) + x.nbytes(), 0, size);
    EXPECT_TRUE(expectMoved(out, both,
                            [&](const Shape &o) {
                              Shape in(rank);
                              for (int64_t d = 0; d < rank; ++d) {
                                in[d] = padSource(o[d], begin[d], end[d],
                                                  shape[d], mode);
                                if (in[d] < 0)
                                  return x.numel();
                              }
                              return ravel(in, shape);
                            }))
        << "trial " << trial << " mode " << mode;
  }
}

TEST(PadTest, Errors) {
  Tensor x = iota({2, 3});
  Tensor out;
  EXPECT_EQ(pad(x, {1, 1, 1}, Tensor(), {}, "constant", out).message(),
            "Pad: 3 pads for 2 axes");
  EXPECT_TRUE(failsWith(pad(x, {-2, 0, -1, 0}, Tensor(), {}, "constant", out),
                        "Pad: axis 0 of size 2 padded by -2 and -1"));
  EXPECT_TRUE(failsWith(pad(x, {0, 0}, Tensor(), {}, "symmetric", out),
                        "Pad: unknown mode 'symmetric'"));
  EXPECT_TRUE(failsWith(pad(x, {0, 0}, Tensor(), {2}, "constant", out),
                        "Pad: axis 2 is out of range for rank 2"));
  EXPECT_TRUE(
      failsWith(pad(x, {0, 0, 0, 0}, Tensor(), {1, -1}, "constant", out),
                "Pad: axis -1 appears twice"));
  EXPECT_TRUE(failsWith(pad(x, {0, 1}, i64({1}, {0}), {1}, "constant", out),
                        "Pad: constant value i64[1] differs in dtype from "
                        "input f32[2x3]"));
  EXPECT_TRUE(failsWith(pad(Tensor::zeros(DType::F32, {0, 2}), {1, 0, 0, 0},
                            Tensor(), {}, "edge", out),
                        "Pad: cannot edge-pad axis 0 of size 0"));
  EXPECT_TRUE(failsWith(pad(x, {kMax, 0, 1, 0}, Tensor(), {}, "constant", out),
                        "Pad:"));
}

} // namespace
