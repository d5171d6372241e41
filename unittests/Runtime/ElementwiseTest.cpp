//===- ElementwiseTest.cpp - Tests for the elementwise kernels ------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Every kernel is checked on small cases written out by hand and against a
// naive double-precision reference on random inputs, over shapes that take
// each fast path (same shape, scalar, trailing vector, [..., 1]) and the
// generic broadcasting path, with rank-0, empty and size-1 dimensions and
// tensors large enough to be split across threads.
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Kernels/Elementwise.h"
#include "llq/Quant/Half.h"
#include "llq/Runtime/Parallel.h"

#include "gtest/gtest.h"

#include <cmath>
#include <functional>
#include <limits>
#include <random>

using namespace llq;
using namespace llq::rt;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

/// The pool is sized on first use: ask for several threads so that the
/// large cases below run split even on a one-core machine.
const bool kThreadsRequested = (setNumThreads(4), true);

//===----------------------------------------------------------------------===//
// Tensor construction and inspection through doubles
//===----------------------------------------------------------------------===//

template <typename T> double readAs(const Tensor &t, int64_t i) {
  return static_cast<double>(static_cast<const T *>(t.raw())[i]);
}

double readAt(const Tensor &t, int64_t i) {
  switch (t.dtype()) {
  case DType::F64:
    return readAs<double>(t, i);
  case DType::F32:
    return readAs<float>(t, i);
  case DType::F16:
    return quant::halfToFloat(static_cast<const uint16_t *>(t.raw())[i]);
  case DType::BF16:
    return quant::bfloat16ToFloat(static_cast<const uint16_t *>(t.raw())[i]);
  case DType::I64:
    return readAs<int64_t>(t, i);
  case DType::I32:
    return readAs<int32_t>(t, i);
  case DType::I16:
    return readAs<int16_t>(t, i);
  case DType::I8:
    return readAs<int8_t>(t, i);
  case DType::U8:
  case DType::Bool:
    return readAs<uint8_t>(t, i);
  case DType::U16:
    return readAs<uint16_t>(t, i);
  case DType::U32:
    return readAs<uint32_t>(t, i);
  case DType::U64:
    return readAs<uint64_t>(t, i);
  }
  return 0;
}

template <typename T> void writeAs(Tensor &t, int64_t i, double v) {
  static_cast<T *>(t.raw())[i] = static_cast<T>(v);
}

/// Stores v, which must be representable (integral and in range for
/// integer dtypes); 16-bit floats round to nearest even.
void writeAt(Tensor &t, int64_t i, double v) {
  switch (t.dtype()) {
  case DType::F64:
    return writeAs<double>(t, i, v);
  case DType::F32:
    return writeAs<float>(t, i, v);
  case DType::F16:
    static_cast<uint16_t *>(t.raw())[i] = quant::floatToHalf(float(v));
    return;
  case DType::BF16:
    static_cast<uint16_t *>(t.raw())[i] = quant::floatToBFloat16(float(v));
    return;
  case DType::I64:
    return writeAs<int64_t>(t, i, v);
  case DType::I32:
    return writeAs<int32_t>(t, i, v);
  case DType::I16:
    return writeAs<int16_t>(t, i, v);
  case DType::I8:
    return writeAs<int8_t>(t, i, v);
  case DType::U8:
  case DType::Bool:
    return writeAs<uint8_t>(t, i, v);
  case DType::U16:
    return writeAs<uint16_t>(t, i, v);
  case DType::U32:
    return writeAs<uint32_t>(t, i, v);
  case DType::U64:
    return writeAs<uint64_t>(t, i, v);
  }
}

Tensor make(DType dtype, Shape shape, const std::vector<double> &values) {
  Tensor t = Tensor::empty(dtype, std::move(shape));
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.numel());
  for (int64_t i = 0; i < t.numel(); ++i)
    writeAt(t, i, values[i]);
  return t;
}

std::vector<double> values(const Tensor &t) {
  std::vector<double> v(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i)
    v[i] = readAt(t, i);
  return v;
}

bool isFloatType(DType d) {
  return d == DType::F32 || d == DType::F16 || d == DType::BF16 ||
         d == DType::F64;
}

std::mt19937 &rng() {
  static std::mt19937 engine(1234);
  return engine;
}

/// Uniform values in [lo, hi]; whole numbers for integer dtypes. Read back
/// through values(), they are exactly what the kernel sees.
Tensor random(DType dtype, Shape shape, double lo = -4, double hi = 4) {
  Tensor t = Tensor::empty(dtype, std::move(shape));
  std::uniform_real_distribution<double> real(lo, hi);
  std::uniform_int_distribution<int64_t> whole{int64_t(lo), int64_t(hi)};
  for (int64_t i = 0; i < t.numel(); ++i)
    writeAt(t, i, isFloatType(dtype) ? real(rng()) : double(whole(rng())));
  return t;
}

/// Relative tolerance of a dtype's rounding.
double tolerance(DType d, double f32 = 1e-6) {
  switch (d) {
  case DType::F16:
    return 1e-3;
  case DType::BF16:
    return 8e-3;
  case DType::F64:
    return 1e-12;
  default:
    return isFloatType(d) ? f32 : 0.0;
  }
}

/// Elementwise |got - want| <= atol + rtol |want|, NaN matching NaN and
/// infinities matching exactly; reports the first few mismatches.
void expectNear(const Tensor &got, const std::vector<double> &want, double rtol,
                double atol = 0, const std::string &what = "") {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size())) << what;
  int failures = 0;
  for (int64_t i = 0; i < got.numel() && failures < 5; ++i) {
    double g = readAt(got, i), w = want[i];
    bool ok = std::isnan(w)   ? std::isnan(g)
              : std::isinf(w) ? g == w
                              : std::abs(g - w) <= atol + rtol * std::abs(w);
    if (!ok) {
      ++failures;
      ADD_FAILURE() << what << " element " << i << " of " << got.describe()
                    << ": got " << g << ", want " << w;
    }
  }
}

void expectValues(const Tensor &got, DType dtype, const Shape &shape,
                  const std::vector<double> &want) {
  EXPECT_EQ(got.dtype(), dtype) << got.describe();
  EXPECT_EQ(got.shape(), shape) << got.describe();
  expectNear(got, want, 0, 0);
}

void expectError(const Status &status, const std::string &fragment) {
  ASSERT_FALSE(status.isOk()) << "expected an error containing: " << fragment;
  EXPECT_NE(status.message().find(fragment), std::string::npos)
      << status.message();
}

//===----------------------------------------------------------------------===//
// Naive references
//===----------------------------------------------------------------------===//

Shape broadcastRef(const std::vector<Shape> &shapes) {
  size_t rank = 0;
  for (const Shape &s : shapes)
    rank = std::max(rank, s.size());
  Shape out(rank, 1);
  for (const Shape &s : shapes)
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t &o = out[rank - s.size() + i];
      o = s[i] == 1 ? o : s[i];
    }
  return out;
}

/// The flat index in an operand of shape `src` of flat position `flat` of
/// the broadcast shape `out`.
int64_t sourceIndex(const Shape &src, const Shape &out, int64_t flat) {
  int64_t index = 0, stride = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    size_t d = out.size() - 1 - i;
    int64_t coord = flat % out[d];
    flat /= out[d];
    if (i < src.size()) {
      int64_t extent = src[src.size() - 1 - i];
      index += (extent == 1 ? 0 : coord) * stride;
      stride *= extent;
    }
  }
  return index;
}

std::vector<double> binaryRef(const Tensor &a, const Tensor &b,
                              const std::function<double(double, double)> &f) {
  Shape out = broadcastRef({a.shape(), b.shape()});
  std::vector<double> va = values(a), vb = values(b), r(numElements(out));
  for (int64_t i = 0; i < numElements(out); ++i)
    r[i] = f(va[sourceIndex(a.shape(), out, i)],
             vb[sourceIndex(b.shape(), out, i)]);
  return r;
}

/// Flat indices of x grouped by output position: the elements that
/// dimensions `mask` reduce together, in increasing order.
std::vector<std::vector<int64_t>> groupsOf(const Shape &shape,
                                           const std::vector<bool> &mask) {
  Shape kept = shape;
  for (size_t d = 0; d < shape.size(); ++d)
    if (mask[d])
      kept[d] = 1;
  std::vector<std::vector<int64_t>> groups(numElements(kept));
  for (int64_t i = 0; i < numElements(shape); ++i) {
    int64_t rest = i, outIndex = 0, stride = 1;
    for (size_t d = shape.size(); d-- > 0;) {
      int64_t coord = rest % shape[d];
      rest /= shape[d];
      outIndex += (mask[d] ? 0 : coord) * stride;
      stride *= kept[d];
    }
    groups[outIndex].push_back(i);
  }
  return groups;
}

std::vector<bool> axisMask(int64_t rank, std::vector<int64_t> axes) {
  std::vector<bool> mask(rank, axes.empty());
  for (int64_t a : axes)
    mask[a < 0 ? a + rank : a] = true;
  return mask;
}

double reduceRef(ReduceOp op, const std::vector<double> &v) {
  double acc;
  switch (op) {
  case ReduceOp::Sum:
  case ReduceOp::Mean:
    acc = 0;
    for (double x : v)
      acc += x;
    return op == ReduceOp::Mean ? acc / double(v.size()) : acc;
  case ReduceOp::SumSquare:
  case ReduceOp::L2:
    acc = 0;
    for (double x : v)
      acc += x * x;
    return op == ReduceOp::L2 ? std::sqrt(acc) : acc;
  case ReduceOp::Prod:
    acc = 1;
    for (double x : v)
      acc *= x;
    return acc;
  case ReduceOp::Max:
  case ReduceOp::Min: {
    acc = op == ReduceOp::Max ? -kInf : kInf;
    for (double x : v)
      if (std::isnan(x) || (op == ReduceOp::Max ? x > acc : x < acc))
        acc = x;
      else if (std::isnan(acc))
        break;
    return acc;
  }
  case ReduceOp::LogSumExp: {
    double m = -kInf;
    for (double x : v)
      m = std::max(m, x);
    if (!std::isfinite(m))
      m = 0;
    acc = 0;
    for (double x : v)
      acc += std::exp(x - m);
    return std::log(acc) + m;
  }
  }
  return 0;
}

