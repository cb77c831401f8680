// Security and connection diagnostics on the zmq transport: a CURVE client allow-list (ZAP), refusals logged with
// the peer's key, an unlisted edge that never gets a Welcome (so never a verdict), and an edge that tells
// "connection refused", "no answer", "wrong server key", "security mismatch" and "key refused" apart.
// Only 127.0.0.1; every wait bounded.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "picospec/cloud_server.hpp"
#include "picospec/edge_session.hpp"
#include "picospec/synthetic/synthetic.hpp"
#include "picospec/zmq/zmq_transport.hpp"

using namespace picospec;
using namespace std::chrono_literals;
namespace pz = picospec::zmq;
using Clock = std::chrono::steady_clock;

namespace {

struct CurveOrSkip {
  CurveOrSkip() {
    if (!pz::curve_available()) {
      std::fprintf(stderr, "SKIP: libzmq has no CURVE support\n");
      std::exit(77);
    }
  }
} const curve_or_skip;

struct Log {
  std::mutex mu;
  std::vector<std::string> lines;
  std::function<void(const std::string&)> sink() {
    return [this](const std::string& l) {
      std::lock_guard lk(mu);
      lines.push_back(l);
    };
  }
  bool has(const std::string& needle) {
    std::lock_guard lk(mu);
    for (auto& l : lines)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }
};

pz::ZmqOptions server_opts(const pz::CurveKeyPair& keys, std::vector<std::string> allowed, Log* log) {
  pz::ZmqOptions o;
  o.curve.enabled = true;
  o.curve.server_secret_key = keys.secret_key;
  o.curve.allowed_clients = std::move(allowed);
  if (log) o.log = log->sink();
  return o;
}
pz::ZmqOptions client_opts(const std::string& server_public, const pz::CurveKeyPair& mine, bool fail_fast = false) {
  pz::ZmqOptions o;
  o.curve.enabled = true;
  o.curve.server_public_key = server_public;
  o.curve.client_public_key = mine.public_key;
  o.curve.client_secret_key = mine.secret_key;
  o.fail_on_handshake_error = fail_fast;
  return o;
}

/// Polls problem() (driving the socket with short recv()s) until it contains `needle` or `limit` passes.
std::string wait_problem(pz::ZmqClientTransport& t, const std::string& needle, Millis limit = 3000ms) {
  const auto end = Clock::now() + limit;
  std::string p;
  while (Clock::now() < end) {
    (void)t.recv(20ms);
    p = t.problem();
    if (p.find(needle) != std::string::npos) break;
  }
  return p;
}

}  // namespace

