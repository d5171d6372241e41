//===- GpuKernelEmulationTest.cpp - GPU kernels, emulated on the CPU ------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The kernels exactly as llq-compile builds them for the GPU (gpu.funcs,
// before the NVVM lowering), run by the emulator of GpuEmulator.h with the
// grid, block and shared memory llq-compile's manifest gives them, and
// compared with the float64 references: the tensor-core prefill kernels
// (f16 and int8), the tensor-core decode kernels, and the GPU mapping of
// the CUDA-core decode and activation-quantization nests.
//
//===----------------------------------------------------------------------===//

#include "GpuEmulator.h"

#include "llq/Conversion/LLQToGPU/Pipeline.h"
#include "llq/Conversion/LLQToGPU/QGemmKernels.h"
#include "llq/Quant/GpuLayout.h"
#include "llq/Quant/Half.h"

#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/TargetSelect.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <random>

using namespace llq;

namespace {

/// A launch's parameter array: five slots per memref, one per i32.
class Args {
public:
  template <typename T> Args &mem(std::vector<T> &v) {
    for (int64_t s : {reinterpret_cast<int64_t>(v.data()),
                      reinterpret_cast<int64_t>(v.data()), int64_t(0),
                      int64_t(v.size()), int64_t(1)}) {
      slots_.push_back(s);
      ptrs_.push_back(&slots_.back());
    }
    return *this;
  }
  Args &i32(int32_t v) {
    ints_.push_back(v);
    ptrs_.push_back(&ints_.back());
    return *this;
  }
  void **data() { return ptrs_.data(); }

private:
  std::deque<int64_t> slots_;
  std::deque<int32_t> ints_;
  std::vector<void *> ptrs_;
};

class Emulation : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  }
  Emulation() {
    gpu::registerKernelCompilation(registry_);
    ctx_ = std::make_unique<mlir::MLIRContext>(registry_);
  }

  /// Builds \p specs and \p nests as llq-compile does and compiles kernel
  /// \p name for the emulator.
  std::unique_ptr<gpu::emu::Kernel>
  kernel(const std::vector<gpu::QGemmSpec> &specs, const std::string &name,
         const std::vector<gpu::LoopNestKernel> &nests = {}) {
    auto module = gpu::buildKernelModule(*ctx_, specs, nests);
    EXPECT_TRUE(module);
    if (!module)
      return nullptr;
    std::string error;
    auto k = gpu::emu::Kernel::create(*module, name, error);
    EXPECT_TRUE(k) << error;
    return k;
  }

  static void run(gpu::emu::Kernel &k, const gpu::QGemmLaunch &l, Args &a) {
    std::string error = k.launch(
        {uint32_t(l.grid[0]), uint32_t(l.grid[1]), uint32_t(l.grid[2])},
        {uint32_t(l.block[0]), uint32_t(l.block[1]), uint32_t(l.block[2])},
        size_t(l.sharedBytes), a.data());
    ASSERT_EQ(error, "");
  }

  mlir::DialectRegistry registry_;
  std::unique_ptr<mlir::MLIRContext> ctx_;
};

/// Random codes (of \p codeBits within the container), zero points, f16
/// scales; packed into the k-chunk layout and the [G][N] constants.
struct Layer {
  int64_t n, k, group;
  std::vector<uint8_t> codes, zeros;
  std::vector<float> scales;
  std::vector<uint32_t> w;
  quant::KChunkGroupConstants gc;

  Layer(std::mt19937 &rng, int bits, int codeBits, int64_t n, int64_t k,
        int64_t group, bool zero128)
      : n(n), k(k), group(group) {
    const int64_t groups = (k + group - 1) / group;
    const int maxCode = (1 << codeBits) - 1;
    codes.resize(n * k);
    zeros.resize(n * groups);
    scales.resize(n * groups);
    for (auto &v : codes)
      v = uint8_t(rng() % (maxCode + 1));
    for (auto &v : zeros)
      v = zero128 ? 128 : uint8_t(rng() % (maxCode + 1));
    for (auto &v : scales)
      v = quant::roundToHalf(0.002f + 0.01f * float(rng() % 1000) / 1000);
    w.resize(quant::kChunkWords(n, k, bits));
    quant::packKChunk(codes.data(), n, k, bits, w.data());
    gc = quant::makeKChunkGroupConstants(scales.data(), zeros.data(), n,
                                         groups, bits);
  }
  std::vector<double> reference(const std::vector<float> &x, int64_t m,
                                int bits) const {
    std::vector<double> y(m * n);
    quant::referenceQGemm(x.data(), m, codes.data(), scales.data(),
                          zeros.data(), n, k, bits, group, y.data());
    return y;
  }
};