//===----------------------------------------------------------------------===//
// Binary
//===----------------------------------------------------------------------===//

TEST(BinaryTest, BroadcastsTwoOneThreeAgainstFourOne) {
  Tensor a = make(DType::F32, {2, 1, 3}, {0, 1, 2, 3, 4, 5});
  Tensor b = make(DType::F32, {4, 1}, {10, 20, 30, 40});
  Tensor out;
  ASSERT_TRUE(binary(BinaryOp::Add, a, b, out));
  expectValues(out, DType::F32, {2, 4, 3},
               {10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42,
                13, 14, 15, 23, 24, 25, 33, 34, 35, 43, 44, 45});
}

TEST(BinaryTest, SmallCasesOfEachFastPath) {
  Tensor m = make(DType::F32, {2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor out;
  ASSERT_TRUE(
      binary(BinaryOp::Mul, m, Tensor::scalar<float>(DType::F32, 2), out));
  expectValues(out, DType::F32, {2, 3}, {2, 4, 6, 8, 10, 12});
  ASSERT_TRUE(
      binary(BinaryOp::Sub, Tensor::scalar<float>(DType::F32, 10), m, out));
  expectValues(out, DType::F32, {2, 3}, {9, 8, 7, 6, 5, 4});
  ASSERT_TRUE(binary(BinaryOp::Sub, m, make(DType::F32, {3}, {1, 2, 3}), out));
  expectValues(out, DType::F32, {2, 3}, {0, 0, 0, 3, 3, 3});
  ASSERT_TRUE(binary(BinaryOp::Div, m, make(DType::F32, {2, 1}, {1, 2}), out));
  expectValues(out, DType::F32, {2, 3}, {1, 2, 3, 2, 2.5, 3});
  ASSERT_TRUE(binary(BinaryOp::Add, m, m, out));
  expectValues(out, DType::F32, {2, 3}, {2, 4, 6, 8, 10, 12});
  ASSERT_TRUE(binary(BinaryOp::Add, Tensor::scalar<float>(DType::F32, 1),
                     Tensor::scalar<float>(DType::F32, 2), out));
  expectValues(out, DType::F32, {}, {3});
}

TEST(BinaryTest, EmptyAndSizeOneDimensions) {
  Tensor out;
  ASSERT_TRUE(binary(BinaryOp::Add, Tensor::empty(DType::F32, {0, 3}),
                     make(DType::F32, {3}, {1, 2, 3}), out));
  EXPECT_EQ(out.shape(), (Shape{0, 3}));
  ASSERT_TRUE(binary(BinaryOp::Add, Tensor::empty(DType::F32, {2, 0}),
                     make(DType::F32, {1, 1}, {1}), out));
  EXPECT_EQ(out.shape(), (Shape{2, 0}));
  ASSERT_TRUE(binary(BinaryOp::Add, make(DType::F32, {1, 1, 1}, {5}),
                     Tensor::scalar<float>(DType::F32, 1), out));
  expectValues(out, DType::F32, {1, 1, 1}, {6});
}

/// Shape pairs covering the plan's cases: same shape, scalars, trailing
/// vectors, [..., 1], generic strides, empty and large (threaded) tensors.
const std::vector<std::pair<Shape, Shape>> kShapePairs = {
    {{}, {}},
    {{5}, {}},
    {{}, {5}},
    {{3, 4}, {3, 4}},
    {{2, 3, 4}, {4}},
    {{4}, {2, 3, 4}},
    {{2, 3, 4}, {2, 3, 1}},
    {{2, 1, 3}, {4, 1}},
    {{1}, {3, 1, 2}},
    {{0, 3}, {3}},
    {{2, 0}, {1, 1}},
    {{2, 3, 1, 5}, {1, 3, 4, 1}},
    {{4, 1, 6}, {4, 5, 6}},
    {{3, 1, 1}, {1, 1, 7}},
    {{70001}, {70001}},
    {{3, 40000}, {40000}},
    {{40000, 3}, {40000, 1}},
    {{5, 1, 9000}, {1, 4, 9000}},
};

struct BinaryCase {
  BinaryOp op;
  std::function<double(double, double)> ref;
};

const std::vector<BinaryCase> kArithmetic = {
    {BinaryOp::Add, [](double a, double b) { return a + b; }},
    {BinaryOp::Sub, [](double a, double b) { return a - b; }},
    {BinaryOp::Mul, [](double a, double b) { return a * b; }},
    {BinaryOp::Div, [](double a, double b) { return a / b; }},
    {BinaryOp::Max, [](double a, double b) { return std::max(a, b); }},
    {BinaryOp::Min, [](double a, double b) { return std::min(a, b); }},
};

TEST(BinaryTest, ArithmeticMatchesReferenceOverShapes) {
  for (const auto &[sa, sb] : kShapePairs)
    for (const BinaryCase &c : kArithmetic) {
      Tensor a = random(DType::F32, sa), b = random(DType::F32, sb, 0.5, 4);
      Tensor out;
      ASSERT_TRUE(binary(c.op, a, b, out));
      EXPECT_EQ(out.shape(), broadcastRef({sa, sb}));
      expectNear(out, binaryRef(a, b, c.ref), 1e-6, 0,
                 binaryOpName(c.op) + (" " + a.describe()) + b.describe());
    }
}

TEST(BinaryTest, ArithmeticOverDTypes) {
  const DType dtypes[] = {DType::F64, DType::F16, DType::BF16, DType::I64,
                          DType::I32, DType::I16, DType::I8};
  for (DType d : dtypes)
    for (const BinaryCase &c : kArithmetic) {
      Tensor a = random(d, {3, 1, 5}, -10, 10);
      Tensor b = random(d, {4, 1}, 1, 10);
      Tensor out;
      ASSERT_TRUE(binary(c.op, a, b, out));
      auto ref = c.ref;
      if (!isFloatType(d) && c.op == BinaryOp::Div)
        ref = [](double x, double y) { return std::trunc(x / y); };
      EXPECT_EQ(out.dtype(), d);
      expectNear(out, binaryRef(a, b, ref), tolerance(d), 0,
                 binaryOpName(c.op) + (" " + a.describe()));
    }
  Tensor a = random(DType::U8, {6}, 0, 100), b = random(DType::U8, {6}, 1, 2);
  Tensor out;
  ASSERT_TRUE(binary(BinaryOp::Add, a, b, out));
  expectNear(out, binaryRef(a, b, std::plus<double>()), 0);
}

TEST(BinaryTest, IntegerArithmeticWraps) {
  Tensor out;
  ASSERT_TRUE(binary(BinaryOp::Add, make(DType::I32, {1}, {2147483647.0}),
                     make(DType::I32, {1}, {1}), out));
  expectValues(out, DType::I32, {1}, {-2147483648.0});
  ASSERT_TRUE(binary(BinaryOp::Add, make(DType::I8, {2}, {127, -128}),
                     make(DType::I8, {2}, {1, -1}), out));
  expectValues(out, DType::I8, {2}, {-128, 127});
  ASSERT_TRUE(binary(BinaryOp::Mul, make(DType::U8, {1}, {16}),
                     make(DType::U8, {1}, {17}), out));
  expectValues(out, DType::U8, {1}, {16});
}

TEST(BinaryTest, IntegerDivisionTruncatesAndRejectsZero) {
  Tensor a = make(DType::I64, {4}, {7, -7, 7, -7});
  Tensor b = make(DType::I64, {4}, {2, 2, -2, -2});
  Tensor out;
  ASSERT_TRUE(binary(BinaryOp::Div, a, b, out));
  expectValues(out, DType::I64, {4}, {3, -3, -3, 3});
  ASSERT_TRUE(binary(BinaryOp::Div, make(DType::I32, {1}, {-2147483648.0}),
                     make(DType::I32, {1}, {-1}), out));
  expectValues(out, DType::I32, {1}, {-2147483648.0});
  Status s = binary(BinaryOp::Div, a, make(DType::I64, {2, 1}, {1, 0}), out);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "Div: integer division by zero");
  expectError(binary(BinaryOp::Mod, a, make(DType::I64, {}, {0}), out),
              "Mod: integer division by zero");
  // Floats divide by zero as IEEE says.
  ASSERT_TRUE(binary(BinaryOp::Div, make(DType::F32, {3}, {1, -1, 0}),
                     make(DType::F32, {3}, {0, 0, 0}), out));
  expectValues(out, DType::F32, {3}, {kInf, -kInf, kNaN});
}

TEST(BinaryTest, ModTakesTheDivisorsSignUnlessFmod) {
  Tensor a = make(DType::I32, {4}, {-7, 7, -7, 7});
  Tensor b = make(DType::I32, {4}, {3, 3, -3, -3});
  Tensor out;
  ASSERT_TRUE(binary(BinaryOp::Mod, a, b, out));
  expectValues(out, DType::I32, {4}, {2, 1, -1, -2});
  ASSERT_TRUE(binary(BinaryOp::Mod, a, b, out, /*fmod=*/true));
  expectValues(out, DType::I32, {4}, {-1, 1, -1, 1});
  ASSERT_TRUE(binary(BinaryOp::Mod, make(DType::I8, {3}, {-128, 6, -6}),
                     make(DType::I8, {3}, {-1, 4, 4}), out));
  expectValues(out, DType::I8, {3}, {0, 2, 2});
  ASSERT_TRUE(binary(BinaryOp::Mod, make(DType::F32, {3}, {-7.5, 7.5, 5}),
                     make(DType::F32, {3}, {2, -2, 2.5}), out, true));
  expectValues(out, DType::F32, {3}, {-1.5, 1.5, 0});
  Status s = binary(BinaryOp::Mod, make(DType::F32, {1}, {1}),
                    make(DType::F32, {1}, {1}), out);
  expectError(s, "Mod: fmod=0 is not defined for f32");
}

TEST(BinaryTest, PowAcrossExponentDTypes) {
  Tensor out;
  Tensor base = make(DType::F32, {4}, {2, 9, 0.5, -2});
  ASSERT_TRUE(
      binary(BinaryOp::Pow, base, make(DType::F32, {4}, {3, 0.5, 2, 2}), out));
  expectValues(out, DType::F32, {4}, {8, 3, 0.25, 4});
  ASSERT_TRUE(binary(BinaryOp::Pow, base, make(DType::I64, {}, {3}), out));
  expectValues(out, DType::F32, {4}, {8, 729, 0.125, -8});
  ASSERT_TRUE(binary(BinaryOp::Pow, make(DType::I64, {6}, {2, 3, -2, 2, 1, -1}),
                     make(DType::I64, {6}, {10, 0, 3, -1, -5, -3}), out));
  expectValues(out, DType::I64, {6}, {1024, 1, -8, 0, 1, -1});
  ASSERT_TRUE(binary(BinaryOp::Pow, make(DType::I32, {3}, {2, 3, -2}),
                     make(DType::F32, {3}, {0.5, 2, 3}), out));
  expectValues(out, DType::I32, {3}, {1, 9, -8});
  ASSERT_TRUE(binary(BinaryOp::Pow, make(DType::F16, {2}, {1.5, 4}),
                     make(DType::F32, {2}, {2, -0.5}), out));
  expectValues(out, DType::F16, {2}, {2.25, 0.5});
  // The squaring fast path keeps the broadcast shape.
  ASSERT_TRUE(binary(BinaryOp::Pow, make(DType::F32, {2}, {3, -1.5}),
                     make(DType::F32, {1, 1}, {2}), out));
  expectValues(out, DType::F32, {1, 2}, {9, 2.25});
  ASSERT_TRUE(binary(BinaryOp::Pow, make(DType::F32, {2, 2}, {3, -1.5, 0, 4}),
                     make(DType::F32, {1}, {2}), out));
  expectValues(out, DType::F32, {2, 2}, {9, 2.25, 0, 16});
  for (const auto &[sa, sb] : kShapePairs) {
    Tensor a = random(DType::F32, sa, 0.1, 3), b = random(DType::F32, sb);
    ASSERT_TRUE(binary(BinaryOp::Pow, a, b, out));
    expectNear(
        out, binaryRef(a, b, [](double x, double y) { return std::pow(x, y); }),
        2e-6);
  }
  expectError(binary(BinaryOp::Pow, make(DType::U8, {1}, {2}),
                     make(DType::U8, {1}, {2}), out),
              "Pow: u8 ^ u8 is not supported");
}

TEST(BinaryTest, MaxMinPropagateNaN) {
  Tensor a = make(DType::F32, {3}, {kNaN, 1, 2});
  Tensor b = make(DType::F32, {3}, {0, kNaN, 3});
  Tensor out;
  ASSERT_TRUE(binary(BinaryOp::Max, a, b, out));
  expectValues(out, DType::F32, {3}, {kNaN, kNaN, 3});
  ASSERT_TRUE(binary(BinaryOp::Min, a, b, out));
  expectValues(out, DType::F32, {3}, {kNaN, kNaN, 2});
}

TEST(BinaryTest, ComparisonsGiveBool) {
  const std::vector<BinaryCase> cases = {
      {BinaryOp::Equal, [](double a, double b) { return double(a == b); }},
      {BinaryOp::Less, [](double a, double b) { return double(a < b); }},
      {BinaryOp::LessOrEqual,
       [](double a, double b) { return double(a <= b); }},
      {BinaryOp::Greater, [](double a, double b) { return double(a > b); }},
      {BinaryOp::GreaterOrEqual,
       [](double a, double b) { return double(a >= b); }},
  };
  Tensor out;
  ASSERT_TRUE(binary(BinaryOp::Less, make(DType::F32, {3}, {1, kNaN, 3}),
                     make(DType::F32, {}, {2}), out));
  expectValues(out, DType::Bool, {3}, {1, 0, 0});
  for (DType d : {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64,
                  DType::I32, DType::I8, DType::U8, DType::Bool})
    for (const BinaryCase &c : cases)
      for (const auto &[sa, sb] : kShapePairs) {
        if (numElements(sa) > 1000)
          continue;
        Tensor a = random(d, sa, 0, 1), b = random(d, sb, 0, 1);
        if (isFloatType(d)) {
          a = make(d, sa, values(random(DType::I8, sa, 0, 2)));
          b = make(d, sb, values(random(DType::I8, sb, 0, 2)));
        }
        ASSERT_TRUE(binary(c.op, a, b, out));
        EXPECT_EQ(out.dtype(), DType::Bool);
        expectNear(out, binaryRef(a, b, c.ref), 0, 0, binaryOpName(c.op));
      }
}

TEST(BinaryTest, LogicalOpsTakeBool) {
  Tensor a = make(DType::Bool, {4}, {0, 0, 1, 1});
  Tensor b = make(DType::Bool, {4}, {0, 1, 0, 1});
  Tensor out;
  ASSERT_TRUE(binary(BinaryOp::And, a, b, out));
  expectValues(out, DType::Bool, {4}, {0, 0, 0, 1});
  ASSERT_TRUE(binary(BinaryOp::Or, a, b, out));
  expectValues(out, DType::Bool, {4}, {0, 1, 1, 1});
  ASSERT_TRUE(binary(BinaryOp::Xor, a, b, out));
  expectValues(out, DType::Bool, {4}, {0, 1, 1, 0});
  ASSERT_TRUE(binary(BinaryOp::And, make(DType::Bool, {2, 1}, {1, 0}), b, out));
  expectValues(out, DType::Bool, {2, 4}, {0, 1, 0, 1, 0, 0, 0, 0});
  Status s = binary(BinaryOp::And, make(DType::F32, {1}, {1}),
                    make(DType::F32, {1}, {1}), out);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "And: f32 is not supported");
}

