#pragma once
// ZeroMQ transports (cppzmq underneath; this header does not include zmq.hpp).
//
//  * ZmqClientTransport : the edge, a DEALER socket connected to one endpoint.
//  * ZmqServerTransport : the cloud, a ROUTER socket bound to one endpoint; many edges; PeerId <-> routing id.
// Endpoints: tcp://host:port (bind "tcp://127.0.0.1:*" for an ephemeral port, then read endpoint()),
// ipc:///path, inproc://name (inproc needs both ends on the same Context: pass one shared_ptr<Context>).
//
// Thread-safety: the Transport contract (transport.hpp). ZeroMQ sockets are not thread-safe, so one caller at a
// time drives the socket ("leader") while the others wait on a condition variable; a blocked leader sleeps in
// zmq_poll on the socket and an eventfd, so a concurrent send() or close() wakes it at once (no busy-wait).
// Blocking: send() returns once libzmq has taken the frame (blocks while the high-water mark is reached; a client
// whose handshake was refused -- see problem() -- fails the send instead of waiting for a pipe libzmq dropped);
// recv() waits for a frame, the timeout, or close().
// Lifetime: destroy a transport only after every call on it returned; close() wakes blocked callers.
//
// Socket options (ZmqOptions, all set before connect/bind):
//   ZMQ_LINGER          0: close() discards unsent frames instead of hanging the process on exit.
//   ZMQ_SNDHWM/RCVHWM   bounded queues inside libzmq (frames).
//   ZMQ_HEARTBEAT_*     ZMTP pings so a dead peer (crashed, cable pulled) is noticed and its connection dropped.
//   ZMQ_MAXMSGSIZE      inbound frames above max_message_bytes disconnect the sender (libzmq's rule);
//                       send() of a frame above it throws picospec::Error.
//   ZMQ_IMMEDIATE       0 (default): frames sent before the connection completes wait in libzmq's queue and go out
//                       once it does, so an edge can send Hello straight after construction, and send() never
//                       blocks forever on a server that is down or refuses the CURVE handshake (recv() times
//                       out instead). 1: frames only go to completed connections (send() blocks until then).
//   ZMQ_ROUTER_MANDATORY server: a send to an unknown or departed peer fails (returns false, counted as dropped)
//                       instead of being silently discarded.
//   ZMQ_RECONNECT_IVL   client: reconnect interval after a lost connection.
//   CURVE               optional encryption + server authentication (curve_available()).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "picospec/transport.hpp"

namespace picospec::zmq {

/// True when this libzmq supports CURVE (zmq_has("curve")).
[[nodiscard]] bool curve_available();

/// A CURVE key pair, both keys Z85-encoded (40 characters).
struct CurveKeyPair {
  std::string public_key;
  std::string secret_key;
};

/// Generates a fresh key pair. Throws picospec::Error when CURVE is unavailable.
[[nodiscard]] CurveKeyPair generate_curve_keypair();

/// CURVE settings. Server: enabled + server_secret_key, optionally allowed_clients. Client: enabled +
/// server_public_key; the client's own key pair is generated per transport when left empty (then only a server
/// without an allow-list accepts it).
struct CurveOptions {
  bool enabled = false;
  std::string server_public_key;   ///< client side: the server's public key
  std::string server_secret_key;   ///< server side: its secret key
  std::string client_public_key;   ///< client side, optional (needed for a server with allowed_clients)
  std::string client_secret_key;   ///< client side, optional
  /// Server side: the client public keys (Z85) allowed to connect; empty = any client key. Enforced by a ZAP
  /// handler (RFC 27) running on the transport's Context (one thread per Context, started on first use; a Context
  /// can hold only one ZAP handler, so do not run your own on it). An unlisted client's handshake fails: it never
  /// sends a frame, and the refusal is counted (refused_clients()) and logged with its key and address (`log`).
  std::vector<std::string> allowed_clients;
};

struct ZmqOptions {
  int linger_ms = 0;
  int send_hwm = 1000;
  int recv_hwm = 1000;
  int heartbeat_ivl_ms = 1000;      ///< ping interval
  int heartbeat_timeout_ms = 3000;  ///< no traffic for this long after a ping -> connection dropped
  int heartbeat_ttl_ms = 6000;      ///< tells the peer to drop us after this long without pings
  int reconnect_ivl_ms = 100;
  std::size_t max_message_bytes = std::size_t{1} << 20;  ///< matches the protocol's default frame limit
  bool immediate = false;  ///< ZMQ_IMMEDIATE, see the file comment
  /// Client: recv() reports `closed` (after the frames already received) once an established connection to the
  /// server is lost (server closed, or heartbeats timed out). Off: the client keeps reconnecting silently.
  bool closed_on_disconnect = true;
  /// Client: recv() reports `closed` once a handshake fails for a reason retrying cannot fix (the server refused our
  /// CURVE key, a wrong server public key, a security mechanism mismatch); problem() says which. Off: keep retrying.
  bool fail_on_handshake_error = false;
  CurveOptions curve;
  /// Log sink for refusals (ZAP) and connection trouble on the server. Called from libzmq-driving threads (the
  /// caller of send/recv, or the ZAP handler thread); must be thread-safe, quick, and not call this transport.
  std::function<void(const std::string&)> log;
};

namespace detail {
struct SocketCore;  // the leader/follower socket driver (zmq_transport.cpp)
}

/// A shared ZeroMQ context (owns a zmq::context_t). Needed for inproc:// and to share I/O threads.
/// Thread-safe. Destroy only after every transport using it (each transport holds a shared_ptr to it).
class Context {
 public:
  explicit Context(int io_threads = 1);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  /// The underlying zmq::context_t*, as void* (cast back in code that includes zmq.hpp).
  [[nodiscard]] void* native() noexcept;

