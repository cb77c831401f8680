#pragma once
// Link emulation: a Transport decorator that makes any channel behave like a network link with a round-trip
// time, a bandwidth per direction and optional jitter. Used because the build machines have no netem.
//
// The decorator sits on the edge's end and models the whole link:
//  * uplink   (send): a frame starts transmitting when the previous uplink frame finished (one queue per
//              direction, like a real link), takes size*8/up_bandwidth, then travels rtt/2 (+ jitter) and is
//              handed to the inner transport;
//  * downlink (recv): a frame read from the inner transport is delayed the same way with down_bandwidth.
// Jitter is seeded and never reorders frames (a frame is never delivered before the one sent before it).
// Faults (off by default, seeded, per direction): a frame may be lost, delivered twice, or held back by
// reorder_delay_ms so that frames sent after it overtake it -- what a faulty path does to a protocol that must
// drop stale and duplicate frames and never apply one twice. Each fault is drawn per frame, in send order, from
// `fault_seed`, so a run with the same frame sequence sees the same faults.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "picospec/transport.hpp"

namespace picospec {

/// Link characteristics. Bandwidths are in Mbit/s (10^6 bit/s); 0 means unlimited. All delays are multiplied
/// by `time_scale` (e.g. 0.1 runs a WAN profile ten times faster in tests).
struct LinkProfile {
  std::string name = "none";
  double rtt_ms = 0.0;
  double up_mbit = 0.0;
  double down_mbit = 0.0;
  double jitter_ms = 0.0;      ///< one-way delay is rtt/2 + U(-jitter, +jitter), clamped at 0, never reordering
  double time_scale = 1.0;
  std::uint64_t seed = 0x5eed;  ///< jitter RNG seed
  std::size_t queue_frames = 4096;  ///< frames in flight per direction before send() / the reader block
  double loss = 0.0;               ///< probability in [0, 1] that a frame is lost
  double duplicate = 0.0;          ///< probability in [0, 1] that a frame is delivered twice
  double reorder = 0.0;            ///< probability in [0, 1] that a frame is held back by reorder_delay_ms
  double reorder_delay_ms = 10.0;  ///< extra one-way delay of a reordered frame (scaled by time_scale)
  std::uint64_t fault_seed = 0xfa17;  ///< fault RNG seed (separate from the jitter's)
  /// close() first delivers the uplink frames due within this many (wall-clock) milliseconds, so a last Bye
  /// reaches the cloud; frames due later, and downlink frames not yet read, are dropped and counted.
  double close_linger_ms = 500.0;

  [[nodiscard]] static LinkProfile none();
  [[nodiscard]] static LinkProfile lan();        ///< RTT 1 ms, 1000 / 1000 Mbit/s
  [[nodiscard]] static LinkProfile wan();        ///< RTT 50 ms, 20 up / 100 down
  [[nodiscard]] static LinkProfile paper_wan();  ///< RTT 20 ms, 100 / 100
  [[nodiscard]] static LinkProfile cellular();   ///< RTT 80 ms, 5 up / 20 down, 10 ms jitter

  /// A named profile ("none", "lan", "wan", "paper-wan", "cellular") or a custom
  /// "rtt_ms:up_mbit:down_mbit[:jitter_ms]" string (non-negative finite numbers), optionally followed by faults
  /// ",loss=P", ",dup=P", ",reorder=P" (probabilities in [0, 1]), ",reorder_ms=MS", ",seed=N" (the fault seed),
  /// e.g. "wan,loss=0.01,dup=0.02". Throws picospec::Error.
  [[nodiscard]] static LinkProfile parse(std::string_view spec);

