//===- CudaDriver.h - The CUDA driver API, opened at run time ---*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// llq's GPU runtime talks to the CUDA driver API directly (the generated
// kernels are cubins and PTX, loaded with cuModuleLoadData), and opens
// libcuda.so.1 with dlopen when first asked rather than linking it: programs
// built with the GPU runtime start, run their CPU paths and report a clear
// error on machines that have no NVIDIA driver.
//
// The few driver types, enumerators and entry points used are declared here
// from the driver's documented ABI (cuda.h of CUDA 11 and later, 64-bit
// hosts), so building needs no CUDA toolkit. Entry points are resolved, and
// DriverApi's fields named, by the symbols libcuda exports (cuMemAlloc_v2,
// ...: what cuda.h's macros map the plain names to), so the fields do not
// clash with those macros where cuda.h is included too.
//
// Errors are values: every fallible call returns a Status or an Expected<T>
// whose message names the failing call and the driver's error name and
// description.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_RUNTIME_CUDA_CUDADRIVER_H
#define LLQ_RUNTIME_CUDA_CUDADRIVER_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

// The driver's opaque handle types, global as in cuda.h, so that a stream or
// event of the CUDA runtime API (cudaStream_t is CUstream_st *) passes
// unchanged.
struct CUctx_st;
struct CUmod_st;
struct CUfunc_st;
struct CUstream_st;
struct CUevent_st;
struct CUgraph_st;
struct CUgraphExec_st;

