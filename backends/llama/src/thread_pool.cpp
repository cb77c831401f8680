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

std::size_t ThreadPool::work(std::uint32_t gen, std::size_t thread) noexcept {
  const Job& job = jobs_[gen & 1];
  const void* ctx = job.ctx.load(std::memory_order_relaxed);
  const Call call = job.call.load(std::memory_order_relaxed);
  const std::size_t n = job.n.load(std::memory_order_relaxed), chunks = job.chunks.load(std::memory_order_relaxed);
  std::size_t ran = 0;
  std::uint64_t c = claim_.load(std::memory_order_acquire);
  for (;;) {
    if (static_cast<std::uint32_t>(c >> 32) != gen || (c & 0xffffffffu) >= chunks) return ran;
    if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    // Claimed chunk (c & mask) of generation `gen`: the slot was not rewritten before this claim succeeded.
    const auto [b, e] = range_of(n, chunks, static_cast<std::size_t>(c & 0xffffffffu));
    try {
      call(const_cast<void*>(ctx), b, e, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      if (!error_) error_ = std::current_exception();
    }
    ++ran;
    done_.fetch_add(1, std::memory_order_acq_rel);
    c = claim_.load(std::memory_order_acquire);
  }
}

void ThreadPool::run(std::size_t n, std::size_t max_parts, void* ctx, Call call) {
  if (n == 0) return;
  std::size_t parts = std::min(size(), n);
  if (max_parts != 0) parts = std::min(parts, max_parts);
  if (parts <= 1) {
    call(ctx, 0, n, 0);
    return;
  }
  const std::size_t chunks = std::min<std::size_t>({n, parts * kChunksPerThread, 0xffffffffu});
  const std::uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
  Job& job = jobs_[gen & 1];
  job.ctx.store(ctx, std::memory_order_relaxed);
  job.call.store(call, std::memory_order_relaxed);
  job.n.store(n, std::memory_order_relaxed);
  job.chunks.store(chunks, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  claim_.store(static_cast<std::uint64_t>(gen) << 32, std::memory_order_release);
  generation_.store(gen, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (sleepers_ > 0) start_cv_.notify_all();
  }
  work(gen, 0);
  for (unsigned spins = 0; done_.load(std::memory_order_acquire) != chunks; ++spins) {
    if (spins < 4096)
      PICOSPEC_CPU_RELAX();
    else
      std::this_thread::yield();  // a claimed chunk is still running on a worker that lost its core
  }
  std::exception_ptr err;
  {
    std::lock_guard<std::mutex> lk(mu_);
    err = std::exchange(error_, nullptr);
  }
  if (err) std::rethrow_exception(err);
}

void ThreadPool::worker_loop(std::size_t index) {
  std::uint32_t seen = 0;
  for (;;) {
    auto moved = [&] {
      return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen;
    };
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
    work(seen, index);
  }
}

}  // namespace picospec::llama::detail
