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

/* A whole compiled model (llq-compile model.q.mlir -o DIR): load it, run a
 * prompt, decode token by token, free it. The KV cache lives on the device.
 * `device` is "cuda", "cpu" (the host library of --target=cpu) or "auto". */
typedef struct llq_model llq_model;

int llq_model_load(const char *directory, const char *device,
                   llq_model **model);
void llq_model_free(llq_model *model);
/* Appends `n` tokens to the context and writes the last position's logits
 * (llq_model_vocab floats) to `logits` when it is not NULL. */
int llq_model_prefill(llq_model *model, const int32_t *ids, size_t n,
                      float *logits);
/* Appends one token; its logits as for prefill. */
int llq_model_decode_step(llq_model *model, int32_t id, float *logits);
/* As prefill and decode_step, also writing the greedy next token (the first
 * largest logit) to `next`; it is chosen on the device, so with `logits`
 * NULL only the token crosses to the host. */
int llq_model_prefill_greedy(llq_model *model, const int32_t *ids, size_t n,
                             float *logits, int32_t *next);
int llq_model_decode_greedy(llq_model *model, int32_t id, float *logits,
                            int32_t *next);
/* Empties the context. */
void llq_model_reset(llq_model *model);
size_t llq_model_vocab(const llq_model *model);
/* Positions used and the capacity the artifact was compiled for. */
size_t llq_model_position(const llq_model *model);
size_t llq_model_max_context(const llq_model *model);
/* "cuda (<GPU name>, sm_90 cubin)" or "cpu (<library>)". */
const char *llq_model_device(const llq_model *model);

#ifdef __cplusplus
}
#endif

#endif /* LLQ_RUNTIME_LLQ_CUDA_H */