std::vector<float> randomRows(std::mt19937 &rng, int64_t m, int64_t k,
                              float range) {
  std::uniform_real_distribution<float> uni(-range, range);
  std::vector<float> x(m * k);
  for (float &v : x)
    v = quant::roundToHalf(uni(rng));
  return x;
}

std::vector<uint16_t> halves(const std::vector<float> &v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    h[i] = quant::floatToHalf(v[i]);
  return h;
}

/// max |y - ref| / max |ref| over the first m rows.
double relativeError(const std::vector<double> &ref,
                     const std::vector<float> &y) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num = std::max(num, std::abs(double(y[i]) - ref[i]));
    den = std::max(den, std::abs(ref[i]));
  }
  return num / den;
}

struct GemmCase {
  gpu::QGemmKind kind;
  int bits, mTile;
  int64_t n, k, group, m;
};

std::string describe(const GemmCase &c) {
  return std::string(c.kind == gpu::QGemmKind::Prefill ? "prefill" : "decode") +
         " w" + std::to_string(c.bits) + " g" + std::to_string(c.group) +
         " " + std::to_string(c.n) + "x" + std::to_string(c.k) + " mtile" +
         std::to_string(c.mTile) + " m" + std::to_string(c.m);
}

void PrintTo(const GemmCase &c, std::ostream *os) { *os << describe(c); }

class GemmEmulation : public Emulation,
                      public ::testing::WithParamInterface<GemmCase> {};