TEST_CASE("curve allow-list: listed clients talk, unlisted ones never deliver a frame and are logged",
          "[zmq][curve][security]") {
  const auto server_keys = pz::generate_curve_keypair();
  const auto listed = pz::generate_curve_keypair();
  const auto unlisted = pz::generate_curve_keypair();
  Log log;
  pz::ZmqServerTransport server("tcp://127.0.0.1:*", server_opts(server_keys, {listed.public_key}, &log));

  pz::ZmqClientTransport good(server.endpoint(), client_opts(server_keys.public_key, listed));
  REQUIRE(good.send(Frame{1, 2, 3}));
  auto r = server.recv(5000ms);
  REQUIRE(r.ok());
  CHECK(r.frame == Frame{1, 2, 3});
  CHECK(good.problem().empty());

  pz::ZmqClientTransport bad(server.endpoint(), client_opts(server_keys.public_key, unlisted));
  (void)bad.send(Frame{6, 6, 6});
  CHECK(server.recv(1000ms).status == RecvStatus::timeout);  // nothing from the unlisted client
  CHECK(server.refused_clients() >= 1);
  CHECK(log.has(unlisted.public_key));  // the refusal names the key
  CHECK(log.has("127.0.0.1"));
  CHECK_FALSE(log.has(listed.public_key));
  CHECK_THAT(wait_problem(bad, "refused this client's key"), Catch::Contains("refused this client's key"));
  CHECK(bad.recv(10ms).status == RecvStatus::timeout);  // default: keeps retrying, recv() times out

  // fail_on_handshake_error: the refusal ends the transport (recv() -> closed) instead of a timeout later.
  pz::ZmqClientTransport bad_fast(server.endpoint(), client_opts(server_keys.public_key, unlisted, true));
  (void)bad_fast.send(Frame{6});
  const auto t0 = Clock::now();
  RecvStatus st = RecvStatus::timeout;
  while (st == RecvStatus::timeout && Clock::now() - t0 < 5s) st = bad_fast.recv(100ms).status;
  CHECK(st == RecvStatus::closed);
  CHECK_THAT(bad_fast.problem(), Catch::Contains("refused this client's key"));

  // A client without its own key pair gets a generated one: unlisted too.
  pz::ZmqOptions anon;
  anon.curve.enabled = true;
  anon.curve.server_public_key = server_keys.public_key;
  pz::ZmqClientTransport anonymous(server.endpoint(), anon);
  (void)anonymous.send(Frame{5});
  CHECK(server.recv(500ms).status == RecvStatus::timeout);

  // The listed client is unaffected.
  REQUIRE(good.send(Frame{4}));
  r = server.recv(5000ms);
  REQUIRE(r.ok());
  CHECK(r.frame == Frame{4});

  // Two servers on one Context: each its own list (one ZAP handler, one domain per server).
  auto ctx = std::make_shared<pz::Context>(1);
  const auto keys2 = pz::generate_curve_keypair();
  pz::ZmqServerTransport s_a("tcp://127.0.0.1:*", server_opts(server_keys, {listed.public_key}, nullptr), ctx);
  pz::ZmqServerTransport s_b("tcp://127.0.0.1:*", server_opts(keys2, {unlisted.public_key}, nullptr), ctx);
  pz::ZmqServerTransport s_open("tcp://127.0.0.1:*", server_opts(keys2, {}, nullptr), ctx);  // no list: any key
  pz::ZmqClientTransport ca(s_a.endpoint(), client_opts(server_keys.public_key, listed));
  pz::ZmqClientTransport cb(s_b.endpoint(), client_opts(keys2.public_key, unlisted));
  pz::ZmqClientTransport cb_wrong(s_b.endpoint(), client_opts(keys2.public_key, listed));
  pz::ZmqClientTransport copen(s_open.endpoint(), client_opts(keys2.public_key, listed));
  REQUIRE(ca.send(Frame{1}));
  REQUIRE(cb.send(Frame{2}));
  (void)cb_wrong.send(Frame{3});  // fails once the refusal is known (libzmq drops the refused client's pipe)
  REQUIRE(copen.send(Frame{4}));
  CHECK(s_a.recv(5000ms).frame == Frame{1});
  CHECK(s_b.recv(5000ms).frame == Frame{2});
  CHECK(s_b.recv(500ms).status == RecvStatus::timeout);
  CHECK(s_open.recv(5000ms).frame == Frame{4});
  CHECK_THROWS_AS(pz::ZmqServerTransport("tcp://127.0.0.1:*", server_opts(keys2, {"not-a-key"}, nullptr)), Error);
}

