// In-process transports built on bounded, closable queues.
#include "picospec/loopback/loopback.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace picospec::loopback {

namespace {

using Clock = std::chrono::steady_clock;

Clock::time_point deadline_after(Millis timeout) {
  const auto capped = std::clamp(timeout, Millis(0), Millis(std::int64_t{1} << 40));
  return Clock::now() + capped;
}

void check_size(const Frame& f, const LoopbackParams& p) {
  if (p.max_frame_bytes != 0 && f.size() > p.max_frame_bytes)
    throw Error("loopback: frame of " + std::to_string(f.size()) + " bytes above max_frame_bytes " +
                std::to_string(p.max_frame_bytes));
}

/// FIFO with a capacity. push() blocks while full; close() wakes everyone: pushes fail from then on, pops
/// return what is left and then `closed`.
template <class T>
class BoundedQueue {
 public:
  explicit BoundedQueue(std::size_t capacity) : cap_(std::max<std::size_t>(1, capacity)) {}

  bool push(T v) {
    std::unique_lock lk(mu_);
    not_full_.wait(lk, [&] { return closed_ || q_.size() < cap_; });
    if (closed_) return false;
    q_.push_back(std::move(v));
    not_empty_.notify_one();
    return true;
  }

  RecvStatus pop(T& out, Millis timeout) {
    const auto deadline = deadline_after(timeout);
    std::unique_lock lk(mu_);
    if (!not_empty_.wait_until(lk, deadline, [&] { return closed_ || !q_.empty(); })) return RecvStatus::timeout;
    if (q_.empty()) return RecvStatus::closed;
    out = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return RecvStatus::ok;
  }

  void close() {
    std::lock_guard lk(mu_);
    closed_ = true;
    not_full_.notify_all();
    not_empty_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<T> q_;
  std::size_t cap_;
  bool closed_ = false;
};

using FrameQueue = BoundedQueue<Frame>;

// ---------------------------------------------------------------------------------------------------------
class PairEnd final : public Transport {
 public:
  PairEnd(std::shared_ptr<FrameQueue> in, std::shared_ptr<FrameQueue> out, LoopbackParams p, const char* side)
      : in_(std::move(in)), out_(std::move(out)), params_(p), side_(side) {}
  ~PairEnd() override { close(); }
  std::string describe() const override { return std::string("loopback pair (") + side_ + ")"; }

 protected:
  bool do_send(Frame frame) override {
    check_size(frame, params_);
    if (closed_.load(std::memory_order_acquire) || !out_->push(std::move(frame))) {
      count_dropped();
      return false;
    }
    return true;
  }
  Received do_recv(Millis timeout) override {
    Received r;
    if (closed_.load(std::memory_order_acquire)) return Received{RecvStatus::closed, {}};
    r.status = in_->pop(r.frame, timeout);
    if (closed_.load(std::memory_order_acquire)) return Received{RecvStatus::closed, {}};
    return r;
  }
  void do_close() override {
    closed_.store(true, std::memory_order_release);
    in_->close();   // wakes our blocked recv; the peer's sends now fail
    out_->close();  // the peer drains what we sent, then sees `closed`
  }

 private:
  std::shared_ptr<FrameQueue> in_, out_;
  LoopbackParams params_;
  const char* side_;
  std::atomic<bool> closed_{false};
};

}  // namespace

std::pair<std::unique_ptr<Transport>, std::unique_ptr<Transport>> make_pair(const LoopbackParams& params) {
  auto ab = std::make_shared<FrameQueue>(params.capacity);
  auto ba = std::make_shared<FrameQueue>(params.capacity);
  return {std::make_unique<PairEnd>(ba, ab, params, "a"), std::make_unique<PairEnd>(ab, ba, params, "b")};
}

// ---------------------------------------------------------------------------------------------------------
namespace detail {
struct HubState {
  explicit HubState(LoopbackParams p) : params(p), inbound(p.capacity) {}
  LoopbackParams params;
  BoundedQueue<std::pair<PeerId, Frame>> inbound;
  std::mutex mu;
  std::unordered_map<PeerId, std::shared_ptr<FrameQueue>> peers;
  // Disconnect reports: a closed peer is reported once every frame it sent has been received (data before the
  // "FIN", as on a stream socket), so nothing it sent arrives after the cloud freed what it held.
  std::unordered_map<PeerId, std::size_t> in_hub;  // frames queued in `inbound` per peer (entries > 0 only)
  std::vector<PeerId> closed_peers;                 // closed, not reported yet
  PeerId next_id = 1;
  bool closed = false;
};
}  // namespace detail

namespace {

class HubEnd final : public Transport {
 public:
  HubEnd(std::shared_ptr<detail::HubState> st, PeerId id, std::shared_ptr<FrameQueue> in)
      : st_(std::move(st)), id_(id), in_(std::move(in)) {}
  ~HubEnd() override { close(); }
  std::string describe() const override { return "loopback hub peer " + std::to_string(id_); }

