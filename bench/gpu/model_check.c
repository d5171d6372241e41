/* model_check.c - Runs a whole compiled model on the GPU and on the host
 * library through the C API (llq/runtime/llq_cuda.h) and compares them.
 *
 *   model_check GPU_DIR CPU_DIR STEPS TOKEN...
 *
 * GPU_DIR and CPU_DIR are what llq-compile wrote for the same model.q.mlir
 * with --target=cuda-sm90,cuda-sm80 and with --target=cpu. Prefills the
 * prompt on both, then decodes STEPS greedy tokens (chosen from the GPU's
 * logits, fed to both), printing the largest logit difference relative to
 * the largest |logit| at every step, and the GPU's prefill and decode times.
 * Exits 1 when a step differs by more than 1e-2, the greedy tokens differ
 * where the host's top two logits are clearly apart, or the device's greedy
 * token (llq_model_decode_greedy) is not the largest of its logits. Then
 * times STEPS greedy steps that copy back only the token.
 *
 * Part of the llq project. */

#define _POSIX_C_SOURCE 199309L

#include "llq/runtime/llq_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static size_t argmax(const float *p, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; ++i)
    if (p[i] > p[best])
      best = i;
  return best;
}

static double compare(const float *a, const float *b, size_t n) {
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < n; ++i) {
    double d = fabs((double)a[i] - b[i]);
    if (d > diff)
      diff = d;
    if (fabs(b[i]) > scale)
      scale = fabs(b[i]);
  }
  return diff / scale;
}

/* The host's margin between its best and second-best logit. */
static double margin(const float *p, size_t n) {
  size_t best = argmax(p, n);
  double second = -1e30;
  for (size_t i = 0; i < n; ++i)
    if (i != best && p[i] > second)
      second = p[i];
  return p[best] - second;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: model_check GPU_DIR CPU_DIR STEPS TOKEN...\n");
    return 2;
  }
  int steps = atoi(argv[3]);
  size_t n = (size_t)(argc - 4);
  int32_t *prompt = malloc(n * sizeof(int32_t));
  for (size_t i = 0; i < n; ++i)
    prompt[i] = (int32_t)atoi(argv[4 + i]);

  /* MODEL_CHECK_DEVICE=cpu runs the first artifact on the host too (a check
   * of this program and the C API without a GPU). */
  const char *device = getenv("MODEL_CHECK_DEVICE");
  llq_model *gpu = NULL, *cpu = NULL;
  if (llq_model_load(argv[1], device ? device : "cuda", &gpu) != 0) {
    fprintf(stderr, "model_check: %s: %s\n", argv[1], llq_cuda_last_error());
    return 1;
  }
  if (llq_model_load(argv[2], "cpu", &cpu) != 0) {
    fprintf(stderr, "model_check: %s: %s\n", argv[2], llq_cuda_last_error());
    return 1;
  }
  size_t vocab = llq_model_vocab(gpu);
  if (vocab != llq_model_vocab(cpu)) {
    fprintf(stderr, "model_check: the artifacts are of different models\n");
    return 1;
  }
  printf("gpu: %s\ncpu: %s\n", llq_model_device(gpu), llq_model_device(cpu));
  float *lg = malloc(vocab * sizeof(float)), *lc = malloc(vocab * sizeof(float));

  /* Warm the GPU (module load, JIT), then time a fresh prefill. */
  if (llq_model_prefill(gpu, prompt, n, lg) != 0)
    goto failed;
  llq_model_reset(gpu);
  double t0 = now();
  if (llq_model_prefill(gpu, prompt, n, lg) != 0)
    goto failed;
  double prefill = now() - t0;
  if (llq_model_prefill(cpu, prompt, n, lc) != 0)
    goto failed;
  int bad = 0;
  double worst = compare(lg, lc, vocab);
  printf("prefill %zu tokens: max |gpu - cpu| / max|cpu| = %.2e, gpu %.3f ms\n",
         n, worst, prefill * 1e3);
  if (worst > 1e-2)
    bad = 1;
  double decode = 0;
  int32_t next = (int32_t)argmax(lg, vocab);
  for (int s = 0; s < steps; ++s) {
    if (argmax(lc, vocab) != (size_t)next && margin(lc, vocab) > 0.05) {
      printf("step %d: gpu picks %d, cpu %zu\n", s, next, argmax(lc, vocab));
      bad = 1;
    }
    int32_t token = next;
    t0 = now();
    if (llq_model_decode_greedy(gpu, token, lg, &next) != 0)
      goto failed;
    decode += now() - t0;
    if ((size_t)next != argmax(lg, vocab)) {
      printf("step %d: the device's greedy token %d is not its logits' "
             "argmax %zu\n", s, next, argmax(lg, vocab));
      bad = 1;
    }
    if (llq_model_decode_step(cpu, token, lc) != 0)
      goto failed;
    double e = compare(lg, lc, vocab);
    if (e > worst)
      worst = e;
    if (e > 1e-2)
      bad = 1;
  }
  if (steps > 0)
    printf("decode %d steps: worst relative difference %.2e, gpu %.3f ms a "
           "token (%.1f tok/s, logits copied back each step)\n",
           steps, worst, decode * 1e3 / steps, steps / decode);
  /* Generation as a deployment runs it: only the token crosses. */
  llq_model_reset(gpu);
  if (llq_model_prefill_greedy(gpu, prompt, n, NULL, &next) != 0)
    goto failed;
  t0 = now();
  for (int s = 0; s < steps; ++s)
    if (llq_model_decode_greedy(gpu, next, NULL, &next) != 0)
      goto failed;
  if (steps > 0) {
    double greedy = now() - t0;
    printf("greedy decode %d steps: gpu %.3f ms a token (%.1f tok/s, the "
           "token copied back)\n",
           steps, greedy * 1e3 / steps, steps / greedy);
  }
  printf("%s\n", bad ? "MODEL CHECK FAILED" : "model check passed");
  llq_model_free(gpu);
  llq_model_free(cpu);
  return bad;

failed:
  fprintf(stderr, "model_check: %s\n", llq_cuda_last_error());
  return 1;
}