TEST(BinaryTest, BitShiftsOnUnsigned) {
  Tensor out;
  ASSERT_TRUE(binary(BinaryOp::BitShiftLeft,
                     make(DType::U8, {4}, {1, 255, 16, 1}),
                     make(DType::U8, {4}, {1, 1, 4, 8}), out));
  expectValues(out, DType::U8, {4}, {2, 254, 0, 0});
  ASSERT_TRUE(binary(BinaryOp::BitShiftRight,
                     make(DType::U32, {3}, {16, 4294967295.0, 5}),
                     make(DType::U32, {}, {2}), out));
  expectValues(out, DType::U32, {3}, {4, 1073741823, 1});
  ASSERT_TRUE(binary(BinaryOp::BitShiftLeft, make(DType::U16, {1}, {65535}),
                     make(DType::U16, {1}, {15}), out));
  expectValues(out, DType::U16, {1}, {32768});
  expectError(binary(BinaryOp::BitShiftLeft, make(DType::I32, {1}, {1}),
                     make(DType::I32, {1}, {1}), out),
              "BitShiftLeft: i32 is not supported");
}

TEST(BinaryTest, ErrorsNameKernelShapesAndDTypes) {
  Tensor out;
  Status s = binary(BinaryOp::Add, Tensor::zeros(DType::F32, {2, 3}),
                    Tensor::zeros(DType::F32, {4, 3}), out);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "Add: shapes 2x3 and 4x3 do not broadcast");
  s = binary(BinaryOp::Mul, Tensor::zeros(DType::F32, {0}),
             Tensor::zeros(DType::F32, {2}), out);
  EXPECT_EQ(s.message(), "Mul: shapes 0 and 2 do not broadcast");
  s = binary(BinaryOp::Add, Tensor::zeros(DType::F32, {2}),
             Tensor::zeros(DType::F16, {2}), out);
  EXPECT_EQ(s.message(), "Add: dtypes f32 and f16 differ");
  expectError(binary(BinaryOp::Add, Tensor::zeros(DType::U16, {2}),
                     Tensor::zeros(DType::U16, {2}), out),
              "Add: u16 is not supported");
}

TEST(BinaryTest, OutputMayAliasAnInput) {
  Tensor a = make(DType::F32, {2, 2}, {1, 2, 3, 4});
  Tensor b = make(DType::F32, {2}, {10, 20});
  ASSERT_TRUE(binary(BinaryOp::Add, a, b, a));
  expectValues(a, DType::F32, {2, 2}, {11, 22, 13, 24});
  ASSERT_TRUE(binary(BinaryOp::Mul, a, a, a));
  expectValues(a, DType::F32, {2, 2}, {121, 484, 169, 576});
}

//===----------------------------------------------------------------------===//
// Variadic
//===----------------------------------------------------------------------===//

