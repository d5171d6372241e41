//===- qgemm_bench.cpp - llq's quantized GEMM kernels vs cuBLAS fp16
//-------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Checks and times the kernels of a directory written by
// `llq-compile --kernels=... -o DIR` (see bench/gpu/README.md):
//
//  * the device: name, SM count, and the bandwidth of a device-to-device
//    copy of 1 GiB (read + write bytes per second), the yardstick for the
//    memory-bound decode kernels;
//  * for every layer shape (n, k, bits, group) in the manifest and every M
//    (1, 16, 64, 2048 unless --m says otherwise): the decode kernel with the
//    smallest mtile >= M, else the prefill kernel (no kernel: the row says
//    so). Random codes, scales and zero points (fixed seeds) are packed with
//    llq/Quant/GpuLayout.h, x is random f16 in [-1, 1]; y is checked against
//    referenceQGemm in float64 (all rows for M <= 16, 8 sampled rows
//    otherwise): error = max |y - ref| / (max |ref| + 1e-6), pass <= 2e-2;
//  * the same product with cuBLAS (cublasGemmEx, f16 inputs with W as an
//    n x k f16 matrix of the dequantized weights, f32 compute, f16 output),
//    checked the same way.
//  * integer-activation shapes (act_bits, e.g. llq-compile --kernels=
//    w8a8-g4096:NxK): symmetric per-channel weights, and the reference
//    takes x fake-quantized per token (round half to even of x / s, s =
//    max|x_row| / qmax), as the CPU path defines it. The prefill row times
//    the activation-quantization nests and the int8 GEMM together; cuBLAS
//    stays the f16 GEMM on the unquantized x.
//
// Timing: CUDA events around each launch, median of --iters launches after
// --warmup launches. Every timed launch runs cold: before it, a 256 MiB
// buffer is read (--flush=read, the default: cublasIsamax over it), which
// evicts the 50-60 MB L2 of an H100/H200 and leaves it holding clean lines,
// so weights, constants and x come from HBM as they do in a model whose
// layers are far larger than L2. --flush=write writes the buffer instead
// (cuMemsetD32Async): the L2 is then full of dirty lines whose write-back
// competes with the timed kernel's reads, a harsher setting. Nothing is
// subtracted: the events bracket the kernel alone (the flush and, for
// accumulating kernels, the zeroing of y are queued before the start event).
//
// Exit status: 0 when every checked product is within tolerance, 1 when one
// is not (every row is still printed), 2 on a setup error.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/GpuLayout.h"
#include "llq/Quant/Half.h"
#include "llq/Runtime/Cuda/KernelLibrary.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

using namespace llq::rt::cuda;
namespace lq = llq::quant;

namespace {

struct Options {
  std::string directory = "build/gpu-kernels";
  std::vector<int64_t> ms{1, 16, 64, 2048};
  int iters = 25;
  int warmup = 3;
  size_t flushBytes = size_t(256) << 20;
  bool flushByWriting = false;
  double tolerance = 2e-2;
};

[[noreturn]] void die(const std::string &message) {
  std::fprintf(stderr, "qgemm_bench: %s\n", message.c_str());
  std::exit(2);
}

void check(const Status &s) {
  if (!s)
    die(s.message());
}

template <typename T> T check(Expected<T> e) {
  if (!e)
    die(e.message());
  return e.take();
}

void checkCublas(cublasStatus_t s, const char *call) {
  if (s != CUBLAS_STATUS_SUCCESS)
    die(std::string(call) + " failed: cuBLAS status " + std::to_string(int(s)));
}

void checkCudart(cudaError_t e, const char *call) {
  if (e != cudaSuccess)
    die(std::string(call) + " failed: " + cudaGetErrorString(e));
}

void usage() {
  std::printf("usage: qgemm_bench [KERNEL_DIR] [--m 1,16,64,2048] [--iters N]\n"
              "                   [--warmup N] [--flush=read|write]\n"
              "KERNEL_DIR holds kernels.txt and the modules it names (default\n"
              "build/gpu-kernels).\n");
}

Options parseOptions(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        die("missing value after " + a);
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      usage();
      std::exit(0);
    } else if (a == "--m") {
      o.ms.clear();
      std::string list = value();
      size_t start = 0;
      while (start <= list.size()) {
        size_t comma = list.find(',', start);
        std::string part = list.substr(start, comma - start);
        int64_t m = std::atoll(part.c_str());
        if (m <= 0)
          die("bad --m entry '" + part + "'");
        o.ms.push_back(m);
        if (comma == std::string::npos)
          break;
        start = comma + 1;
      }
    } else if (a == "--iters") {
      o.iters = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--warmup") {
      o.warmup = std::max(0, std::atoi(value().c_str()));
    } else if (a == "--flush=read" || a == "--flush=write") {
      o.flushByWriting = a == "--flush=write";
    } else if (!a.empty() && a[0] == '-') {
      usage();
      die("unknown option " + a);
    } else {
      o.directory = a;
    }
  }
  return o;
}

