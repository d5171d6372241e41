//===- ModelKernelTest.cpp - The model kernels' loop nests on the CPU -----===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Builds the non-GEMM model kernels and the f16 GEMV as llq-compile does,
// lowers them for the host with their packed entry points (the parameter
// array a GPU launch takes), JIT-runs them and compares with float64
// references written from the definitions: RMSNorm, rotate-half RoPE,
// causal grouped-query attention over a KV cache, SwiGLU, x W^T.
//
//===----------------------------------------------------------------------===//

#include "GpuEmulator.h"

#include "llq/Conversion/LLQToGPU/ModelKernels.h"
#include "llq/Conversion/LLQToGPU/Pipeline.h"
#include "llq/Quant/Binarize.h"
#include "llq/Quant/GpuLayout.h"
#include "llq/Quant/Half.h"
#include "llq/Quant/QuIP.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/TargetSelect.h"

#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <random>

using namespace llq;

namespace {

/// Memory aligned as device allocations are (wide vector loads).
template <typename T> struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <typename U> AlignedAllocator(const AlignedAllocator<U> &) {}
  T *allocate(size_t n) {
    return static_cast<T *>(
        ::operator new(n * sizeof(T), std::align_val_t(256)));
  }
  void deallocate(T *p, size_t) { ::operator delete(p, std::align_val_t(256)); }
  bool operator==(const AlignedAllocator &) const { return true; }
  bool operator!=(const AlignedAllocator &) const { return false; }
};

/// The parameter array of one launch: five slots per memref, one per i32.
class Params {
public:
  template <typename T, typename A> Params &mem(std::vector<T, A> &v) {
    slots_.push_back(reinterpret_cast<int64_t>(v.data()));
    slots_.push_back(reinterpret_cast<int64_t>(v.data()));
    slots_.push_back(0);
    slots_.push_back(int64_t(v.size()));
    slots_.push_back(1);
    for (size_t i = slots_.size() - 5; i < slots_.size(); ++i)
      ptrs_.push_back(&slots_[i]);
    return *this;
  }
  Params &i32(int32_t v) {
    ints_.push_back(v);
    ptrs_.push_back(&ints_.back());
    return *this;
  }
  /// The last i32 given (the kernels' row count m).
  int32_t lastI32() const { return ints_.empty() ? 0 : ints_.back(); }
  /// The host entry points' last two parameters: the blocks to run.
  Params &blocks(int64_t lo, int64_t hi) {
    for (int64_t v : {lo, hi}) {
      slots_.push_back(v);
      ptrs_.push_back(&slots_.back());
    }
    return *this;
  }
  void **data() { return ptrs_.data(); }

private:
  std::deque<int64_t> slots_; // stable addresses
  std::deque<int32_t> ints_;
  std::vector<void *> ptrs_;
};

using Half = std::vector<uint16_t>;