TEST(VariadicTest, SumMeanMaxMinBroadcast) {
  std::vector<Tensor> in = {make(DType::F32, {2, 1}, {1, 2}),
                            make(DType::F32, {3}, {10, 20, 30}),
                            make(DType::F32, {}, {100})};
  Tensor out;
  ASSERT_TRUE(variadic(BinaryOp::Add, in, out));
  expectValues(out, DType::F32, {2, 3}, {111, 121, 131, 112, 122, 132});
  ASSERT_TRUE(variadic(BinaryOp::Add, in, out, /*mean=*/true));
  expectNear(out, {37, 121 / 3.0, 131 / 3.0, 112 / 3.0, 122 / 3.0, 44}, 1e-6);
  ASSERT_TRUE(variadic(BinaryOp::Max, in, out));
  expectValues(out, DType::F32, {2, 3}, {100, 100, 100, 100, 100, 100});
  ASSERT_TRUE(variadic(BinaryOp::Min, in, out));
  expectValues(out, DType::F32, {2, 3}, {1, 1, 1, 2, 2, 2});
  ASSERT_TRUE(variadic(BinaryOp::Max, {in[1]}, out));
  expectValues(out, DType::F32, {3}, {10, 20, 30});
  EXPECT_NE(out.raw(), in[1].raw());
  ASSERT_TRUE(
      variadic(BinaryOp::Add,
               {make(DType::F16, {2}, {1, 2}), make(DType::F16, {2}, {2, 4})},
               out, true));
  expectValues(out, DType::F16, {2}, {1.5, 3});
}

TEST(VariadicTest, Errors) {
  Tensor out;
  expectError(variadic(BinaryOp::Add, {}, out),
              "Sum: needs at least one input");
  expectError(variadic(BinaryOp::Sub, {Tensor::zeros(DType::F32, {1})}, out),
              "variadic: Sub is not Max, Min or Add");
  Status s = variadic(
      BinaryOp::Max,
      {Tensor::zeros(DType::F32, {2, 3}), Tensor::zeros(DType::F32, {3}),
       Tensor::zeros(DType::F32, {4, 1, 1}), Tensor::zeros(DType::F32, {2})},
      out);
  EXPECT_EQ(s.message(), "Max: shapes 4x2x3 and 2 do not broadcast");
  s = variadic(
      BinaryOp::Max,
      {Tensor::zeros(DType::F32, {2, 3}), Tensor::zeros(DType::F32, {4, 3})},
      out);
  EXPECT_EQ(s.message(), "Max: shapes 2x3 and 4x3 do not broadcast");
  expectError(
      variadic(BinaryOp::Add, {Tensor::zeros(DType::I32, {2})}, out, true),
      "Mean: i32 is not supported");
}

//===----------------------------------------------------------------------===//
// Unary
//===----------------------------------------------------------------------===//

double sigmoidRef(double x) { return 1 / (1 + std::exp(-x)); }

struct UnaryCase {
  UnaryOp op;
  double lo, hi;
  std::function<double(double)> ref;
};

const std::vector<UnaryCase> kFloatUnary = {
    {UnaryOp::Neg, -8, 8, [](double x) { return -x; }},
    {UnaryOp::Abs, -8, 8, [](double x) { return std::abs(x); }},
    {UnaryOp::Sqrt, 0, 100, [](double x) { return std::sqrt(x); }},
    {UnaryOp::Reciprocal, 0.1, 8, [](double x) { return 1 / x; }},
    {UnaryOp::Exp, -10, 10, [](double x) { return std::exp(x); }},
    {UnaryOp::Log, 0.01, 100, [](double x) { return std::log(x); }},
    {UnaryOp::Sin, -3, 3, [](double x) { return std::sin(x); }},
    {UnaryOp::Cos, -3, 3, [](double x) { return std::cos(x); }},
    {UnaryOp::Tan, -1.4, 1.4, [](double x) { return std::tan(x); }},
    {UnaryOp::Tanh, -8, 8, [](double x) { return std::tanh(x); }},
    {UnaryOp::Sigmoid, -30, 30, sigmoidRef},
    {UnaryOp::Relu, -8, 8, [](double x) { return std::max(x, 0.0); }},
    {UnaryOp::Erf, -4, 4, [](double x) { return std::erf(x); }},
    {UnaryOp::Floor, -8, 8, [](double x) { return std::floor(x); }},
    {UnaryOp::Ceil, -8, 8, [](double x) { return std::ceil(x); }},
    {UnaryOp::Round, -8, 8, [](double x) { return std::nearbyint(x); }},
    {UnaryOp::Sign, -8, 8, [](double x) { return double((x > 0) - (x < 0)); }},
    {UnaryOp::Silu, -30, 30, [](double x) { return x * sigmoidRef(x); }},
    {UnaryOp::GeluErf, -8, 8,
     [](double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }},
    {UnaryOp::GeluTanh, -8, 8,
     [](double x) {
       double u = std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x);
       return 0.5 * x * (1 + std::tanh(u));
     }},
    {UnaryOp::Softplus, -30, 30,
     [](double x) { return std::log1p(std::exp(x)); }},
    {UnaryOp::Identity, -8, 8, [](double x) { return x; }},
};

TEST(UnaryTest, FloatOpsMatchReference) {
  for (DType d : {DType::F32, DType::F64, DType::F16, DType::BF16})
    for (const UnaryCase &c : kFloatUnary) {
      Tensor x = random(d, {3, 7, 5}, c.lo, c.hi);
      Tensor out;
      ASSERT_TRUE(unary(c.op, x, out)) << unaryOpName(c.op);
      EXPECT_EQ(out.dtype(), d);
      EXPECT_EQ(out.shape(), x.shape());
      std::vector<double> want = values(x);
      for (double &v : want)
        v = c.ref(v);
      // Near a zero of the function, float's absolute error dominates.
      double atol = d == DType::F32 ? 1e-6 : d == DType::F64 ? 1e-13 : 1e-2;
      expectNear(out, want, tolerance(d, 2e-6), atol,
                 unaryOpName(c.op) + (" " + x.describe()));
    }
}

TEST(UnaryTest, LargeTensorAcrossThreads) {
  Tensor x = random(DType::F32, {3, 70001}, -10, 10);
  Tensor out;
  ASSERT_TRUE(unary(UnaryOp::Silu, x, out));
  std::vector<double> want = values(x);
  for (double &v : want)
    v = v * sigmoidRef(v);
  expectNear(out, want, 2e-6, 1e-7);
}

TEST(UnaryTest, HandCasesAndSpecialValues) {
  Tensor out;
  ASSERT_TRUE(unary(
      UnaryOp::Round,
      make(DType::F32, {7}, {0.5, 1.5, 2.5, -0.5, -2.5, 2.6, -1.4}), out));
  expectValues(out, DType::F32, {7}, {0, 2, 2, -0.0, -2, 3, -1});
  ASSERT_TRUE(
      unary(UnaryOp::Sign, make(DType::F32, {4}, {-3, 0, 2, kNaN}), out));
  expectValues(out, DType::F32, {4}, {-1, 0, 1, kNaN});
  ASSERT_TRUE(unary(UnaryOp::Relu, make(DType::F32, {3}, {-1, 2, kNaN}), out));
  expectValues(out, DType::F32, {3}, {0, 2, kNaN});
  ASSERT_TRUE(unary(UnaryOp::Reciprocal, make(DType::F32, {2}, {0, 4}), out));
  expectValues(out, DType::F32, {2}, {kInf, 0.25});
  ASSERT_TRUE(unary(UnaryOp::Floor, make(DType::F32, {2}, {-1.5, 1.5}), out));
  expectValues(out, DType::F32, {2}, {-2, 1});
  ASSERT_TRUE(
      unary(UnaryOp::Sigmoid, make(DType::F32, {3}, {0, -200, 200}), out));
  expectValues(out, DType::F32, {3}, {0.5, 0, 1});
  ASSERT_TRUE(
      unary(UnaryOp::IsNaN, make(DType::F32, {4}, {0, kNaN, kInf, -1}), out));
  expectValues(out, DType::Bool, {4}, {0, 1, 0, 0});
  ASSERT_TRUE(unary(UnaryOp::IsInf,
                    make(DType::F16, {4}, {0, kNaN, kInf, -kInf}), out));
  expectValues(out, DType::Bool, {4}, {0, 0, 1, 1});
  ASSERT_TRUE(unary(UnaryOp::Not, make(DType::Bool, {2}, {0, 1}), out));
  expectValues(out, DType::Bool, {2}, {1, 0});
  ASSERT_TRUE(unary(UnaryOp::Exp, Tensor::scalar<float>(DType::F32, 0), out));
  expectValues(out, DType::F32, {}, {1});
  ASSERT_TRUE(unary(UnaryOp::Exp, Tensor::empty(DType::F32, {0, 4}), out));
  EXPECT_EQ(out.shape(), (Shape{0, 4}));
}

TEST(UnaryTest, IntegerOps) {
  Tensor out;
  for (DType d : {DType::I64, DType::I32, DType::I16, DType::I8}) {
    Tensor x = make(d, {4}, {-3, 0, 5, -1});
    ASSERT_TRUE(unary(UnaryOp::Neg, x, out));
    expectValues(out, d, {4}, {3, 0, -5, 1});
    ASSERT_TRUE(unary(UnaryOp::Abs, x, out));
    expectValues(out, d, {4}, {3, 0, 5, 1});
    ASSERT_TRUE(unary(UnaryOp::Sign, x, out));
    expectValues(out, d, {4}, {-1, 0, 1, -1});
    ASSERT_TRUE(unary(UnaryOp::Relu, x, out));
    expectValues(out, d, {4}, {0, 0, 5, 0});
    ASSERT_TRUE(unary(UnaryOp::Identity, x, out));
    expectValues(out, d, {4}, {-3, 0, 5, -1});
  }
  ASSERT_TRUE(unary(UnaryOp::Neg, make(DType::I8, {1}, {-128}), out));
  expectValues(out, DType::I8, {1}, {-128});
  ASSERT_TRUE(unary(UnaryOp::Abs, make(DType::U8, {2}, {0, 200}), out));
  expectValues(out, DType::U8, {2}, {0, 200});
  Tensor bools = make(DType::Bool, {2}, {1, 0});
  ASSERT_TRUE(unary(UnaryOp::Identity, bools, out));
  expectValues(out, DType::Bool, {2}, {1, 0});
  EXPECT_NE(out.raw(), bools.raw());
}

