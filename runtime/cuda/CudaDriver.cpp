//===- CudaDriver.cpp - The CUDA driver API, opened at run time -----------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Cuda/CudaDriver.h"

#include <dlfcn.h>

#include <cstdlib>

#include <cstring>
#include <initializer_list>
#include <vector>

namespace llq::rt::cuda {

namespace {

/// Resolves the first of \p names that the library exports into \p fn.
template <typename Fn>
bool resolve(void *handle, Fn &fn, std::initializer_list<const char *> names,
             std::string &missing) {
  for (const char *name : names)
    if (void *sym = dlsym(handle, name)) {
      fn = reinterpret_cast<Fn>(sym);
      return true;
    }
  if (!missing.empty())
    missing += ", ";
  missing += *names.begin();
  return false;
}

} // namespace

std::string describeCudaError(const DriverApi &api, CUresult result) {
  const char *name = nullptr, *text = nullptr;
  if (api.cuGetErrorName && api.cuGetErrorName(result, &name) != CUDA_SUCCESS)
    name = nullptr;
  if (api.cuGetErrorString &&
      api.cuGetErrorString(result, &text) != CUDA_SUCCESS)
    text = nullptr;
  std::string out =
      name ? std::string(name) : "CUDA error " + std::to_string(result);
  if (text)
    out += std::string(" (") + text + ")";
  return out;
}

Expected<std::shared_ptr<CudaDriver>> CudaDriver::open(const char *library) {
  if (!library) {
    const char *env = std::getenv("LLQ_CUDA_DRIVER");
    library = env && *env ? env : "libcuda.so.1";
  }
  void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *why = dlerror();
    return Status::error(std::string("no CUDA driver: ") + library +
                         " not found (" + (why ? why : "dlopen failed") + ")");
  }
  std::shared_ptr<CudaDriver> driver(new CudaDriver());
  driver->handle_ = handle;
  DriverApi &a = driver->api_;
  std::string missing;
  resolve(handle, a.cuInit, {"cuInit"}, missing);
  resolve(handle, a.cuDriverGetVersion, {"cuDriverGetVersion"}, missing);
  resolve(handle, a.cuDeviceGetCount, {"cuDeviceGetCount"}, missing);
  resolve(handle, a.cuDeviceGet, {"cuDeviceGet"}, missing);
  resolve(handle, a.cuDeviceGetAttribute, {"cuDeviceGetAttribute"}, missing);
  resolve(handle, a.cuDeviceGetName, {"cuDeviceGetName"}, missing);
  resolve(handle, a.cuDeviceTotalMem_v2, {"cuDeviceTotalMem_v2"}, missing);
  resolve(handle, a.cuDevicePrimaryCtxRetain, {"cuDevicePrimaryCtxRetain"},
          missing);
  resolve(handle, a.cuDevicePrimaryCtxRelease_v2,
          {"cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"},
          missing);
  resolve(handle, a.cuCtxSetCurrent, {"cuCtxSetCurrent"}, missing);
  resolve(handle, a.cuCtxSynchronize, {"cuCtxSynchronize"}, missing);
  resolve(handle, a.cuModuleLoadData, {"cuModuleLoadData"}, missing);
  resolve(handle, a.cuModuleLoadDataEx, {"cuModuleLoadDataEx"}, missing);
  resolve(handle, a.cuModuleUnload, {"cuModuleUnload"}, missing);
  resolve(handle, a.cuModuleGetFunction, {"cuModuleGetFunction"}, missing);
  resolve(handle, a.cuFuncSetAttribute, {"cuFuncSetAttribute"}, missing);
  resolve(handle, a.cuLaunchKernel, {"cuLaunchKernel"}, missing);
  resolve(handle, a.cuMemAlloc_v2, {"cuMemAlloc_v2"}, missing);
  resolve(handle, a.cuMemFree_v2, {"cuMemFree_v2"}, missing);
  resolve(handle, a.cuMemGetInfo_v2, {"cuMemGetInfo_v2"}, missing);
  resolve(handle, a.cuMemcpyHtoD_v2, {"cuMemcpyHtoD_v2"}, missing);
  resolve(handle, a.cuMemcpyDtoH_v2, {"cuMemcpyDtoH_v2"}, missing);
  resolve(handle, a.cuMemcpyDtoD_v2, {"cuMemcpyDtoD_v2"}, missing);
  resolve(handle, a.cuMemcpyDtoDAsync_v2, {"cuMemcpyDtoDAsync_v2"}, missing);
  resolve(handle, a.cuMemsetD32_v2, {"cuMemsetD32_v2"}, missing);
  resolve(handle, a.cuMemsetD32Async, {"cuMemsetD32Async"}, missing);
  resolve(handle, a.cuStreamSynchronize, {"cuStreamSynchronize"}, missing);
  resolve(handle, a.cuEventCreate, {"cuEventCreate"}, missing);
  resolve(handle, a.cuEventRecord, {"cuEventRecord"}, missing);
  resolve(handle, a.cuEventSynchronize, {"cuEventSynchronize"}, missing);
  resolve(handle, a.cuEventElapsedTime_v2,
          {"cuEventElapsedTime_v2", "cuEventElapsedTime"}, missing);
  resolve(handle, a.cuEventDestroy_v2, {"cuEventDestroy_v2", "cuEventDestroy"},
          missing);
  resolve(handle, a.cuGetErrorName, {"cuGetErrorName"}, missing);
  resolve(handle, a.cuGetErrorString, {"cuGetErrorString"}, missing);
  if (!missing.empty())
    return Status::error(std::string("CUDA driver ") + library +
                         " is too old: it lacks " + missing);
  std::string optional; // what is missing here only disables graphs
  resolve(handle, a.cuStreamCreate, {"cuStreamCreate"}, optional);
  resolve(handle, a.cuStreamDestroy_v2, {"cuStreamDestroy_v2"}, optional);
  resolve(handle, a.cuMemcpyHtoDAsync_v2, {"cuMemcpyHtoDAsync_v2"}, optional);
  resolve(handle, a.cuMemcpyDtoHAsync_v2, {"cuMemcpyDtoHAsync_v2"}, optional);
  resolve(handle, a.cuStreamBeginCapture_v2, {"cuStreamBeginCapture_v2"},
          optional);
  resolve(handle, a.cuStreamEndCapture, {"cuStreamEndCapture"}, optional);
  resolve(handle, a.cuGraphInstantiateWithFlags,
          {"cuGraphInstantiateWithFlags"}, optional);
  resolve(handle, a.cuGraphLaunch, {"cuGraphLaunch"}, optional);
  resolve(handle, a.cuGraphExecDestroy, {"cuGraphExecDestroy"}, optional);
  resolve(handle, a.cuGraphDestroy, {"cuGraphDestroy"}, optional);