Half toHalf(const std::vector<float> &v) {
  Half h(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    h[i] = quant::floatToHalf(v[i]);
  return h;
}
float hf(uint16_t h) { return quant::halfToFloat(h); }

/// A parameterized test of JIT-run kernels (the host target initialized).
template <typename P> class JitTest : public ::testing::TestWithParam<P> {
protected:
  static void SetUpTestSuite() {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  }
};

/// \p tile rows of \p k activations, the first \p m uniform in [-1, 1]
/// and rounded to f16, the others zero.
std::vector<float> randomRows(std::mt19937 &rng, int tile, int m, int64_t k) {
  std::uniform_real_distribution<float> uni(-1, 1);
  std::vector<float> x(tile * k, 0.0f);
  for (int64_t i = 0; i < m * k; ++i)
    x[i] = quant::roundToHalf(uni(rng));
  return x;
}

/// Builds \p nest for the host, JIT-compiles it and runs it on \p p over
/// all its blocks.
void runOnHost(const gpu::LoopNestKernel &nest, Params &p) {
  mlir::DialectRegistry registry;
  gpu::registerKernelCompilation(registry);
  mlir::MLIRContext ctx(registry);
  auto module = gpu::buildHostKernelModule(ctx, {}, {nest});
  ASSERT_TRUE(module);
  ASSERT_TRUE(mlir::succeeded(gpu::lowerHostKernels(*module)));
  auto engine = mlir::ExecutionEngine::create(*module);
  ASSERT_TRUE(bool(engine)) << llvm::toString(engine.takeError());
  auto fn = (*engine)->lookup(nest.name + "_packed");
  ASSERT_TRUE(bool(fn)) << llvm::toString(fn.takeError());
  p.blocks(0, int64_t(1) << 40);
  reinterpret_cast<void (*)(void **)>(*fn)(p.data());
}

/// Runs the activation-quantization nests of \p a on m rows of xh, as the
/// runtime launches them: segment maxima (per-token steps), then the bytes
/// (xq, m x k, filled with a marker first) and each row's step (xs).
void quantizeRows(const gpu::ActQuantSpec &a, Half &xh, int m,
                  std::vector<uint32_t> &xq, std::vector<float> &xs) {
  std::vector<float> part(m * a.segments(), -1.0f);
  xq.assign(m * a.k / 4, 0xdeadbeef);
  xs.assign(m, -1.0f);
  if (!a.amaxName().empty()) {
    Params p;
    p.mem(xh).mem(part).i32(m);
    runOnHost({a.amaxName(), gpu::buildActAmaxSource(a)}, p);
  }
  Params p;
  p.mem(xh).mem(part).mem(xq).mem(xs).i32(m);
  runOnHost({a.quantName(), gpu::buildActQuantSource(a)}, p);
}

/// y (m rows of n) must be x (m x k) times dense^T (n x k), in float64,
/// within 1e-5 of the products' magnitude.
void expectProduct(const std::vector<float> &x, const std::vector<float> &dense,
                   const std::vector<float> &y, int m, int64_t n, int64_t k) {
  for (int r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0, mag = 0;
      for (int64_t i = 0; i < k; ++i) {
        ref += double(x[r * k + i]) * dense[j * k + i];
        mag += std::abs(double(x[r * k + i]) * dense[j * k + i]);
      }
      EXPECT_NEAR(y[r * n + j], ref, 1e-5 * mag + 1e-7) << r << "," << j;
    }
}

/// Each test runs twice: the nests lowered for the host (what the host
/// library runs), and mapped to the GPU as llq-compile builds them for
/// CUDA, run by the GPU kernel emulator with the manifest's launch shape.
class ModelKernelTest : public ::testing::TestWithParam<bool> {
protected:
  static void SetUpTestSuite() {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  }

  void SetUp() override {
    dims.hidden = 1100; // more than one block of 1024, a short last one
    dims.heads = 4;
    dims.kvHeads = 2;
    dims.headDim = 8;
    dims.intermediate = 24;
    dims.vocab = 11;
    dims.maxContext = 16;
    dims.epsilon = 1e-5f;
    dims.scale = 1.0f / std::sqrt(8.0f);
    ASSERT_EQ(dims.check(), "");
    gemv.n = 37;
    gemv.k = 48;
    gemv.mTile = 4;
    gemv.splitK = 2;
    ASSERT_EQ(gemv.finalize(), "");
    gemv1 = gemv;
    gemv1.splitK = 1;
    gemv1.mTile = 1;
    ASSERT_EQ(gemv1.finalize(), "");

    // The GPU's split attention: a longer context, so that every split of
    // the keys has some.
    split = dims;
    split.headDim = 16;
    split.maxContext = 300;
    split.attnSplits = 3;
    split.scale = 0.25f;
    split.vocab = 10000; // three blocks of the argmax kernel
    ASSERT_EQ(split.check(), "");

    std::vector<gpu::LoopNestKernel> nests;
    for (const gpu::ModelKernel &k : gpu::buildModelKernels(dims)) {
      names[k.op] = k.name;
      nests.push_back({k.name, k.source});
    }
    for (const gpu::ModelKernel &k : gpu::buildModelKernels(split)) {
      splitNames[k.op] = k.name;
      nests.push_back({k.name, k.source});
      launches[k.name] = {k.gridX, k.gridY, k.rowsInY, k.block};
    }
    nests.push_back({gemv.kernelName(), gpu::hgemvSource(gemv)});
    nests.push_back({gemv1.kernelName(), gpu::hgemvSource(gemv1)});

    for (const gpu::ModelKernel &k : gpu::buildModelKernels(dims))
      launches[k.name] = {k.gridX, k.gridY, k.rowsInY, k.block};
    for (const gpu::HGemvSpec *g : {&gemv, &gemv1})
      launches[g->kernelName()] = {
          (g->n + gpu::kHGemvBlock - 1) / gpu::kHGemvBlock, g->splitK, false,
          gpu::kHGemvBlock};

    mlir::DialectRegistry registry;
    gpu::registerKernelCompilation(registry);
    ctx = std::make_unique<mlir::MLIRContext>(registry);
    if (GetParam()) {
      gpuModule = gpu::buildKernelModule(*ctx, {}, nests);
      ASSERT_TRUE(gpuModule);
      return;
    }
    auto module = gpu::buildHostKernelModule(*ctx, {}, nests);
    ASSERT_TRUE(module);
    ASSERT_TRUE(mlir::succeeded(gpu::lowerHostKernels(*module)));
    auto created = mlir::ExecutionEngine::create(*module);
    ASSERT_TRUE(bool(created)) << llvm::toString(created.takeError());
    engine = std::move(*created);
  }

  void run(const std::string &name, Params &p) {
    if (GetParam()) {
      auto &k = emulated[name];
      std::string error;
      if (!k)
        k = gpu::emu::Kernel::create(*gpuModule, name, error);
      ASSERT_TRUE(k) << error;
      const Launch &l = launches.at(name);
      const int64_t gy = l.rowsInY ? p.lastI32() : l.gridY;
      error = k->launch({uint32_t(l.gridX), uint32_t(gy), 1},
                        {uint32_t(l.block), 1, 1}, 0, p.data());
      ASSERT_EQ(error, "");
      return;
    }
    auto fn = engine->lookup(name + "_packed");
    ASSERT_TRUE(bool(fn)) << llvm::toString(fn.takeError());
    // All blocks, in two ranges as a threaded launcher would split them.
    Params first = p, second = p;
    first.blocks(0, 1);
    second.blocks(1, int64_t(1) << 40);
    reinterpret_cast<void (*)(void **)>(*fn)(first.data());
    reinterpret_cast<void (*)(void **)>(*fn)(second.data());
  }
  void run(gpu::ModelOp op, Params &p) { run(names[op], p); }

  struct Launch {
    int64_t gridX, gridY;
    bool rowsInY;
    int64_t block;
  };
  /// \p n values uniform in [-2, 2], rounded to f16.
  Half randomHalves(int64_t n) {
    std::vector<float> v(n);
    for (auto &x : v)
      x = 2 * uni(rng);
    return toHalf(v);
  }

  /// Checks out (f16 [m][heads][hd]) against causal grouped-query
  /// attention of q over the cache rows 0 .. pos0 + r, in float64.
  void expectAttention(const gpu::ModelDims &d, const Half &q, const Half &kc,
                       const Half &vc, const Half &out, int m, int pos0) {
    const int64_t H = d.heads, G = d.kvHeads, hd = d.headDim;
    for (int r = 0; r < m; ++r)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / (H / G), len = pos0 + r + 1;
        std::vector<double> s(len);
        double mx = -1e300, sum = 0;
        for (int64_t t = 0; t < len; ++t) {
          double dot = 0;
          for (int64_t i = 0; i < hd; ++i)
            dot += double(hf(q[(r * H + h) * hd + i])) *
                   hf(kc[(t * G + g) * hd + i]);
          s[t] = dot * d.scale;
          mx = std::max(mx, s[t]);
        }
        for (auto &x : s)
          sum += (x = std::exp(x - mx));
        for (int64_t i = 0; i < hd; ++i) {
          double ref = 0;
          for (int64_t t = 0; t < len; ++t)
            ref += s[t] / sum * hf(vc[(t * G + g) * hd + i]);
          EXPECT_NEAR(hf(out[(r * H + h) * hd + i]), ref,
                      2e-3 * std::max(1.0, std::abs(ref)))
              << "row " << r << " head " << h << " dim " << i;
        }
      }
  }

  gpu::ModelDims dims, split;
  gpu::HGemvSpec gemv, gemv1;
  std::map<gpu::ModelOp, std::string> names, splitNames;
  std::map<std::string, Launch> launches;
  std::unique_ptr<mlir::MLIRContext> ctx;
  std::unique_ptr<mlir::ExecutionEngine> engine;
  mlir::OwningOpRef<mlir::ModuleOp> gpuModule;
  std::map<std::string, std::unique_ptr<gpu::emu::Kernel>> emulated;
  std::mt19937 rng{7};
  std::uniform_real_distribution<float> uni{-1, 1};
};

TEST_P(ModelKernelTest, EmbedAddAndRmsNorm) {
  const int64_t D = dims.hidden, V = dims.vocab;
  const int m = 3;
  std::vector<float> tablef(V * D);
  for (auto &v : tablef)
    v = uni(rng);
  Half table = toHalf(tablef);
  // An id out of range is clamped, never read out of bounds.
  std::vector<int32_t> ids = {4, 0, 99};
  std::vector<float> h(m * D, -1.0f), ss(m, 0.0f);
  Params pe;
  pe.mem(ids).mem(table).mem(h).mem(ss).i32(m);
  run(gpu::ModelOp::Embed, pe);
  const int64_t rowsOf[3] = {4, 0, V - 1};
  for (int r = 0; r < m; ++r) {
    double sum = 0;
    for (int64_t i = 0; i < D; ++i) {
      float t = hf(table[rowsOf[r] * D + i]);
      ASSERT_EQ(h[r * D + i], t);
      sum += double(t) * t;
    }
    EXPECT_NEAR(ss[r], sum, 1e-5 * sum);
  }

  // h += y, with the new rows' sums of squares.
  std::vector<float> y(m * D);
  for (auto &v : y)
    v = uni(rng);
  std::vector<float> expectH(m * D);
  for (int64_t i = 0; i < m * D; ++i)
    expectH[i] = h[i] + y[i];
  std::fill(ss.begin(), ss.end(), 0.0f);
  Params pa;
  pa.mem(h).mem(y).mem(ss).i32(m);
  run(gpu::ModelOp::AddSumSq, pa);
  std::vector<double> sums(m, 0);
  for (int64_t i = 0; i < m * D; ++i) {
    ASSERT_EQ(h[i], expectH[i]);
    sums[i / D] += double(h[i]) * h[i];
  }
  for (int r = 0; r < m; ++r)
    EXPECT_NEAR(ss[r], sums[r], 1e-5 * sums[r]);

  std::vector<float> w(D);
  for (auto &v : w)
    v = uni(rng);
  Half out(m * D, 0);
  Params pn;
  pn.mem(h).mem(ss).mem(w).mem(out).i32(m);
  run(gpu::ModelOp::RmsNorm, pn);
  for (int r = 0; r < m; ++r) {
    double rms = std::sqrt(sums[r] / D + double(dims.epsilon));
    for (int64_t i = 0; i < D; ++i) {
      double ref = h[r * D + i] / rms * w[i];
      // One f16 rounding of a value computed in f32.
      EXPECT_NEAR(hf(out[r * D + i]), ref, 1e-3 * std::abs(ref) + 1e-6)
          << r << "," << i;
    }
  }
}

