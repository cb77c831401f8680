#pragma once
// A small persistent thread pool for data-parallel loops (internal to picospec::llama).
//
// parallel_for(n, fn) splits [0, n) into contiguous ranges of sizes differing by at most one, one per thread (the
// caller runs the first) and blocks until every range is done. Between calls the workers spin for a short while
// (kSpin, so the many calls of one forward pass never wait for a wake-up), then sleep on a condition variable;
// the caller likewise spins, then yields, until every worker has acknowledged the call (workers without a range
// acknowledge at once, so no worker ever reads the next call's job while it is being written). A call allocates nothing: fn is passed by
// reference through a plain function pointer. An exception thrown by fn on any thread is rethrown to the caller.
// Workers are joined by the destructor. Thread-safety: one parallel_for at a time (the owning model is
// single-threaded by contract).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace picospec::llama::detail {

class ThreadPool {
 public:
  /// How long an idle worker spins before it sleeps.
  static constexpr std::chrono::microseconds kSpin{200};

  /// `threads` >= 1 counts the calling thread; threads - 1 workers are started.
  explicit ThreadPool(std::size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  [[nodiscard]] std::size_t size() const noexcept { return workers_.size() + 1; }

  /// Calls fn(begin, end) -- or fn(begin, end, part) -- on disjoint ranges covering [0, n), with at most
  /// `max_parts` ranges (0 = size()); `part` < size() numbers the range (for per-part scratch buffers).
  template <class F>
  void parallel_for(std::size_t n, F&& fn, std::size_t max_parts = 0) {
    using Fn = std::remove_reference_t<F>;
    run(n, max_parts, const_cast<void*>(static_cast<const void*>(&fn)),
        [](void* ctx, std::size_t b, std::size_t e, std::size_t part) {
          if constexpr (std::is_invocable_v<Fn&, std::size_t, std::size_t, std::size_t>)
            (*static_cast<Fn*>(ctx))(b, e, part);
          else
            (*static_cast<Fn*>(ctx))(b, e);
        });
  }

  /// The range of part i of n split into `parts` (sizes differ by at most one).
  static std::pair<std::size_t, std::size_t> range_of(std::size_t n, std::size_t parts, std::size_t i) noexcept {
    return {n * i / parts, n * (i + 1) / parts};
  }

 private:
  using Call = void (*)(void*, std::size_t, std::size_t, std::size_t);
  void run(std::size_t n, std::size_t max_parts, void* ctx, Call call);
  void worker_loop(std::size_t index);

  std::vector<std::thread> workers_;
  // The job, written by the caller before it bumps generation_ (release) and read by workers after (acquire).
  void* ctx_ = nullptr;
  Call call_ = nullptr;
  std::size_t job_n_ = 0, job_parts_ = 0;
  std::atomic<std::size_t> generation_{0};
  std::atomic<std::size_t> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;  // guards sleepers_, error_ and the condition variable
  std::condition_variable start_cv_;
  std::size_t sleepers_ = 0;
  std::exception_ptr error_;
};

}  // namespace picospec::llama::detail
