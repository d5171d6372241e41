//===- ParallelTest.cpp - The kernels' thread pool ------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

using namespace llq::rt;

namespace {

// Back-to-back runs of different sizes are where a worker still leaving one
// run could claim chunks of the next with stale bounds; every index must be
// visited exactly once, and no run may hang.
TEST(ParallelTest, ManyRunsOfVaryingSizeVisitEachIndexOnce) {
  setNumThreads(4);
  for (int run = 0; run < 20000; ++run) {
    int64_t n = 1 + (run * 7919) % 97;
    int64_t grain = 1 + run % 5;
    std::vector<std::atomic<int>> hits(n);
    parallelFor(n, grain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        hits[i].fetch_add(1);
    });
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(hits[i].load(), 1) << "run " << run << " index " << i;
  }
}

TEST(ParallelTest, NestedCallsRunInline) {
  std::atomic<int64_t> sum{0};
  parallelFor(8, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      parallelFor(100, 1, [&](int64_t b2, int64_t e2) { sum += e2 - b2; });
  });
  EXPECT_EQ(sum.load(), 800);
}

TEST(ParallelTest, EmptyAndSingleChunk) {
  int calls = 0;
  parallelFor(0, 1, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
  parallelFor(5, 100, [&](int64_t b, int64_t e) {
    EXPECT_EQ(b, 0);
    EXPECT_EQ(e, 5);
    ++calls;
  });
  EXPECT_EQ(calls, 1);
}

} // namespace