TEST_P(ModelKernelTest, RopeWritesTheCacheAtItsPositions) {
  const int64_t H = dims.heads, G = dims.kvHeads, hd = dims.headDim,
                C = dims.maxContext;
  const int m = 2, pos0 = 5;
  std::vector<float> q(m * H * hd), k(m * G * hd), v(m * G * hd),
      invf(hd / 2);
  for (auto *vec : {&q, &k, &v})
    for (auto &x : *vec)
      x = uni(rng);
  for (int64_t j = 0; j < hd / 2; ++j)
    invf[j] = float(std::pow(10000.0, -2.0 * j / hd));
  Half qo(m * H * hd, 0), kc(C * G * hd, 0), vc(C * G * hd, 0);
  Params p;
  std::vector<int32_t> posv = {pos0};
  p.mem(q).mem(k).mem(v).mem(invf).mem(qo).mem(kc).mem(vc).mem(posv).i32(m);
  run(gpu::ModelOp::Rope, p);

  auto rotate = [&](const float *x, int64_t pos, int64_t i) {
    int64_t j = i % (hd / 2);
    double ang = double(float(pos) * invf[j]);
    double c = std::cos(ang), s = std::sin(ang);
    return i < hd / 2 ? x[j] * c - x[j + hd / 2] * s
                      : x[j + hd / 2] * c + x[j] * s;
  };
  for (int r = 0; r < m; ++r) {
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < hd; ++i) {
        double ref = rotate(&q[(r * H + h) * hd], pos0 + r, i);
        EXPECT_NEAR(hf(qo[(r * H + h) * hd + i]), ref, 2e-3);
      }
    for (int64_t g = 0; g < G; ++g)
      for (int64_t i = 0; i < hd; ++i) {
        int64_t at = ((pos0 + r) * G + g) * hd + i;
        EXPECT_NEAR(hf(kc[at]), rotate(&k[(r * G + g) * hd], pos0 + r, i),
                    2e-3);
        EXPECT_EQ(vc[at], quant::floatToHalf(v[(r * G + g) * hd + i]));
      }
  }
  // Positions outside pos0 .. pos0 + m - 1 stay untouched.
  for (int64_t t = 0; t < C; ++t) {
    if (t >= pos0 && t < pos0 + m)
      continue;
    for (int64_t i = 0; i < G * hd; ++i)
      ASSERT_EQ(kc[t * G * hd + i], 0) << "position " << t;
  }
}

TEST_P(ModelKernelTest, CausalGroupedQueryAttention) {
  const int64_t H = dims.heads, G = dims.kvHeads, hd = dims.headDim,
                C = dims.maxContext;
  const int m = 6, pos0 = 4; // keys 0 .. 9; value tiles of 4 and 2 rows
  Half q = randomHalves(m * H * hd), kc = randomHalves(C * G * hd),
       vc = randomHalves(C * G * hd);
  std::vector<float> scores(m * H * C, 0.0f), ssum(m * H, 0.0f);
  std::vector<int32_t> smax(m * H, 0);
  Half out(m * H * hd, 0);
  Params ps, pm, pv;
  std::vector<int32_t> posv = {pos0};
  ps.mem(q).mem(kc).mem(scores).mem(smax).mem(posv).i32(m);
  pm.mem(scores).mem(smax).mem(ssum).mem(posv).i32(m);
  pv.mem(scores).mem(ssum).mem(vc).mem(out).mem(posv).i32(m);
  run(gpu::ModelOp::Scores, ps);
  run(gpu::ModelOp::Softmax, pm);
  run(gpu::ModelOp::Values, pv);
  expectAttention(dims, q, kc, vc, out, m, pos0);
}

// Decode steps on the GPU: the keys of a row split over blocks (scores),
// the values' products added in f32 by many blocks (values_split), then
// turned into f16 (attn_out).
TEST_P(ModelKernelTest, SplitAttentionForDecodeSteps) {
  const int64_t H = split.heads, G = split.kvHeads, hd = split.headDim,
                C = split.maxContext;
  const int m = 2, pos0 = 280; // keys 0 .. 281: all three splits have some
  Half q = randomHalves(m * H * hd), kc = randomHalves(C * G * hd),
       vc = randomHalves(C * G * hd);
  std::vector<float> scores(m * H * C, 0.0f), ssum(m * H, 0.0f);
  // attn_out reads acc as vector<8xf32>: 32-byte aligned, as device
  // memory is.
  std::vector<float, AlignedAllocator<float>> acc(m * H * hd, 0.0f);
  std::vector<int32_t> smax(m * H, 0);
  Half out(m * H * hd, 0);
  std::vector<int32_t> posv = {pos0};
  Params ps, pm, pv, po;
  ps.mem(q).mem(kc).mem(scores).mem(smax).mem(posv).i32(m);
  pm.mem(scores).mem(smax).mem(ssum).mem(posv).i32(m);
  pv.mem(scores).mem(ssum).mem(vc).mem(acc).mem(posv).i32(m);
  po.mem(acc).mem(out).i32(m);
  run(splitNames[gpu::ModelOp::Scores], ps);
  run(splitNames[gpu::ModelOp::Softmax], pm);
  run(splitNames[gpu::ModelOp::ValuesSplit], pv);
  run(splitNames[gpu::ModelOp::AttnOut], po);
  expectAttention(split, q, kc, vc, out, m, pos0);
}

// Greedy sampling on the device: the first largest logit, over several
// blocks, negative logits, and a tie.
TEST_P(ModelKernelTest, ArgmaxPicksTheFirstLargestLogit) {
  const int64_t V = split.vocab;
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<float> logits(V);
    for (auto &x : logits)
      x = -5 + uni(rng);
    int64_t want = int64_t(rng() % V);
    logits[want] = trial == 0 ? 7.0f : -0.5f;
    if (trial == 2) { // a tie: the earlier index wins
      const int64_t later = std::min<int64_t>(V - 1, want + 4097);
      logits[later] = logits[want];
      if (later == want)
        continue;
    }
    std::vector<uint64_t> best = {0};
    Params p;
    p.mem(logits).mem(best).i32(1);
    run(splitNames[gpu::ModelOp::Argmax], p);
    EXPECT_EQ(int64_t(0xffffffffu - uint32_t(best[0])), want) << trial;
  }
}

