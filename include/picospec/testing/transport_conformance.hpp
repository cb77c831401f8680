#pragma once
// Transport conformance suite: reusable checks that every (edge Transport, ServerTransport) pair must pass --
// the contract of transport.hpp (order, whole frames, counters, bounded queues read concurrently, two threads,
// close() waking a blocked recv(), timeouts, unknown and vanished peers).
//
// Installed with the library; needs Catch2 v2 (<catch2/catch.hpp>) in the including program, nothing else.
// Usage (inside a Catch2 TEST_CASE): describe how to make a fresh server and its edges, then run the checks:
//
//   picospec::testing::check_transport_conformance([] {
//     picospec::testing::TransportSetup s;
//     auto hub = std::make_unique<picospec::loopback::LoopbackHub>();
//     auto* h = hub.get();
//     s.server = std::move(hub);
//     s.connect = [h] { return std::make_unique<MyDecorator>(h->connect()); };  // your Transport around it
//     return s;
//   });
//
// Each check_transport_* function takes a fresh setup from the factory (one per check), so the five can also be
// run as separate TEST_CASEs (tests/transport/test_conformance.cpp does). Threads started by a check are joined
// before it returns; Catch2 assertions are only made on the calling thread.
// What it would catch: reordered, merged or truncated frames, counters that miss a frame, a recv() that close()
// does not wake, a timeout ignored, a frame to one peer delivered to another, sends to a gone peer that keep
// "succeeding" forever.

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>

#include "picospec/transport.hpp"
#include "picospec/types.hpp"

