// One conformance suite for every (edge Transport, ServerTransport) implementation:
// loopback, zmq inproc, zmq tcp, zmq ipc, and each of the first three with the edge wrapped in the link emulator.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <thread>
#include <unistd.h>

#include "picospec/link.hpp"
#include "picospec/loopback/loopback.hpp"
#include "picospec/zmq/zmq_transport.hpp"

using namespace picospec;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct Setup {
  std::shared_ptr<zmq::Context> ctx;  // destroyed last
  std::unique_ptr<ServerTransport> server;
  std::function<std::unique_ptr<Transport>()> connect;
  bool oversize_throws = true;       // send() of a frame above the transport limit throws picospec::Error
  bool notices_server_close = true;  // the edge's recv() reports `closed` after the server closes
};

constexpr std::size_t kLimit = std::size_t{1} << 20;

LinkProfile fast_link() {
  LinkProfile p = LinkProfile::lan();  // 1 ms RTT, 1 Gbit/s: real delays, short test
  p.seed = 99;
  return p;
}

Setup make_setup(const std::string& name) {
  Setup s;
  const bool link = name.rfind("link+", 0) == 0;
  const std::string base = link ? name.substr(5) : name;
  if (base == "loopback") {
    auto hub = std::make_unique<loopback::LoopbackHub>(loopback::LoopbackParams{256, kLimit});
    auto* h = hub.get();
    s.server = std::move(hub);
    s.connect = [h] { return h->connect(); };
  } else {
    zmq::ZmqOptions opt;
    opt.heartbeat_ivl_ms = 200;
    opt.heartbeat_timeout_ms = 1000;
    std::string ep;
    if (base == "zmq-inproc") {
      s.ctx = std::make_shared<zmq::Context>(1);
      static std::atomic<int> n{0};
      ep = "inproc://conformance-" + std::to_string(n++);
      s.notices_server_close = false;  // inproc has no ZMTP connection events
    } else if (base == "zmq-tcp") {
      ep = "tcp://127.0.0.1:*";
    } else if (base == "zmq-ipc") {
      static std::atomic<int> n{0};
      ep = "ipc:///tmp/picospec-conformance-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
    }
    auto srv = std::make_unique<zmq::ZmqServerTransport>(ep, opt, s.ctx);
    const std::string resolved = srv->endpoint();
    s.server = std::move(srv);
    auto ctx = s.ctx;
    s.connect = [resolved, opt, ctx] { return std::make_unique<zmq::ZmqClientTransport>(resolved, opt, ctx); };
  }
  if (link) {
    auto inner = s.connect;
    s.connect = [inner] { return std::make_unique<LinkTransport>(inner(), fast_link()); };
    s.oversize_throws = false;  // the frame is handed to the inner transport later, on the link's thread
  }
  return s;
}

const std::vector<std::string>& all_setups() {
  static const std::vector<std::string> v = {"loopback",      "zmq-inproc",      "zmq-tcp",     "zmq-ipc",
                                             "link+loopback", "link+zmq-inproc", "link+zmq-tcp"};
  return v;
}

Frame tagged(std::uint32_t tag, std::size_t size) {
  Frame f(std::max<std::size_t>(size, 4));
  std::memcpy(f.data(), &tag, 4);
  for (std::size_t i = 4; i < f.size(); ++i) f[i] = static_cast<std::uint8_t>(tag * 31 + i);
  return f;
}
std::uint32_t tag_of(const Frame& f) {
  std::uint32_t t = 0;
  if (f.size() >= 4) std::memcpy(&t, f.data(), 4);
  return t;
}

/// Edge says hello; returns the PeerId the server sees it as.
PeerId handshake(Transport& edge, ServerTransport& server) {
  REQUIRE(edge.send(tagged(0xFFFFFFFF, 8)));
  PeerReceived r = server.recv(5000ms);
  REQUIRE(r.ok());
  REQUIRE(tag_of(r.frame) == 0xFFFFFFFF);
  return r.peer;
}

}  // namespace

TEST_CASE("conformance: ordering, many small frames, counters", "[transport][conformance]") {
  for (const auto& name : all_setups()) {
    DYNAMIC_SECTION(name) {
      Setup s = make_setup(name);
      auto edge = s.connect();
      const PeerId peer = handshake(*edge, *s.server);
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
  }
}

TEST_CASE("conformance: large frames up to the 1 MiB limit", "[transport][conformance]") {
  for (const auto& name : all_setups()) {
    DYNAMIC_SECTION(name) {
      Setup s = make_setup(name);
      auto edge = s.connect();
      const PeerId peer = handshake(*edge, *s.server);
      for (std::uint32_t i = 0; i < 3; ++i) {
        const Frame big = tagged(i, kLimit);  // exactly the protocol's default max frame size
        REQUIRE(edge->send(big));
        PeerReceived r = s.server->recv(10000ms);
        REQUIRE(r.ok());
        REQUIRE(r.frame == big);
        REQUIRE(s.server->send(peer, big));
        Received back = edge->recv(10000ms);
        REQUIRE(back.ok());
        REQUIRE(back.frame == big);
      }
      if (s.oversize_throws) CHECK_THROWS_AS((void)edge->send(Frame(kLimit + 1)), picospec::Error);
      // The channel still works afterwards.
      REQUIRE(edge->send(tagged(7, 10)));
      PeerReceived r = s.server->recv(5000ms);
      REQUIRE(r.ok());
      CHECK(tag_of(r.frame) == 7);
    }
  }
}

TEST_CASE("conformance: concurrent send and recv from two threads, two senders", "[transport][conformance]") {
  for (const auto& name : all_setups()) {
    DYNAMIC_SECTION(name) {
      Setup s = make_setup(name);
      auto edge = s.connect();
      handshake(*edge, *s.server);
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
  }
}

TEST_CASE("conformance: close wakes a blocked recv, timeouts are honoured", "[transport][conformance]") {
  for (const auto& name : all_setups()) {
    DYNAMIC_SECTION(name) {
      Setup s = make_setup(name);
      auto edge = s.connect();
      handshake(*edge, *s.server);
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
  }
}

TEST_CASE("conformance: peer disappearance and unknown peers", "[transport][conformance]") {
  for (const auto& name : all_setups()) {
    DYNAMIC_SECTION(name) {
      Setup s = make_setup(name);
      auto keep = s.connect();
      auto gone = s.connect();
      const PeerId pk = handshake(*keep, *s.server);
      const PeerId pg = handshake(*gone, *s.server);
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
  }
}