TEST_P(ModelKernelTest, SwiGlu) {
  const int64_t I = dims.intermediate;
  const int m = 2;
  std::vector<float> g(m * I), u(m * I);
  for (auto &x : g)
    x = 4 * uni(rng);
  for (auto &x : u)
    x = uni(rng);
  Half out(m * I, 0);
  Params p;
  p.mem(g).mem(u).mem(out).i32(m);
  run(gpu::ModelOp::SwiGlu, p);
  for (int64_t i = 0; i < m * I; ++i) {
    double ref = g[i] / (1 + std::exp(-double(g[i]))) * u[i];
    EXPECT_NEAR(hf(out[i]), ref, 1e-3 * std::abs(ref) + 1e-6);
  }
}

TEST_P(ModelKernelTest, F16GemvMatchesXWTranspose) {
  for (const gpu::HGemvSpec *spec : {&gemv, &gemv1}) {
    SCOPED_TRACE(spec->kernelName());
    const int64_t N = spec->n, K = spec->k;
    const int m = spec->mTile == 1 ? 1 : 3;
    std::vector<float> wf(N * K), xf(spec->mTile * K, 0.0f);
    for (auto &x : wf)
      x = uni(rng);
    for (int64_t i = 0; i < m * K; ++i)
      xf[i] = uni(rng);
    Half w(N * K), x = toHalf(xf);
    // k-chunk layout: w[k / 8][n][k % 8].
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k)
        w[((k / 8) * N + n) * 8 + k % 8] = quant::floatToHalf(wf[n * K + k]);
    const float sentinel = 777.0f;
    std::vector<float> y(spec->mTile * N, 0.0f);
    for (int64_t i = m * N; i < int64_t(y.size()); ++i)
      y[i] = sentinel;
    Params p;
    p.mem(x).mem(w).mem(y).i32(m);
    run(spec->kernelName(), p);
    for (int r = 0; r < m; ++r)
      for (int64_t n = 0; n < N; ++n) {
        double ref = 0;
        for (int64_t k = 0; k < K; ++k)
          ref += double(hf(x[r * K + k])) * hf(w[((k / 8) * N + n) * 8 + k % 8]);
        EXPECT_NEAR(y[r * N + n], ref, 1e-5 * K) << r << "," << n;
      }
    for (int64_t i = m * N; i < int64_t(y.size()); ++i)
      ASSERT_EQ(y[i], sentinel);
  }
}

INSTANTIATE_TEST_SUITE_P(Forms, ModelKernelTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool> &info) {
                           return std::string(info.param ? "GpuEmulated"
                                                          : "Host");
                         });

TEST(ModelKernels, LowerToPtxWithoutLocalMemory) {
  gpu::ModelDims dims;
  dims.hidden = 576;
  dims.heads = 9;
  dims.kvHeads = 3;
  dims.headDim = 64;
  dims.intermediate = 1536;
  dims.vocab = 49152;
  dims.maxContext = 2048;
  dims.scale = 0.125f;
  ASSERT_EQ(dims.check(), "");
  gpu::HGemvSpec gemv;
  gemv.n = 49152;
  gemv.k = 576;
  ASSERT_EQ(gemv.finalize(), "");
  std::vector<gpu::LoopNestKernel> nests;
  for (const gpu::ModelKernel &k : gpu::buildModelKernels(dims))
    nests.push_back({k.name, k.source});
  nests.push_back({gemv.kernelName(), gpu::hgemvSource(gemv)});
  mlir::DialectRegistry registry;
  gpu::registerKernelCompilation(registry);
  mlir::MLIRContext ctx(registry);
  auto module = gpu::buildKernelModule(ctx, {}, nests);
  ASSERT_TRUE(module);
  auto ptx = gpu::lowerKernelsToPtx(*module, "sm_80");
  ASSERT_TRUE(mlir::succeeded(ptx));
  for (const auto &nest : nests) {
    size_t at = ptx->find(".entry " + nest.name + "(");
    ASSERT_NE(at, std::string::npos) << nest.name;
    std::string body = ptx->substr(at, ptx->find(".entry ", at + 1) - at);
    // RoPE's sin and cos keep libdevice's slow path for huge angles, whose
    // table lives in local memory; no other kernel touches it.
    if (nest.name.find("llq_rope_") != 0)
      EXPECT_EQ(body.find(".local"), std::string::npos) << nest.name;
    // Attention reads keys, values and queries 16 bytes at a time.
    if (nest.name.find("llq_scores_") == 0 ||
        nest.name.find("llq_values_") == 0)
      EXPECT_NE(body.find("ld.global.v4"), std::string::npos) << nest.name;
  }
  // The f16 GEMV reads its weights with 128-bit loads.
  EXPECT_NE(ptx->find("ld.global.v4"), std::string::npos);
}

TEST(ModelKernels, RejectsBadDimensions) {
  gpu::ModelDims dims;
  EXPECT_NE(dims.check(), "");
  dims.hidden = 64;
  dims.heads = 6;
  dims.kvHeads = 4;
  dims.headDim = 16;
  dims.intermediate = 128;
  dims.vocab = 100;
  dims.maxContext = 32;
  dims.scale = 0.25f;
  EXPECT_NE(dims.check().find("multiple of the key/value heads"),
            std::string::npos);
  dims.kvHeads = 2;
  EXPECT_EQ(dims.check(), "");
  dims.headDim = 12; // attention reads 8 halves at a time
  EXPECT_NE(dims.check().find("multiple of 8"), std::string::npos);
  gpu::HGemvSpec gemv;
  gemv.n = 10;
  gemv.k = 12;
  EXPECT_NE(gemv.finalize().find("multiple of 8"), std::string::npos);
}

} // namespace