/// Runs fn(begin, end) over [0, n) on all hardware threads.
void parallelFor(int64_t n, const std::function<void(int64_t, int64_t)> &fn) {
  int threads = std::max(1u, std::thread::hardware_concurrency());
  threads = static_cast<int>(std::min<int64_t>(threads, n));
  if (threads <= 1) {
    if (n > 0)
      fn(0, n);
    return;
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] { fn(n * t / threads, n * (t + 1) / threads); });
  for (std::thread &th : pool)
    th.join();
}

/// A small deterministic generator (splitmix64), seeded per row so that the
/// data do not depend on the number of threads.
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1).
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }
};

uint64_t seedOf(uint64_t a, uint64_t b, uint64_t c) {
  Rng r(a * 0x100000001b3ull ^ b * 0x9e3779b97f4a7c15ull ^ c);
  return r.next();
}

/// One layer's weights on the host and the device.
struct Layer {
  int bits = 4;
  int64_t n = 0, k = 0, group = 0, groups = 0;
  std::vector<uint8_t> codes, zeros; // [n][k], [n][groups]
  std::vector<float> scales;         // [n][groups], f16-representable
  DeviceBuffer w, scalesDev, biasesDev, wHalf;
  size_t wBytes = 0, constBytes = 0;
};

Layer makeLayer(const CudaDevice &device, int bits, int64_t n, int64_t k,
                int64_t group, bool symmetric) {
  Layer L;
  L.bits = bits;
  L.n = n;
  L.k = k;
  L.group = group;
  L.groups = (k + group - 1) / group;
  const uint64_t shapeSeed = seedOf(uint64_t(n), uint64_t(k), uint64_t(bits));
  L.codes.resize(size_t(n * k));
  L.zeros.resize(size_t(n * L.groups));
  L.scales.resize(size_t(n * L.groups));
  const uint32_t levels = 1u << bits;
  parallelFor(n, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      Rng rng(seedOf(shapeSeed, uint64_t(r), 1));
      uint8_t *row = L.codes.data() + r * k;
      for (int64_t j = 0; j < k; ++j)
        row[j] = uint8_t(rng.next() % levels);
      for (int64_t g = 0; g < L.groups; ++g) {
        const uint8_t zero = uint8_t(rng.next() % levels);
        L.zeros[r * L.groups + g] =
            symmetric ? uint8_t(1u << (bits - 1)) : zero;
        // Scales of a typical magnitude, rounded to what the kernel reads.
        L.scales[r * L.groups + g] = lq::roundToHalf(
            float((0.5 + rng.uniform()) * 0.05 / double(levels)));
      }
    }
  });

  // The k-chunk layout, packed by row blocks in parallel and scattered into
  // the chunk-major whole.
  const int64_t chunks = k / lq::kChunkCodes(bits);
  std::vector<uint32_t> packed(size_t(lq::kChunkWords(n, k, bits)));
  parallelFor((n + 255) / 256, [&](int64_t b0, int64_t b1) {
    std::vector<uint32_t> part;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * 256, rows = std::min<int64_t>(256, n - r0);
      part.resize(size_t(lq::kChunkWords(rows, k, bits)));
      lq::packKChunk(L.codes.data() + r0 * k, rows, k, bits, part.data());
      for (int64_t c = 0; c < chunks; ++c)
        std::memcpy(&packed[size_t((c * n + r0) * 4)],
                    &part[size_t(c * rows * 4)], size_t(rows) * 16);
    }
  });
  lq::KChunkGroupConstants constants = lq::makeKChunkGroupConstants(
      L.scales.data(), L.zeros.data(), n, L.groups, bits);

  // The dequantized weights for cuBLAS: W[n][k] in f16.
  std::vector<uint16_t> wHalf(size_t(n * k));
  parallelFor(n, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t j = 0; j < k; ++j) {
        int64_t g = j / group;
        float v =
            (float(L.codes[r * k + j]) - float(L.zeros[r * L.groups + g])) *
            L.scales[r * L.groups + g];
        wHalf[size_t(r * k + j)] = lq::floatToHalf(v);
      }
  });

  L.wBytes = packed.size() * 4;
  L.constBytes = constants.scales.size() * 2 * 2;
  L.w = check(DeviceBuffer::allocate(device, L.wBytes));
  L.scalesDev =
      check(DeviceBuffer::allocate(device, constants.scales.size() * 2));
  L.biasesDev =
      check(DeviceBuffer::allocate(device, constants.biases.size() * 2));
  L.wHalf = check(DeviceBuffer::allocate(device, wHalf.size() * 2));
  check(device.copyToDevice(L.w.ptr(), packed.data(), L.wBytes));
  check(device.copyToDevice(L.scalesDev.ptr(), constants.scales.data(),
                            constants.scales.size() * 2));
  check(device.copyToDevice(L.biasesDev.ptr(), constants.biases.data(),
                            constants.biases.size() * 2));
  check(device.copyToDevice(L.wHalf.ptr(), wHalf.data(), wHalf.size() * 2));
  return L;
}

