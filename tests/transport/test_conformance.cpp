// One conformance suite for every (edge Transport, ServerTransport) implementation:
// loopback, zmq inproc, zmq tcp, zmq ipc, and each of the first three with the edge wrapped in the link emulator.
// The checks are the installed suite (picospec/testing/transport_conformance.hpp); this file only lists setups.
#include <catch2/catch.hpp>

#include <atomic>
#include <functional>
#include <unistd.h>

#include "picospec/link.hpp"
#include "picospec/loopback/loopback.hpp"
#include "picospec/testing/transport_conformance.hpp"
#include "picospec/zmq/zmq_transport.hpp"

using namespace picospec;
using testing::TransportSetup;

namespace {

constexpr std::size_t kLimit = std::size_t{1} << 20;

LinkProfile fast_link() {
  LinkProfile p = LinkProfile::lan();  // 1 ms RTT, 1 Gbit/s: real delays, short test
  p.seed = 99;
  return p;
}

TransportSetup make_setup(const std::string& name) {
  TransportSetup s;
  s.max_frame_bytes = kLimit;  // exactly the protocol's default max frame size
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
    std::shared_ptr<zmq::Context> ctx;
    if (base == "zmq-inproc") {
      ctx = std::make_shared<zmq::Context>(1);
      static std::atomic<int> n{0};
      ep = "inproc://conformance-" + std::to_string(n++);
      s.notices_server_close = false;  // inproc has no ZMTP connection events
    } else if (base == "zmq-tcp") {
      ep = "tcp://127.0.0.1:*";
    } else if (base == "zmq-ipc") {
      static std::atomic<int> n{0};
      ep = "ipc:///tmp/picospec-conformance-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
    }
    s.keep_alive = ctx;  // destroyed last
    auto srv = std::make_unique<zmq::ZmqServerTransport>(ep, opt, ctx);
    const std::string resolved = srv->endpoint();
    s.server = std::move(srv);
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

/// Runs `check` once per setup, each in its own section.
void for_each_setup(void (*check)(const testing::TransportSetupFactory&)) {
  for (const auto& name : all_setups()) {
    DYNAMIC_SECTION(name) { check([name] { return make_setup(name); }); }
  }
}

}  // namespace

TEST_CASE("conformance: ordering, many small frames, counters", "[transport][conformance]") {
  for_each_setup(testing::check_transport_ordering);
}

TEST_CASE("conformance: large frames up to the 1 MiB limit", "[transport][conformance]") {
  for_each_setup(testing::check_transport_large_frames);
}

TEST_CASE("conformance: concurrent send and recv from two threads, two senders", "[transport][conformance]") {
  for_each_setup(testing::check_transport_concurrency);
}

TEST_CASE("conformance: close wakes a blocked recv, timeouts are honoured", "[transport][conformance]") {
  for_each_setup(testing::check_transport_close);
}

TEST_CASE("conformance: peer disappearance and unknown peers", "[transport][conformance]") {
  for_each_setup(testing::check_transport_peers);
}
