#pragma once
// Transport: the message-oriented channel between edge and cloud.
//
// Two shapes:
//  * Transport        : one end of a point-to-point channel (the edge's connection to the cloud).
//  * ServerTransport  : the cloud's endpoint, which talks to many peers (one zmq ROUTER, one loopback hub).
// Frames are opaque byte strings; protocol.hpp gives them meaning.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "picospec/types.hpp"

namespace picospec {

using Frame = std::vector<std::uint8_t>;
using Millis = std::chrono::milliseconds;

/// Counters kept by every transport (and the link emulator). Monotonic, safe to read from any thread.
struct TransportStats {
  std::uint64_t frames_sent = 0, bytes_sent = 0;
  std::uint64_t frames_received = 0, bytes_received = 0;
  std::uint64_t frames_dropped = 0;  ///< frames discarded by this end (malformed, unknown peer, queue closed)
};

/// Outcome of a receive: a frame, a timeout, or the channel is closed (no further frames will arrive).
enum class RecvStatus : std::uint8_t { ok, timeout, closed };

struct Received {
  RecvStatus status = RecvStatus::timeout;
  Frame frame;
  [[nodiscard]] bool ok() const noexcept { return status == RecvStatus::ok; }
};

/// Identifies a peer of a ServerTransport (opaque; stable for the life of the connection).
using PeerId = std::uint64_t;

struct PeerReceived {
  RecvStatus status = RecvStatus::timeout;
  PeerId peer = 0;
  Frame frame;
  [[nodiscard]] bool ok() const noexcept { return status == RecvStatus::ok; }
};

namespace detail {
/// Frame/byte counters shared by Transport and ServerTransport (relaxed atomics: monotonic statistics).
class TransportCounters {
 public:
  void sent(std::size_t bytes) noexcept { add(frames_sent_, bytes_sent_, bytes); }
  void received(std::size_t bytes) noexcept { add(frames_received_, bytes_received_, bytes); }
  void dropped(std::uint64_t n = 1) noexcept { frames_dropped_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] TransportStats snapshot() const noexcept {
    TransportStats s;
    s.frames_sent = frames_sent_.load(std::memory_order_relaxed);
    s.bytes_sent = bytes_sent_.load(std::memory_order_relaxed);
    s.frames_received = frames_received_.load(std::memory_order_relaxed);
    s.bytes_received = bytes_received_.load(std::memory_order_relaxed);
    s.frames_dropped = frames_dropped_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  static void add(std::atomic<std::uint64_t>& frames, std::atomic<std::uint64_t>& bytes, std::size_t n) noexcept {
    frames.fetch_add(1, std::memory_order_relaxed);
    bytes.fetch_add(n, std::memory_order_relaxed);
  }
  std::atomic<std::uint64_t> frames_sent_{0}, bytes_sent_{0}, frames_received_{0}, bytes_received_{0},
      frames_dropped_{0};
};
}  // namespace detail

/// Thread-safety contract for every implementation: send() may be called from one thread while recv() is
/// called from another; close() may be called from any thread at any time and wakes a blocked recv(),
/// which then returns `closed`. Two concurrent send() calls (or two recv() calls) are also allowed and are
/// serialized internally.
///
/// Blocking: send() may block while the outgoing queue is full (bounded queues) and returns false once
/// the transport is closed; recv() blocks until a frame arrives, `timeout` passes or the transport closes.
class Transport {
 public:
  virtual ~Transport() = default;
  Transport() = default;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  /// Sends one frame. Returns false if the transport is closed (the frame is dropped).
  [[nodiscard]] bool send(Frame frame) {
    const auto n = frame.size();
    if (!do_send(std::move(frame))) return false;
    counters_.sent(n);
    return true;
  }

  /// Receives one frame, waiting at most `timeout`.
  [[nodiscard]] Received recv(Millis timeout) {
    Received r = do_recv(timeout);
    if (r.ok()) counters_.received(r.frame.size());
    return r;
  }

  /// Closes the channel; idempotent; wakes blocked callers.
  void close() { do_close(); }

  [[nodiscard]] TransportStats stats() const noexcept { return counters_.snapshot(); }

  /// Human-readable description ("loopback", "zmq tcp://127.0.0.1:5555", "link(wan) over ...").
  [[nodiscard]] virtual std::string describe() const = 0;

  /// Why frames do not flow, when the transport can tell ("connection refused ...", "... wrong server public
  /// key?"); empty when it cannot or all is well. For error messages; thread-safe.
  [[nodiscard]] virtual std::string problem() const { return {}; }

 protected:
  virtual bool do_send(Frame frame) = 0;
  virtual Received do_recv(Millis timeout) = 0;
  virtual void do_close() = 0;
  void count_dropped(std::uint64_t n = 1) noexcept { counters_.dropped(n); }

 private:
  detail::TransportCounters counters_;
};

/// The cloud's endpoint: receives frames from many peers and replies to a chosen peer.
/// Same thread-safety and blocking contract as Transport.
class ServerTransport {
 public:
  virtual ~ServerTransport() = default;
  ServerTransport() = default;
  ServerTransport(const ServerTransport&) = delete;
  ServerTransport& operator=(const ServerTransport&) = delete;

  /// Sends one frame to `peer`. Returns false if closed or the peer is unknown/gone (frame dropped).
  [[nodiscard]] bool send(PeerId peer, Frame frame) {
    const auto n = frame.size();
    if (!do_send(peer, std::move(frame))) {
      counters_.dropped();
      return false;
    }
    counters_.sent(n);
    return true;
  }

  [[nodiscard]] PeerReceived recv(Millis timeout) {
    PeerReceived r = do_recv(timeout);
    if (r.ok()) counters_.received(r.frame.size());
    return r;
  }

  void close() { do_close(); }

  /// Peers whose connection ended (closed, killed, heartbeats lost) since the last call; each is reported once
  /// and never sends again (a reconnecting client is a new PeerId). Call it after each recv() to free what those
  /// peers held. Thread-safe; never blocks. Transports that cannot tell return nothing (the default).
  [[nodiscard]] std::vector<PeerId> take_disconnected() { return do_take_disconnected(); }

  [[nodiscard]] TransportStats stats() const noexcept { return counters_.snapshot(); }

  [[nodiscard]] virtual std::string describe() const = 0;

 protected:
  virtual bool do_send(PeerId peer, Frame frame) = 0;
  virtual PeerReceived do_recv(Millis timeout) = 0;
  virtual void do_close() = 0;
  virtual std::vector<PeerId> do_take_disconnected() { return {}; }
  void count_dropped(std::uint64_t n = 1) noexcept { counters_.dropped(n); }

 private:
  detail::TransportCounters counters_;
};

}  // namespace picospec