/// Fake-quantizes rows of x ([rows][k]) to actBits-bit integers per token,
/// as the CPU path does (and the kernels, with the reciprocal step).
void fakeQuantizeRows(std::vector<float> &x, int64_t k, int actBits) {
  const float qmax = float((1 << (actBits - 1)) - 1);
  for (size_t r = 0; r < x.size() / size_t(k); ++r) {
    float *row = x.data() + r * size_t(k), amax = 0;
    for (int64_t j = 0; j < k; ++j)
      amax = std::max(amax, std::fabs(row[j]));
    const float s = amax / qmax, inv = 1.0f / (s == 0 ? 1.0f : s);
    for (int64_t j = 0; j < k; ++j)
      row[j] = std::clamp(std::nearbyint(row[j] * inv), -qmax - 1, qmax) * s;
  }
}

/// float64 reference rows: y[i][n] for the selected rows of x ([rows][k],
/// already f16-rounded), in parallel over output columns.
std::vector<double> referenceRows(const Layer &L, const std::vector<float> &x,
                                  int64_t rows) {
  std::vector<double> y(size_t(rows * L.n));
  const int64_t blocks = (L.n + 63) / 64;
  parallelFor(blocks, [&](int64_t b0, int64_t b1) {
    const int64_t c0 = b0 * 64, c1 = std::min(L.n, b1 * 64), cols = c1 - c0;
    if (cols <= 0)
      return;
    std::vector<double> part(size_t(rows * cols));
    lq::referenceQGemm(x.data(), rows, L.codes.data() + c0 * L.k,
                       L.scales.data() + c0 * L.groups,
                       L.zeros.data() + c0 * L.groups, cols, L.k, L.bits,
                       L.group, part.data());
    for (int64_t i = 0; i < rows; ++i)
      std::memcpy(&y[size_t(i * L.n + c0)], &part[size_t(i * cols)],
                  size_t(cols) * sizeof(double));
  });
  return y;
}