TEST(UnaryTest, Errors) {
  Tensor out;
  Status s = unary(UnaryOp::Sqrt, Tensor::zeros(DType::I64, {2}), out);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "Sqrt: i64 is not supported");
  expectError(unary(UnaryOp::Not, Tensor::zeros(DType::F32, {2}), out),
              "Not: f32 is not supported");
  expectError(unary(UnaryOp::Neg, Tensor::zeros(DType::U8, {2}), out),
              "Neg: u8 is not supported");
  expectError(unary(UnaryOp::IsNaN, Tensor::zeros(DType::I32, {2}), out),
              "IsNaN: i32 is not supported");
}

//===----------------------------------------------------------------------===//
// Clip, Cast, Where
//===----------------------------------------------------------------------===//

TEST(ClipTest, OptionalBounds) {
  Tensor x = make(DType::F32, {5}, {-5, -1, 0.5, 3, kNaN});
  Tensor lo = make(DType::F32, {}, {-2}), hi = make(DType::F32, {1}, {1});
  Tensor out;
  ASSERT_TRUE(clip(x, lo, hi, out));
  expectValues(out, DType::F32, {5}, {-2, -1, 0.5, 1, kNaN});
  ASSERT_TRUE(clip(x, lo, Tensor(), out));
  expectValues(out, DType::F32, {5}, {-2, -1, 0.5, 3, kNaN});
  ASSERT_TRUE(clip(x, Tensor(), hi, out));
  expectValues(out, DType::F32, {5}, {-5, -1, 0.5, 1, kNaN});
  ASSERT_TRUE(clip(x, Tensor(), Tensor(), out));
  expectValues(out, DType::F32, {5}, {-5, -1, 0.5, 3, kNaN});
  // min > max: everything becomes max.
  ASSERT_TRUE(
      clip(x, make(DType::F32, {}, {2}), make(DType::F32, {}, {1}), out));
  expectValues(out, DType::F32, {5}, {1, 1, 1, 1, kNaN});
  ASSERT_TRUE(clip(make(DType::I32, {3}, {-9, 4, 9}), make(DType::I32, {}, {0}),
                   make(DType::I32, {}, {5}), out));
  expectValues(out, DType::I32, {3}, {0, 4, 5});
  ASSERT_TRUE(clip(make(DType::F16, {2}, {-70000, 0.25}),
                   make(DType::F16, {}, {-1}), Tensor(), out));
  expectValues(out, DType::F16, {2}, {-1, 0.25});
  Tensor big = random(DType::F32, {100000});
  ASSERT_TRUE(clip(big, lo, hi, out));
  std::vector<double> want = values(big);
  for (double &v : want)
    v = std::min(std::max(v, -2.0), 1.0);
  expectNear(out, want, 0);
}

TEST(ClipTest, Errors) {
  Tensor out;
  Tensor x = Tensor::zeros(DType::F32, {2});
  Status s = clip(x, Tensor::zeros(DType::F16, {}), Tensor(), out);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(),
            "Clip: min must be a one-element f32 tensor, got f16[scalar]");
  expectError(clip(x, Tensor(), Tensor::zeros(DType::F32, {2}), out),
              "Clip: max must be a one-element f32 tensor, got f32[2]");
  expectError(clip(Tensor::zeros(DType::Bool, {2}), Tensor(), Tensor(), out),
              "Clip: bool is not supported");
}

TEST(CastTest, FloatToIntegerTruncatesSaturatesAndZeroesNaN) {
  Tensor x =
      make(DType::F32, {8}, {1.9, -1.9, kNaN, 3e9, -3e9, kInf, -kInf, -0.5});
  Tensor out;
  ASSERT_TRUE(cast(x, DType::I32, out));
  expectValues(
      out, DType::I32, {8},
      {1, -1, 0, 2147483647.0, -2147483648.0, 2147483647.0, -2147483648.0, 0});
  ASSERT_TRUE(cast(x, DType::I64, out));
  EXPECT_EQ(out.data<int64_t>()[5], std::numeric_limits<int64_t>::max());
  EXPECT_EQ(out.data<int64_t>()[6], std::numeric_limits<int64_t>::min());
  ASSERT_TRUE(cast(make(DType::F32, {5}, {-1.5, 300, 255.9, -0.5, 7.7}),
                   DType::U8, out));
  expectValues(out, DType::U8, {5}, {0, 255, 255, 0, 7});
  ASSERT_TRUE(cast(make(DType::F64, {2}, {-128.9, 127.9}), DType::I8, out));
  expectValues(out, DType::I8, {2}, {-128, 127});
}

TEST(CastTest, NarrowingFloatsRoundToNearestEven) {
  float tie = 1.0f + std::ldexp(1.0f, -11);       // between 1 and 1 + 2^-10
  float tieUp = 1.0f + 3 * std::ldexp(1.0f, -11); // rounds to 1 + 2^-9
  Tensor x = make(DType::F32, {4}, {tie, tieUp, 65520, 1e-8});
  Tensor out;
  ASSERT_TRUE(cast(x, DType::F16, out));
  expectValues(out, DType::F16, {4},
               {1, 1 + std::ldexp(1.0, -9), kInf,
                quant::halfToFloat(quant::floatToHalf(1e-8f))});
  ASSERT_TRUE(cast(x, DType::BF16, out));
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(out.data<uint16_t>()[i],
              quant::floatToBFloat16(x.data<float>()[i]));
  ASSERT_TRUE(cast(out, DType::F32, out));
  EXPECT_EQ(out.dtype(), DType::F32);
  ASSERT_TRUE(cast(make(DType::F64, {1}, {1.0 / 3}), DType::F32, out));
  EXPECT_EQ(out.data<float>()[0], 1.0f / 3);
}

TEST(CastTest, IntegersWrapAndBoolIsNonZero) {
  Tensor out;
  ASSERT_TRUE(cast(make(DType::I64, {3}, {300, -129, 255}), DType::I8, out));
  expectValues(out, DType::I8, {3}, {44, 127, -1});
  ASSERT_TRUE(cast(make(DType::I32, {1}, {-1}), DType::U8, out));
  expectValues(out, DType::U8, {1}, {255});
  ASSERT_TRUE(
      cast(make(DType::F32, {5}, {0, -0.0, 0.5, kNaN, -2}), DType::Bool, out));
  expectValues(out, DType::Bool, {5}, {0, 0, 1, 1, 1});
  ASSERT_TRUE(cast(make(DType::I64, {3}, {0, 7, -1}), DType::Bool, out));
  expectValues(out, DType::Bool, {3}, {0, 1, 1});
  ASSERT_TRUE(cast(make(DType::Bool, {2}, {0, 1}), DType::F16, out));
  expectValues(out, DType::F16, {2}, {0, 1});
}

TEST(CastTest, EveryPairOnRepresentableValues) {
  const DType all[] = {DType::F64, DType::F32, DType::F16, DType::BF16,
                       DType::I64, DType::I32, DType::I16, DType::I8,
                       DType::U8,  DType::U16, DType::U32, DType::U64,
                       DType::Bool};
  for (DType from : all)
    for (DType to : all) {
      Tensor x = make(
          from, {2, 3},
          values(random(DType::U8, {2, 3}, 0, from == DType::Bool ? 1 : 100)));
      Tensor out;
      ASSERT_TRUE(cast(x, to, out));
      EXPECT_EQ(out.shape(), x.shape());
      std::vector<double> want = values(x);
      if (to == DType::Bool)
        for (double &v : want)
          v = v != 0;
      expectNear(out, want, 0, 0,
                 dtypeName(from) + std::string(" -> ") + dtypeName(to));
    }
}

TEST(WhereTest, ThreeWayBroadcast) {
  Tensor cond = make(DType::Bool, {2, 1}, {1, 0});
  Tensor x = make(DType::F32, {3}, {1, 2, 3});
  Tensor y = make(DType::F32, {}, {9});
  Tensor out;
  ASSERT_TRUE(where(cond, x, y, out));
  expectValues(out, DType::F32, {2, 3}, {1, 2, 3, 9, 9, 9});
  const std::vector<std::vector<Shape>> shapes = {
      {{}, {}, {}},
      {{4}, {4}, {4}},
      {{2, 3, 4}, {4}, {}},
      {{2, 1, 4}, {3, 1}, {2, 3, 4}},
      {{1, 5}, {4, 1}, {1}},
      {{0, 3}, {3}, {1, 3}},
      {{3, 30000}, {30000}, {3, 1}},
  };
  for (DType d : {DType::F32, DType::I64, DType::F16, DType::U8})
    for (const auto &s : shapes) {
      Tensor c = random(DType::Bool, s[0], 0, 1);
      Tensor a = random(d, s[1], 0, 100), b = random(d, s[2], 0, 100);
      ASSERT_TRUE(where(c, a, b, out));
      Shape shape = broadcastRef(s);
      EXPECT_EQ(out.shape(), shape);
      std::vector<double> vc = values(c), va = values(a), vb = values(b);
      std::vector<double> want(numElements(shape));
      for (int64_t i = 0; i < numElements(shape); ++i)
        want[i] = vc[sourceIndex(s[0], shape, i)]
                      ? va[sourceIndex(s[1], shape, i)]
                      : vb[sourceIndex(s[2], shape, i)];
      expectNear(out, want, 0);
    }
}

