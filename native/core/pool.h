// One thread pool for all of sparq's own CPU kernels, sized to the machine's cores. OpenBLAS runs its
// own threads; the pool tells it the same thread count, and asynchronous jobs take turns through
// ComputeLock so that the pool and OpenBLAS never both fill the cores at once.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sparq {

// Set by JavaScript (AbortSignal) and polled by long kernels between chunks of work.
class CancelToken {
 public:
  void cancel() { cancelled_.store(true, std::memory_order_relaxed); }
  bool cancelled() const { return cancelled_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> cancelled_{false};
};

// Makes a token the current one for this thread while the scope lives; kernels and the pool consult
// it without having to pass it through every signature.
class CancelScope {
 public:
  explicit CancelScope(const CancelToken* token);
  ~CancelScope();
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  const CancelToken* previous_;
};

const CancelToken* currentCancelToken();
// Throws Error(Aborted) if the current work was cancelled.
void throwIfCancelled();

// Serializes asynchronous jobs: one job at a time owns the cores.
std::mutex& computeMutex();

class ThreadPool {
 public:
  static ThreadPool& instance();

  // Threads that take part in a parallelFor, the caller included.
  int threads() const { return threads_; }
  // Resizes the pool and tells the registered listener (OpenBLAS) the new count.
  void setThreads(int n);
  void setThreadCountListener(std::function<void(int)> listener);

  // Runs body(begin, end) over [0, count) in chunks of at least `grain` items, on the pool's threads
  // and the caller. Runs inline when the work is small, when called from inside a pool task, or when
  // another caller holds the pool. Cancellation is checked before each chunk; the first exception a
  // chunk throws is rethrown here after all chunks have stopped.
  void parallelFor(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

  ~ThreadPool();

 private:
  ThreadPool();
  void startWorkers(int workers);
  void stopWorkers();
  void workerLoop();
  void runChunks();

  int threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex poolBusy_;  // held by the caller running a parallel job
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  uint64_t generation_ = 0;
  bool stopping_ = false;
  int activeWorkers_ = 0;
  std::function<void(int)> listener_;

  // The job being run.
  const std::function<void(int64_t, int64_t)>* body_ = nullptr;
  int64_t count_ = 0;
  int64_t chunk_ = 1;
  std::atomic<int64_t> next_{0};
  const CancelToken* jobToken_ = nullptr;
  std::atomic<bool> jobFailed_{false};
  std::exception_ptr jobError_;
  std::mutex errorMutex_;
};

inline void parallelFor(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  ThreadPool::instance().parallelFor(count, grain, body);
}

}  // namespace sparq
