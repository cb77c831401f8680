#include "thread_pool.hpp"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PICOSPEC_CPU_RELAX() _mm_pause()
#else
#define PICOSPEC_CPU_RELAX() std::this_thread::yield()
#endif

namespace picospec::llama::detail {

ThreadPool::ThreadPool(std::size_t threads) {
  const std::size_t n = std::max<std::size_t>(threads, 1);
  workers_.reserve(n - 1);
  for (std::size_t i = 1; i < n; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run(std::size_t n, std::size_t max_parts, void* ctx, Call call) {
  if (n == 0) return;
  std::size_t parts = std::min(size(), n);
  if (max_parts != 0) parts = std::min(parts, max_parts);
  if (parts <= 1) {
    call(ctx, 0, n, 0);
    return;
  }
  ctx_ = ctx;
  call_ = call;
  job_n_ = n;
  job_parts_ = parts;
  pending_.store(workers_.size(), std::memory_order_relaxed);  // every worker acknowledges every call
  generation_.fetch_add(1, std::memory_order_seq_cst);
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (sleepers_ > 0) start_cv_.notify_all();
  }
  std::exception_ptr mine;
  try {
    const auto [b, e] = range_of(n, parts, 0);
    call(ctx, b, e, 0);
  } catch (...) {
    mine = std::current_exception();
  }
  for (unsigned spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 4096)
      PICOSPEC_CPU_RELAX();
    else
      std::this_thread::yield();  // an oversubscribed machine: let the late worker run
  }
  if (mine) std::rethrow_exception(mine);
  std::exception_ptr err;
  {
    std::lock_guard<std::mutex> lk(mu_);
    err = std::exchange(error_, nullptr);
  }
  if (err) std::rethrow_exception(err);
}

void ThreadPool::worker_loop(std::size_t index) {
  std::size_t seen = 0;
  for (;;) {
    // Spin for a short while, then sleep until the generation moves.
    auto moved = [&] { return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen; };
    if (!moved()) {
      const auto deadline = std::chrono::steady_clock::now() + kSpin;
      for (unsigned i = 1; !moved(); ++i) {
        PICOSPEC_CPU_RELAX();
        if (i % 64 == 0 && std::chrono::steady_clock::now() > deadline) {
          std::unique_lock<std::mutex> lk(mu_);
          ++sleepers_;
          start_cv_.wait(lk, moved);
          --sleepers_;
          break;
        }
      }
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = generation_.load(std::memory_order_acquire);
    const std::size_t parts = job_parts_;
    if (index < parts) {
      try {
        const auto [b, e] = range_of(job_n_, parts, index);
        call_(ctx_, b, e, index);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace picospec::llama::detail