TEST(WhereTest, Errors) {
  Tensor out;
  Tensor f = Tensor::zeros(DType::F32, {2});
  Status s = where(f, f, f, out);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "Where: condition must be bool, got f32[2]");
  Tensor c = Tensor::zeros(DType::Bool, {2});
  EXPECT_EQ(where(c, f, Tensor::zeros(DType::F16, {2}), out).message(),
            "Where: dtypes f32 and f16 differ");
  EXPECT_EQ(where(c, f, Tensor::zeros(DType::F32, {3}), out).message(),
            "Where: shapes 2, 2 and 3 do not broadcast");
}

//===----------------------------------------------------------------------===//
// Reductions
//===----------------------------------------------------------------------===//

TEST(ReduceTest, HandCases) {
  Tensor x = make(DType::F32, {2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor out;
  ASSERT_TRUE(reduce(ReduceOp::Sum, x, {1}, true, false, out));
  expectValues(out, DType::F32, {2, 1}, {6, 15});
  ASSERT_TRUE(reduce(ReduceOp::Sum, x, {0}, false, false, out));
  expectValues(out, DType::F32, {3}, {5, 7, 9});
  ASSERT_TRUE(reduce(ReduceOp::Mean, x, {}, false, false, out));
  expectValues(out, DType::F32, {}, {3.5});
  ASSERT_TRUE(reduce(ReduceOp::Max, x, {-1}, false, false, out));
  expectValues(out, DType::F32, {2}, {3, 6});
  ASSERT_TRUE(reduce(ReduceOp::Prod, x, {0, 1}, true, false, out));
  expectValues(out, DType::F32, {1, 1}, {720});
  ASSERT_TRUE(reduce(ReduceOp::SumSquare, x, {1}, false, false, out));
  expectValues(out, DType::F32, {2}, {14, 77});
  ASSERT_TRUE(reduce(ReduceOp::L2, make(DType::F32, {2}, {3, 4}), {0}, false,
                     false, out));
  expectValues(out, DType::F32, {}, {5});
  ASSERT_TRUE(reduce(ReduceOp::LogSumExp, make(DType::F32, {2}, {1000, 1000}),
                     {0}, false, false, out));
  expectNear(out, {1000 + std::log(2.0)}, 1e-6);
  ASSERT_TRUE(reduce(ReduceOp::LogSumExp,
                     make(DType::F32, {2, 2}, {-kInf, -kInf, kInf, 1}), {1},
                     false, false, out));
  expectValues(out, DType::F32, {2}, {-kInf, kInf});
  ASSERT_TRUE(reduce(ReduceOp::Sum, x, {}, true, /*noop=*/true, out));
  expectValues(out, DType::F32, {2, 3}, {1, 2, 3, 4, 5, 6});
  ASSERT_TRUE(reduce(ReduceOp::Max, make(DType::F32, {3}, {1, kNaN, 2}), {0},
                     false, false, out));
  expectValues(out, DType::F32, {}, {kNaN});
}

TEST(ReduceTest, EmptyReductionsGiveIdentities) {
  Tensor x = Tensor::empty(DType::F32, {2, 0});
  const std::pair<ReduceOp, double> cases[] = {
      {ReduceOp::Sum, 0},     {ReduceOp::Prod, 1},
      {ReduceOp::Max, -kInf}, {ReduceOp::Min, kInf},
      {ReduceOp::Mean, kNaN}, {ReduceOp::SumSquare, 0},
      {ReduceOp::L2, 0},      {ReduceOp::LogSumExp, -kInf}};
  Tensor out;
  for (auto [op, value] : cases) {
    ASSERT_TRUE(reduce(op, x, {1}, false, false, out));
    expectValues(out, DType::F32, {2}, {value, value});
  }
  ASSERT_TRUE(reduce(ReduceOp::Max, Tensor::empty(DType::I32, {0}), {0}, false,
                     false, out));
  expectValues(out, DType::I32, {}, {-2147483648.0});
  ASSERT_TRUE(reduce(ReduceOp::Sum, x, {0}, true, false, out));
  EXPECT_EQ(out.shape(), (Shape{1, 0}));
}

struct ReduceShapeCase {
  Shape shape;
  std::vector<int64_t> axes;
};

const std::vector<ReduceShapeCase> kReduceShapes = {
    {{}, {}},
    {{5}, {0}},
    {{5}, {}},
    {{3, 4}, {1}},
    {{3, 4}, {0}},
    {{3, 4}, {-1}},
    {{3, 4}, {0, 1}},
    {{2, 3, 4}, {1}},
    {{2, 3, 4}, {0, 2}},
    {{2, 3, 4}, {-1, -3}},
    {{2, 3, 4}, {2, 0, 1}},
    {{2, 1, 3, 4}, {1, 2}},
    {{2, 5, 1, 3}, {1, 3}},
    {{3, 1, 4, 2}, {0, 2}},
    {{4, 0, 3}, {0}},
    {{1, 1, 1}, {}},
    {{3, 9000}, {1}},
    {{2000, 33}, {0}},
    {{3, 700, 300}, {1}},
    {{1, 70000}, {}},
};

TEST(ReduceTest, MatchesReferenceOverShapesAndAxes) {
  const ReduceOp ops[] = {
      ReduceOp::Sum,  ReduceOp::Mean,      ReduceOp::Max, ReduceOp::Min,
      ReduceOp::Prod, ReduceOp::SumSquare, ReduceOp::L2,  ReduceOp::LogSumExp};
  for (const ReduceShapeCase &c : kReduceShapes)
    for (ReduceOp op : ops)
      for (bool keep : {false, true}) {
        bool prod = op == ReduceOp::Prod;
        Tensor x = random(DType::F32, c.shape, prod ? 0.9 : -3, prod ? 1.1 : 3);
        Tensor out;
        ASSERT_TRUE(reduce(op, x, c.axes, keep, false, out));
        std::vector<bool> mask = axisMask(x.rank(), c.axes);
        Shape shape;
        for (int64_t d = 0; d < x.rank(); ++d)
          if (!mask[d] || keep)
            shape.push_back(mask[d] ? 1 : c.shape[d]);
        EXPECT_EQ(out.shape(), shape);
        std::vector<double> vx = values(x), want;
        for (const auto &group : groupsOf(c.shape, mask)) {
          std::vector<double> g;
          for (int64_t i : group)
            g.push_back(vx[i]);
          want.push_back(reduceRef(op, g));
        }
        expectNear(out, want, 1e-6, 1e-6,
                   reduceOpName(op) + (" " + x.describe()));
      }
}

TEST(ReduceTest, DTypes) {
  Tensor out;
  for (DType d : {DType::F16, DType::BF16, DType::F64, DType::I64, DType::I32})
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min,
                        ReduceOp::Prod, ReduceOp::Mean, ReduceOp::SumSquare})
      for (std::vector<int64_t> axes :
           {std::vector<int64_t>{1}, std::vector<int64_t>{0, 2}}) {
        // Products of 15 values in [-2, 2] stay within f16's range.
        Tensor x = random(d, {3, 4, 5}, -2, 2);
        ASSERT_TRUE(reduce(op, x, axes, false, false, out));
        EXPECT_EQ(out.dtype(), d);
        std::vector<double> vx = values(x), want;
        for (const auto &group : groupsOf(x.shape(), axisMask(3, axes))) {
          std::vector<double> g;
          for (int64_t i : group)
            g.push_back(vx[i]);
          double r = reduceRef(op, g);
          // Integer Mean truncates.
          want.push_back(isFloatType(d) ? r : std::trunc(r));
        }
        bool half = d == DType::F16 || d == DType::BF16;
        expectNear(out, want, tolerance(d), half ? 1e-3 : 0,
                   reduceOpName(op) + (" " + x.describe()));
      }
}

TEST(ReduceTest, Errors) {
  Tensor out;
  Tensor x = Tensor::zeros(DType::F32, {2, 3});
  Status s = reduce(ReduceOp::Sum, x, {2}, true, false, out);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "ReduceSum: axis 2 is out of range for rank 2");
  expectError(reduce(ReduceOp::Mean, x, {-3}, true, false, out),
              "ReduceMean: axis -3 is out of range for rank 2");
  expectError(reduce(ReduceOp::Max, x, {1, -1}, true, false, out),
              "ReduceMax: axis -1 appears twice");
  expectError(reduce(ReduceOp::L2, Tensor::zeros(DType::I64, {2}), {0}, true,
                     false, out),
              "ReduceL2: i64 is not supported");
  expectError(reduce(ReduceOp::Sum, Tensor::zeros(DType::U8, {2}), {0}, true,
                     false, out),
              "ReduceSum: u8 is not supported");
}

TEST(ArgReduceTest, HandCases) {
  Tensor x = make(DType::F32, {2, 3}, {1, 3, 3, 5, 2, 5});
  Tensor out;
  ASSERT_TRUE(argReduce(true, x, 1, false, false, out));
  expectValues(out, DType::I64, {2}, {1, 0});
  ASSERT_TRUE(argReduce(true, x, -1, true, true, out));
  expectValues(out, DType::I64, {2, 1}, {2, 2});
  ASSERT_TRUE(argReduce(false, x, 0, true, false, out));
  expectValues(out, DType::I64, {1, 3}, {0, 1, 0});
  Tensor nan = make(DType::F32, {4}, {1, kNaN, 3, kNaN});
  ASSERT_TRUE(argReduce(true, nan, 0, false, false, out));
  expectValues(out, DType::I64, {}, {1});
  ASSERT_TRUE(argReduce(false, nan, 0, false, false, out));
  expectValues(out, DType::I64, {}, {1});
  ASSERT_TRUE(argReduce(true, nan, 0, false, true, out));
  expectValues(out, DType::I64, {}, {3});
  // The same along a strided axis.
  Tensor columns = make(DType::F32, {3, 2}, {1, kNaN, kNaN, 2, 3, kNaN});
  ASSERT_TRUE(argReduce(true, columns, 0, false, false, out));
  expectValues(out, DType::I64, {2}, {1, 0});
  ASSERT_TRUE(argReduce(false, columns, 0, false, true, out));
  expectValues(out, DType::I64, {2}, {1, 2});
}

