//===- FakeCudaDriver.cpp - A stand-in libcuda over the GPU kernel emulator ===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The driver entry points the runtime resolves, implemented on the host, so
// that the CUDA backend of the model runtime (streams, asynchronous copies,
// graph capture and replay, parameter arrays) and the artifact's own GPU
// kernels run in tests without a GPU. Device memory is host memory. The
// "module" is the artifact's kernels as `llq-compile --emit=mlir` prints
// them for the same model and target (gpu.funcs before the NVVM lowering;
// LLQ_FAKE_CUDA_MLIR names the file), and a launch runs the named gpu.func
// in the GPU kernel emulator (unittests/Conversion/GpuEmulator.h) over the
// launch's grid, block and shared memory. Work runs when issued (the stream
// is always idle) except under capture, where launches and memsets are
// recorded and run by cuGraphLaunch.
//
// LLQ_FAKE_CUDA_FAIL_CAPTURE=1 makes cuStreamBeginCapture fail;
// LLQ_FAKE_CUDA_LOG=1 prints the counts of launches and graph launches on
// exit.
//
//===----------------------------------------------------------------------===//

#include "GpuEmulator.h"

#include "llq/Conversion/LLQToGPU/Pipeline.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/TargetSelect.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace {

using CUresult = int;
constexpr CUresult kSuccess = 0, kInvalidValue = 1, kNotFound = 500,
                   kCaptureInvalidated = 901, kNotSupported = 801;

struct Function {
  /// The kernel, and the byte size of each launch parameter.
  std::unique_ptr<llq::gpu::emu::Kernel> emulated;
  std::vector<int8_t> sizes;
};

/// The kernels of LLQ_FAKE_CUDA_MLIR, parsed once.
struct Emulated {
  mlir::DialectRegistry registry;
  std::unique_ptr<mlir::MLIRContext> ctx;
  mlir::OwningOpRef<mlir::ModuleOp> module;
};

/// A recorded operation with its parameters copied.
struct Recorded {
  std::function<void()> run;
};

struct State {
  std::unique_ptr<Emulated> emulated;
  bool capturing = false, captureFailed = false;
  std::vector<Recorded> capture;
  long launches = 0, graphLaunches = 0;
  ~State() {
    const char *log = std::getenv("LLQ_FAKE_CUDA_LOG");
    if (log && *log == '1')
      std::fprintf(stderr, "fake cuda: %ld launches, %ld graph launches\n",
                   launches, graphLaunches);
  }
};
State state;

struct Graph {
  std::vector<Recorded> ops;
};

void issue(std::function<void()> op) {
  if (state.capturing)
    state.capture.push_back({std::move(op)});
  else
    op();
}

} // namespace