TEST_CASE("the edge tells connection refused, no answer, wrong server key and security mismatch apart",
          "[zmq][curve][diagnostics]") {
  std::string free_port_ep;
  {
    pz::ZmqServerTransport gone("tcp://127.0.0.1:*");
    free_port_ep = gone.endpoint();
  }  // closed: nothing listens there now
  pz::ZmqClientTransport refused(free_port_ep);
  CHECK_THAT(wait_problem(refused, "connection refused"), Catch::Contains("connection refused"));

  // A TCP listener that accepts and never speaks ZMTP: "no answer".
  const int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(lfd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(lfd, 4) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  {
    pz::ZmqClientTransport mute("tcp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)));
    CHECK_THAT(wait_problem(mute, "no answer"), Catch::Contains("no answer to the handshake"));
  }
  ::close(lfd);

  const auto server_keys = pz::generate_curve_keypair();
  const auto mine = pz::generate_curve_keypair();
  pz::ZmqServerTransport curve_server("tcp://127.0.0.1:*", server_opts(server_keys, {}, nullptr));
  pz::ZmqClientTransport wrong_key(curve_server.endpoint(),
                                   client_opts(pz::generate_curve_keypair().public_key, mine, true));
  CHECK_THAT(wait_problem(wrong_key, "wrong server public key"), Catch::Contains("wrong server public key"));
  CHECK(wrong_key.recv(2000ms).status == RecvStatus::closed);  // fail_on_handshake_error

  pz::ZmqClientTransport plain(curve_server.endpoint());
  CHECK_THAT(wait_problem(plain, "security mismatch"), Catch::Contains("the server requires CURVE"));
  pz::ZmqServerTransport plain_server("tcp://127.0.0.1:*");
  pz::ZmqClientTransport curve_client(plain_server.endpoint(), client_opts(server_keys.public_key, mine));
  CHECK_THAT(wait_problem(curve_client, "security mismatch"), Catch::Contains("the server does not use CURVE"));

  pz::ZmqClientTransport fine(curve_server.endpoint(), client_opts(server_keys.public_key, mine));
  REQUIRE(fine.send(Frame{1}));
  REQUIRE(curve_server.recv(5000ms).ok());
  CHECK(fine.problem().empty());
}

// ---------------------------------------------------------------------------------------------------------
namespace {
synthetic::PairParams tiny_pair() {
  synthetic::PairParams p;
  p.profile = synthetic::profile("tiny");
  p.profile.vocab_size = 128;
  p.alpha = 0.7;
  p.time_scale = 0.0;
  p.world_seed = 5;
  return p;
}
}  // namespace

TEST_CASE("cloud: an unlisted CURVE edge gets no Welcome and no verdict; a listed one is served",
          "[zmq][curve][security][cloud]") {
  const auto pair = tiny_pair();
  const auto server_keys = pz::generate_curve_keypair();
  const auto listed = pz::generate_curve_keypair();
  const auto unlisted = pz::generate_curve_keypair();
  Log log;
  auto st = std::make_unique<pz::ZmqServerTransport>("tcp://127.0.0.1:*",
                                                      server_opts(server_keys, {listed.public_key}, &log));
  auto* server_t = st.get();
  const std::string endpoint = st->endpoint();
  CloudServer cloud([pair] { return synthetic::make_verifier(pair); }, std::move(st));
  cloud.start();
  const std::vector<Token> prompt{3, 14, 15, 92, 65};
  GenerateParams gp;
  gp.max_tokens = 12;
  EdgeOptions eo;
  eo.response_timeout = 1500ms;
  {
    EdgeSession edge(synthetic::make_drafter(pair),
                     std::make_unique<pz::ZmqClientTransport>(endpoint, client_opts(server_keys.public_key, unlisted)),
                     eo);
    // "no Welcome (...)" when the Hello left before the refusal, "transport closed (...)" when it came after.
    CHECK_THROWS_WITH(edge.generate(prompt, gp), Catch::Contains("refused this client's key"));
  }
  CHECK(cloud.stats().frames_in == 0);  // not one frame of the unlisted edge reached the cloud
  CHECK(cloud.stats().sessions_opened == 0);
  CHECK(cloud.stats().drafts_tested == 0);
  CHECK(server_t->refused_clients() >= 1);
  CHECK(log.has(unlisted.public_key));
  {
    EdgeSession edge(synthetic::make_drafter(pair),
                     std::make_unique<pz::ZmqClientTransport>(endpoint, client_opts(server_keys.public_key, listed)),
                     eo);
    CHECK(edge.generate(prompt, gp).tokens.size() == 12);
  }
  CHECK(cloud.stats().sessions_opened == 1);
  // Nothing listening: the edge says so instead of a bare "no Welcome".
  std::string dead_ep;
  {
    pz::ZmqServerTransport gone("tcp://127.0.0.1:*");
    dead_ep = gone.endpoint();
  }
  EdgeOptions quick;
  quick.response_timeout = 800ms;
  EdgeSession edge(synthetic::make_drafter(pair), std::make_unique<pz::ZmqClientTransport>(dead_ep), quick);
  CHECK_THROWS_WITH(edge.generate(prompt, gp), Catch::Contains("connection refused"));
  cloud.stop();
}