TEST(ArgReduceTest, MatchesReference) {
  const std::vector<std::pair<Shape, int64_t>> cases = {
      {{7}, 0},        {{3, 4}, 0},    {{3, 4}, 1},    {{2, 3, 4}, 1},
      {{2, 3, 4}, -3}, {{2, 0, 3}, 2}, {{4, 5000}, 1}, {{300, 400}, 0}};
  for (DType d : {DType::F32, DType::I32, DType::F16, DType::U8})
    for (const auto &[shape, axis] : cases)
      for (bool isMax : {true, false})
        for (bool last : {false, true}) {
          // Few distinct values, so that ties happen.
          Tensor x = random(d, shape, 0, 5);
          if (isFloatType(d))
            x = make(d, shape, values(random(DType::I8, shape, 0, 5)));
          Tensor out;
          ASSERT_TRUE(argReduce(isMax, x, axis, false, last, out));
          std::vector<double> vx = values(x), want;
          std::vector<bool> mask = axisMask(x.rank(), {axis});
          for (const auto &group : groupsOf(shape, mask)) {
            size_t best = 0;
            for (size_t j = 1; j < group.size(); ++j) {
              double v = vx[group[j]], b = vx[group[best]];
              if ((isMax ? v > b : v < b) || (last && v == b))
                best = j;
            }
            want.push_back(double(best));
          }
          expectNear(out, want, 0, 0, x.describe());
        }
}

TEST(ArgReduceTest, Errors) {
  Tensor out;
  Status s =
      argReduce(true, Tensor::zeros(DType::F32, {2, 3}), 2, false, false, out);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "ArgMax: axis 2 is out of range for rank 2");
  EXPECT_EQ(
      argReduce(false, Tensor::zeros(DType::F32, {2, 0}), 1, false, false, out)
          .message(),
      "ArgMin: axis 1 of 2x0 is empty");
  expectError(
      argReduce(true, Tensor::zeros(DType::Bool, {2}), 0, false, false, out),
      "ArgMax: bool is not supported");
}

//===----------------------------------------------------------------------===//
// Softmax and CumSum
//===----------------------------------------------------------------------===//

TEST(SoftmaxTest, HandCases) {
  Tensor out;
  ASSERT_TRUE(softmax(make(DType::F32, {3}, {1, 2, 3}), 0, false, out));
  expectNear(out,
             {0.09003057317038046, 0.24472847105479764, 0.6652409557748219},
             1e-6);
  ASSERT_TRUE(softmax(make(DType::F32, {3}, {1, 2, 3}), -1, true, out));
  expectNear(out,
             {-2.4076059644443806, -1.4076059644443806, -0.40760596444438056},
             1e-6);
  ASSERT_TRUE(softmax(make(DType::F32, {2}, {1000, 1001}), 0, false, out));
  expectNear(out, {0.2689414213699951, 0.7310585786300049}, 1e-6);
  ASSERT_TRUE(softmax(make(DType::F32, {2, 2}, {0, 0, 1, 3}), 0, false, out));
  expectNear(out,
             {0.2689414213699951, 0.04742587317756678, 0.7310585786300049,
              0.9525741268224334},
             1e-6);
  ASSERT_TRUE(softmax(make(DType::F32, {3}, {-kInf, 0, 0}), 0, false, out));
  expectValues(out, DType::F32, {3}, {0, 0.5, 0.5});
}

TEST(SoftmaxTest, MatchesReference) {
  const std::vector<std::pair<Shape, int64_t>> cases = {
      {{5}, 0},       {{3, 4, 5}, -1}, {{3, 4, 5}, 1},
      {{3, 4, 5}, 0}, {{2, 0}, 1},     {{1, 1}, 1},
      {{8, 5000}, 1}, {{3000, 20}, 0}, {{2, 100, 70}, 1}};
  for (DType d : {DType::F32, DType::F64, DType::F16, DType::BF16})
    for (const auto &[shape, axis] : cases)
      for (bool log : {false, true}) {
        Tensor x = random(d, shape, -20, 20);
        Tensor out;
        ASSERT_TRUE(softmax(x, axis, log, out));
        EXPECT_EQ(out.dtype(), d);
        std::vector<double> vx = values(x), want(vx.size());
        for (const auto &group : groupsOf(shape, axisMask(x.rank(), {axis}))) {
          double m = -kInf, sum = 0;
          for (int64_t i : group)
            m = std::max(m, vx[i]);
          for (int64_t i : group)
            sum += std::exp(vx[i] - m);
          for (int64_t i : group)
            want[i] =
                log ? vx[i] - m - std::log(sum) : std::exp(vx[i] - m) / sum;
        }
        expectNear(out, want, tolerance(d, 1e-5),
                   d == DType::F16 || d == DType::BF16 ? 1e-3 : 1e-7,
                   x.describe());
      }
}

TEST(SoftmaxTest, Errors) {
  Tensor out;
  Status s = softmax(Tensor::zeros(DType::F32, {2, 3}), 2, false, out);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "Softmax: axis 2 is out of range for rank 2");
  expectError(softmax(Tensor::zeros(DType::I32, {2}), 0, true, out),
              "LogSoftmax: i32 is not supported");
}

TEST(CumSumTest, OnnxExamples) {
  Tensor x = make(DType::F32, {5}, {1, 2, 3, 4, 5});
  Tensor out;
  ASSERT_TRUE(cumsum(x, 0, false, false, out));
  expectValues(out, DType::F32, {5}, {1, 3, 6, 10, 15});
  ASSERT_TRUE(cumsum(x, 0, true, false, out));
  expectValues(out, DType::F32, {5}, {0, 1, 3, 6, 10});
  ASSERT_TRUE(cumsum(x, 0, false, true, out));
  expectValues(out, DType::F32, {5}, {15, 14, 12, 9, 5});
  ASSERT_TRUE(cumsum(x, -1, true, true, out));
  expectValues(out, DType::F32, {5}, {14, 12, 9, 5, 0});
  Tensor m = make(DType::I64, {2, 3}, {1, 2, 3, 4, 5, 6});
  ASSERT_TRUE(cumsum(m, 0, false, false, out));
  expectValues(out, DType::I64, {2, 3}, {1, 2, 3, 5, 7, 9});
  ASSERT_TRUE(cumsum(m, 1, false, false, out));
  expectValues(out, DType::I64, {2, 3}, {1, 3, 6, 4, 9, 15});
}

TEST(CumSumTest, MatchesReference) {
  const std::vector<std::pair<Shape, int64_t>> cases = {
      {{6}, 0},    {{3, 4, 5}, 0}, {{3, 4, 5}, 1},  {{3, 4, 5}, -1},
      {{0, 4}, 1}, {{4, 0}, 1},    {{2, 20000}, 1}, {{5000, 9}, 0}};
  for (DType d : {DType::F32, DType::F64, DType::I64, DType::I32})
    for (const auto &[shape, axis] : cases)
      for (bool exclusive : {false, true})
        for (bool reverse : {false, true}) {
          Tensor x = random(d, shape, -5, 5);
          Tensor out;
          ASSERT_TRUE(cumsum(x, axis, exclusive, reverse, out));
          std::vector<double> vx = values(x), want(vx.size());
          for (auto group : groupsOf(shape, axisMask(x.rank(), {axis}))) {
            if (reverse)
              std::reverse(group.begin(), group.end());
            double sum = 0;
            for (int64_t i : group) {
              want[i] = exclusive ? sum : sum + vx[i];
              sum += vx[i];
            }
          }
          expectNear(out, want, tolerance(d), isFloatType(d) ? 1e-5 : 0,
                     x.describe());
        }
}

TEST(CumSumTest, Errors) {
  Tensor out;
  Status s = cumsum(Tensor::zeros(DType::F32, {2}), 1, false, false, out);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "CumSum: axis 1 is out of range for rank 1");
  expectError(cumsum(Tensor::zeros(DType::U8, {2}), 0, false, false, out),
              "CumSum: u8 is not supported");
}

//===----------------------------------------------------------------------===//
// Normalizations and SwiGLU
//===----------------------------------------------------------------------===//

/// Normalizes rows of n elements: (x - mean) / sqrt(var + eps) * w + b,
/// with var around 0 (RMSNorm) unless `centered`.
std::vector<double> normRef(const std::vector<double> &x, int64_t n,
                            const std::vector<double> &w,
                            const std::vector<double> &b, double eps,
                            bool centered, std::vector<double> *inv = nullptr) {
  std::vector<double> y(x.size());
  for (size_t r = 0; n && r < x.size() / n; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; ++i)
      mean += centered ? x[r * n + i] / n : 0;
    for (int64_t i = 0; i < n; ++i)
      var += (x[r * n + i] - mean) * (x[r * n + i] - mean) / n;
    double s = 1 / std::sqrt(var + eps);
    if (inv)
      inv->push_back(s);
    for (int64_t i = 0; i < n; ++i)
      y[r * n + i] = (x[r * n + i] - mean) * s * w[i] + (b.empty() ? 0 : b[i]);
  }
  return y;
}