namespace {

struct ActCase {
  int bits, actBits;
  int64_t n, k, group;
  int mTile, splitK, m;
  float step; // 0: per token
};

using ActQuantDecodeTest = JitTest<ActCase>;

// y = fakequant(x) W^T, where fakequant rounds x / s half to even, clamps to
// [-qmax - 1, qmax] and multiplies by s (s = max|x_row| / qmax, or the step):
// the CPU path's definition, in float64. The rows are quantized by the
// activation-quantization nests, as the runtime launches them.
TEST_P(ActQuantDecodeTest, MatchesFakeQuantizedReference) {
  const ActCase c = GetParam();
  gpu::QGemmSpec spec;
  spec.bits = c.bits;
  spec.n = c.n;
  spec.k = c.k;
  spec.group = c.group;
  spec.mTile = c.mTile;
  spec.splitK = c.splitK;
  spec.actBits = c.actBits;
  spec.actStep = c.step;
  ASSERT_EQ(spec.finalize(), "");
  SCOPED_TRACE(spec.kernelName());

  std::mt19937 rng(c.n + c.k);
  std::uniform_real_distribution<float> uni(-1, 1);
  const int64_t groups = (c.k + c.group - 1) / c.group;
  const int maxCode = (1 << c.bits) - 1;
  std::vector<uint8_t> codes(c.n * c.k), zeros(c.n * groups);
  std::vector<float> scales(c.n * groups);
  for (auto &v : codes)
    v = uint8_t(rng() % (maxCode + 1));
  for (auto &v : zeros)
    v = uint8_t(rng() % (maxCode + 1));
  for (auto &v : scales)
    v = quant::roundToHalf(0.001f + 0.01f * (rng() % 1000) / 1000);
  std::vector<float> x(c.mTile * c.k, 0.0f);
  for (int64_t i = 0; i < c.m * c.k; ++i)
    x[i] = quant::roundToHalf(2 * uni(rng));
  if (c.m > 1) // an all-zero row has a zero scale
    std::fill(x.begin() + c.k, x.begin() + 2 * c.k, 0.0f);

  // Fake-quantized activations, as the CPU path computes them.
  const float qmax = float((1 << (c.actBits - 1)) - 1);
  std::vector<float> xq(x.size(), 0.0f);
  for (int r = 0; r < c.m; ++r) {
    float amax = 0;
    for (int64_t i = 0; i < c.k; ++i)
      amax = std::max(amax, std::fabs(x[r * c.k + i]));
    float s = c.step > 0 ? c.step : amax / qmax;
    for (int64_t i = 0; i < c.k; ++i)
      xq[r * c.k + i] =
          s == 0 ? 0
                 : std::clamp(std::nearbyint(x[r * c.k + i] / s), -qmax - 1,
                              qmax) *
                       s;
  }
  std::vector<double> ref(c.m * c.n);
  quant::referenceQGemm(xq.data(), c.m, codes.data(), scales.data(),
                        zeros.data(), c.n, c.k, c.bits, c.group, ref.data());

  std::vector<uint32_t> w(quant::kChunkWords(c.n, c.k, c.bits));
  quant::packKChunk(codes.data(), c.n, c.k, c.bits, w.data());
  quant::KChunkGroupConstants gc = quant::makeKChunkGroupConstants(
      scales.data(), zeros.data(), c.n, groups, c.bits);
  Half xh = toHalf(x);
  std::vector<float> y(c.mTile * c.n, 0.0f);

  gpu::ActQuantSpec a = gpu::actQuantSpecOf(spec);
  std::vector<float> xs;
  std::vector<uint32_t> xqBytes;
  quantizeRows(a, xh, c.m, xqBytes, xs);

  // Both forms: the GPU's (scalar i32 products) and the host library's
  // (16-lane vectors): the same exact integer sums.
  for (bool hostMath : {false, true}) {
    SCOPED_TRACE(hostMath ? "host form" : "GPU form");
    std::fill(y.begin(), y.end(), 0.0f);
    Params p;
    p.mem(xqBytes).mem(w).mem(gc.scales).mem(gc.biases).mem(y).mem(xs).i32(
        c.m);
    runOnHost({spec.kernelName(),
               gpu::buildDecodeActQuantSource(spec, hostMath)},
              p);
    double maxRef = 0, maxErr = 0;
    for (int64_t i = 0; i < c.m * c.n; ++i) {
      maxRef = std::max(maxRef, std::abs(ref[i]));
      maxErr = std::max(maxErr, std::abs(double(y[i]) - ref[i]));
    }
    EXPECT_LE(maxErr, 1e-5 * maxRef) << "max |ref| " << maxRef;
    if (c.m > 1)
      for (int64_t i = 0; i < c.n; ++i)
        ASSERT_EQ(y[c.n + i], 0.0f);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ActQuantDecodeTest,
    ::testing::Values(ActCase{8, 8, 70, 192, 192, 1, 1, 1, 0},   // W8A8
                      ActCase{8, 8, 130, 256, 64, 4, 2, 3, 0},   // split K
                      ActCase{4, 4, 40, 128, 128, 2, 1, 2, 0},   // W4A4
                      ActCase{8, 6, 33, 96, 96, 4, 3, 4, 0},     // W6A6
                      ActCase{2, 8, 24, 256, 128, 2, 1, 2, 0},   // W2A8
                      ActCase{8, 8, 64, 128, 128, 1, 1, 1, 0.02f}));

} // namespace

TEST(ActQuantDecode, LowersToPtxWithoutLocalMemory) {
  gpu::QGemmSpec spec;
  spec.bits = 8;
  spec.n = 4096;
  spec.k = 4096;
  spec.group = 4096;
  spec.mTile = 4;
  spec.actBits = 8;
  ASSERT_EQ(spec.finalize(), "");
  EXPECT_EQ(spec.kernelName().rfind("llq_qgemv_w8a8_g4096_n4096_k4096_m4_s", 0),
            0u);
  mlir::DialectRegistry registry;
  gpu::registerKernelCompilation(registry);
  mlir::MLIRContext ctx(registry);
  auto module = gpu::buildKernelModule(ctx, {spec});
  ASSERT_TRUE(module);
  auto ptx = gpu::lowerKernelsToPtx(*module, "sm_80");
  ASSERT_TRUE(mlir::succeeded(ptx));
  EXPECT_NE(ptx->find(".entry " + spec.kernelName() + "("), std::string::npos);
  EXPECT_EQ(ptx->find(".local"), std::string::npos);
  EXPECT_NE(ptx->find("ld.global.v4"), std::string::npos);
  // More than 4 rows have no integer decode kernel (the prefill kernel
  // takes them).
  spec.mTile = 16;
  EXPECT_NE(spec.finalize().find("up to 4 rows"), std::string::npos);
}

namespace {

struct ActPrefillCase {
  int bits, codeBits, actBits;
  int64_t n, k;
  int m;
  float step; // 0: per token
};

using ActQuantPrefillTest = JitTest<ActPrefillCase>;

/// What the integer prefill kernel does with a word of codes: spread word
/// t's byte p holds the code at bit t * bits + 8p, minus the zero point, as
/// int8 (PrefillKernel.cpp's storeWeightsInt8, in host arithmetic).
int8_t spreadCode(uint32_t word, int bits, int codeBits, int t, int p,
                  int zero) {
  const uint32_t code = (word >> (t * bits + 8 * p)) & ((1u << bits) - 1);
  if (bits == 8 && codeBits == 8) // the top bit flipped
    return int8_t(uint8_t(code ^ 0x80));
  return int8_t(uint8_t(((code | 0x80) - uint32_t(zero)) ^ 0x80));
}

// The activation-quantization nests, JIT-run, give each row's step and
// bytes exactly as the definition does (round half to even of x times the
// reciprocal step, clamped), in the weights' spread order; and the integer
// products of those bytes with the spread weights, scaled by the steps and
// the weight scales, are the CPU path's fake-quantized product.
TEST_P(ActQuantPrefillTest, BytesStepsAndIntegerProducts) {
  const ActPrefillCase c = GetParam();
  gpu::QGemmSpec spec;
  spec.kind = gpu::QGemmKind::Prefill;
  spec.bits = c.bits;
  spec.codeBits = c.codeBits;
  spec.n = c.n;
  spec.k = c.k;
  spec.group = c.k;
  spec.actBits = c.actBits;
  spec.actStep = c.step;
  ASSERT_EQ(spec.finalize(), "");
  gpu::ActQuantSpec a = gpu::actQuantSpecOf(spec);
  SCOPED_TRACE(a.quantName());
  ASSERT_EQ(a.amaxName().empty(), c.step > 0);

  std::mt19937 rng(c.n * 7 + c.k);
  std::uniform_real_distribution<float> uni(-1, 1);
  std::vector<float> x(c.m * c.k);
  for (float &v : x)
    v = quant::roundToHalf(3 * uni(rng));
  if (c.m > 1) // an all-zero row has a zero step
    std::fill(x.begin() + c.k, x.begin() + 2 * c.k, 0.0f);
  if (c.m > 2) // one large value: a row dominated by an outlier
    x[2 * c.k + 5] = 60.0f;
  Half xh = toHalf(x);
  std::vector<float> xs;
  std::vector<uint32_t> xq;
  quantizeRows(a, xh, c.m, xq, xs);

  // The definition, in k order.
  const float qmax = float((1 << (c.actBits - 1)) - 1);
  const int64_t run = 32 / c.bits;
  std::vector<int> q(c.m * c.k);
  for (int r = 0; r < c.m; ++r) {
    float amax = 0;
    for (int64_t i = 0; i < c.k; ++i)
      amax = std::max(amax, std::fabs(x[r * c.k + i]));
    const float s = c.step > 0 ? c.step : amax / qmax;
    ASSERT_EQ(xs[r], s) << "row " << r;
    const float inv = 1.0f / (s == 0 ? 1.0f : s);
    for (int64_t i = 0; i < c.k; ++i)
      q[r * c.k + i] = int(std::clamp(std::nearbyint(x[r * c.k + i] * inv),
                                      -qmax - 1, qmax));
    // Byte j of the row holds k = its run's start + kChunkByteOrder.
    const auto *bytes = reinterpret_cast<const int8_t *>(xq.data()) + r * c.k;
    for (int64_t j = 0; j < c.k; ++j) {
      const int64_t kk = j / run * run + quant::kChunkByteOrder(c.bits, j % run);
      ASSERT_EQ(int(bytes[j]), q[r * c.k + kk]) << "row " << r << " byte " << j;
    }
  }

  // Weights: per-channel codes and zero points (8-bit codes: zero 128).
  const int maxCode = (1 << c.codeBits) - 1;
  std::vector<uint8_t> codes(c.n * c.k), zeros(c.n);
  std::vector<float> scales(c.n);
  for (auto &v : codes)
    v = uint8_t(rng() % (maxCode + 1));
  for (auto &v : zeros)
    v = c.codeBits == 8 ? 128 : uint8_t(rng() % (maxCode + 1));
  for (auto &v : scales)
    v = quant::roundToHalf(0.001f + 0.01f * (rng() % 1000) / 1000);
  std::vector<uint32_t> w(quant::kChunkWords(c.n, c.k, c.bits));
  quant::packKChunk(codes.data(), c.n, c.k, c.bits, w.data());

  // The kernel's integer product: spread weight bytes times activation
  // bytes, position by position; then steps and scales.
  const auto *bytes = reinterpret_cast<const int8_t *>(xq.data());
  const int64_t C = quant::kChunkCodes(c.bits);
  std::vector<float> xf(c.m * c.k);
  for (int r = 0; r < c.m; ++r)
    for (int64_t i = 0; i < c.k; ++i)
      xf[r * c.k + i] = float(q[r * c.k + i]) * xs[r];
  std::vector<double> ref(c.m * c.n);
  quant::referenceQGemm(xf.data(), c.m, codes.data(), scales.data(),
                        zeros.data(), c.n, c.k, c.bits, c.k, ref.data());
  for (int r = 0; r < c.m; ++r)
    for (int64_t j = 0; j < c.n; ++j) {
      int64_t acc = 0;
      for (int64_t chunk = 0; chunk < c.k / C; ++chunk)
        for (int word = 0; word < 4; ++word) {
          const uint32_t wv = w[(chunk * c.n + j) * 4 + word];
          for (int t = 0; t < 8 / c.bits; ++t)
            for (int pp = 0; pp < 4; ++pp) {
              const int64_t pos = chunk * C + word * run + t * 4 + pp;
              acc += int64_t(spreadCode(wv, c.bits, c.codeBits, t, pp,
                                        zeros[j])) *
                     bytes[r * c.k + pos];
            }
        }
      const double y = double(float(acc) * scales[j] * xs[r]);
      EXPECT_NEAR(y, ref[r * c.n + j], 1e-5 * std::abs(ref[r * c.n + j]) + 1e-6)
          << r << "," << j;
    }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ActQuantPrefillTest,
    ::testing::Values(ActPrefillCase{8, 8, 8, 24, 512, 3, 0},   // W8A8
                      ActPrefillCase{8, 6, 6, 16, 384, 4, 0},   // W6A6
                      ActPrefillCase{4, 4, 8, 16, 4608, 2, 0},  // W4A8, S > 32
                      ActPrefillCase{4, 3, 4, 8, 256, 3, 0},    // W3A4
                      ActPrefillCase{2, 2, 8, 8, 256, 3, 0},    // W2A8
                      ActPrefillCase{8, 8, 8, 16, 576, 3, 0},   // 64-segments
                      ActPrefillCase{8, 8, 8, 8, 96, 2, 0},     // 32-segments
                      ActPrefillCase{8, 8, 8, 8, 256, 2, 0.03f}));

} // namespace

TEST(ActQuantPrefill, RejectsGroupsAndShortK) {
  gpu::QGemmSpec spec;
  spec.kind = gpu::QGemmKind::Prefill;
  spec.bits = 8;
  spec.n = 256;
  spec.k = 4096;
  spec.group = 128;
  spec.actBits = 8;
  EXPECT_NE(spec.finalize().find("one weight group per row"),
            std::string::npos);
  spec.k = spec.group = 208;
  EXPECT_NE(spec.finalize().find("multiple of 32"), std::string::npos);
  spec.k = spec.group = 256;
  EXPECT_EQ(spec.finalize(), "");
  EXPECT_EQ(spec.kernelName(), "llq_qgemm_w8a8_g256_n256_k256");
  spec.codeBits = 6;
  EXPECT_EQ(spec.kernelName(), "llq_qgemm_w8c6a8_g256_n256_k256");
}

namespace {

struct HadamardCase {
  int64_t n;
  bool transpose;
  int rows;
};

using HadamardTest = JitTest<HadamardCase>;

// The stages and the finishing nest, JIT-run, transform every row as
// quant::RandomizedHadamard::applyToRows does (in float64 here): T x / D
// (the inputs of a QuIP layer, through f16) or T^T y (its outputs, f32).
TEST_P(HadamardTest, MatchesTheRandomizedHadamard) {
  const HadamardCase c = GetParam();
  quant::RandomizedHadamard rht(c.n, 0x5155495056ull + c.n);
  gpu::HadamardSpec spec;
  spec.n = c.n;
  spec.p = rht.hadamardSize();
  spec.m = rht.oddSize();
  spec.transpose = c.transpose;
  SCOPED_TRACE(spec.finishName());

  std::mt19937 rng(c.n);
  std::uniform_real_distribution<float> uni(-1, 1);
  std::vector<float> x(c.rows * c.n), colScale(c.n);
  for (float &v : x)
    v = quant::roundToHalf(uni(rng));
  for (float &v : colScale)
    v = 0.5f + 0.5f * float(rng() % 1000) / 1000; // D
  std::vector<float> signs(rht.signs().begin(), rht.signs().end());
  std::vector<float> mix(rht.mixing().begin(), rht.mixing().end());
  std::vector<float> inv(c.n);
  for (int64_t i = 0; i < c.n; ++i)
    inv[i] = 1.0f / colScale[i];

  std::vector<double> ref(x.begin(), x.end());
  if (!c.transpose)
    for (int r = 0; r < c.rows; ++r)
      for (int64_t i = 0; i < c.n; ++i)
        ref[r * c.n + i] /= colScale[i];
  rht.applyToRows(ref.data(), c.rows, c.transpose);

  Half xh = toHalf(x);
  std::vector<float> buf(c.rows * c.n, NAN), yf(c.rows * c.n, NAN);
  Half yh(c.rows * c.n, 0x7e00);
  for (size_t i = 0; i < spec.stages().size(); ++i) {
    Params p;
    if (c.transpose)
      p.mem(x);
    else
      p.mem(xh);
    p.mem(signs).mem(inv).mem(buf).i32(c.rows);
    runOnHost({spec.stageName(i), gpu::hadamardStageSource(spec, i)}, p);
  }
  Params p;
  p.mem(buf).mem(signs).mem(mix);
  if (c.transpose)
    p.mem(yf);
  else
    p.mem(yh);
  p.i32(c.rows);
  runOnHost({spec.finishName(), gpu::hadamardFinishSource(spec)}, p);

  double maxRef = 0;
  for (double v : ref)
    maxRef = std::max(maxRef, std::abs(v));
  for (int64_t i = 0; i < c.rows * c.n; ++i) {
    const double got = c.transpose ? double(yf[i]) : double(hf(yh[i]));
    // f16 outputs round once; f32 ones only accumulate rounding.
    EXPECT_NEAR(got, ref[i], (c.transpose ? 1e-5 : 1e-3) * maxRef) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, HadamardTest,
    ::testing::Values(HadamardCase{576, false, 2},   // 64 x 9: two stages
                      HadamardCase{576, true, 3},
                      HadamardCase{1536, false, 1},  // 512 x 3: 16, 16, 2
                      HadamardCase{192, true, 2},    // 64 x 3
                      HadamardCase{256, false, 2},   // a power of two
                      HadamardCase{8, true, 1},      // one stage of radix 8
                      HadamardCase{7, false, 2}));   // p = 1: mixing only

} // namespace

namespace {

struct PBCase {
  int64_t n, k;
  int mTile, splitK, m;
};

using PBLLMGemvTest = JitTest<PBCase>;

// y = x W^T with W decoded by the format's own dequantize (Binarize.h).
TEST_P(PBLLMGemvTest, MatchesDequantizedReference) {
  const PBCase c = GetParam();
  gpu::PBLLMGemvSpec spec;
  spec.n = c.n;
  spec.k = c.k;
  spec.mTile = c.mTile;
  spec.splitK = c.splitK;
  ASSERT_EQ(spec.finalize(), "");
  SCOPED_TRACE(spec.kernelName());

  std::mt19937 rng(c.n * 7 + c.k);
  const int64_t words = c.k / 32;
  quant::PBLLMMatrix w;
  w.rows = c.n;
  w.cols = c.k;
  w.signs.assign(c.n * words, 0);
  w.salient.assign(c.n * words, 0);
  w.rowOffsets.push_back(0);
  for (int64_t r = 0; r < c.n; ++r) {
    for (int64_t j = 0; j < c.k; ++j) {
      const bool sal = rng() % 10 == 0;
      uint32_t bit = uint32_t(1) << (j % 32);
      if (sal) {
        w.salient[r * words + j / 32] |= bit;
        w.codes.push_back(int8_t(int(rng() % 255) - 127));
      } else if (rng() % 2) {
        w.signs[r * words + j / 32] |= bit;
      }
    }
    w.rowOffsets.push_back(uint32_t(w.codes.size()));
    w.binaryScales.push_back(
        quant::floatToHalf(0.01f + 0.05f * (rng() % 100) / 100));
    w.salientScales.push_back(
        quant::floatToHalf(0.001f + 0.002f * (rng() % 100) / 100));
  }
  std::vector<float> dense(c.n * c.k);
  quant::dequantize(w, dense.data());

  std::vector<float> x = randomRows(rng, c.mTile, c.m, c.k);
  Half xh = toHalf(x);
  // The bit planes, transposed to [K / 32][N].
  std::vector<uint32_t> signsT(words * c.n), salientT(words * c.n);
  for (int64_t r = 0; r < c.n; ++r)
    for (int64_t q = 0; q < words; ++q) {
      signsT[q * c.n + r] = w.signs[r * words + q];
      salientT[q * c.n + r] = w.salient[r * words + q];
    }
  std::vector<uint32_t> offsets(w.rowOffsets.begin(), w.rowOffsets.end());
  std::vector<int8_t> codes = w.codes;
  if (codes.empty())
    codes.push_back(0);
  std::vector<uint16_t> bscale = w.binaryScales, sscale = w.salientScales;
  std::vector<float> y(c.mTile * c.n, 0.0f);

  Params p;
  p.mem(xh).mem(signsT).mem(salientT).mem(offsets).mem(codes).mem(bscale);
  p.mem(sscale).mem(y).i32(c.m);
  runOnHost({spec.kernelName(), gpu::pbllmGemvSource(spec)}, p);

  expectProduct(x, dense, y, c.m, c.n, c.k);
}

INSTANTIATE_TEST_SUITE_P(Shapes, PBLLMGemvTest,
                         ::testing::Values(PBCase{37, 64, 1, 1, 1},
                                           PBCase{130, 256, 4, 3, 3},
                                           PBCase{64, 96, 4, 0, 4}));

TEST(PBLLMGemv, LowersToPtxWithoutLocalMemory) {
  gpu::PBLLMGemvSpec spec;
  spec.n = 4096;
  spec.k = 4096;
  ASSERT_EQ(spec.finalize(), "");
  mlir::DialectRegistry registry;
  gpu::registerKernelCompilation(registry);
  mlir::MLIRContext ctx(registry);
  auto module = gpu::buildKernelModule(
      ctx, {}, {{spec.kernelName(), gpu::pbllmGemvSource(spec)}});
  ASSERT_TRUE(module);
  auto ptx = gpu::lowerKernelsToPtx(*module, "sm_80");
  ASSERT_TRUE(mlir::succeeded(ptx));
  EXPECT_NE(ptx->find(".entry " + spec.kernelName() + "("), std::string::npos);
  EXPECT_EQ(ptx->find(".local"), std::string::npos);
  EXPECT_NE(ptx->find("popc.b32"), std::string::npos);
}

} // namespace

namespace {

struct BiCase {
  int64_t n, k, blockSize;
  int mTile, splitK, m;
};

using BiLLMGemvTest = JitTest<BiCase>;

// y = x W^T with W decoded by BiLLM's own dequantize (Binarize.h), the GPU
// planes built by the pack step's makeBiLLMGpuPlanes.
TEST_P(BiLLMGemvTest, MatchesDequantizedReference) {
  const BiCase c = GetParam();
  gpu::BiLLMGemvSpec spec;
  spec.n = c.n;
  spec.k = c.k;
  spec.blockSize = c.blockSize;
  spec.mTile = c.mTile;
  spec.splitK = c.splitK;
  ASSERT_EQ(spec.finalize(), "");
  SCOPED_TRACE(spec.kernelName());

  std::mt19937 rng(c.n * 3 + c.k);
  const int64_t words = c.k / 32;
  quant::BiLLMMatrix w;
  w.rows = c.n;
  w.cols = c.k;
  w.blockSize = c.blockSize;
  w.blocks = (c.k + c.blockSize - 1) / c.blockSize;
  w.salientColumns.assign(words, 0);
  for (int64_t j = 0; j < c.k; ++j)
    if (rng() % 8 == 0) {
      w.salientColumns[j / 32] |= uint32_t(1) << (j % 32);
      ++w.salientCount;
    }
  auto randomWords = [&](int64_t count) {
    std::vector<uint32_t> v(count);
    for (auto &x : v)
      x = uint32_t(rng());
    return v;
  };
  const int64_t s = w.salientCount;
  w.signs = randomWords(c.n * words);
  w.residualSigns = randomWords(c.n * ((s + 31) / 32));
  w.sparse = randomWords(c.n * ((c.k - s + 31) / 32));
  for (int64_t i = 0; i < c.n * w.blocks * 4; ++i)
    w.scales.push_back(quant::floatToHalf(0.01f + 0.1f * (rng() % 100) / 100));
  std::vector<float> dense(c.n * c.k);
  quant::dequantize(w, dense.data());

  quant::BiLLMGpuPlanes planes;
  std::string error;
  ASSERT_TRUE(quant::makeBiLLMGpuPlanes(
      c.n, c.k, c.blockSize, w.salientColumns.data(), w.signs.data(),
      w.residualSigns.data(), w.sparse.data(), w.scales.data(), planes,
      error))
      << error;

  std::vector<float> x = randomRows(rng, c.mTile, c.m, c.k);
  Half xh = toHalf(x);
  std::vector<float> y(c.mTile * c.n, 0.0f);

  Params p;
  p.mem(xh).mem(planes.mask).mem(planes.first).mem(planes.second);
  p.mem(planes.alphas).mem(y).i32(c.m);
  runOnHost({spec.kernelName(), gpu::billmGemvSource(spec)}, p);

  expectProduct(x, dense, y, c.m, c.n, c.k);
}

INSTANTIATE_TEST_SUITE_P(Shapes, BiLLMGemvTest,
                         ::testing::Values(BiCase{37, 128, 64, 1, 1, 1},
                                           BiCase{130, 256, 128, 4, 3, 3},
                                           BiCase{64, 96, 32, 4, 0, 4}));

} // namespace

namespace {

using DBLLMGemvTest = JitTest<BiCase>;

// The two-plane GEMV in its DB-LLM form vs DB-LLM's own dequantize.
TEST_P(DBLLMGemvTest, MatchesDequantizedReference) {
  const BiCase c = GetParam();
  gpu::BiLLMGemvSpec spec;
  spec.n = c.n;
  spec.k = c.k;
  spec.blockSize = c.blockSize;
  spec.mTile = c.mTile;
  spec.splitK = c.splitK;
  spec.dbllm = true;
  ASSERT_EQ(spec.finalize(), "");
  SCOPED_TRACE(spec.kernelName());

  std::mt19937 rng(c.n * 5 + c.k);
  const int64_t words = c.k / 32;
  quant::DBLLMMatrix w;
  w.rows = c.n;
  w.cols = c.k;
  w.groupSize = c.blockSize;
  w.groups = (c.k + c.blockSize - 1) / c.blockSize;
  for (int64_t i = 0; i < c.n * words; ++i) {
    w.first.push_back(uint32_t(rng()));
    w.second.push_back(uint32_t(rng()));
  }
  for (int64_t i = 0; i < c.n * w.groups; ++i) {
    w.params.push_back(quant::floatToHalf(0.05f + 0.1f * (rng() % 100) / 100));
    w.params.push_back(quant::floatToHalf(0.01f + 0.05f * (rng() % 100) / 100));
    w.params.push_back(quant::floatToHalf(0.5f * (rng() % 100) / 100));
  }
  std::vector<float> dense(c.n * c.k);
  quant::dequantize(w, dense.data());

  std::vector<uint32_t> first(words * c.n), second(words * c.n);
  quant::transposeWords(w.first.data(), c.n, words, first.data());
  quant::transposeWords(w.second.data(), c.n, words, second.data());
  std::vector<uint16_t> params(w.params.size());
  quant::transposeGroupParams(w.params.data(), c.n, w.groups, 3,
                              params.data());
  std::vector<uint32_t> unusedMask(1, 0);

  std::vector<float> x = randomRows(rng, c.mTile, c.m, c.k);
  Half xh = toHalf(x);
  std::vector<float> y(c.mTile * c.n, 0.0f);

  Params p;
  p.mem(xh).mem(unusedMask).mem(first).mem(second).mem(params).mem(y);
  p.i32(c.m);
  runOnHost({spec.kernelName(), gpu::billmGemvSource(spec)}, p);

  expectProduct(x, dense, y, c.m, c.n, c.k);
}

INSTANTIATE_TEST_SUITE_P(Shapes, DBLLMGemvTest,
                         ::testing::Values(BiCase{37, 128, 64, 1, 1, 1},
                                           BiCase{130, 256, 128, 4, 3, 3},
                                           BiCase{64, 96, 96, 4, 0, 4}));

} // namespace

namespace {

struct NF4Case {
  int64_t n, k, blockSize;
  int mTile, splitK, m;
  bool icq;
};

using NF4GemvTest = JitTest<NF4Case>;

// y = x W^T with W from NF4's dequantize; the kernel's weights are computed
// with the same fma, so only the sums' order differs.
TEST_P(NF4GemvTest, MatchesDequantizedReference) {
  const NF4Case c = GetParam();
  gpu::NF4GemvSpec spec;
  spec.n = c.n;
  spec.k = c.k;
  spec.blockSize = c.blockSize;
  spec.mTile = c.mTile;
  spec.splitK = c.splitK;
  ASSERT_EQ(spec.finalize(), "");
  SCOPED_TRACE(spec.kernelName());

  std::mt19937 rng(c.n + 11 * c.k);
  std::normal_distribution<float> normal(0, 0.05f);
  std::vector<float> wf(c.n * c.k);
  for (auto &v : wf)
    v = normal(rng);
  quant::NF4Options options;
  options.blockSize = c.blockSize;
  options.calibrate = c.icq;
  quant::NF4Matrix w = quant::quantizeNF4(wf.data(), c.n, c.k, options);
  std::vector<float> dense(c.n * c.k);
  quant::dequantize(w, dense.data());
  quant::NF4GpuLayer g = quant::makeNF4GpuLayer(w);

  std::vector<float> x = randomRows(rng, c.mTile, c.m, c.k);
  Half xh = toHalf(x);
  std::vector<float> y(c.mTile * c.n, 0.0f);

  Params p;
  p.mem(xh).mem(g.codes).mem(g.levels).mem(g.scales).mem(g.shifts).mem(y);
  p.i32(c.m);
  runOnHost({spec.kernelName(), gpu::nf4GemvSource(spec)}, p);

  expectProduct(x, dense, y, c.m, c.n, c.k);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, NF4GemvTest,
    ::testing::Values(NF4Case{37, 128, 64, 1, 1, 1, false},
                      NF4Case{130, 256, 64, 4, 3, 3, false},
                      NF4Case{64, 192, 32, 4, 0, 4, true}));

} // namespace