extern "C" {

CUresult cuInit(unsigned) { return kSuccess; }
CUresult cuDriverGetVersion(int *v) {
  *v = 12080;
  return kSuccess;
}
CUresult cuDeviceGetCount(int *n) {
  *n = 1;
  return kSuccess;
}
CUresult cuDeviceGet(int *d, int) {
  *d = 0;
  return kSuccess;
}
CUresult cuDeviceGetAttribute(int *v, int attribute, int) {
  switch (attribute) {
  case 16: // SMs
    *v = 4;
    return kSuccess;
  case 38: // L2 bytes
    *v = 1 << 20;
    return kSuccess;
  case 75: // compute capability 8.0
    *v = 8;
    return kSuccess;
  case 76:
    *v = 0;
    return kSuccess;
  case 97: // opt-in shared memory per block
    *v = 163 * 1024;
    return kSuccess;
  }
  *v = 0;
  return kSuccess;
}
CUresult cuDeviceGetName(char *name, int len, int) {
  std::snprintf(name, size_t(len), "llq fake device");
  return kSuccess;
}
CUresult cuDeviceTotalMem_v2(size_t *bytes, int) {
  *bytes = size_t(1) << 32;
  return kSuccess;
}
CUresult cuDevicePrimaryCtxRetain(void **ctx, int) {
  static int context;
  *ctx = &context;
  return kSuccess;
}
CUresult cuDevicePrimaryCtxRelease_v2(int) { return kSuccess; }
CUresult cuCtxSetCurrent(void *) { return kSuccess; }
CUresult cuCtxSynchronize() { return kSuccess; }

CUresult cuModuleLoadData(void **module, const void *) {
  if (!state.emulated) {
    const char *path = std::getenv("LLQ_FAKE_CUDA_MLIR");
    if (!path)
      return kInvalidValue;
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    auto e = std::make_unique<Emulated>();
    llq::gpu::registerKernelCompilation(e->registry);
    e->ctx = std::make_unique<mlir::MLIRContext>(e->registry);
    e->module = mlir::parseSourceFile<mlir::ModuleOp>(path, e->ctx.get());
    if (!e->module)
      return kInvalidValue;
    state.emulated = std::move(e);
  }
  *module = state.emulated.get();
  return kSuccess;
}
CUresult cuModuleLoadDataEx(void **module, const void *image, unsigned, int *,
                            void **) {
  return cuModuleLoadData(module, image);
}
CUresult cuModuleUnload(void *) { return kSuccess; }
CUresult cuModuleGetFunction(void **fn, void *module, const char *name) {
  if (!state.emulated || module != state.emulated.get())
    return kInvalidValue;
  mlir::gpu::GPUFuncOp kernel;
  state.emulated->module->walk([&](mlir::gpu::GPUFuncOp f) {
    if (f.getName() == name)
      kernel = f;
  });
  if (!kernel)
    return kNotFound;
  auto f = std::make_unique<Function>();
  for (mlir::Type t : kernel.getFunctionType().getInputs()) {
    if (auto m = mlir::dyn_cast<mlir::MemRefType>(t))
      f->sizes.insert(f->sizes.end(), 3 + 2 * m.getRank(), 8);
    else
      f->sizes.push_back(int8_t(t.getIntOrFloatBitWidth() <= 32 ? 4 : 8));
  }
  std::string error;
  f->emulated =
      llq::gpu::emu::Kernel::create(*state.emulated->module, name, error);
  if (!f->emulated) {
    std::fprintf(stderr, "fake cuda: %s: %s\n", name, error.c_str());
    return kNotFound;
  }
  *fn = f.release();
  return kSuccess;
}
CUresult cuFuncSetAttribute(void *, int, int) { return kSuccess; }

CUresult cuLaunchKernel(void *fn, unsigned gridX, unsigned gridY,
                        unsigned gridZ, unsigned blockX, unsigned blockY,
                        unsigned blockZ, unsigned shared, void *,
                        void **params, void **) {
  Function *f = static_cast<Function *>(fn);
  // Copy the parameter values (they may change after the call returns).
  auto values = std::make_shared<std::vector<int64_t>>();
  for (size_t i = 0; i < f->sizes.size(); ++i) {
    int64_t v = 0;
    std::memcpy(&v, params[i], size_t(f->sizes[i]));
    values->push_back(v);
  }
  issue([=] {
    std::vector<void *> ptrs;
    for (int64_t &v : *values)
      ptrs.push_back(&v);
    std::string error = f->emulated->launch(
        {gridX, gridY, gridZ}, {blockX, blockY, blockZ}, shared, ptrs.data());
    if (!error.empty()) {
      std::fprintf(stderr, "fake cuda: emulated launch: %s\n", error.c_str());
      std::abort();
    }
    ++state.launches;
  });
  return kSuccess;
}

CUresult cuMemAlloc_v2(unsigned long long *ptr, size_t bytes) {
  void *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!p)
    return 2;
  *ptr = reinterpret_cast<uintptr_t>(p);
  return kSuccess;
}
CUresult cuMemFree_v2(unsigned long long ptr) {
  std::free(reinterpret_cast<void *>(uintptr_t(ptr)));
  return kSuccess;
}
CUresult cuMemGetInfo_v2(size_t *free, size_t *total) {
  *free = *total = size_t(1) << 32;
  return kSuccess;
}
CUresult cuMemcpyHtoD_v2(unsigned long long dst, const void *src,
                         size_t bytes) {
  if (state.capturing)
    return kCaptureInvalidated;
  std::memcpy(reinterpret_cast<void *>(uintptr_t(dst)), src, bytes);
  return kSuccess;
}
CUresult cuMemcpyDtoH_v2(void *dst, unsigned long long src, size_t bytes) {
  if (state.capturing)
    return kCaptureInvalidated;
  std::memcpy(dst, reinterpret_cast<const void *>(uintptr_t(src)), bytes);
  return kSuccess;
}
CUresult cuMemcpyDtoD_v2(unsigned long long dst, unsigned long long src,
                         size_t bytes) {
  std::memmove(reinterpret_cast<void *>(uintptr_t(dst)),
               reinterpret_cast<const void *>(uintptr_t(src)), bytes);
  return kSuccess;
}
CUresult cuMemcpyDtoDAsync_v2(unsigned long long dst, unsigned long long src,
                              size_t bytes, void *) {
  issue([=] {
    std::memmove(reinterpret_cast<void *>(uintptr_t(dst)),
                 reinterpret_cast<const void *>(uintptr_t(src)), bytes);
  });
  return kSuccess;
}
CUresult cuMemsetD32_v2(unsigned long long dst, unsigned value, size_t n) {
  auto *p = reinterpret_cast<uint32_t *>(uintptr_t(dst));
  for (size_t i = 0; i < n; ++i)
    p[i] = value;
  return kSuccess;
}
CUresult cuMemsetD32Async(unsigned long long dst, unsigned value, size_t n,
                          void *) {
  issue([=] { cuMemsetD32_v2(dst, value, n); });
  return kSuccess;
}
CUresult cuStreamSynchronize(void *) {
  return state.capturing ? kCaptureInvalidated : kSuccess;
}
CUresult cuEventCreate(void **event, unsigned) {
  static int e;
  *event = &e;
  return kSuccess;
}
CUresult cuEventRecord(void *, void *) { return kSuccess; }
CUresult cuEventSynchronize(void *) { return kSuccess; }
CUresult cuEventElapsedTime(float *ms, void *, void *) {
  *ms = 0;
  return kSuccess;
}
CUresult cuEventDestroy_v2(void *) { return kSuccess; }
CUresult cuGetErrorName(CUresult, const char **name) {
  *name = "FAKE_CUDA_ERROR";
  return kSuccess;
}
CUresult cuGetErrorString(CUresult, const char **text) {
  *text = "an error of the fake driver";
  return kSuccess;
}