 private:
  friend struct detail::SocketCore;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The edge: a DEALER connected to `endpoint`. Throws picospec::Error on a bad endpoint or options.
class ZmqClientTransport final : public Transport {
 public:
  explicit ZmqClientTransport(std::string endpoint, ZmqOptions options = {},
                              std::shared_ptr<Context> context = nullptr);
  ~ZmqClientTransport() override;

  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
  [[nodiscard]] std::string describe() const override;
  /// Why no connection is established, from the socket monitor: "connection refused or unreachable: ...",
  /// "... no answer to the handshake", "... wrong server public key?", "security mismatch ...", "... refused this
  /// client's key ...", or "no answer from ... yet"; empty while connected.
  [[nodiscard]] std::string problem() const override;

 protected:
  bool do_send(Frame frame) override;
  Received do_recv(Millis timeout) override;
  void do_close() override;

 private:
  std::string endpoint_;
  std::unique_ptr<detail::SocketCore> core_;
};

/// The cloud: a ROUTER bound to `endpoint`. endpoint() is the resolved address (ZMQ_LAST_ENDPOINT), e.g. the
/// actual port for "tcp://127.0.0.1:*". Frames from peers that are not [routing id, payload] are dropped and
/// counted. Throws picospec::Error when binding fails, and when it would not bind exactly what was asked
/// (a tcp port outside 0..65535, which libzmq would wrap around, or any port other than the one named;
/// "*" and 0 ask for an ephemeral port).
/// Peer lifetime: a socket monitor reports each tcp/ipc connection that ends (closed by the peer, the peer
/// killed, heartbeats lost after heartbeat_timeout_ms); that peer is forgotten at once (routing tables shrink,
/// its frames still queued here are dropped and counted) and returned once by take_disconnected(). A PeerId is
/// never reused: a reconnecting edge is a new peer. inproc:// has no connection events (peers are never reported).
class ZmqServerTransport final : public ServerTransport {
 public:
  explicit ZmqServerTransport(std::string endpoint, ZmqOptions options = {},
                              std::shared_ptr<Context> context = nullptr);
  ~ZmqServerTransport() override;

  [[nodiscard]] std::string endpoint() const;
  /// Peers seen so far and not yet known to be gone.
  [[nodiscard]] std::size_t peer_count() const;
  /// CURVE handshakes refused by the allow-list (CurveOptions::allowed_clients).
  [[nodiscard]] std::uint64_t refused_clients() const;
  [[nodiscard]] std::string describe() const override;

 protected:
  bool do_send(PeerId peer, Frame frame) override;
  PeerReceived do_recv(Millis timeout) override;
  void do_close() override;
  std::vector<PeerId> do_take_disconnected() override;

 private:
  std::string endpoint_;
  std::unique_ptr<detail::SocketCore> core_;
};

}  // namespace picospec::zmq
