#pragma once
// A small persistent thread pool for data-parallel loops (internal to picospec::llama).
//
// parallel_for(n, fn) splits [0, n) into contiguous ranges, one per thread (the caller runs one of them) and
// blocks until every range is done. Workers sleep on a condition variable between calls (no busy-waiting) and are
// joined by the destructor. An exception thrown by fn on any thread is rethrown to the caller.
// Thread-safety: one parallel_for at a time (the owning model is single-threaded by contract).

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace picospec::llama::detail {

class ThreadPool {
 public:
  /// `threads` >= 1 counts the calling thread; threads - 1 workers are started.
  explicit ThreadPool(std::size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  [[nodiscard]] std::size_t size() const noexcept { return workers_.size() + 1; }

  /// Calls fn(begin, end) on disjoint ranges covering [0, n), with at most `max_parts` ranges (0 = size()).
  void parallel_for(std::size_t n, const std::function<void(std::size_t, std::size_t)>& fn, std::size_t max_parts = 0);

 private:
  void worker_loop(std::size_t index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(std::size_t, std::size_t)>* job_ = nullptr;
  std::size_t job_n_ = 0, job_parts_ = 0;
  std::size_t generation_ = 0;
  std::size_t pending_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace picospec::llama::detail