  /// Time to put `bytes` on the wire in each direction (0 when unlimited), scaled.
  [[nodiscard]] std::chrono::nanoseconds uplink_tx_time(std::size_t bytes) const noexcept;
  [[nodiscard]] std::chrono::nanoseconds downlink_tx_time(std::size_t bytes) const noexcept;
  /// rtt/2, scaled.
  [[nodiscard]] std::chrono::nanoseconds one_way_delay() const noexcept;
  /// "wan (rtt 50 ms, up 20 Mbit/s, down 100 Mbit/s)".
  [[nodiscard]] std::string describe() const;
  [[nodiscard]] bool has_faults() const noexcept { return loss > 0.0 || duplicate > 0.0 || reorder > 0.0; }
};

/// Faults injected by a LinkTransport so far (both directions). Monotonic.
struct LinkFaultStats {
  std::uint64_t lost = 0, duplicated = 0, reordered = 0;
};

/// Decorates the edge's Transport with a LinkProfile.
///
/// Thread-safety: the Transport contract (send/recv from different threads, close from any thread).
/// Blocking: send() returns once the frame is queued on the emulated link (it blocks only when
/// `queue_frames` frames are in flight); recv() waits for a delivered frame, the timeout or close.
/// Threads: one uplink delivery thread and one downlink reader thread, joined by close() / the destructor.
/// Ownership: owns the inner transport; close() closes it. close() first waits (at most close_linger_ms) for
/// uplink frames due within that time to be handed to the inner transport -- the edge's last Bye is delivered --
/// then drops and counts the rest (uplink frames due later, downlink frames not read). send() fails once close()
/// began. When the inner transport reports `closed`, recv() returns the frames already in flight, then `closed`.
/// A frame the inner transport refuses when the link delivers it (closed, or above its size limit) is dropped and
/// counted: the caller's send() has already returned by then.
class LinkTransport final : public Transport {
 public:
  LinkTransport(std::unique_ptr<Transport> inner, LinkProfile profile);
  ~LinkTransport() override;

  [[nodiscard]] const LinkProfile& profile() const noexcept { return profile_; }
  /// The wrapped transport's counters (what actually crossed the inner channel).
  [[nodiscard]] TransportStats inner_stats() const noexcept { return inner_->stats(); }
  /// Faults injected so far (lost frames are not counted in stats().frames_dropped).
  [[nodiscard]] LinkFaultStats faults() const;
  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] std::string problem() const override { return inner_->problem(); }

 protected:
  bool do_send(Frame frame) override;
  Received do_recv(Millis timeout) override;
  void do_close() override;

 private:
  using Clock = std::chrono::steady_clock;
  struct InFlight {
    Frame frame;
    Clock::time_point deliver_at;
  };
  void uplink_loop();
  void downlink_loop();
  std::chrono::nanoseconds jitter_locked();
  double fault_uniform_locked();  // [0, 1) from the fault RNG
  // Schedules `frame` on one direction (mu_ held): transmission, delay, jitter, faults; inserts it in due order.
  void schedule_locked(std::deque<InFlight>& q, Frame frame, Clock::time_point& free_at, Clock::time_point& last,
                       std::chrono::nanoseconds tx);

  std::unique_ptr<Transport> inner_;
  LinkProfile profile_;

  mutable std::mutex mu_;
  std::condition_variable up_cv_;    // uplink thread: new frame or close
  std::condition_variable up_room_;  // senders: room in the uplink queue
  std::condition_variable down_cv_;  // receivers: new frame, inner closed, or close
  std::condition_variable down_room_;  // downlink reader: room in the downlink queue
  std::condition_variable drained_;    // close(): the uplink handed a frame over
  std::deque<InFlight> up_q_, down_q_;
  Clock::time_point up_free_{}, down_free_{};     // when each direction's transmitter is free
  Clock::time_point up_last_{}, down_last_{};     // last scheduled delivery (no reordering)
  std::uint64_t rng_state_ = 0;
  std::uint64_t fault_state_ = 0;
  LinkFaultStats faults_;
  bool closing_ = false;    // close() began: send() fails, the uplink drains what is due within the linger
  bool up_sending_ = false; // the uplink thread is inside inner_->send()
  bool closed_ = false;
  bool inner_closed_ = false;

  std::mutex join_mu_;
  std::thread up_thread_, down_thread_;
};

}  // namespace picospec