double relativeError(const std::vector<double> &ref,
                     const std::vector<double> &got) {
  double maxRef = 0, maxDiff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    maxRef = std::max(maxRef, std::fabs(ref[i]));
    double d = std::fabs(got[i] - ref[i]);
    if (!(d <= maxDiff)) // NaN counts as infinitely wrong
      maxDiff = std::isnan(d) ? INFINITY : d;
  }
  return maxDiff / (maxRef + 1e-6);
}

/// Times `launch` cold: flush L2, then events around the launch; returns the
/// median in microseconds.
class Timer {
public:
  Timer(const CudaDevice &device, std::function<void(int)> flush,
        const Options &o)
      : device_(device), flush_(std::move(flush)), o_(o) {
    events_.resize(size_t(2 * o.iters));
    for (CUevent &e : events_)
      check(device.check(device.api().cuEventCreate(&e, 0), "cuEventCreate"));
  }
  ~Timer() {
    for (CUevent e : events_)
      device_.api().cuEventDestroy_v2(e);
  }

  /// prepare() is queued before each launch (outside the timed interval).
  double medianMicros(const std::function<void()> &prepare,
                      const std::function<void()> &launch) {
    for (int i = 0; i < o_.warmup; ++i) {
      prepare();
      launch();
    }
    for (int i = 0; i < o_.iters; ++i) {
      flush_(i);
      prepare();
      check(device_.check(device_.api().cuEventRecord(events_[2 * i], nullptr),
                          "cuEventRecord"));
      launch();
      check(device_.check(
          device_.api().cuEventRecord(events_[2 * i + 1], nullptr),
          "cuEventRecord"));
    }
    check(device_.synchronize());
    std::vector<float> ms(size_t(o_.iters));
    for (int i = 0; i < o_.iters; ++i)
      check(device_.check(device_.api().cuEventElapsedTime_v2(
                              &ms[i], events_[2 * i], events_[2 * i + 1]),
                          "cuEventElapsedTime"));
    std::sort(ms.begin(), ms.end());
    return 1000.0 * ms[ms.size() / 2];
  }

private:
  const CudaDevice &device_;
  std::function<void(int)> flush_;
  const Options &o_;
  std::vector<CUevent> events_;
};

/// Device copy bandwidth (GB/s counting bytes read and written) of a 1 GiB
/// cuMemcpyDtoD, median of 7.
double copyBandwidth(const CudaDevice &device) {
  const size_t bytes = size_t(1) << 30;
  DeviceBuffer a = check(DeviceBuffer::allocate(device, bytes));
  DeviceBuffer b = check(DeviceBuffer::allocate(device, bytes));
  check(device.fill32(a.ptr(), 0x3c003c00u, bytes / 4));
  const DriverApi &api = device.api();
  CUevent start, end;
  check(device.check(api.cuEventCreate(&start, 0), "cuEventCreate"));
  check(device.check(api.cuEventCreate(&end, 0), "cuEventCreate"));
  std::vector<float> ms;
  for (int i = 0; i < 8; ++i) {
    check(device.check(api.cuEventRecord(start, nullptr), "cuEventRecord"));
    check(
        device.check(api.cuMemcpyDtoDAsync_v2(b.ptr(), a.ptr(), bytes, nullptr),
                     "cuMemcpyDtoDAsync_v2"));
    check(device.check(api.cuEventRecord(end, nullptr), "cuEventRecord"));
    check(device.check(api.cuEventSynchronize(end), "cuEventSynchronize"));
    float t = 0;
    check(device.check(api.cuEventElapsedTime_v2(&t, start, end),
                       "cuEventElapsedTime"));
    if (i > 0)
      ms.push_back(t);
  }
  api.cuEventDestroy_v2(start);
  api.cuEventDestroy_v2(end);
  std::sort(ms.begin(), ms.end());
  return 2.0 * double(bytes) / (ms[ms.size() / 2] * 1e-3) / 1e9;
}

