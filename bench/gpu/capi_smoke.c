/* capi_smoke.c - Runs one quantized linear through the C API of llq's GPU
 * runtime (llq/runtime/llq_cuda.h), compiled as C. run.sh runs it on a PTX-only
 * copy of the generated kernels, so it also covers the driver's JIT path.
 *
 *   capi_smoke KERNEL_DIR KERNEL_NAME N K GROUP
 *
 * for a 4-bit kernel that takes m = 1: x = 1, every code 0, zero point 8,
 * scale 1/16, so every weight is -0.5 and every output -K/2 exactly.
 *
 * Part of the llq project. */

#include "llq/runtime/llq_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                            \
  do {                                                                         \
    if ((call) != 0) {                                                         \
      fprintf(stderr, "capi_smoke: %s: %s\n", #call, llq_cuda_last_error());   \
      return 1;                                                                \
    }                                                                          \
  } while (0)

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: capi_smoke KERNEL_DIR KERNEL_NAME N K GROUP\n");
    return 2;
  }
  const char *dir = argv[1], *name = argv[2];
  const long long n = atoll(argv[3]), k = atoll(argv[4]),
                  group = atoll(argv[5]);
  const long long groups = (k + group - 1) / group;
  llq_cuda_device *device = NULL;
  llq_cuda_kernels *kernels = NULL;
  CHECK(llq_cuda_open(0, &device));
  printf("capi_smoke: %s (sm_%d)\n", llq_cuda_device_name(device),
         llq_cuda_compute_capability(device));
  CHECK(llq_cuda_load_kernels(device, dir, &kernels));

  const size_t xBytes = (size_t)k * 2, wBytes = (size_t)n * k / 2,
               cBytes = (size_t)groups * n * 2, yBytes = (size_t)n * 4;
  unsigned short *x = malloc(xBytes), *scales = malloc(cBytes),
                 *biases = malloc(cBytes);
  unsigned char *w = calloc(wBytes, 1);
  float *y = malloc(yBytes);
  for (long long i = 0; i < k; ++i)
    x[i] = 0x3c00; /* 1.0 */
  for (long long i = 0; i < groups * n; ++i) {
    scales[i] = 0x2c00; /* 0.0625 */
    biases[i] = 0x6408; /* 1024 + 8 */
  }
  llq_cuda_ptr dx, dw, ds, db, dy;
  CHECK(llq_cuda_alloc(device, xBytes, &dx));
  CHECK(llq_cuda_alloc(device, wBytes, &dw));
  CHECK(llq_cuda_alloc(device, cBytes, &ds));
  CHECK(llq_cuda_alloc(device, cBytes, &db));
  CHECK(llq_cuda_alloc(device, yBytes, &dy));
  CHECK(llq_cuda_copy_to_device(device, dx, x, xBytes));
  CHECK(llq_cuda_copy_to_device(device, dw, w, wBytes));
  CHECK(llq_cuda_copy_to_device(device, ds, scales, cBytes));
  CHECK(llq_cuda_copy_to_device(device, db, biases, cBytes));
  CHECK(llq_cuda_qlinear(kernels, name, dx, dw, ds, db, dy, 1));
  CHECK(llq_cuda_synchronize(device));
  CHECK(llq_cuda_copy_to_host(device, y, dy, yBytes));

  int bad = 0;
  for (long long i = 0; i < n; ++i)
    if (y[i] != -0.5f * (float)k) {
      if (bad++ < 4)
        fprintf(stderr, "capi_smoke: y[%lld] = %g, want %g\n", i, y[i],
                -0.5 * (double)k);
    }
  /* An unknown kernel and a row count the kernel cannot take fail cleanly. */
  if (llq_cuda_qlinear(kernels, "no_such_kernel", dx, dw, ds, db, dy, 1) == 0 ||
      strstr(llq_cuda_last_error(), "no kernel no_such_kernel") == NULL) {
    fprintf(stderr, "capi_smoke: unknown kernel not reported\n");
    bad++;
  }
  if (llq_cuda_qlinear(kernels, name, dx, dw, ds, db, dy, 100000) == 0) {
    fprintf(stderr, "capi_smoke: m=100000 was not refused\n");
    bad++;
  }
  CHECK(llq_cuda_free(device, dx));
  CHECK(llq_cuda_free(device, dw));
  CHECK(llq_cuda_free(device, ds));
  CHECK(llq_cuda_free(device, db));
  CHECK(llq_cuda_free(device, dy));
  llq_cuda_free_kernels(kernels);
  llq_cuda_close(device);
  free(x);
  free(scales);
  free(biases);
  free(w);
  free(y);
  printf("capi_smoke: %s\n", bad ? "FAILED" : "ok");
  return bad ? 1 : 0;
}
