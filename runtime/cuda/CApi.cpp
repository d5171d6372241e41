//===- CApi.cpp - C API of llq's GPU runtime ------------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/runtime/llq_cuda.h"

#include "llq/Runtime/Cuda/KernelLibrary.h"
#include "llq/Runtime/Cuda/ModelEngine.h"

#include <new>
#include <string>

using namespace llq::rt::cuda;

struct llq_cuda_device {
  std::unique_ptr<CudaDevice> device;
};

struct llq_cuda_kernels {
  std::unique_ptr<KernelLibrary> library;
};

struct llq_model {
  std::unique_ptr<ModelEngine> engine;
  std::string device;
};

namespace {

thread_local std::string lastError;

int fail(const std::string &message) {
  lastError = message;
  return -1;
}

int result(const Status &s) { return s.ok() ? 0 : fail(s.message()); }

} // namespace

extern "C" {

const char *llq_cuda_last_error(void) { return lastError.c_str(); }

int llq_cuda_open(int ordinal, llq_cuda_device **device) {
  if (!device)
    return fail("llq_cuda_open: null output pointer");
  *device = nullptr;
  Expected<std::shared_ptr<CudaDriver>> driver = CudaDriver::open();
  if (!driver)
    return fail(driver.message());
  Expected<std::unique_ptr<CudaDevice>> d = CudaDevice::open(*driver, ordinal);
  if (!d)
    return fail(d.message());
  auto *handle = new (std::nothrow) llq_cuda_device;
  if (!handle)
    return fail("out of memory");
  handle->device = d.take();
  *device = handle;
  return 0;
}

void llq_cuda_close(llq_cuda_device *device) { delete device; }

const char *llq_cuda_device_name(const llq_cuda_device *device) {
  return device ? device->device->name().c_str() : "";
}

int llq_cuda_compute_capability(const llq_cuda_device *device) {
  return device ? device->device->ccMajor() * 10 + device->device->ccMinor()
                : 0;
}

int llq_cuda_alloc(llq_cuda_device *device, size_t bytes, llq_cuda_ptr *ptr) {
  if (!device || !ptr)
    return fail("llq_cuda_alloc: null argument");
  Expected<CUdeviceptr> p = device->device->alloc(bytes);
  if (!p)
    return fail(p.message());
  *ptr = *p;
  return 0;
}

int llq_cuda_free(llq_cuda_device *device, llq_cuda_ptr ptr) {
  if (!device)
    return fail("llq_cuda_free: null device");
  return result(device->device->free(ptr));
}

int llq_cuda_copy_to_device(llq_cuda_device *device, llq_cuda_ptr dst,
                            const void *src, size_t bytes) {
  if (!device)
    return fail("llq_cuda_copy_to_device: null device");
  return result(device->device->copyToDevice(dst, src, bytes));
}

int llq_cuda_copy_to_host(llq_cuda_device *device, void *dst, llq_cuda_ptr src,
                          size_t bytes) {
  if (!device)
    return fail("llq_cuda_copy_to_host: null device");
  return result(device->device->copyToHost(dst, src, bytes));
}

int llq_cuda_synchronize(llq_cuda_device *device) {
  if (!device)
    return fail("llq_cuda_synchronize: null device");
  return result(device->device->synchronize());
}

int llq_cuda_load_kernels(llq_cuda_device *device, const char *directory,
                          llq_cuda_kernels **kernels) {
  if (!device || !directory || !kernels)
    return fail("llq_cuda_load_kernels: null argument");
  *kernels = nullptr;
  Expected<std::unique_ptr<KernelLibrary>> lib =
      KernelLibrary::load(*device->device, directory);
  if (!lib)
    return fail(lib.message());
  auto *handle = new (std::nothrow) llq_cuda_kernels;
  if (!handle)
    return fail("out of memory");
  handle->library = lib.take();
  *kernels = handle;
  return 0;
}

void llq_cuda_free_kernels(llq_cuda_kernels *kernels) { delete kernels; }

int llq_cuda_qlinear(llq_cuda_kernels *kernels, const char *name,
                     llq_cuda_ptr x, llq_cuda_ptr w, llq_cuda_ptr scales,
                     llq_cuda_ptr biases, llq_cuda_ptr y, int64_t m) {
  if (!kernels || !name)
    return fail("llq_cuda_qlinear: null argument");
  const ManifestKernel *kernel = kernels->library->manifest().find(name);
  if (!kernel)
    return fail(std::string("no kernel ") + name + " in " +
                kernels->library->manifest().directory + "/kernels.txt");
  QGemmBuffers buffers{x, w, scales, biases, y};
  return result(launchQGemm(*kernels->library, *kernel, buffers, m));
}

int llq_model_load(const char *directory, const char *device,
                   llq_model **model) {
  if (!directory || !model)
    return fail("llq_model_load: null argument");
  Expected<std::unique_ptr<ModelEngine>> e =
      ModelEngine::load(directory, device ? device : "auto");
  if (!e)
    return fail(e.message());
  auto *handle = new (std::nothrow) llq_model;
  if (!handle)
    return fail("llq_model_load: out of memory");
  handle->engine = e.take();
  handle->device = handle->engine->backend().describe();
  *model = handle;
  return 0;
}

void llq_model_free(llq_model *model) { delete model; }

int llq_model_prefill(llq_model *model, const int32_t *ids, size_t n,
                      float *logits) {
  if (!model || (!ids && n))
    return fail("llq_model_prefill: null argument");
  return result(model->engine->prefill(ids, int64_t(n), logits));
}

int llq_model_decode_step(llq_model *model, int32_t id, float *logits) {
  if (!model)
    return fail("llq_model_decode_step: null model");
  return result(model->engine->decode(id, logits));
}

int llq_model_prefill_greedy(llq_model *model, const int32_t *ids, size_t n,
                             float *logits, int32_t *next) {
  if (!model || (!ids && n) || !next)
    return fail("llq_model_prefill_greedy: null argument");
  return result(model->engine->prefill(ids, int64_t(n), logits, next));
}

int llq_model_decode_greedy(llq_model *model, int32_t id, float *logits,
                            int32_t *next) {
  if (!model || !next)
    return fail("llq_model_decode_greedy: null argument");
  return result(model->engine->decode(id, logits, next));
}

void llq_model_reset(llq_model *model) {
  if (model)
    model->engine->reset();
}

size_t llq_model_vocab(const llq_model *model) {
  return model ? size_t(model->engine->description().vocab) : 0;
}

size_t llq_model_position(const llq_model *model) {
  return model ? size_t(model->engine->position()) : 0;
}

size_t llq_model_max_context(const llq_model *model) {
  return model ? size_t(model->engine->description().maxContext) : 0;
}

const char *llq_model_device(const llq_model *model) {
  return model ? model->device.c_str() : "";
}

} // extern "C"
