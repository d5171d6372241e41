//===- Blas.h - Matrix products on the runtime's threads --------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// OpenBLAS brings its own threads, which spin between calls and compete
// with the runtime's pool for the same cores. The runtime runs OpenBLAS
// single-threaded instead and splits each product over its own pool, so
// one set of threads does all the work.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_RUNTIME_BLAS_H
#define LLQ_RUNTIME_BLAS_H

#include <cstdint>

namespace llq::rt {

/// Row-major C = alpha * op(A) op(B) + beta * C (op = transpose when set),
/// split over the runtime's threads.
void sgemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k,
           float alpha, const float *a, int64_t lda, const float *b,
           int64_t ldb, float beta, float *c, int64_t ldc);

/// Row-major y = alpha * op(A) x + beta * y for A of rows x cols, split over
/// the runtime's threads.
void sgemv(bool transA, int64_t rows, int64_t cols, float alpha,
           const float *a, int64_t lda, const float *x, float beta, float *y);

/// Makes OpenBLAS single-threaded (once); called before the first product.
void useRuntimeThreadsForBlas();

} // namespace llq::rt

#endif // LLQ_RUNTIME_BLAS_H