/// The kernel for m rows among those of one shape: the decode kernel with the
/// smallest mtile >= m, else a prefill kernel; nullptr when none.
const ManifestKernel *pickKernel(const std::vector<const ManifestKernel *> &ks,
                                 int64_t m) {
  const ManifestKernel *best = nullptr;
  for (const ManifestKernel *k : ks)
    if (k->kind == QGemmKernelKind::Decode && m <= k->mTile &&
        (!best || k->mTile < best->mTile))
      best = k;
  if (best)
    return best;
  for (const ManifestKernel *k : ks)
    if (k->kind == QGemmKernelKind::Prefill)
      return k;
  return nullptr;
}

std::vector<int64_t> sampleRows(int64_t m) {
  std::vector<int64_t> rows;
  if (m <= 16) {
    for (int64_t i = 0; i < m; ++i)
      rows.push_back(i);
    return rows;
  }
  for (int64_t i = 0; i < 8; ++i)
    rows.push_back(i * (m - 1) / 7);
  return rows;
}

} // namespace

int main(int argc, char **argv) {
  const Options o = parseOptions(argc, argv);
  const auto t0 = std::chrono::steady_clock::now();

  std::shared_ptr<CudaDriver> driver = check(CudaDriver::open());
  std::unique_ptr<CudaDevice> device = check(CudaDevice::open(driver, 0));
  std::unique_ptr<KernelLibrary> library =
      check(KernelLibrary::load(*device, o.directory));
  // cuBLAS (the runtime API) adopts the primary context made current above.
  checkCudart(cudaSetDevice(0), "cudaSetDevice");
  cublasHandle_t cublas;
  checkCublas(cublasCreate(&cublas), "cublasCreate");
  checkCublas(cublasSetStream(cublas, nullptr), "cublasSetStream");

  std::printf("device: %s (sm_%d%d), %d SMs, %.1f GiB, L2 %.0f MiB, driver "
              "%d.%d\n",
              device->name().c_str(), device->ccMajor(), device->ccMinor(),
              device->smCount(), double(device->totalMemory()) / (1 << 30),
              double(device->l2Bytes()) / (1 << 20), driver->version() / 1000,
              driver->version() % 1000 / 10);
  std::printf("kernels: %s/kernels.txt, module %s (%s), %zu kernels\n",
              o.directory.c_str(), library->module().file.c_str(),
              library->module().arch.c_str(),
              library->manifest().kernels.size());
  const double copyGBs = copyBandwidth(*device);
  std::printf("device copy bandwidth (cuMemcpyDtoD 1 GiB, read+write): %.0f "
              "GB/s\n",
              copyGBs);
  std::printf("timing: median of %d launches after %d warm-up, each cold "
              "(256 MiB %s before it to flush L2)\n\n",
              o.iters, o.warmup, o.flushByWriting ? "written" : "read");

  DeviceBuffer flush = check(DeviceBuffer::allocate(*device, o.flushBytes));
  const size_t flushWords = o.flushBytes / 4;
  check(device->fill32(flush.ptr(), 0, flushWords));
  // The read flush: a second handle whose result stays on the device, so
  // nothing waits for the host.
  cublasHandle_t flusher;
  checkCublas(cublasCreate(&flusher), "cublasCreate");
  checkCublas(cublasSetStream(flusher, nullptr), "cublasSetStream");
  checkCublas(cublasSetPointerMode(flusher, CUBLAS_POINTER_MODE_DEVICE),
              "cublasSetPointerMode");
  DeviceBuffer flushResult = check(DeviceBuffer::allocate(*device, 64));
  Timer timer(
      *device,
      [&](int i) {
        if (o.flushByWriting) {
          check(device->fill32(flush.ptr(), uint32_t(i + 1), flushWords));
          return;
        }
        checkCublas(
            cublasIsamax(flusher, int(flushWords),
                         reinterpret_cast<const float *>(flush.ptr()), 1,
                         reinterpret_cast<int *>(flushResult.ptr())),
            "cublasIsamax");
      },
      o);

  // Shapes in manifest order.
  std::vector<std::vector<const ManifestKernel *>> shapes;
  for (const ManifestKernel &k : library->manifest().kernels) {
    if (k.kind != QGemmKernelKind::Decode &&
        k.kind != QGemmKernelKind::Prefill)
      continue; // the integer prefill's quantization nests run with it
    auto it = std::find_if(shapes.begin(), shapes.end(), [&](auto &s) {
      return s[0]->n == k.n && s[0]->k == k.k && s[0]->bits == k.bits &&
             s[0]->group == k.group && s[0]->actBits == k.actBits;
    });
    if (it == shapes.end())
      shapes.push_back({&k});
    else
      it->push_back(&k);
  }

  std::printf("| shape (n x k, bits, group) | M | error | ours us | GB/s | %% "
              "copy bw | TFLOP/s | cuBLAS us | cuBLAS error | speedup | "
              "kernel |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
  int failures = 0, checked = 0;
  const int64_t maxM = *std::max_element(o.ms.begin(), o.ms.end());
  for (const auto &kernels : shapes) {
    const ManifestKernel &first = *kernels[0];
    char shape[96], acts[16] = "";
    if (first.actBits)
      std::snprintf(acts, sizeof(acts), "a%d", first.actBits);
    std::snprintf(shape, sizeof(shape), "%lld x %lld, w%d%s, g%lld",
                  (long long)first.n, (long long)first.k, first.bits, acts,
                  (long long)first.group);
    Layer L = makeLayer(*device, first.bits, first.n, first.k, first.group,
                        /*symmetric=*/first.actBits > 0);
    int64_t bufM = 0;
    for (int64_t m : o.ms)
      if (pickKernel(kernels, m))
        bufM = std::max(bufM, m);
    if (!bufM)
      bufM = std::min<int64_t>(maxM, 1);
    DeviceBuffer x =
        check(DeviceBuffer::allocate(*device, size_t(bufM * L.k) * 2));
    DeviceBuffer y =
        check(DeviceBuffer::allocate(*device, size_t(bufM * L.n) * 4));
    DeviceBuffer y16 =
        check(DeviceBuffer::allocate(*device, size_t(bufM * L.n) * 2));
    // Integer prefill scratch: bytes, steps, segment maxima.
    const size_t actRows = first.actBits ? size_t(bufM) : 1;
    DeviceBuffer xq = check(DeviceBuffer::allocate(*device, actRows * L.k));
    DeviceBuffer xs = check(DeviceBuffer::allocate(*device, actRows * 4));
    DeviceBuffer xpart =
        check(DeviceBuffer::allocate(*device, actRows * (L.k / 16) * 4));

    for (int64_t m : o.ms) {
      const ManifestKernel *kernel = pickKernel(kernels, m);
      if (!kernel) {
        std::printf("| %s | %lld | - | - | - | - | - | - | - | - | no kernel "
                    "for this M |\n",
                    shape, (long long)m);
        std::fflush(stdout);
        continue;
      }
      // x: random f16 in [-1, 1].
      std::vector<uint16_t> xHalf(size_t(m * L.k));
      parallelFor(m, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          Rng rng(seedOf(uint64_t(m), uint64_t(r), 2));
          for (int64_t j = 0; j < L.k; ++j)
            xHalf[size_t(r * L.k + j)] =
                lq::floatToHalf(float(2.0 * rng.uniform() - 1.0));
        }
      });
      check(device->copyToDevice(x.ptr(), xHalf.data(), xHalf.size() * 2));
      const std::vector<int64_t> rows = sampleRows(m);
      std::vector<float> xRows(rows.size() * size_t(L.k));
      for (size_t i = 0; i < rows.size(); ++i)
        for (int64_t j = 0; j < L.k; ++j)
          xRows[i * L.k + j] =
              lq::halfToFloat(xHalf[size_t(rows[i] * L.k + j)]);
      if (first.actBits)
        fakeQuantizeRows(xRows, L.k, first.actBits);
      const std::vector<double> ref =
          referenceRows(L, xRows, int64_t(rows.size()));

      // Ours: run once and check.
      QGemmBuffers buffers{x.ptr(),          L.w.ptr(), L.scalesDev.ptr(),
                           L.biasesDev.ptr(), y.ptr(),   xq.ptr(),
                           xs.ptr(),          xpart.ptr()};
      check(device->fill32(y.ptr(), 0x7fc00000u, size_t(m * L.n))); // NaN
      check(launchQGemm(*library, *kernel, buffers, m));
      check(device->synchronize());
      std::vector<double> got(ref.size());
      {
        std::vector<float> row(size_t(L.n));
        for (size_t i = 0; i < rows.size(); ++i) {
          check(device->copyToHost(row.data(), y.ptr() + rows[i] * L.n * 4,
                                   row.size() * 4));
          for (int64_t c = 0; c < L.n; ++c)
            got[i * L.n + c] = row[c];
        }
      }
      const double err = relativeError(ref, got);
      const bool ok = err <= o.tolerance;
      ++checked;
      failures += !ok;

      const double ours = timer.medianMicros(
          [&] {
            if (kernel->accumulate)
              check(device->fill32(y.ptr(), 0, size_t(m * L.n)));
          },
          [&] {
            QGemmLaunchOptions lo;
            lo.zeroAccumulator = false;
            check(launchQGemm(*library, *kernel, buffers, m, lo));
          });

      // cuBLAS, column-major: y16 row-major [m][n] is an n x m matrix,
      // = op(A) * B with A = W read as k x n (lda k) transposed, and B = x
      // read as k x m (ldb k).
      const float alpha = 1.0f, beta = 0.0f;
      auto gemm = [&] {
        checkCublas(
            cublasGemmEx(
                cublas, CUBLAS_OP_T, CUBLAS_OP_N, int(L.n), int(m), int(L.k),
                &alpha, reinterpret_cast<const void *>(L.wHalf.ptr()),
                CUDA_R_16F, int(L.k), reinterpret_cast<const void *>(x.ptr()),
                CUDA_R_16F, int(L.k), &beta,
                reinterpret_cast<void *>(y16.ptr()), CUDA_R_16F, int(L.n),
                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            "cublasGemmEx");
      };
      gemm();
      check(device->synchronize());
      std::vector<double> gotBlas(ref.size());
      {
        std::vector<uint16_t> row(size_t(L.n));
        for (size_t i = 0; i < rows.size(); ++i) {
          check(device->copyToHost(row.data(), y16.ptr() + rows[i] * L.n * 2,
                                   row.size() * 2));
          for (int64_t c = 0; c < L.n; ++c)
            gotBlas[i * L.n + c] = lq::halfToFloat(row[c]);
        }
      }
      const double errBlas = relativeError(ref, gotBlas);
      const bool okBlas = errBlas <= o.tolerance;
      ++checked;
      failures += !okBlas;
      const double blas = timer.medianMicros([] {}, gemm);

      const std::array<size_t, 5> bytes = qgemmBufferBytes(*kernel, m);
      const double moved =
          double(bytes[0] + bytes[1] + bytes[2] + bytes[3] + bytes[4]);
      const double gbs = moved / (ours * 1e-6) / 1e9;
      const double tflops =
          2.0 * double(m) * double(L.n) * double(L.k) / (ours * 1e-6) / 1e12;
      std::printf("| %s | %lld | %.2e%s | %.1f | %.0f | %.0f%% | %.2f | %.1f | "
                  "%.2e%s | %.2fx | %s |\n",
                  shape, (long long)m, err, ok ? "" : " FAIL", ours, gbs,
                  100.0 * gbs / copyGBs, tflops, blas, errBlas,
                  okBlas ? "" : " FAIL", blas / ours, kernel->name.c_str());
      std::fflush(stdout);
    }
  }
  checkCublas(cublasDestroy(cublas), "cublasDestroy");
  checkCublas(cublasDestroy(flusher), "cublasDestroy");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  std::printf("\n%d of %d checks passed (tolerance %.0e), %.1f s\n",
              checked - failures, checked, o.tolerance, seconds);
  return failures ? 1 : 0;
}
