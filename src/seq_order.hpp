#pragma once
// SeqOrder: receive-side order of one session's frames (internal to the runtime; used by EdgeSession's drafting
// thread, in Run::next_event, and CloudServer's I/O thread).
//
// Each sender numbers a session's frames consecutively in the header's seq after the handshake (picospec's edge and
// cloud start at 0; the first frame received sets the origin, so any start works). The transports deliver in
// order, exactly once; a faulty path (the link emulator's loss / dup / reorder, a reconnect) may not. SeqOrder
// releases frames in seq order, each at most once:
//  * a seq already released (a duplicate, or a stale copy) is dropped -- the caller counts it;
//  * a seq ahead of the next expected one is held (at most `max_held` frames) until the gap fills, then released
//    with what follows it; a frame that would exceed `max_held`, or is further ahead than `max_ahead`, is dropped;
//  * a gap that never fills (a lost frame) holds back what follows; the session's own timeout ends it (so does a
//    first frame that was overtaken: it counts as stale).
// Not thread-safe: one receiving thread per session. Hot path: a frame in order is moved straight to `out`.
#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace picospec::detail {

template <class T>
class SeqOrder {
 public:
  enum class Outcome : std::uint8_t { released, held, duplicate, dropped };

  explicit SeqOrder(std::size_t max_held = 64, std::uint32_t max_ahead = 4096)
      : max_held_(max_held), max_ahead_(max_ahead) {}

  /// Offers frame `seq`; appends every frame now deliverable to `out`, in order.
  Outcome offer(std::uint32_t seq, T item, std::vector<T>& out) {
    if (!started_) {
      started_ = true;
      next_ = seq;
    }
    const auto ahead = static_cast<std::int32_t>(seq - next_);  // wrap-around safe distance
    if (ahead < 0) return Outcome::duplicate;
    if (ahead > 0) {
      if (static_cast<std::uint32_t>(ahead) > max_ahead_ || held_.size() >= max_held_) return Outcome::dropped;
      return held_.emplace(seq, std::move(item)).second ? Outcome::held : Outcome::duplicate;
    }
    out.push_back(std::move(item));
    ++next_;
    for (auto it = held_.find(next_); it != held_.end(); it = held_.find(next_)) {
      out.push_back(std::move(it->second));
      held_.erase(it);
      ++next_;
    }
    return Outcome::released;
  }

  [[nodiscard]] std::uint32_t next() const noexcept { return next_; }
  [[nodiscard]] std::size_t held() const noexcept { return held_.size(); }

 private:
  std::size_t max_held_;
  std::uint32_t max_ahead_;
  std::uint32_t next_ = 0;
  bool started_ = false;
  std::map<std::uint32_t, T> held_;
};

}  // namespace picospec::detail