namespace llq::rt::cuda {

//===----------------------------------------------------------------------===//
// Driver ABI
//===----------------------------------------------------------------------===//

using CUresult = int;
using CUdevice = int;
using CUdeviceptr = unsigned long long;
using CUcontext = ::CUctx_st *;
using CUmodule = ::CUmod_st *;
using CUfunction = ::CUfunc_st *;
using CUstream = ::CUstream_st *;
using CUevent = ::CUevent_st *;
using CUgraph = ::CUgraph_st *;
using CUgraphExec = ::CUgraphExec_st *;

constexpr CUresult CUDA_SUCCESS = 0;
constexpr CUresult CUDA_ERROR_NO_DEVICE = 100;

// CUdevice_attribute values.
constexpr int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
constexpr int CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
constexpr int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
constexpr int CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
// CUfunction_attribute values.
constexpr int CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
// CUstream_flags and CUstreamCaptureMode values.
constexpr unsigned CU_STREAM_NON_BLOCKING = 1;
constexpr int CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;
// CUjit_option values.
constexpr int CU_JIT_ERROR_LOG_BUFFER = 5;
constexpr int CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;

/// The driver entry points llq uses, as resolved from libcuda.
struct DriverApi {
  CUresult (*cuInit)(unsigned flags) = nullptr;
  CUresult (*cuDriverGetVersion)(int *version) = nullptr;
  CUresult (*cuDeviceGetCount)(int *count) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice *device, int ordinal) = nullptr;
  CUresult (*cuDeviceGetAttribute)(int *value, int attribute,
                                   CUdevice device) = nullptr;
  CUresult (*cuDeviceGetName)(char *name, int len, CUdevice device) = nullptr;
  CUresult (*cuDeviceTotalMem_v2)(size_t *bytes, CUdevice device) = nullptr;
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *ctx,
                                       CUdevice device) = nullptr;
  CUresult (*cuDevicePrimaryCtxRelease_v2)(CUdevice device) = nullptr;
  CUresult (*cuCtxSetCurrent)(CUcontext ctx) = nullptr;
  CUresult (*cuCtxSynchronize)() = nullptr;
  CUresult (*cuModuleLoadData)(CUmodule *module, const void *image) = nullptr;
  CUresult (*cuModuleLoadDataEx)(CUmodule *module, const void *image,
                                 unsigned numOptions, int *options,
                                 void **optionValues) = nullptr;
  CUresult (*cuModuleUnload)(CUmodule module) = nullptr;
  CUresult (*cuModuleGetFunction)(CUfunction *function, CUmodule module,
                                  const char *name) = nullptr;
  CUresult (*cuFuncSetAttribute)(CUfunction function, int attribute,
                                 int value) = nullptr;
  CUresult (*cuLaunchKernel)(CUfunction f, unsigned gridX, unsigned gridY,
                             unsigned gridZ, unsigned blockX, unsigned blockY,
                             unsigned blockZ, unsigned sharedBytes,
                             CUstream stream, void **params,
                             void **extra) = nullptr;
  CUresult (*cuMemAlloc_v2)(CUdeviceptr *ptr, size_t bytes) = nullptr;
  CUresult (*cuMemFree_v2)(CUdeviceptr ptr) = nullptr;
  CUresult (*cuMemGetInfo_v2)(size_t *free, size_t *total) = nullptr;
  CUresult (*cuMemcpyHtoD_v2)(CUdeviceptr dst, const void *src,
                              size_t bytes) = nullptr;
  CUresult (*cuMemcpyDtoH_v2)(void *dst, CUdeviceptr src,
                              size_t bytes) = nullptr;
  CUresult (*cuMemcpyDtoD_v2)(CUdeviceptr dst, CUdeviceptr src,
                              size_t bytes) = nullptr;
  CUresult (*cuMemcpyDtoDAsync_v2)(CUdeviceptr dst, CUdeviceptr src,
                                   size_t bytes, CUstream stream) = nullptr;
  CUresult (*cuMemsetD32_v2)(CUdeviceptr dst, unsigned value,
                             size_t count) = nullptr;
  CUresult (*cuMemsetD32Async)(CUdeviceptr dst, unsigned value, size_t count,
                               CUstream stream) = nullptr;
  CUresult (*cuStreamSynchronize)(CUstream stream) = nullptr;
  CUresult (*cuEventCreate)(CUevent *event, unsigned flags) = nullptr;
  CUresult (*cuEventRecord)(CUevent event, CUstream stream) = nullptr;
  CUresult (*cuEventSynchronize)(CUevent event) = nullptr;
  /// cuEventElapsedTime on drivers older than CUDA 12.8 (same signature).
  CUresult (*cuEventElapsedTime_v2)(float *ms, CUevent start,
                                    CUevent end) = nullptr;
  CUresult (*cuEventDestroy_v2)(CUevent event) = nullptr;
  CUresult (*cuGetErrorName)(CUresult error, const char **name) = nullptr;
  CUresult (*cuGetErrorString)(CUresult error, const char **text) = nullptr;

  // Streams, asynchronous copies and graphs: optional (hasGraphs()); the
  // model runtime records its decode step once and replays it.
  CUresult (*cuStreamCreate)(CUstream *stream, unsigned flags) = nullptr;
  CUresult (*cuStreamDestroy_v2)(CUstream stream) = nullptr;
  CUresult (*cuMemcpyHtoDAsync_v2)(CUdeviceptr dst, const void *src,
                                   size_t bytes, CUstream stream) = nullptr;
  CUresult (*cuMemcpyDtoHAsync_v2)(void *dst, CUdeviceptr src, size_t bytes,
                                   CUstream stream) = nullptr;
  CUresult (*cuStreamBeginCapture_v2)(CUstream stream, int mode) = nullptr;
  CUresult (*cuStreamEndCapture)(CUstream stream, CUgraph *graph) = nullptr;
  CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec *exec, CUgraph graph,
                                          unsigned long long flags) = nullptr;
  CUresult (*cuGraphLaunch)(CUgraphExec exec, CUstream stream) = nullptr;
  CUresult (*cuGraphExecDestroy)(CUgraphExec exec) = nullptr;
  CUresult (*cuGraphDestroy)(CUgraph graph) = nullptr;

  bool hasGraphs() const {
    return cuStreamCreate && cuStreamDestroy_v2 && cuMemcpyHtoDAsync_v2 &&
           cuMemcpyDtoHAsync_v2 && cuStreamBeginCapture_v2 &&
           cuStreamEndCapture && cuGraphInstantiateWithFlags &&
           cuGraphLaunch && cuGraphExecDestroy && cuGraphDestroy;
  }
};

//===----------------------------------------------------------------------===//
// Status and Expected
//===----------------------------------------------------------------------===//

/// Success, or a failure with a message.
class [[nodiscard]] Status {
public:
  Status() = default;
  static Status error(std::string message) {
    Status s;
    s.failed_ = true;
    s.message_ = std::move(message);
    return s;
  }
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const std::string &message() const { return message_; }

private:
  bool failed_ = false;
  std::string message_;
};

/// A value, or the Status saying why there is none.
template <typename T> class [[nodiscard]] Expected {
public:
  Expected(T value) : value_(std::move(value)), has_(true) {}
  Expected(Status error) : error_(std::move(error)) {
    if (error_.ok())
      error_ = Status::error("internal error: Expected built from success");
  }
  bool ok() const { return has_; }
  explicit operator bool() const { return has_; }
  const Status &status() const { return error_; }
  const std::string &message() const { return error_.message(); }
  T &operator*() { return value_; }
  const T &operator*() const { return value_; }
  T *operator->() { return &value_; }
  const T *operator->() const { return &value_; }
  T take() { return std::move(value_); }

private:
  T value_{};
  Status error_;
  bool has_ = false;
};