 protected:
  bool do_send(Frame frame) override {
    check_size(frame, st_->params);
    if (closed_.load(std::memory_order_acquire)) {
      count_dropped();
      return false;
    }
    {
      std::lock_guard lk(st_->mu);
      ++st_->in_hub[id_];
    }
    if (!st_->inbound.push({id_, std::move(frame)})) {
      std::lock_guard lk(st_->mu);
      if (--st_->in_hub[id_] == 0) st_->in_hub.erase(id_);
      count_dropped();
      return false;
    }
    return true;
  }
  Received do_recv(Millis timeout) override {
    Received r;
    if (closed_.load(std::memory_order_acquire)) return Received{RecvStatus::closed, {}};
    r.status = in_->pop(r.frame, timeout);
    if (closed_.load(std::memory_order_acquire)) return Received{RecvStatus::closed, {}};
    return r;
  }
  void do_close() override {
    if (closed_.exchange(true, std::memory_order_acq_rel)) return;
    in_->close();
    std::lock_guard lk(st_->mu);
    st_->peers.erase(id_);
    if (!st_->closed) st_->closed_peers.push_back(id_);
  }

 private:
  std::shared_ptr<detail::HubState> st_;
  PeerId id_;
  std::shared_ptr<FrameQueue> in_;
  std::atomic<bool> closed_{false};
};

}  // namespace

LoopbackHub::LoopbackHub(LoopbackParams params) : state_(std::make_shared<detail::HubState>(params)) {}

LoopbackHub::~LoopbackHub() { close(); }

std::unique_ptr<Transport> LoopbackHub::connect() {
  std::lock_guard lk(state_->mu);
  if (state_->closed) throw Error("LoopbackHub::connect: hub is closed");
  const PeerId id = state_->next_id++;
  auto q = std::make_shared<FrameQueue>(state_->params.capacity);
  state_->peers.emplace(id, q);
  return std::make_unique<HubEnd>(state_, id, std::move(q));
}

std::size_t LoopbackHub::peer_count() const {
  std::lock_guard lk(state_->mu);
  return state_->peers.size();
}

std::string LoopbackHub::describe() const { return "loopback hub"; }

bool LoopbackHub::do_send(PeerId peer, Frame frame) {
  check_size(frame, state_->params);
  std::shared_ptr<FrameQueue> q;
  {
    std::lock_guard lk(state_->mu);
    if (state_->closed) return false;
    auto it = state_->peers.find(peer);
    if (it == state_->peers.end()) return false;  // unknown or departed peer (counted by ServerTransport::send)
    q = it->second;
  }
  return q->push(std::move(frame));
}

PeerReceived LoopbackHub::do_recv(Millis timeout) {
  std::pair<PeerId, Frame> item;
  PeerReceived r;
  r.status = state_->inbound.pop(item, timeout);
  {
    std::lock_guard lk(state_->mu);
    if (state_->closed) return PeerReceived{RecvStatus::closed, 0, {}};
  }
  if (r.ok()) {
    r.peer = item.first;
    r.frame = std::move(item.second);
    std::lock_guard lk(state_->mu);
    if (const auto it = state_->in_hub.find(r.peer); it != state_->in_hub.end() && --it->second == 0)
      state_->in_hub.erase(it);
  }
  return r;
}

std::vector<PeerId> LoopbackHub::do_take_disconnected() {
  std::lock_guard lk(state_->mu);
  std::vector<PeerId> out;
  std::erase_if(state_->closed_peers, [&](PeerId p) {
    if (state_->in_hub.count(p) != 0) return false;  // still has frames to deliver
    out.push_back(p);
    return true;
  });
  return out;
}

void LoopbackHub::do_close() {
  std::lock_guard lk(state_->mu);
  if (state_->closed) return;
  state_->closed = true;
  for (auto& [id, q] : state_->peers) q->close();
  state_->peers.clear();
  state_->closed_peers.clear();
  state_->inbound.close();
}

}  // namespace picospec::loopback
