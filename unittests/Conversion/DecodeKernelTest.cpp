//===- DecodeKernelTest.cpp - The decode kernel's loop nest on the CPU ----===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Builds the decode kernel exactly as llq-compile does, before GPU mapping,
// lowers the scf.parallel nest for the host, JIT-runs it and compares with
// the float64 reference: exactly where every f16 step is exact, within
// rounding otherwise. What the GPU adds (the mapping, the NVVM lowering) is
// checked on the PTX by the lit tests.
//
//===----------------------------------------------------------------------===//

#include "llq/Conversion/LLQToGPU/Pipeline.h"
#include "llq/Quant/GpuLayout.h"
#include "llq/Quant/Half.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/TargetSelect.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <tuple>

using namespace llq;

namespace {

template <typename T> struct Desc1 {
  T *allocated;
  T *aligned;
  int64_t offset;
  int64_t size;
  int64_t stride;
};
template <typename T> Desc1<T> desc(std::vector<T> &v, int64_t elemsPer = 1) {
  return {v.data(), v.data(), 0, int64_t(v.size()) / elemsPer, 1};
}

struct Case {
  int bits;
  int64_t n, k, group;
  int mTile, splitK;
  int64_t m;
  bool exact;
};

std::string describe(const Case &c) {
  return "w" + std::to_string(c.bits) + " n" + std::to_string(c.n) + " k" +
         std::to_string(c.k) + " g" + std::to_string(c.group) + " mTile" +
         std::to_string(c.mTile) + " split" + std::to_string(c.splitK) +
         " m" + std::to_string(c.m);
}

/// A case, and whether the nest is built in its host form (f32 products).
class DecodeKernelTest
    : public ::testing::TestWithParam<std::tuple<Case, bool>> {
protected:
  static void SetUpTestSuite() {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  }
};

TEST_P(DecodeKernelTest, LoopNestMatchesReference) {
  const auto [c, hostMath] = GetParam();
  SCOPED_TRACE(describe(c) + (hostMath ? " (host form)" : ""));
  gpu::QGemmSpec spec;
  spec.kind = gpu::QGemmKind::Decode;
  spec.bits = c.bits;
  spec.n = c.n;
  spec.k = c.k;
  spec.group = c.group;
  spec.mTile = c.mTile;
  spec.splitK = c.splitK;
  ASSERT_EQ(spec.finalize(), "");

  std::mt19937 rng(c.bits * 1000 + c.n);
  const int64_t groups = (c.k + c.group - 1) / c.group;
  const int maxCode = (1 << c.bits) - 1;
  std::vector<uint8_t> codes(c.n * c.k), zeros(c.n * groups);
  std::vector<float> scales(c.n * groups), x(c.mTile * c.k, 0.0f);
  std::uniform_int_distribution<int> code(0, maxCode);
  for (auto &v : codes)
    v = code(rng);
  for (auto &v : zeros)
    v = code(rng);
  for (auto &v : scales)
    v = c.exact ? std::ldexp(1.0f, int(rng() % 5) - 4)
                : quant::roundToHalf(0.001f + 0.02f * (rng() % 1000) / 1000);
  std::uniform_real_distribution<float> uni(-1, 1);
  for (int64_t i = 0; i < c.m * c.k; ++i)
    x[i] = c.exact ? float(int(rng() % 5) - 2) : quant::roundToHalf(uni(rng));

  std::vector<uint32_t> w(quant::kChunkWords(c.n, c.k, c.bits));
  quant::packKChunk(codes.data(), c.n, c.k, c.bits, w.data());
  quant::KChunkGroupConstants gc = quant::makeKChunkGroupConstants(
      scales.data(), zeros.data(), c.n, groups, c.bits);
  std::vector<uint16_t> xh(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    xh[i] = quant::floatToHalf(x[i]);
  // Rows at or past m must stay untouched.
  const float sentinel = 12345.0f;
  std::vector<float> y(c.mTile * c.n, 0.0f);
  for (int64_t i = c.m * c.n; i < int64_t(y.size()); ++i)
    y[i] = sentinel;

  std::vector<double> ref(c.m * c.n);
  quant::referenceQGemm(x.data(), c.m, codes.data(), scales.data(),
                        zeros.data(), c.n, c.k, c.bits, c.group, ref.data());

  mlir::DialectRegistry registry;
  gpu::registerKernelCompilation(registry);
  mlir::MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  mlir::OpBuilder b(&ctx);
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::ModuleOp::create(b.getUnknownLoc());
  gpu::buildDecodeLoopNest(b, *module, spec, hostMath);
  ASSERT_TRUE(mlir::succeeded(mlir::verify(*module)));
  ASSERT_TRUE(mlir::succeeded(gpu::lowerLoopNestsForHost(*module)));
  auto engine = mlir::ExecutionEngine::create(*module);
  ASSERT_TRUE(bool(engine)) << llvm::toString(engine.takeError());

  auto dx = desc(xh, 8);
  auto dw = desc(w, 4);
  auto ds = desc(gc.scales), db = desc(gc.biases);
  auto dy = desc(y);
  int32_t m = int32_t(c.m);
  llvm::Error err = (*engine)->invoke(spec.kernelName(), &dx, &dw, &ds, &db,
                                      &dy, m);
  ASSERT_FALSE(bool(err)) << llvm::toString(std::move(err));

  double maxRef = 0, maxErr = 0;
  for (int64_t i = 0; i < c.m * c.n; ++i) {
    maxRef = std::max(maxRef, std::abs(ref[i]));
    maxErr = std::max(maxErr, std::abs(double(y[i]) - ref[i]));
  }
  if (c.exact)
    EXPECT_EQ(maxErr, 0.0) << "max |ref| " << maxRef;
  else
    EXPECT_LE(maxErr, 5e-3 * maxRef) << "max |ref| " << maxRef;
  for (int64_t i = c.m * c.n; i < int64_t(y.size()); ++i)
    ASSERT_EQ(y[i], sentinel) << "row " << i / c.n << " past m was written";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DecodeKernelTest,
    ::testing::Combine(::testing::Values(
        // Exact arithmetic: small integer activations, power-of-two scales.
        Case{4, 96, 256, 64, 3, 2, 3, true},
        Case{2, 130, 512, 128, 1, 1, 1, true},
        Case{8, 64, 192, 64, 4, 3, 3, true},
        // Random f16 data; SmolLM2's 576-wide layer with its short group.
        Case{4, 200, 576, 128, 4, 0, 4, false},
        Case{4, 64, 4096, 128, 2, 0, 1, false},
        Case{4, 192, 576, 128, 1, 0, 1, false},
        Case{8, 40, 1536, 128, 4, 0, 4, false},
        Case{2, 72, 384, 128, 2, 0, 2, false}),
                       ::testing::Bool()));

TEST(DecodeKernelSpec, RejectsShapesTheLayoutCannotHold) {
  gpu::QGemmSpec spec;
  spec.bits = 3;
  spec.n = 64;
  spec.k = 128;
  EXPECT_NE(spec.finalize().find("2-, 4- or 8-bit"), std::string::npos);
  spec.bits = 4;
  spec.k = 100;
  EXPECT_NE(spec.finalize().find("multiple of the 32 codes"),
            std::string::npos);
  spec.k = 128;
  spec.group = 48;
  EXPECT_NE(spec.finalize().find("group 48"), std::string::npos);
  spec.group = 64;
  spec.mTile = 65;
  EXPECT_NE(spec.finalize().find("1 to 64 rows"), std::string::npos);
}

TEST(DecodeKernelSpec, MoreThanFourRowsUseTensorCores) {
  gpu::QGemmSpec spec;
  spec.n = 4096;
  spec.k = 4096;
  spec.mTile = 16;
  ASSERT_EQ(spec.finalize(), "");
  EXPECT_EQ(spec.kernelName().rfind("llq_qgemv_tc_w4_g128_n4096_k4096_m16_s", 0),
            0u);
  // Splits cover quads of chunks (128 chunks: 32 quads), no empty split.
  int64_t per = (32 + spec.splitK - 1) / spec.splitK;
  EXPECT_LT((spec.splitK - 1) * per, 32);
  gpu::QGemmLaunch l = gpu::qgemmLaunch(spec, 16);
  EXPECT_EQ(l.grid[0], 4096 / 64);
  EXPECT_EQ(l.block[0], 128);
}

TEST(DecodeKernelSpec, SplitsKWithoutEmptySplits) {
  gpu::QGemmSpec spec;
  spec.n = 4096;
  spec.k = 4096;
  ASSERT_EQ(spec.finalize(), "");
  const int64_t chunks = 4096 / 32;
  int64_t per = (chunks + spec.splitK - 1) / spec.splitK;
  EXPECT_GT(spec.splitK, 1);
  EXPECT_LT((spec.splitK - 1) * per, chunks);
  EXPECT_GE(per, 4);
  gpu::QGemmLaunch l = gpu::qgemmLaunch(spec, 1);
  EXPECT_EQ(l.grid[0], 32);
  EXPECT_EQ(l.grid[1], spec.splitK);
  EXPECT_TRUE(l.accumulates);
  EXPECT_EQ(spec.kernelName(),
            "llq_qgemv_w4_g128_n4096_k4096_m1_s" +
                std::to_string(spec.splitK));
}

} // namespace
