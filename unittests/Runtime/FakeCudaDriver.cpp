//===- FakeCudaDriver.cpp - A stand-in libcuda that runs host kernels -----===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The driver entry points the runtime resolves, implemented on the host, so
// that the CUDA backend of the model runtime (streams, asynchronous copies,
// graph capture and replay, parameter arrays) runs in tests without a GPU.
// Device memory is host memory. The "module" is the host library of an
// equivalent `llq-compile --target=cpu` artifact (LLQ_FAKE_CUDA_HOST names
// its kernels.so): a launch calls `<kernel>_packed` over all grid.x blocks,
// and `<kernel>_param_bytes` says how many parameters to read and how wide
// each is, which capture needs to copy them. Work runs when issued (the
// stream is always idle) except under capture, where launches and memsets
// are recorded and run by cuGraphLaunch.
//
// LLQ_FAKE_CUDA_FAIL_CAPTURE=1 makes cuStreamBeginCapture fail;
// LLQ_FAKE_CUDA_LOG=1 prints the counts of launches and graph launches on
// exit.
//
//===----------------------------------------------------------------------===//

#include <dlfcn.h>

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
  void (*packed)(void **) = nullptr;
  const int8_t *bytes = nullptr;
};

/// A recorded operation with its parameters copied.
struct Recorded {
  std::function<void()> run;
};

struct State {
  void *host = nullptr;
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
  if (!state.host) {
    const char *path = std::getenv("LLQ_FAKE_CUDA_HOST");
    state.host = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : nullptr;
    if (!state.host)
      return kInvalidValue;
  }
  *module = state.host;
  return kSuccess;
}
CUresult cuModuleLoadDataEx(void **module, const void *image, unsigned, int *,
                            void **) {
  return cuModuleLoadData(module, image);
}
CUresult cuModuleUnload(void *) { return kSuccess; }
CUresult cuModuleGetFunction(void **fn, void *module, const char *name) {
  auto *f = new Function;
  f->packed = reinterpret_cast<void (*)(void **)>(
      dlsym(module, (std::string(name) + "_packed").c_str()));
  f->bytes = static_cast<const int8_t *>(
      dlsym(module, (std::string(name) + "_param_bytes").c_str()));
  if (!f->packed || !f->bytes) {
    delete f;
    return kNotFound;
  }
  *fn = f;
  return kSuccess;
}
CUresult cuFuncSetAttribute(void *, int, int) { return kSuccess; }

CUresult cuLaunchKernel(void *fn, unsigned gridX, unsigned, unsigned, unsigned,
                        unsigned, unsigned, unsigned, void *, void **params,
                        void **) {
  const Function *f = static_cast<const Function *>(fn);
  // Copy the parameter values (they may change after the call returns),
  // then add the host entry point's block range: all of grid.x.
  auto values = std::make_shared<std::vector<int64_t>>();
  for (int i = 0; f->bytes[i]; ++i) {
    int64_t v = 0;
    std::memcpy(&v, params[i], size_t(f->bytes[i]));
    values->push_back(v);
  }
  values->push_back(0);
  values->push_back(int64_t(gridX));
  auto packed = f->packed;
  issue([values, packed] {
    std::vector<void *> ptrs;
    for (int64_t &v : *values)
      ptrs.push_back(&v);
    packed(ptrs.data());
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
