#pragma once
// A small persistent thread pool for data-parallel loops (internal to picospec::llama).
//
// parallel_for(n, fn) splits [0, n) into contiguous chunks of sizes differing by at most one (a few per thread),
// and the calling thread and the workers claim chunks until none is left; it returns when every chunk is done.
// Claiming (rather than a fixed range per thread) keeps a forward pass moving on a busy machine: a worker that is
// not running at the moment claims nothing, and the others do its share. Between calls the workers spin for a
// short while (kSpin, so the many calls of one forward pass never wait for a wake-up), then sleep on a condition
// variable. A call allocates nothing: fn is passed by reference through a plain function pointer. An exception
// thrown by fn on any thread is rethrown to the caller (the other chunks still run).
//
// Which thread runs a chunk never changes what a chunk computes (batch invariance is the kernels' business).
// Workers are joined by the destructor. Thread-safety: one parallel_for at a time (the owning model is
// single-threaded by contract).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
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
  /// Chunks per participating thread.
  static constexpr std::size_t kChunksPerThread = 4;

  /// `threads` >= 1 counts the calling thread; threads - 1 workers are started.
  explicit ThreadPool(std::size_t threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  [[nodiscard]] std::size_t size() const noexcept { return workers_.size() + 1; }

  /// Calls fn(begin, end) -- or fn(begin, end, thread) -- on disjoint chunks covering [0, n): min(n, parts *
  /// kChunksPerThread) chunks with parts = min(size(), max_parts) (max_parts 0 = size(); parts 1 = the caller
  /// alone, one call fn(0, n)). `thread` < size() identifies the running thread (0 = the caller), for per-thread
  /// scratch buffers.
  template <class F>
  void parallel_for(std::size_t n, F&& fn, std::size_t max_parts = 0) {
    using Fn = std::remove_reference_t<F>;
    run(n, max_parts, const_cast<void*>(static_cast<const void*>(&fn)),
        [](void* ctx, std::size_t b, std::size_t e, std::size_t thread) {
          if constexpr (std::is_invocable_v<Fn&, std::size_t, std::size_t, std::size_t>)
            (*static_cast<Fn*>(ctx))(b, e, thread);
          else
            (*static_cast<Fn*>(ctx))(b, e);
        });
  }

  /// Chunk i of n split into `chunks` (sizes differ by at most one).
  static std::pair<std::size_t, std::size_t> range_of(std::size_t n, std::size_t chunks, std::size_t i) noexcept {
    return {n * i / chunks, n * (i + 1) / chunks};
  }

 private:
  using Call = void (*)(void*, std::size_t, std::size_t, std::size_t);
  /// One call's job. Two slots alternate by generation; a worker trusts what it read from a slot only once it has
  /// claimed a chunk of that generation (claim_ holds generation << 32 | next chunk), so a stale worker never runs
  /// a chunk of the wrong job.
  struct Job {
    std::atomic<void*> ctx{nullptr};
    std::atomic<Call> call{nullptr};
    std::atomic<std::size_t> n{0}, chunks{0};
  };
  void run(std::size_t n, std::size_t max_parts, void* ctx, Call call);
  /// Claims and runs chunks of generation `gen` until none is left; returns how many it ran.
  std::size_t work(std::uint32_t gen, std::size_t thread) noexcept;
  void worker_loop(std::size_t index);

  std::vector<std::thread> workers_;
  Job jobs_[2];
  std::atomic<std::uint64_t> claim_{0};
  std::atomic<std::uint32_t> generation_{0};
  std::atomic<std::size_t> done_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;  // guards sleepers_, error_ and the condition variable
  std::condition_variable start_cv_;
  std::size_t sleepers_ = 0;
  std::exception_ptr error_;
};

}  // namespace picospec::llama::detail