//===----------------------------------------------------------------------===//
// CudaDriver
//===----------------------------------------------------------------------===//

/// libcuda, opened and initialized (cuInit).
class CudaDriver {
public:
  /// Opens \p library (dlopen), resolves the entry points and calls cuInit.
  /// Without a library: the one LLQ_CUDA_DRIVER names (an unusual install,
  /// or the tests' stand-in), else libcuda.so.1. Fails with "no CUDA
  /// driver: libcuda.so.1 not found (...)" when the library is absent, and
  /// with "no CUDA device: ..." when the driver finds no device.
  static Expected<std::shared_ptr<CudaDriver>>
  open(const char *library = nullptr);

  ~CudaDriver();
  CudaDriver(const CudaDriver &) = delete;
  CudaDriver &operator=(const CudaDriver &) = delete;

  const DriverApi &api() const { return api_; }
  /// The driver's version as major * 1000 + minor * 10 (12040 for 12.4).
  int version() const { return version_; }

  /// Success when \p result is CUDA_SUCCESS; otherwise an error
  /// "<call> failed: CUDA_ERROR_X (description)".
  Status check(CUresult result, const char *call) const;
  /// "CUDA_ERROR_X (description)" for a driver error code.
  std::string describe(CUresult result) const;

private:
  CudaDriver() = default;
  void *handle_ = nullptr;
  DriverApi api_;
  int version_ = 0;
};

/// Formats a driver error without a driver (for tests and callers that only
/// have a code): "CUDA error 700".
std::string describeCudaError(const DriverApi &api, CUresult result);

//===----------------------------------------------------------------------===//
// CudaDevice
//===----------------------------------------------------------------------===//

/// One device with its primary context retained and made current on the
/// calling thread. The primary context is the one the CUDA runtime API
/// (cudart, cuBLAS) uses, so memory allocated here is usable there.
class CudaDevice {
public:
  static Expected<std::unique_ptr<CudaDevice>>
  open(std::shared_ptr<CudaDriver> driver, int ordinal = 0);
  ~CudaDevice();
  CudaDevice(const CudaDevice &) = delete;
  CudaDevice &operator=(const CudaDevice &) = delete;

  CudaDriver &driver() const { return *driver_; }
  const DriverApi &api() const { return driver_->api(); }
  Status check(CUresult result, const char *call) const {
    return driver_->check(result, call);
  }

  CUdevice device() const { return device_; }
  CUcontext context() const { return context_; }
  const std::string &name() const { return name_; }
  int ccMajor() const { return ccMajor_; }
  int ccMinor() const { return ccMinor_; }
  int smCount() const { return smCount_; }
  int64_t l2Bytes() const { return l2Bytes_; }
  int64_t totalMemory() const { return totalMemory_; }
  int64_t maxSharedOptin() const { return maxSharedOptin_; }

  /// Makes the primary context current on the calling thread.
  Status makeCurrent() const;

  Expected<CUdeviceptr> alloc(size_t bytes) const;
  Status free(CUdeviceptr ptr) const;
  Status copyToDevice(CUdeviceptr dst, const void *src, size_t bytes) const;
  Status copyToHost(void *dst, CUdeviceptr src, size_t bytes) const;
  Status copyOnDevice(CUdeviceptr dst, CUdeviceptr src, size_t bytes) const;
  /// Sets \p count 32-bit words at \p dst to \p value (asynchronously on
  /// \p stream).
  Status fill32(CUdeviceptr dst, uint32_t value, size_t count,
                CUstream stream = nullptr) const;
  Status synchronize() const;

private:
  CudaDevice() = default;
  std::shared_ptr<CudaDriver> driver_;
  CUdevice device_ = 0;
  CUcontext context_ = nullptr;
  std::string name_;
  int ccMajor_ = 0, ccMinor_ = 0, smCount_ = 0;
  int64_t l2Bytes_ = 0, totalMemory_ = 0, maxSharedOptin_ = 0;
};

/// Device memory freed on destruction.
class DeviceBuffer {
public:
  DeviceBuffer() = default;
  static Expected<DeviceBuffer> allocate(const CudaDevice &device,
                                         size_t bytes);
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer &&other) noexcept { *this = std::move(other); }
  DeviceBuffer &operator=(DeviceBuffer &&other) noexcept;
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;

  CUdeviceptr ptr() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  void reset();

private:
  const CudaDevice *device_ = nullptr;
  CUdeviceptr ptr_ = 0;
  size_t bytes_ = 0;
};

} // namespace llq::rt::cuda

#endif // LLQ_RUNTIME_CUDA_CUDADRIVER_H