TEST(RmsNormTest, HandCase) {
  Tensor out, inv;
  ASSERT_TRUE(rmsNorm(make(DType::F32, {1, 2}, {3, 4}),
                      make(DType::F32, {2}, {1, 2}), 0, out, &inv));
  expectNear(out, {0.848528137423857, 2.262741699796952}, 1e-6);
  EXPECT_EQ(inv.shape(), (Shape{1, 1}));
  EXPECT_EQ(inv.dtype(), DType::F32);
  expectNear(inv, {0.282842712474619}, 1e-6);
}

TEST(RmsNormTest, MatchesReference) {
  const std::vector<Shape> shapes = {
      {8}, {2, 7, 64}, {4, 5000}, {300, 96}, {0, 16}};
  for (DType d : {DType::F32, DType::F16, DType::BF16, DType::F64})
    for (DType wd : {DType::F32, DType::F16})
      for (const Shape &shape : shapes) {
        Tensor x = random(d, shape, -3, 3);
        Tensor w = random(wd, {shape.back()}, 0.5, 1.5);
        Tensor out, inv;
        ASSERT_TRUE(rmsNorm(x, w, 1e-5f, out, &inv));
        EXPECT_EQ(out.dtype(), d);
        EXPECT_EQ(out.shape(), shape);
        Shape statShape = shape;
        statShape.back() = 1;
        EXPECT_EQ(inv.shape(), statShape);
        std::vector<double> wantInv;
        std::vector<double> want = normRef(values(x), shape.back(), values(w),
                                           {}, 1e-5, false, &wantInv);
        expectNear(out, want, tolerance(d, 1e-5), 1e-6, x.describe());
        expectNear(inv, wantInv, 1e-5, 0, "invStdDev");
      }
  Tensor out;
  ASSERT_TRUE(
      rmsNorm(random(DType::F32, {3, 4}), random(DType::F32, {4}), 1e-6f, out));
}

TEST(RmsNormTest, Errors) {
  Tensor out;
  Status s = rmsNorm(Tensor::zeros(DType::F32, {2, 4}),
                     Tensor::zeros(DType::F32, {5}), 1e-5f, out);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "RMSNorm: weight f32[5] does not match the "
                         "normalized size 4 of f32[2x4]");
  expectError(rmsNorm(Tensor::zeros(DType::F32, {}),
                      Tensor::zeros(DType::F32, {1}), 1e-5f, out),
              "RMSNorm: input must have a dimension, got f32[scalar]");
  expectError(rmsNorm(Tensor::zeros(DType::I32, {2}),
                      Tensor::zeros(DType::F32, {2}), 1e-5f, out),
              "RMSNorm: i32 is not supported");
  expectError(rmsNorm(Tensor::zeros(DType::F32, {2}), Tensor(), 1e-5f, out),
              "RMSNorm: weight (absent) does not match");
}

TEST(SkipRmsNormTest, MatchesReference) {
  const std::vector<std::pair<Shape, Shape>> cases = {{{2, 3, 16}, {2, 3, 16}},
                                                      {{2, 3, 16}, {3, 16}},
                                                      {{2, 3, 16}, {1, 3, 16}},
                                                      {{4, 5000}, {4, 5000}}};
  for (DType d : {DType::F32, DType::F16})
    for (const auto &[shape, skipShape] : cases)
      for (bool withBias : {false, true}) {
        int64_t n = shape.back();
        Tensor x = random(d, shape), skip = random(d, skipShape);
        Tensor w = random(DType::F32, {n}, 0.5, 1.5);
        Tensor bias = withBias ? random(DType::F32, {n}) : Tensor();
        Tensor out, sum;
        ASSERT_TRUE(skipRmsNorm(x, skip, w, bias, 1e-6f, out, sum));
        std::vector<double> vx = values(x), vs = values(skip), s(vx.size());
        std::vector<double> vb =
            withBias ? values(bias) : std::vector<double>();
        for (size_t i = 0; i < vx.size(); ++i)
          s[i] = vx[i] + vs[i % vs.size()] + (withBias ? vb[i % n] : 0);
        EXPECT_EQ(sum.dtype(), d);
        EXPECT_EQ(sum.shape(), shape);
        expectNear(sum, s, tolerance(d), 1e-6, "sum");
        expectNear(out, normRef(s, n, values(w), {}, 1e-6, false),
                   tolerance(d, 1e-5), 1e-6, x.describe());
      }
}

TEST(SkipRmsNormTest, Errors) {
  Tensor out, sum;
  Tensor x = Tensor::zeros(DType::F32, {2, 3, 4});
  Status s =
      skipRmsNorm(x, Tensor::zeros(DType::F32, {2, 4}),
                  Tensor::zeros(DType::F32, {4}), Tensor(), 1e-5f, out, sum);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "SkipSimplifiedLayerNormalization: skip f32[2x4] "
                         "does not match input f32[2x3x4]");
  expectError(skipRmsNorm(x, x, Tensor::zeros(DType::F32, {4}),
                          Tensor::zeros(DType::F32, {3}), 1e-5f, out, sum),
              "bias f32[3] does not match the normalized size 4");
}

TEST(LayerNormTest, MatchesReference) {
  Tensor out;
  ASSERT_TRUE(layerNorm(make(DType::F32, {2}, {1, 3}),
                        make(DType::F32, {2}, {1, 2}),
                        make(DType::F32, {2}, {0.5, 0}), -1, 0, out));
  expectNear(out, {-0.5, 2}, 1e-6);
  const std::vector<std::pair<Shape, int64_t>> cases = {
      {{2, 3, 16}, -1}, {{2, 3, 16}, 1}, {{2, 3, 16}, 0}, {{4, 5000}, 1}};
  for (DType d : {DType::F32, DType::F16, DType::F64})
    for (const auto &[shape, axis] : cases)
      for (bool withBias : {false, true}) {
        Tensor x = random(d, shape, -2, 5);
        int64_t a = axis < 0 ? axis + x.rank() : axis;
        Shape normShape(shape.begin() + a, shape.end());
        int64_t n = numElements(normShape);
        Tensor w = random(DType::F32, normShape, 0.5, 1.5);
        Tensor b = withBias ? random(DType::F32, normShape) : Tensor();
        ASSERT_TRUE(layerNorm(x, w, b, axis, 1e-5f, out));
        EXPECT_EQ(out.dtype(), d);
        expectNear(out,
                   normRef(values(x), n, values(w),
                           withBias ? values(b) : std::vector<double>(), 1e-5,
                           true),
                   tolerance(d, 1e-5), 1e-5, x.describe());
      }
  expectError(layerNorm(Tensor::zeros(DType::F32, {2, 3}),
                        Tensor::zeros(DType::F32, {3}), Tensor(), 0, 1e-5f,
                        out),
              "LayerNormalization: weight f32[3] does not match the "
              "normalized size 6 of f32[2x3]");
  expectError(layerNorm(Tensor::zeros(DType::F32, {2, 3}),
                        Tensor::zeros(DType::F32, {3}), Tensor(), 2, 1e-5f,
                        out),
              "LayerNormalization: axis 2 is out of range for rank 2");
}

TEST(SwigluTest, MatchesReference) {
  for (DType d : {DType::F32, DType::F16})
    for (const Shape &shape : {Shape{}, Shape{3, 8}, Shape{2, 70000}}) {
      Tensor gate = random(d, shape, -10, 10), up = random(d, shape);
      Tensor out;
      ASSERT_TRUE(swiglu(gate, up, out));
      std::vector<double> g = values(gate), u = values(up), want(g.size());
      for (size_t i = 0; i < g.size(); ++i)
        want[i] = g[i] * sigmoidRef(g[i]) * u[i];
      expectNear(out, want, tolerance(d, 2e-6), 1e-6);
    }
  Tensor out;
  Status s = swiglu(Tensor::zeros(DType::F32, {2, 3}),
                    Tensor::zeros(DType::F32, {3}), out);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), "SwiGLU: gate f32[2x3] and up f32[3] differ");
  expectError(swiglu(Tensor::zeros(DType::I32, {2}),
                     Tensor::zeros(DType::I32, {2}), out),
              "SwiGLU: i32 is not supported");
}

//===----------------------------------------------------------------------===//
// Threads
//===----------------------------------------------------------------------===//

/// The pool splits these kernels' work (every case crosses the grain many
/// times); each result must match the single-pass reference exactly where
/// the kernel is exact, so no chunk is skipped, repeated or misplaced.
TEST(ParallelTest, SplitWorkMatchesReference) {
  ASSERT_TRUE(kThreadsRequested);
  EXPECT_GT(numThreads(), 1);
  Tensor a = random(DType::I32, {7, 1, 50001}, -100, 100);
  Tensor b = random(DType::I32, {3, 1}, -100, 100);
  Tensor out;
  ASSERT_TRUE(binary(BinaryOp::Sub, a, b, out));
  expectNear(out, binaryRef(a, b, std::minus<double>()), 0);
  Tensor x = random(DType::I64, {40, 1000, 9}, -100, 100);
  for (std::vector<int64_t> axes :
       {std::vector<int64_t>{1}, std::vector<int64_t>{2},
        std::vector<int64_t>{0, 2}, std::vector<int64_t>{0}}) {
    ASSERT_TRUE(reduce(ReduceOp::Sum, x, axes, false, false, out));
    std::vector<double> vx = values(x), want;
    for (const auto &group : groupsOf(x.shape(), axisMask(3, axes))) {
      double s = 0;
      for (int64_t i : group)
        s += vx[i];
      want.push_back(s);
    }
    expectNear(out, want, 0);
  }
  ASSERT_TRUE(cumsum(x, 1, false, true, out));
  ASSERT_TRUE(argReduce(true, x, 1, false, false, out));
  EXPECT_EQ(out.shape(), (Shape{40, 9}));
}

} // namespace