  CUresult r = a.cuInit(0);
  if (r == CUDA_ERROR_NO_DEVICE)
    return Status::error("no CUDA device: " +
                         driver->check(r, "cuInit").message());
  if (Status s = driver->check(r, "cuInit"); !s)
    return s;
  if (Status s = driver->check(a.cuDriverGetVersion(&driver->version_),
                               "cuDriverGetVersion");
      !s)
    return s;
  int count = 0;
  if (Status s = driver->check(a.cuDeviceGetCount(&count), "cuDeviceGetCount");
      !s)
    return s;
  if (count == 0)
    return Status::error("no CUDA device: the driver reports no device");
  return driver;
}

CudaDriver::~CudaDriver() {
  // libcuda is left loaded: unloading it while the CUDA runtime (cuBLAS)
  // may still hold contexts is not safe, and the process ends soon anyway.
}

std::string CudaDriver::describe(CUresult result) const {
  return describeCudaError(api_, result);
}

Status CudaDriver::check(CUresult result, const char *call) const {
  if (result == CUDA_SUCCESS)
    return Status();
  return Status::error(std::string(call) + " failed: " + describe(result));
}

//===----------------------------------------------------------------------===//
// CudaDevice
//===----------------------------------------------------------------------===//

Expected<std::unique_ptr<CudaDevice>>
CudaDevice::open(std::shared_ptr<CudaDriver> driver, int ordinal) {
  const DriverApi &a = driver->api();
  std::unique_ptr<CudaDevice> d(new CudaDevice());
  d->driver_ = driver;
  int count = 0;
  if (Status s = d->check(a.cuDeviceGetCount(&count), "cuDeviceGetCount"); !s)
    return s;
  if (ordinal < 0 || ordinal >= count)
    return Status::error("no CUDA device " + std::to_string(ordinal) +
                         ": the driver reports " + std::to_string(count));
  if (Status s = d->check(a.cuDeviceGet(&d->device_, ordinal), "cuDeviceGet");
      !s)
    return s;
  char name[256] = {0};
  if (Status s = d->check(a.cuDeviceGetName(name, sizeof(name) - 1, d->device_),
                          "cuDeviceGetName");
      !s)
    return s;
  d->name_ = name;
  auto attribute = [&](int attr, int &out) {
    return d->check(a.cuDeviceGetAttribute(&out, attr, d->device_),
                    "cuDeviceGetAttribute");
  };
  int l2 = 0, optin = 0;
  for (auto [attr, out] :
       {std::pair<int, int *>{CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                              &d->ccMajor_},
        {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, &d->ccMinor_},
        {CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, &d->smCount_},
        {CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, &l2},
        {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, &optin}})
    if (Status s = attribute(attr, *out); !s)
      return s;
  d->l2Bytes_ = l2;
  d->maxSharedOptin_ = optin;
  size_t total = 0;
  if (Status s = d->check(a.cuDeviceTotalMem_v2(&total, d->device_),
                          "cuDeviceTotalMem_v2");
      !s)
    return s;
  d->totalMemory_ = static_cast<int64_t>(total);
  if (Status s = d->check(a.cuDevicePrimaryCtxRetain(&d->context_, d->device_),
                          "cuDevicePrimaryCtxRetain");
      !s)
    return s;
  if (Status s = d->makeCurrent(); !s)
    return s;
  return Expected<std::unique_ptr<CudaDevice>>(std::move(d));
}