namespace picospec::testing {

/// One fresh server endpoint and a way to connect edges to it.
struct TransportSetup {
  std::shared_ptr<void> keep_alive;         ///< destroyed last (e.g. a shared ZeroMQ context)
  std::unique_ptr<ServerTransport> server;  ///< the cloud's end
  std::function<std::unique_ptr<Transport>()> connect;  ///< a new edge end connected to `server`
  std::size_t max_frame_bytes = std::size_t{1} << 20;  ///< largest frame the pair must carry (sent 3 times each way)
  bool oversize_throws = true;       ///< send() of a frame above max_frame_bytes throws picospec::Error
  bool notices_server_close = true;  ///< the edge's recv() reports `closed` after the server closes
};
using TransportSetupFactory = std::function<TransportSetup()>;

namespace detail {
inline Frame tagged(std::uint32_t tag, std::size_t size) {
  Frame f(std::max<std::size_t>(size, 4));
  std::memcpy(f.data(), &tag, 4);
  for (std::size_t i = 4; i < f.size(); ++i) f[i] = static_cast<std::uint8_t>(tag * 31 + i);
  return f;
}
inline std::uint32_t tag_of(const Frame& f) {
  std::uint32_t t = 0;
  if (f.size() >= 4) std::memcpy(&t, f.data(), 4);
  return t;
}
/// Edge says hello; returns the PeerId the server sees it as.
inline PeerId handshake(Transport& edge, ServerTransport& server) {
  using namespace std::chrono_literals;
  REQUIRE(edge.send(tagged(0xFFFFFFFF, 8)));
  PeerReceived r = server.recv(5000ms);
  REQUIRE(r.ok());
  REQUIRE(tag_of(r.frame) == 0xFFFFFFFF);
  return r.peer;
}
inline TransportSetup make(const TransportSetupFactory& factory) {
  TransportSetup s = factory();
  REQUIRE(s.server);
  REQUIRE(s.connect);
  REQUIRE(s.max_frame_bytes >= 64);
  return s;
}
}  // namespace detail

/// Ordering, many small frames both ways (queues are bounded: the reader runs concurrently), counters.
inline void check_transport_ordering(const TransportSetupFactory& factory) {
  using namespace std::chrono_literals;
  using detail::tag_of;
  using detail::tagged;
  TransportSetup s = detail::make(factory);
  auto edge = s.connect();
  const PeerId peer = detail::handshake(*edge, *s.server);
  constexpr std::uint32_t n = 1500;
  std::atomic<int> send_failures{0};  // Catch2 assertions are not thread-safe: count in threads, check after
  std::thread sender([&] {
    for (std::uint32_t i = 0; i < n; ++i)
      if (!edge->send(tagged(i, 4 + i % 60))) ++send_failures;
  });
  std::uint64_t bytes = 0;
  for (std::uint32_t i = 0; i < n; ++i) {
    PeerReceived r = s.server->recv(5000ms);
    REQUIRE(r.ok());
    REQUIRE(r.peer == peer);
    REQUIRE(tag_of(r.frame) == i);
    REQUIRE(r.frame.size() == std::max<std::size_t>(4, 4 + i % 60));
    bytes += r.frame.size();
  }
  sender.join();
  std::thread replier([&] {  // queues are bounded: the reader must run concurrently
    for (std::uint32_t i = 0; i < n; ++i)
      if (!s.server->send(peer, tagged(i, 16))) ++send_failures;
  });
  for (std::uint32_t i = 0; i < n; ++i) {
    Received r = edge->recv(5000ms);
    REQUIRE(r.ok());
    REQUIRE(tag_of(r.frame) == i);
  }
  replier.join();
  CHECK(send_failures == 0);
  const TransportStats es = edge->stats();
  CHECK(es.frames_sent == n + 1);
  CHECK(es.bytes_sent == bytes + 8);
  CHECK(es.frames_received == n);
  CHECK(es.bytes_received == 16ull * n);
  CHECK(es.frames_dropped == 0);
  const TransportStats ss = s.server->stats();
  CHECK(ss.frames_received == n + 1);
  CHECK(ss.frames_sent == n);
  CHECK(ss.frames_dropped == 0);
}

/// Frames of exactly max_frame_bytes both ways; one byte more throws (where the transport checks at send()).
inline void check_transport_large_frames(const TransportSetupFactory& factory) {
  using namespace std::chrono_literals;
  using detail::tag_of;
  using detail::tagged;
  TransportSetup s = detail::make(factory);
  auto edge = s.connect();
  const PeerId peer = detail::handshake(*edge, *s.server);
  for (std::uint32_t i = 0; i < 3; ++i) {
    const Frame big = tagged(i, s.max_frame_bytes);  // exactly the limit
    REQUIRE(edge->send(big));
    PeerReceived r = s.server->recv(10000ms);
    REQUIRE(r.ok());
    REQUIRE(r.frame == big);
    REQUIRE(s.server->send(peer, big));
    Received back = edge->recv(10000ms);
    REQUIRE(back.ok());
    REQUIRE(back.frame == big);
  }
  if (s.oversize_throws) CHECK_THROWS_AS((void)edge->send(Frame(s.max_frame_bytes + 1)), picospec::Error);
  // The channel still works afterwards.
  REQUIRE(edge->send(tagged(7, 10)));
  PeerReceived r = s.server->recv(5000ms);
  REQUIRE(r.ok());
  CHECK(tag_of(r.frame) == 7);
}

/// Two edge threads send while a third receives the server's echo: each sender's frames stay in order.
inline void check_transport_concurrency(const TransportSetupFactory& factory) {
  using namespace std::chrono_literals;
  using detail::tag_of;
  using detail::tagged;
  TransportSetup s = detail::make(factory);
  auto edge = s.connect();
  detail::handshake(*edge, *s.server);
  std::atomic<bool> stop{false};
  std::thread echo([&] {  // server echoes every frame back to its sender
    while (!stop.load()) {
      PeerReceived r = s.server->recv(50ms);
      if (r.status == RecvStatus::closed) return;
      if (r.ok()) (void)s.server->send(r.peer, std::move(r.frame));
    }
  });
  constexpr std::uint32_t per_sender = 400;
  std::atomic<int> send_failures{0};
  auto send_range = [&](std::uint32_t base) {
    for (std::uint32_t i = 0; i < per_sender; ++i)
      if (!edge->send(tagged(base + i, 32))) ++send_failures;
  };
  std::thread a(send_range, 0u), b(send_range, 100000u);
  std::uint32_t next_a = 0, next_b = 100000;
  for (std::uint32_t k = 0; k < 2 * per_sender; ++k) {
    Received r = edge->recv(5000ms);
    REQUIRE(r.ok());
    const std::uint32_t t = tag_of(r.frame);
    if (t < 100000) REQUIRE(t == next_a++);  // each sender's frames stay in order
    else REQUIRE(t == next_b++);
  }
  a.join();
  b.join();
  stop = true;
  echo.join();
  CHECK(send_failures == 0);
  CHECK(next_a == per_sender);
  CHECK(next_b == 100000 + per_sender);
}

/// Timeouts are honoured; close() from another thread wakes blocked recv() calls; after close sends fail.
inline void check_transport_close(const TransportSetupFactory& factory) {
  using namespace std::chrono_literals;
  using Clock = std::chrono::steady_clock;
  using detail::tagged;
  TransportSetup s = detail::make(factory);
  auto edge = s.connect();
  detail::handshake(*edge, *s.server);
  // Timeout with nothing to read.
  auto t0 = Clock::now();
  Received r = edge->recv(60ms);
  auto dt = Clock::now() - t0;
  CHECK(r.status == RecvStatus::timeout);
  CHECK(dt >= 55ms);
  CHECK(dt < 1000ms);
  t0 = Clock::now();
  CHECK(edge->recv(0ms).status == RecvStatus::timeout);
  CHECK(Clock::now() - t0 < 500ms);
  CHECK(s.server->recv(30ms).status == RecvStatus::timeout);
  // Close from another thread while recv() is blocked.
  std::atomic<int> edge_status{-1}, server_status{-1};
  std::thread te([&] { edge_status = static_cast<int>(edge->recv(20000ms).status); });
  std::thread ts([&] { server_status = static_cast<int>(s.server->recv(20000ms).status); });
  std::this_thread::sleep_for(50ms);
  t0 = Clock::now();
  edge->close();
  s.server->close();
  te.join();
  ts.join();
  CHECK(Clock::now() - t0 < 2000ms);
  CHECK(edge_status == static_cast<int>(RecvStatus::closed));
  CHECK(server_status == static_cast<int>(RecvStatus::closed));
  // After close: sends fail and are counted, recv says closed, close is idempotent.
  CHECK_FALSE(edge->send(tagged(1, 8)));
  CHECK(edge->stats().frames_dropped >= 1);
  CHECK(edge->recv(10ms).status == RecvStatus::closed);
  edge->close();
  s.server->close();
}

/// Two edges: replies reach the right one; unknown peers are refused and counted; a vanished edge makes sends
/// to it fail promptly without disturbing the other; a vanished server is reported (notices_server_close).
inline void check_transport_peers(const TransportSetupFactory& factory) {
  using namespace std::chrono_literals;
  using Clock = std::chrono::steady_clock;
  using detail::tag_of;
  using detail::tagged;
  TransportSetup s = detail::make(factory);
  auto keep = s.connect();
  auto gone = s.connect();
  const PeerId pk = detail::handshake(*keep, *s.server);
  const PeerId pg = detail::handshake(*gone, *s.server);
  REQUIRE(pk != pg);
  // Replies reach the right peer.
  REQUIRE(s.server->send(pg, tagged(2, 8)));
  REQUIRE(s.server->send(pk, tagged(1, 8)));
  CHECK(tag_of(keep->recv(5000ms).frame) == 1);
  CHECK(tag_of(gone->recv(5000ms).frame) == 2);
  // Unknown peer: refused and counted.
  const auto dropped0 = s.server->stats().frames_dropped;
  CHECK_FALSE(s.server->send(987654321, tagged(3, 8)));
  CHECK(s.server->stats().frames_dropped == dropped0 + 1);
  // One edge disappears: sends to it start failing (promptly), the other edge is unaffected.
  gone.reset();
  bool failed = false;
  for (auto t0 = Clock::now(); Clock::now() - t0 < 5000ms;) {
    if (!s.server->send(pg, tagged(4, 8))) {
      failed = true;
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  CHECK(failed);
  REQUIRE(s.server->send(pk, tagged(5, 8)));
  Received r = keep->recv(5000ms);
  REQUIRE(r.ok());
  CHECK(tag_of(r.frame) == 5);
  // The server disappears: the edge is told (where the transport can tell).
  s.server->close();
  s.server.reset();
  if (s.notices_server_close) {
    const auto t0 = Clock::now();
    Received c = keep->recv(5000ms);
    CHECK(c.status == RecvStatus::closed);
    CHECK(Clock::now() - t0 < 4000ms);
  }
}

/// All five checks, each on a fresh setup.
inline void check_transport_conformance(const TransportSetupFactory& factory) {
  check_transport_ordering(factory);
  check_transport_large_frames(factory);
  check_transport_concurrency(factory);
  check_transport_close(factory);
  check_transport_peers(factory);
}

}  // namespace picospec::testing
