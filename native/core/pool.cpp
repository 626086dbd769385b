#include "pool.h"

#include <algorithm>
#include <cstdlib>

#include "error.h"

namespace sparq {

namespace {
thread_local const CancelToken* tlsCancelToken = nullptr;
thread_local bool tlsInsidePoolTask = false;

int defaultThreadCount() {
  if (const char* env = std::getenv("SPARQ_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}
}  // namespace

CancelScope::CancelScope(const CancelToken* token) : previous_(tlsCancelToken) { tlsCancelToken = token; }
CancelScope::~CancelScope() { tlsCancelToken = previous_; }

const CancelToken* currentCancelToken() { return tlsCancelToken; }

void throwIfCancelled() {
  if (tlsCancelToken && tlsCancelToken->cancelled()) fail(ErrorCode::Aborted, "The operation was aborted");
}

std::mutex& computeMutex() {
  static std::mutex m;
  return m;
}

ThreadPool& ThreadPool::instance() {
  // Leaked on purpose: worker threads must not be joined from static destructors at process exit.
  static ThreadPool* pool = new ThreadPool();
  return *pool;
}

ThreadPool::ThreadPool() {
  threads_ = defaultThreadCount();
  startWorkers(threads_ - 1);
}

ThreadPool::~ThreadPool() { stopWorkers(); }

void ThreadPool::startWorkers(int workers) {
  stopping_ = false;
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { workerLoop(); });
}

void ThreadPool::stopWorkers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void ThreadPool::setThreads(int n) {
  SPARQ_CHECK(n >= 1 && n <= 1024, ErrorCode::InvalidArgument, "thread count must be in 1..1024, got " + std::to_string(n));
  std::lock_guard<std::mutex> busy(poolBusy_);
  if (n != threads_) {
    stopWorkers();
    threads_ = n;
    startWorkers(n - 1);
  }
  if (listener_) listener_(n);
}

void ThreadPool::setThreadCountListener(std::function<void(int)> listener) {
  listener_ = std::move(listener);
  if (listener_) listener_(threads_);
}

void ThreadPool::runChunks() {
  while (!jobFailed_.load(std::memory_order_relaxed)) {
    const int64_t begin = next_.fetch_add(chunk_, std::memory_order_relaxed);
    if (begin >= count_) break;
    try {
      if (jobToken_ && jobToken_->cancelled()) fail(ErrorCode::Aborted, "The operation was aborted");
      (*body_)(begin, std::min(begin + chunk_, count_));
    } catch (...) {
      std::lock_guard<std::mutex> lock(errorMutex_);
      if (!jobError_) jobError_ = std::current_exception();
      jobFailed_.store(true, std::memory_order_relaxed);
    }
  }
}

void ThreadPool::workerLoop() {
  tlsInsidePoolTask = true;
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
    }
    runChunks();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --activeWorkers_;
    }
    done_.notify_all();
  }
}

void ThreadPool::parallelFor(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  if (count <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  auto runInline = [&] {
    for (int64_t begin = 0; begin < count; begin += grain) {
      throwIfCancelled();
      body(begin, std::min(begin + grain, count));
    }
  };
  if (threads_ <= 1 || count <= grain || tlsInsidePoolTask) return runInline();
  std::unique_lock<std::mutex> busy(poolBusy_, std::try_to_lock);
  if (!busy.owns_lock()) return runInline();

  // About four chunks per thread balances uneven rows without much scheduling overhead.
  const int64_t target = (count + threads_ * 4 - 1) / (threads_ * 4);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    body_ = &body;
    count_ = count;
    chunk_ = std::max(grain, target);
    next_.store(0);
    jobToken_ = tlsCancelToken;
    jobFailed_.store(false);
    jobError_ = nullptr;
    activeWorkers_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  tlsInsidePoolTask = true;
  runChunks();
  tlsInsidePoolTask = false;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return activeWorkers_ == 0; });
    body_ = nullptr;
  }
  if (jobError_) std::rethrow_exception(jobError_);
}

}  // namespace sparq