// The f16 kernels (tensor-core prefill, tensor-core and CUDA-core decode)
// against the float64 product of the same f16 inputs: the weights are
// rounded to f16 once dequantized, so the error is that rounding's.
TEST_P(GemmEmulation, MatchesReference) {
  const GemmCase c = GetParam();
  SCOPED_TRACE(describe(c));
  gpu::QGemmSpec spec;
  spec.kind = c.kind;
  spec.bits = c.bits;
  spec.n = c.n;
  spec.k = c.k;
  spec.group = c.group;
  spec.mTile = c.mTile;
  ASSERT_EQ(spec.finalize(), "");
  auto k = kernel({spec}, spec.kernelName());
  ASSERT_TRUE(k);

  std::mt19937 rng(uint32_t(c.n * 31 + c.k + c.m));
  Layer layer(rng, c.bits, c.bits, c.n, c.k, c.group, false);
  std::vector<float> x = randomRows(rng, c.m, c.k, 1.0f);
  std::vector<uint16_t> xh = halves(x);
  const gpu::QGemmLaunch l = gpu::qgemmLaunch(spec, c.m);
  // Rows past m hold NaN: a kernel that stored them would show.
  std::vector<float> y(c.m * c.n, l.accumulates ? 0.0f : NAN);
  Args a;
  a.mem(xh).mem(layer.w).mem(layer.gc.scales).mem(layer.gc.biases).mem(y).i32(
      int32_t(c.m));
  run(*k, l, a);
  EXPECT_LE(relativeError(layer.reference(x, c.m, c.bits), y), 2e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Kernels, GemmEmulation,
    ::testing::Values(
        // Tensor-core prefill: partial row and column tiles, several K steps.
        GemmCase{gpu::QGemmKind::Prefill, 4, 1, 136, 256, 128, 130},
        GemmCase{gpu::QGemmKind::Prefill, 8, 1, 64, 192, 64, 37},
        GemmCase{gpu::QGemmKind::Prefill, 2, 1, 128, 128, 128, 5},
        // Tensor-core decode: 8, 16 and 64 rows a launch, N not a multiple
        // of the block's rows.
        GemmCase{gpu::QGemmKind::Decode, 4, 16, 200, 512, 128, 13},
        GemmCase{gpu::QGemmKind::Decode, 8, 64, 64, 256, 64, 40},
        GemmCase{gpu::QGemmKind::Decode, 2, 8, 96, 256, 128, 8},
        // The CUDA-core nest, mapped to blocks and threads.
        GemmCase{gpu::QGemmKind::Decode, 4, 4, 136, 512, 128, 3}));

struct IntCase {
  int bits, codeBits, actBits;
  int64_t n, k, m;
  float step; // 0: per token
};

void PrintTo(const IntCase &c, std::ostream *os) {
  *os << "w" << c.bits << " codes" << c.codeBits << " a" << c.actBits << " "
      << c.n << "x" << c.k << " m" << c.m << " step " << c.step;
}

class IntGemmEmulation : public Emulation,
                         public ::testing::WithParamInterface<IntCase> {};

// The integer path as the runtime launches it: the activation-quantization
// nests (mapped to the GPU), then the int8 tensor-core prefill kernel or the
// integer decode kernel, against the float64 product of the fake-quantized
// activations (each row rounded by its step exactly as the nests define it)
// and the dequantized weights.
TEST_P(IntGemmEmulation, MatchesFakeQuantizedReference) {
  const IntCase c = GetParam();
  for (gpu::QGemmKind kind : {gpu::QGemmKind::Prefill, gpu::QGemmKind::Decode}) {
    gpu::QGemmSpec spec;
    spec.kind = kind;
    spec.bits = c.bits;
    spec.codeBits = kind == gpu::QGemmKind::Prefill ? c.codeBits : 0;
    spec.n = c.n;
    spec.k = c.k;
    spec.group = c.k;
    spec.actBits = c.actBits;
    spec.actStep = c.step;
    spec.mTile = 4;
    const int64_t m = kind == gpu::QGemmKind::Prefill ? c.m : 3;
    ASSERT_EQ(spec.finalize(), "");
    SCOPED_TRACE(spec.kernelName());
    gpu::ActQuantSpec aq = gpu::actQuantSpecOf(spec);
    std::vector<gpu::LoopNestKernel> nests = {
        {aq.quantName(), gpu::buildActQuantSource(aq)}};
    if (!aq.amaxName().empty())
      nests.push_back({aq.amaxName(), gpu::buildActAmaxSource(aq)});
    auto gemm = kernel({spec}, spec.kernelName(), nests);
    auto quant = kernel({}, aq.quantName(), nests);
    ASSERT_TRUE(gemm && quant);

    std::mt19937 rng(uint32_t(c.n * 7 + c.k + m));
    Layer layer(rng, c.bits, c.codeBits, c.n, c.k, c.k, c.codeBits == 8);
    std::vector<float> x = randomRows(rng, m, c.k, 3.0f);
    x[5] = 40.0f; // an outlier in row 0
    std::vector<uint16_t> xh = halves(x);
    std::vector<float> part(m * aq.segments(), -1.0f), xs(m, -1.0f);
    std::vector<uint32_t> xq(m * c.k / 4, 0xdeadbeef);
    gpu::QGemmLaunch nl;
    nl.grid = {aq.gridX(), m, 1};
    nl.block = {gpu::kActQuantBlock, 1, 1};
    if (!aq.amaxName().empty()) {
      auto amax = kernel({}, aq.amaxName(), nests);
      ASSERT_TRUE(amax);
      Args a;
      a.mem(xh).mem(part).i32(int32_t(m));
      run(*amax, nl, a);
    }
    Args q;
    q.mem(xh).mem(part).mem(xq).mem(xs).i32(int32_t(m));
    run(*quant, nl, q);
    // The definition: per row, s = max|x| / qmax (or the step), codes
    // round(x * (1 / s)) clamped.
    const float qmax = float((1 << (c.actBits - 1)) - 1);
    std::vector<float> xf(x.size());
    for (int64_t r = 0; r < m; ++r) {
      float amax = 0;
      for (int64_t i = 0; i < c.k; ++i)
        amax = std::max(amax, std::fabs(x[r * c.k + i]));
      const float s = c.step > 0 ? c.step : amax / qmax;
      ASSERT_EQ(xs[r], s);
      const float inv = 1.0f / s;
      for (int64_t i = 0; i < c.k; ++i)
        xf[r * c.k + i] =
            std::clamp(std::nearbyint(x[r * c.k + i] * inv), -qmax - 1, qmax) *
            s;
    }
    const gpu::QGemmLaunch l = gpu::qgemmLaunch(spec, m);
    std::vector<float> y(m * c.n, l.accumulates ? 0.0f : NAN);
    Args a;
    a.mem(xq).mem(layer.w).mem(layer.gc.scales).mem(layer.gc.biases).mem(y).mem(
         xs).i32(int32_t(m));
    run(*gemm, l, a);
    EXPECT_LE(relativeError(layer.reference(xf, m, c.bits), y), 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kernels, IntGemmEmulation,
    ::testing::Values(IntCase{8, 8, 8, 72, 576, 70, 0},  // K = 4.5 steps
                      IntCase{8, 8, 8, 136, 256, 20, 0.05f},
                      IntCase{4, 4, 8, 64, 256, 33, 0},  // w4a8
                      IntCase{8, 6, 6, 40, 128, 9, 0},   // w6a6
                      IntCase{2, 2, 8, 48, 256, 17, 0})); // w2a8

} // namespace