// Streams and graphs.
CUresult cuStreamCreate(void **stream, unsigned) {
  static int s;
  *stream = &s;
  return kSuccess;
}
CUresult cuStreamDestroy_v2(void *) { return kSuccess; }
CUresult cuMemcpyHtoDAsync_v2(unsigned long long dst, const void *src,
                              size_t bytes, void *) {
  if (state.capturing) {
    state.captureFailed = true; // host memory in a graph: not supported
    return kNotSupported;
  }
  std::memcpy(reinterpret_cast<void *>(uintptr_t(dst)), src, bytes);
  return kSuccess;
}
CUresult cuMemcpyDtoHAsync_v2(void *dst, unsigned long long src, size_t bytes,
                              void *) {
  if (state.capturing) {
    state.captureFailed = true;
    return kNotSupported;
  }
  std::memcpy(dst, reinterpret_cast<const void *>(uintptr_t(src)), bytes);
  return kSuccess;
}
CUresult cuStreamBeginCapture_v2(void *, int) {
  const char *fail = std::getenv("LLQ_FAKE_CUDA_FAIL_CAPTURE");
  if (fail && *fail == '1')
    return kNotSupported;
  state.capturing = true;
  state.captureFailed = false;
  state.capture.clear();
  return kSuccess;
}
CUresult cuStreamEndCapture(void *, void **graph) {
  if (!state.capturing)
    return kInvalidValue;
  state.capturing = false;
  if (state.captureFailed)
    return kCaptureInvalidated;
  auto *g = new Graph;
  g->ops = std::move(state.capture);
  *graph = g;
  return kSuccess;
}
CUresult cuGraphInstantiateWithFlags(void **exec, void *graph,
                                     unsigned long long) {
  *exec = new Graph(*static_cast<Graph *>(graph));
  return kSuccess;
}
CUresult cuGraphLaunch(void *exec, void *) {
  for (Recorded &op : static_cast<Graph *>(exec)->ops)
    op.run();
  ++state.graphLaunches;
  return kSuccess;
}
CUresult cuGraphExecDestroy(void *exec) {
  delete static_cast<Graph *>(exec);
  return kSuccess;
}
CUresult cuGraphDestroy(void *graph) {
  delete static_cast<Graph *>(graph);
  return kSuccess;
}

} // extern "C"
