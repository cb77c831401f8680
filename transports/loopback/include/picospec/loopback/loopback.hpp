#pragma once
// In-process transports: bounded queues between threads of one process (tests, single-binary demos).
//
//  * make_pair()    : two connected point-to-point Transport ends.
//  * LoopbackHub    : a ServerTransport for the cloud; connect() hands out edge ends (each a Transport).
//
// Semantics shared with the network transports (see transport.hpp for the thread-safety contract):
//  * frames are delivered whole and in order; each direction holds at most `capacity` frames, send() blocks
//    while it is full;
//  * close() on an end: its own recv() returns `closed` at once; the other side receives the frames already
//    queued, then `closed` (point-to-point) -- or, for the hub, sends to that peer fail and are counted as dropped,
//    and once the hub has received every frame that peer sent, take_disconnected() reports it (once);
//  * destroying an end closes it; ends may outlive the hub and vice versa (shared state).
//  * frames above `max_frame_bytes` make send() throw picospec::Error (a caller bug, not a network event).

#include <cstddef>
#include <memory>
#include <utility>

#include "picospec/transport.hpp"

namespace picospec::loopback {

struct LoopbackParams {
  std::size_t capacity = 1024;                        ///< frames queued per direction (per peer for the hub)
  std::size_t max_frame_bytes = std::size_t{1} << 20;  ///< 0 = unlimited
};

namespace detail {
struct HubState;  // shared between the hub and its edge ends (loopback.cpp)
}

/// Two connected ends. Thread-safe, see the file comment.
[[nodiscard]] std::pair<std::unique_ptr<Transport>, std::unique_ptr<Transport>> make_pair(
    const LoopbackParams& params = {});

/// The cloud's side of an in-process "server". Thread-safe; connect() may be called from any thread.
class LoopbackHub final : public ServerTransport {
 public:
  explicit LoopbackHub(LoopbackParams params = {});
  ~LoopbackHub() override;

  /// A new edge end connected to this hub. Throws picospec::Error after close().
  [[nodiscard]] std::unique_ptr<Transport> connect();
  /// Peers currently connected (not closed).
  [[nodiscard]] std::size_t peer_count() const;

  [[nodiscard]] std::string describe() const override;

 protected:
  bool do_send(PeerId peer, Frame frame) override;
  PeerReceived do_recv(Millis timeout) override;
  void do_close() override;
  std::vector<PeerId> do_take_disconnected() override;

 private:
  std::shared_ptr<detail::HubState> state_;
};

}  // namespace picospec::loopback
