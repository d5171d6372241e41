//===- Parallel.h - A small thread pool for kernels -------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_RUNTIME_PARALLEL_H
#define LLQ_RUNTIME_PARALLEL_H

#include <cstdint>
#include <functional>

namespace llq::rt {

/// Number of threads kernels use: LLQ_NUM_THREADS, else the hardware's.
int numThreads();
/// Overrides the thread count (before the first parallel call).
void setNumThreads(int n);

/// Runs fn(begin, end) over [0, n) split into contiguous chunks of at least
/// `grain` items, on the pool's threads and the caller's. Runs inline when
/// there is one chunk. Calls from inside a parallel region run inline.
void parallelFor(int64_t n, int64_t grain,
                 const std::function<void(int64_t, int64_t)> &fn);

} // namespace llq::rt

#endif // LLQ_RUNTIME_PARALLEL_H
