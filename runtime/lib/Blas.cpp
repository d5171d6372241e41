//===- Blas.cpp - Matrix products on the runtime's threads ----------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Blas.h"
#include "llq/Runtime/Parallel.h"

#include <cblas.h>

#include <algorithm>
#include <mutex>

using namespace llq::rt;

void llq::rt::useRuntimeThreadsForBlas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

/// Splits [0, n) into pieces of at least `minPiece` for the pool.
static int64_t grainFor(int64_t n, int64_t minPiece) {
  int64_t threads = numThreads();
  return std::max<int64_t>(minPiece, (n + threads - 1) / threads);
}

void llq::rt::sgemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k,
                    float alpha, const float *a, int64_t lda, const float *b,
                    int64_t ldb, float beta, float *c, int64_t ldc) {
  useRuntimeThreadsForBlas();
  auto ta = transA ? CblasTrans : CblasNoTrans;
  auto tb = transB ? CblasTrans : CblasNoTrans;
  // Split the larger output dimension; each piece is an ordinary GEMM on a
  // sub-block of the operands.
  if (m >= n) {
    parallelFor(m, grainFor(m, 16), [&](int64_t r0, int64_t r1) {
      const float *pa = transA ? a + r0 : a + r0 * lda;
      cblas_sgemm(CblasRowMajor, ta, tb, r1 - r0, n, k, alpha, pa, lda, b,
                  ldb, beta, c + r0 * ldc, ldc);
    });
    return;
  }
  parallelFor(n, grainFor(n, 64), [&](int64_t c0, int64_t c1) {
    const float *pb = transB ? b + c0 * ldb : b + c0;
    cblas_sgemm(CblasRowMajor, ta, tb, m, c1 - c0, k, alpha, a, lda, pb, ldb,
                beta, c + c0, ldc);
  });
}

void llq::rt::sgemv(bool transA, int64_t rows, int64_t cols, float alpha,
                    const float *a, int64_t lda, const float *x, float beta,
                    float *y) {
  useRuntimeThreadsForBlas();
  int64_t outputs = transA ? cols : rows;
  parallelFor(outputs, grainFor(outputs, 64), [&](int64_t o0, int64_t o1) {
    if (transA)
      cblas_sgemv(CblasRowMajor, CblasTrans, rows, o1 - o0, alpha, a + o0, lda,
                  x, 1, beta, y + o0, 1);
    else
      cblas_sgemv(CblasRowMajor, CblasNoTrans, o1 - o0, cols, alpha,
                  a + o0 * lda, lda, x, 1, beta, y + o0, 1);
  });
}
