#pragma once
// BoundedQueue<T>: a bounded, closable multi-producer / multi-consumer FIFO (internal building block).
//
// push() blocks while the queue is full and returns false once it is closed; pop_for() blocks until an item
// arrives, the queue is closed and drained, the timeout passes, or the caller's `stop` predicate (e.g. a cancel
// flag) holds; whoever makes `stop` true calls interrupt() afterwards to wake the waiter. close() wakes every waiter; items already queued can still be popped after close().
// Thread-safety: every method may be called from any thread. Blocking: as stated per method.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>

namespace picospec::detail {

template <class T>
class BoundedQueue {
 public:
  explicit BoundedQueue(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  /// Blocks while full. False (item dropped) if the queue is closed.
  bool push(T item) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    lk.unlock();
    cv_.notify_all();
    return true;
  }

  /// Pops the oldest item; waits at most `timeout` (zero: do not wait). nullopt on timeout, on a closed and
  /// drained queue, or when `stop()` holds and the queue is empty.
  template <class Rep, class Period, class Stop>
  std::optional<T> pop_for(std::chrono::duration<Rep, Period> timeout, Stop&& stop) {
    std::unique_lock lk(mu_);
    if (timeout > std::chrono::duration<Rep, Period>::zero())
      cv_.wait_for(lk, timeout, [&] { return !items_.empty() || closed_ || stop(); });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    lk.unlock();
    cv_.notify_all();
    return item;
  }

  /// Wakes the pop_for() waiters so they re-check their `stop` predicate (call after making it true).
  void interrupt() {
    { std::lock_guard lk(mu_); }  // a waiter between its check and its block holds mu_: it sees the change
    cv_.notify_all();
  }

  /// Closes the queue: push() fails from now on; waiters wake.
  void close() {
    {
      std::lock_guard lk(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }

  [[nodiscard]] bool closed() const {
    std::lock_guard lk(mu_);
    return closed_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> items_;
  std::size_t capacity_;
  bool closed_ = false;
};

}  // namespace picospec::detail
