//===- Parallel.cpp - A small thread pool for kernels ---------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

using namespace llq::rt;

namespace {
/// How long a thread spins for the next run (or the end of this one) before
/// it sleeps. Kernels come back to back: waking a sleeping thread costs
/// tens of microseconds, which decoding (hundreds of small products per
/// token) would pay hundreds of times per token.
constexpr auto kSpin = std::chrono::microseconds(200);

/// Spins until `ready()` or the spin time is up; returns ready().
template <typename Fn> bool spinFor(Fn ready) {
  auto start = std::chrono::steady_clock::now();
  for (int i = 0;; ++i) {
    if (ready())
      return true;
    if ((i & 63) == 63 && std::chrono::steady_clock::now() - start > kSpin)
      return ready();
    std::this_thread::yield();
  }
}

/// A fixed set of workers that run one parallelFor at a time, together with
/// the calling thread. A run ends only when every chunk is done and no
/// worker is still inside it, so no worker can ever touch the next run's
/// counters with the previous run's view of them.
class Pool {
public:
  explicit Pool(int threads) {
    for (int i = 1; i < threads; ++i)
      workers.emplace_back([this] { work(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
      generation.fetch_add(1);
    }
    wake.notify_all();
    for (std::thread &t : workers)
      t.join();
  }

  void run(int64_t chunks, const std::function<void(int64_t)> &task) {
    std::lock_guard<std::mutex> serial(runMutex);
    {
      std::lock_guard<std::mutex> lock(mutex);
      job.store(&task);
      total.store(chunks);
      next.store(0);
      pending.store(chunks);
      generation.fetch_add(1);
    }
    if (sleepers.load())
      wake.notify_all();
    drain();
    auto finished = [&] { return pending.load() == 0 && active.load() == 0; };
    if (!spinFor(finished)) {
      std::unique_lock<std::mutex> lock(mutex);
      done.wait(lock, finished);
    }
    std::lock_guard<std::mutex> lock(mutex);
    job.store(nullptr);
  }

private:
  void drain() {
    const std::function<void(int64_t)> *task = job.load();
    for (;;) {
      int64_t i = next.fetch_add(1);
      if (i >= total.load())
        return;
      (*task)(i);
      if (pending.fetch_sub(1) == 1) {
        std::lock_guard<std::mutex> lock(mutex);
        done.notify_all();
      }
    }
  }

  void work() {
    uint64_t seen = 0;
    for (;;) {
      if (!spinFor([&] { return generation.load() != seen; })) {
        std::unique_lock<std::mutex> lock(mutex);
        sleepers.fetch_add(1);
        wake.wait(lock, [&] { return generation.load() != seen; });
        sleepers.fetch_sub(1);
      }
      std::unique_lock<std::mutex> lock(mutex);
      if (stopping)
        return;
      seen = generation.load();
      if (!job.load())
        continue; // the run already ended
      active.fetch_add(1);
      lock.unlock();
      drain();
      lock.lock();
      if (active.fetch_sub(1) == 1)
        done.notify_all();
    }
  }

  std::vector<std::thread> workers;
  std::mutex mutex, runMutex;
  std::condition_variable wake, done;
  std::atomic<const std::function<void(int64_t)> *> job{nullptr};
  std::atomic<int64_t> next{0}, pending{0}, total{0};
  std::atomic<int> active{0}, sleepers{0};
  std::atomic<uint64_t> generation{0};
  bool stopping = false;
};

int requestedThreads = 0;
thread_local bool insideParallel = false;
} // namespace

int llq::rt::numThreads() {
  if (requestedThreads > 0)
    return requestedThreads;
  if (const char *env = std::getenv("LLQ_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0)
      return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

void llq::rt::setNumThreads(int n) { requestedThreads = n; }

static Pool &pool() {
  static Pool instance(numThreads());
  return instance;
}

void llq::rt::parallelFor(int64_t n, int64_t grain,
                          const std::function<void(int64_t, int64_t)> &fn) {
  if (n <= 0)
    return;
  grain = std::max<int64_t>(grain, 1);
  int threads = numThreads();
  int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, threads * 4);
  if (chunks <= 1 || threads == 1 || insideParallel) {
    fn(0, n);
    return;
  }
  int64_t size = (n + chunks - 1) / chunks;
  chunks = (n + size - 1) / size;
  pool().run(chunks, [&](int64_t c) {
    bool outer = insideParallel;
    insideParallel = true;
    fn(c * size, std::min(n, (c + 1) * size));
    insideParallel = outer;
  });
}
