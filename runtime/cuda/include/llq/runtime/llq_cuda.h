/*===- llq_cuda.h - C API of llq's GPU runtime -------------------*- C -*-===*\
|*                                                                            *|
|* Part of the llq project.                                                   *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/
/*
 * A small C interface to run llq's generated quantized GEMM kernels: open a
 * device (the CUDA driver is loaded at run time, so programs link without
 * it), load a kernel directory written by `llq-compile --kernels=...`,
 * manage device memory, and run one quantized linear layer by kernel name.
 *
 * Every function that can fail returns 0 on success and -1 on failure;
 * llq_cuda_last_error() then describes the failure (per thread, valid until
 * the thread's next failing call).
 */

#ifndef LLQ_RUNTIME_LLQ_CUDA_H
#define LLQ_RUNTIME_LLQ_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct llq_cuda_device llq_cuda_device;
typedef struct llq_cuda_kernels llq_cuda_kernels;
/* A device address (CUdeviceptr). */
typedef unsigned long long llq_cuda_ptr;

/* The message of the calling thread's last failure ("" if none). */
const char *llq_cuda_last_error(void);

/* Opens device `ordinal` and makes its primary context current on the
 * calling thread. Fails with "no CUDA driver: ..." where libcuda.so.1 is
 * missing and "no CUDA device: ..." where the driver finds none. */
int llq_cuda_open(int ordinal, llq_cuda_device **device);
void llq_cuda_close(llq_cuda_device *device);
/* The device's name and compute capability (major * 10 + minor). */
const char *llq_cuda_device_name(const llq_cuda_device *device);
int llq_cuda_compute_capability(const llq_cuda_device *device);

int llq_cuda_alloc(llq_cuda_device *device, size_t bytes, llq_cuda_ptr *ptr);
int llq_cuda_free(llq_cuda_device *device, llq_cuda_ptr ptr);
int llq_cuda_copy_to_device(llq_cuda_device *device, llq_cuda_ptr dst,
                            const void *src, size_t bytes);
int llq_cuda_copy_to_host(llq_cuda_device *device, void *dst, llq_cuda_ptr src,
                          size_t bytes);
/* Waits for all work queued on the device. */
int llq_cuda_synchronize(llq_cuda_device *device);

/* Loads <directory>/kernels.txt and the module that fits the device. The
 * kernels must be freed before their device is closed. */
int llq_cuda_load_kernels(llq_cuda_device *device, const char *directory,
                          llq_cuda_kernels **kernels);
void llq_cuda_free_kernels(llq_cuda_kernels *kernels);

/* Queues y = x * dequant(w)^T with kernel `name` on the default stream:
 * x f16 [m][k], w the k-chunk codes, scales and biases f16 [G][n], y f32
 * [m][n] (zeroed first when the kernel accumulates). Call
 * llq_cuda_synchronize before reading y. */
int llq_cuda_qlinear(llq_cuda_kernels *kernels, const char *name,
                     llq_cuda_ptr x, llq_cuda_ptr w, llq_cuda_ptr scales,
                     llq_cuda_ptr biases, llq_cuda_ptr y, int64_t m);

#ifdef __cplusplus
}
#endif

#endif /* LLQ_RUNTIME_LLQ_CUDA_H */