CudaDevice::~CudaDevice() {
  if (context_)
    api().cuDevicePrimaryCtxRelease_v2(device_);
}

Status CudaDevice::makeCurrent() const {
  return check(api().cuCtxSetCurrent(context_), "cuCtxSetCurrent");
}

Expected<CUdeviceptr> CudaDevice::alloc(size_t bytes) const {
  CUdeviceptr ptr = 0;
  if (Status s =
          check(api().cuMemAlloc_v2(&ptr, bytes ? bytes : 1), "cuMemAlloc_v2");
      !s)
    return Status::error(s.message() + " (" + std::to_string(bytes) +
                         " bytes)");
  return ptr;
}

Status CudaDevice::free(CUdeviceptr ptr) const {
  if (!ptr)
    return Status();
  return check(api().cuMemFree_v2(ptr), "cuMemFree_v2");
}

Status CudaDevice::copyToDevice(CUdeviceptr dst, const void *src,
                                size_t bytes) const {
  if (!bytes)
    return Status();
  return check(api().cuMemcpyHtoD_v2(dst, src, bytes), "cuMemcpyHtoD_v2");
}

Status CudaDevice::copyToHost(void *dst, CUdeviceptr src, size_t bytes) const {
  if (!bytes)
    return Status();
  return check(api().cuMemcpyDtoH_v2(dst, src, bytes), "cuMemcpyDtoH_v2");
}

Status CudaDevice::copyOnDevice(CUdeviceptr dst, CUdeviceptr src,
                                size_t bytes) const {
  if (!bytes)
    return Status();
  return check(api().cuMemcpyDtoD_v2(dst, src, bytes), "cuMemcpyDtoD_v2");
}

Status CudaDevice::fill32(CUdeviceptr dst, uint32_t value, size_t count,
                          CUstream stream) const {
  if (!count)
    return Status();
  return check(api().cuMemsetD32Async(dst, value, count, stream),
               "cuMemsetD32Async");
}

Status CudaDevice::synchronize() const {
  return check(api().cuCtxSynchronize(), "cuCtxSynchronize");
}

//===----------------------------------------------------------------------===//
// DeviceBuffer
//===----------------------------------------------------------------------===//

Expected<DeviceBuffer> DeviceBuffer::allocate(const CudaDevice &device,
                                              size_t bytes) {
  Expected<CUdeviceptr> ptr = device.alloc(bytes);
  if (!ptr)
    return ptr.status();
  DeviceBuffer b;
  b.device_ = &device;
  b.ptr_ = *ptr;
  b.bytes_ = bytes;
  return Expected<DeviceBuffer>(std::move(b));
}

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&other) noexcept {
  if (this != &other) {
    reset();
    device_ = other.device_;
    ptr_ = other.ptr_;
    bytes_ = other.bytes_;
    other.device_ = nullptr;
    other.ptr_ = 0;
    other.bytes_ = 0;
  }
  return *this;
}

void DeviceBuffer::reset() {
  if (device_ && ptr_)
    (void)device_->free(ptr_);
  device_ = nullptr;
  ptr_ = 0;
  bytes_ = 0;
}

} // namespace llq::rt::cuda
