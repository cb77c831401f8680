// Peer lifetime on the cloud's endpoint: binds that are exact, large frames handed over without copies, peers
// reported once when their connection ends, and a CloudServer that frees a departed peer's sessions at once
// (squatters that open many sessions and disconnect, an edge process killed with SIGKILL).
// Only 127.0.0.1; every wait is bounded in time.
#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <numeric>
#include <sstream>
#include <thread>

#include "picospec/cloud_server.hpp"
#include "picospec/edge_session.hpp"
#include "picospec/loopback/loopback.hpp"
#include "picospec/protocol.hpp"
#include "picospec/synthetic/synthetic.hpp"
#include "picospec/zmq/zmq_transport.hpp"

extern char** environ;

using namespace picospec;
using namespace std::chrono_literals;
namespace pz = picospec::zmq;
using Clock = std::chrono::steady_clock;

namespace {

/// Polls take_disconnected() (with short recv()s, which also drive the socket) until `n` peers are reported or
/// `limit` passes. Frames received meanwhile are counted in `frames`.
std::vector<PeerId> collect_departed(ServerTransport& s, std::size_t n, Millis limit, std::size_t* frames = nullptr) {
  std::vector<PeerId> out;
  const auto end = Clock::now() + limit;
  while (out.size() < n && Clock::now() < end) {
    auto r = s.recv(20ms);
    if (r.ok() && frames) ++*frames;
    for (PeerId p : s.take_disconnected()) out.push_back(p);
  }
  return out;
}

Frame pattern(std::size_t n, std::uint32_t seed) {
  Frame f(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : f) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::uint8_t>(x >> 24);
  }
  return f;
}

}  // namespace

TEST_CASE("zmq bind: exactly the port asked for, or an error", "[zmq][bind]") {
  CHECK_THROWS_WITH(pz::ZmqServerTransport("tcp://127.0.0.1:99999"), Catch::Contains("out of range"));
  CHECK_THROWS_WITH(pz::ZmqServerTransport("tcp://127.0.0.1:65536"), Catch::Contains("out of range"));
  CHECK_THROWS_WITH(pz::ZmqServerTransport("tcp://127.0.0.1:12ab"), Catch::Contains("not a number"));
  CHECK_THROWS_WITH(pz::ZmqServerTransport("tcp://127.0.0.1:"), Catch::Contains("cannot bind"));
  pz::ZmqServerTransport eph("tcp://127.0.0.1:*");
  const std::string ep = eph.endpoint();
  REQUIRE(ep.rfind("tcp://127.0.0.1:", 0) == 0);
  const std::string port = ep.substr(ep.rfind(':') + 1);
  // The same port again is taken: an error, never some other port.
  CHECK_THROWS_WITH(pz::ZmqServerTransport("tcp://127.0.0.1:" + port), Catch::Contains("cannot bind"));
  eph.close();
  // A free, named port binds to exactly that port (retry briefly: the port was just released).
  std::unique_ptr<pz::ZmqServerTransport> named;
  for (int i = 0; i < 50 && !named; ++i) {
    try {
      named = std::make_unique<pz::ZmqServerTransport>("tcp://127.0.0.1:" + port);
    } catch (const Error&) {
      std::this_thread::sleep_for(20ms);
    }
  }
  REQUIRE(named);
  CHECK(named->endpoint() == "tcp://127.0.0.1:" + port);
}

TEST_CASE("zmq: frames around and far above the zero-copy threshold arrive intact", "[zmq][zerocopy]") {
  pz::ZmqOptions o;
  o.max_message_bytes = std::size_t{4} << 20;
  pz::ZmqServerTransport server("tcp://127.0.0.1:*", o);
  pz::ZmqClientTransport edge(server.endpoint(), o);
  const std::size_t sizes[] = {1, 33, 34, 4095, 4096, 4097, 65536, 512 * 1024, (std::size_t{4} << 20)};
  std::uint32_t seed = 1;
  for (std::size_t n : sizes) {
    INFO("size " << n);
    const Frame up = pattern(n, seed++);
    Frame copy = up;
    REQUIRE(edge.send(std::move(copy)));
    auto r = server.recv(5000ms);
    REQUIRE(r.ok());
    REQUIRE(r.frame == up);
    const Frame down = pattern(n, seed++);
    REQUIRE(server.send(r.peer, down));
    auto back = edge.recv(5000ms);
    REQUIRE(back.ok());
    REQUIRE(back.frame == down);
  }
  // Many in flight at once (the free function runs on libzmq's I/O thread while we keep sending).
  std::vector<Frame> sent;
  for (std::uint32_t i = 0; i < 32; ++i) {
    sent.push_back(pattern(100000 + i * 977, 100 + i));
    REQUIRE(edge.send(sent.back()));
  }
  for (std::uint32_t i = 0; i < 32; ++i) {
    auto r = server.recv(5000ms);
    REQUIRE(r.ok());
    REQUIRE(r.frame == sent[i]);
  }
}

TEST_CASE("zmq: peers that disconnect are reported once and the routing table shrinks", "[zmq][peers]") {
  pz::ZmqServerTransport server("tcp://127.0.0.1:*");
  constexpr int kPeers = 12;
  std::vector<std::unique_ptr<pz::ZmqClientTransport>> clients;
  std::vector<PeerId> seen(kPeers, 0);  // client i sends {i}: its PeerId
  for (int i = 0; i < kPeers; ++i) {
    clients.push_back(std::make_unique<pz::ZmqClientTransport>(server.endpoint()));
    REQUIRE(clients.back()->send(Frame{static_cast<std::uint8_t>(i)}));
  }
  int n_seen = 0;
  const auto end = Clock::now() + 5s;
  while (n_seen < kPeers && Clock::now() < end) {
    auto r = server.recv(100ms);
    if (r.ok() && r.frame.size() == 1 && r.frame[0] < kPeers && seen[r.frame[0]] == 0) {
      seen[r.frame[0]] = r.peer;
      ++n_seen;
    }
  }
  REQUIRE(n_seen == kPeers);
  CHECK(server.peer_count() == kPeers);
  CHECK(server.take_disconnected().empty());
  // Half close; one of the others sends a last frame just before closing.
  for (int i = 0; i < kPeers / 2; ++i) clients[static_cast<std::size_t>(i)]->close();
  auto gone = collect_departed(server, kPeers / 2, 3000ms);
  std::sort(gone.begin(), gone.end());
  std::vector<PeerId> expect(seen.begin(), seen.begin() + kPeers / 2);
  std::sort(expect.begin(), expect.end());
  CHECK(gone == expect);
  CHECK(server.peer_count() == kPeers - kPeers / 2);
  // Sends to a departed peer fail; the others still work.
  CHECK_FALSE(server.send(expect.front(), Frame{9}));
  REQUIRE(server.send(seen.back(), Frame{7}));
  auto r = clients.back()->recv(3000ms);
  REQUIRE(r.ok());
  CHECK(r.frame == Frame{7});
  // A client that reconnects is a new peer (sessions are bound to the connection).
  for (auto& c : clients) c->close();
  gone = collect_departed(server, kPeers - kPeers / 2, 3000ms);
  CHECK(gone.size() == kPeers - kPeers / 2);
  CHECK(server.peer_count() == 0);
  pz::ZmqClientTransport again(server.endpoint());
  REQUIRE(again.send(Frame{4}));
  auto r2 = server.recv(3000ms);
  REQUIRE(r2.ok());
  CHECK(std::find(seen.begin(), seen.end(), r2.peer) == seen.end());
  CHECK(server.take_disconnected().empty());  // each departure is reported once
}

TEST_CASE("loopback hub: a closed peer is reported after its last frame was received", "[loopback][peers]") {
  loopback::LoopbackHub hub;
  auto a = hub.connect();
  auto b = hub.connect();
  REQUIRE(a->send(Frame{1}));
  REQUIRE(a->send(Frame{2}));  // e.g. a Bye
  a->close();
  CHECK(hub.take_disconnected().empty());  // two frames still queued: data comes before the departure
  auto r1 = hub.recv(1000ms);
  REQUIRE(r1.ok());
  const PeerId pa = r1.peer;
  CHECK(hub.take_disconnected().empty());
  auto r2 = hub.recv(1000ms);
  REQUIRE(r2.ok());
  CHECK(r2.frame == Frame{2});
  CHECK(hub.take_disconnected() == std::vector<PeerId>{pa});
  CHECK(hub.take_disconnected().empty());
  CHECK(hub.peer_count() == 1);
  b->close();
  CHECK(hub.take_disconnected().size() == 1);
}

// ---------------------------------------------------------------------------------------------------------
namespace {

synthetic::PairParams tiny_pair() {
  synthetic::PairParams p;
  p.profile = synthetic::profile("tiny");
  p.profile.vocab_size = 128;
  p.alpha = 0.7;
  p.time_scale = 0.0;
  p.world_seed = 11;
  return p;
}

Frame hello_frame(const synthetic::PairParams& pair, std::uint32_t seq) {
  wire::Hello h;
  h.draft = wire::fingerprint(synthetic::make_drafter(pair)->info());
  h.rejection = RejectionMode::greedy;
  h.pipeline = wire::PipelineMode::picospec;
  h.gamma = 4;
  h.max_new_tokens = 16;
  wire::Header hd;
  hd.seq = seq;
  return wire::encode(hd, h);
}

struct Replies {
  int welcomes = 0, busy = 0, other = 0;
};

/// Sends `n` Hellos on `t` and sorts the `n` answers (bounded wait).
Replies squat(Transport& t, const synthetic::PairParams& pair, int n) {
  for (int i = 0; i < n; ++i) REQUIRE(t.send(hello_frame(pair, static_cast<std::uint32_t>(i + 1))));
  Replies rep;
  const auto end = Clock::now() + 10s;
  while (rep.welcomes + rep.busy + rep.other < n && Clock::now() < end) {
    auto r = t.recv(100ms);
    if (!r.ok()) continue;
    const auto m = wire::try_decode(r.frame);
    if (m.ok() && std::holds_alternative<wire::Welcome>(m.message->body)) ++rep.welcomes;
    else if (m.ok() && std::holds_alternative<wire::ErrorMessage>(m.message->body) &&
             std::get<wire::ErrorMessage>(m.message->body).code == wire::ErrorCode::busy) ++rep.busy;
    else ++rep.other;
  }
  return rep;
}

GenerateResult normal_edge(const std::string& endpoint, const synthetic::PairParams& pair) {
  EdgeOptions eo;
  eo.response_timeout = 5000ms;
  EdgeSession edge(synthetic::make_drafter(pair), std::make_unique<pz::ZmqClientTransport>(endpoint), eo);
  GenerateParams gp;
  gp.max_tokens = 16;
  gp.seed = 3;
  const std::vector<Token> prompt{3, 14, 15, 92, 65};
  return edge.generate(prompt, gp);
}

}  // namespace

TEST_CASE("cloud: squatted sessions are freed when their peers disconnect or die; a normal edge is served",
          "[zmq][cloud][squat]") {
  const auto pair = tiny_pair();
  pz::ZmqOptions zo;  // heartbeat: ping every 1 s, a silent peer is dropped after 3 s
  auto st = std::make_unique<pz::ZmqServerTransport>("tcp://127.0.0.1:*", zo);
  auto* server_t = st.get();
  const std::string endpoint = st->endpoint();
  CloudOptions co;
  co.max_sessions = 16;
  co.max_sessions_per_peer = 8;
  co.session_idle_timeout = 300s;  // the sweep must not be what frees them
  CloudServer cloud([pair] { return synthetic::make_verifier(pair); }, std::move(st), co);
  cloud.start();

  // The reference: an edge on an idle server.
  const auto ref = normal_edge(endpoint, pair);
  REQUIRE(ref.tokens.size() == 16);

  // Squatter 1 (in process): 12 Hellos on one connection; the per-peer limit admits 8.
  pz::ZmqClientTransport squatter(endpoint);
  const auto r1 = squat(squatter, pair, 12);
  CHECK(r1.welcomes == 8);
  CHECK(r1.busy == 4);
  CHECK(r1.other == 0);

  // Squatter 2: another process, 8 Hellos, all admitted; the server is now full.
  const std::string frame_file = "/tmp/picospec-squat-hello-" + std::to_string(::getpid());
  for (int i = 0; i < 8; ++i) {  // distinct Hellos (the same Hello twice is one session: a duplicate)
    const auto f = hello_frame(pair, static_cast<std::uint32_t>(i + 1));
    std::ofstream(frame_file + "." + std::to_string(i), std::ios::binary)
        .write(reinterpret_cast<const char*>(f.data()), static_cast<std::streamsize>(f.size()));
  }
  int out_pipe[2];
  REQUIRE(::pipe(out_pipe) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, out_pipe[0]);
  std::string a0 = PICOSPEC_PEER_HELPER, a1 = endpoint, a2 = frame_file, a3 = "8";
  char* args[] = {a0.data(), a1.data(), a2.data(), a3.data(), nullptr};
  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, a0.c_str(), &fa, nullptr, args, environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  REQUIRE(spawned == 0);
  FILE* child = ::fdopen(out_pipe[0], "r");
  REQUIRE(child != nullptr);
  char line[64] = {};
  const bool got_line = std::fgets(line, sizeof line, child) != nullptr;  // "ready 8" once it holds 8 sessions
  for (int i = 0; i < 8; ++i) ::remove((frame_file + "." + std::to_string(i)).c_str());
  if (!got_line) ::kill(pid, SIGKILL);
  REQUIRE(got_line);
  CHECK(std::string(line) == "ready 8\n");
  CHECK(cloud.stats().sessions_active == 16);

  // Locked out while they squat.
  CHECK_THROWS_WITH(normal_edge(endpoint, pair), Catch::Contains("busy"));

  // Squatter 1 disconnects; squatter 2 is killed (SIGKILL: no Bye, the kernel closes its socket).
  const auto t0 = Clock::now();
  squatter.close();
  REQUIRE(::kill(pid, SIGKILL) == 0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::fclose(child);
  CHECK(WIFSIGNALED(status));

  // A normal edge is served well within the heartbeat timeout (3 s): the sessions were freed on disconnect,
  // not by the 300 s idle sweep. Each attempt is a fresh connection; a refusal while the frees land is retried.
  GenerateResult got;
  bool served = false;
  int attempts = 0;
  std::string last_error;
  while (!served && Clock::now() - t0 < std::chrono::milliseconds(zo.heartbeat_timeout_ms)) {
    ++attempts;
    try {
      got = normal_edge(endpoint, pair);
      served = true;
    } catch (const Error& e) {
      last_error = e.what();
      std::this_thread::sleep_for(50ms);
    }
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  INFO("served after " << ms << " ms, " << attempts << " attempt(s); last refusal: " << last_error << "; freed "
                        << cloud.stats().sessions_disconnected);
  REQUIRE(served);
  std::printf("squat: a normal edge was served %.0f ms after the squatters left (%d attempt(s))\n", ms, attempts);
  CHECK(got.tokens == ref.tokens);  // same seed, same tokens: the squatters changed nothing
  // Both squatters' sessions are freed by their disconnects (well within the heartbeat timeout; sanitizer builds
  // are slow, hence the wait), not by the sweep.
  const auto freed_by = t0 + std::chrono::milliseconds(zo.heartbeat_timeout_ms) + 2s;
  while (cloud.stats().sessions_disconnected < 16 && Clock::now() < freed_by) std::this_thread::sleep_for(10ms);
  CHECK(cloud.stats().sessions_disconnected >= 16);
  // The routing table shrinks back (every client above is gone).
  const auto end = Clock::now() + 3s;
  while (server_t->peer_count() != 0 && Clock::now() < end) std::this_thread::sleep_for(20ms);
  CHECK(server_t->peer_count() == 0);
  // The last edge's session ends when a worker has served its Bye (it may still be verifying a chunk that was in
  // flight when the edge finished): bounded wait, as above.
  const auto closed_by = Clock::now() + 3s;
  while (cloud.stats().sessions_active != 0 && Clock::now() < closed_by) std::this_thread::sleep_for(10ms);
  CHECK(cloud.stats().sessions_active == 0);
  cloud.stop();
}

TEST_CASE("cloud: a peer that leaves while a worker serves its Hello leaves no session counted",
          "[loopback][cloud][peers]") {
  // Wrong implementation caught: the peer's sessions were freed on its disconnect while a worker was still serving
  // the Hello; the worker then counted the session in sessions_active, and nothing ever took it out again.
  const auto pair = tiny_pair();
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool in_factory = false, open_gate = false;
  auto hub_owned = std::make_unique<loopback::LoopbackHub>();
  auto* hub = hub_owned.get();
  CloudServer cloud(
      [&, pair] {
        std::unique_lock lk(gate_mu);
        in_factory = true;
        gate_cv.notify_all();
        gate_cv.wait(lk, [&] { return open_gate; });  // the worker is now inside handle(Hello)
        return synthetic::make_verifier(pair);
      },
      std::move(hub_owned));
  struct Opener {  // opens the gate on every exit path, before ~CloudServer joins the worker
    std::mutex& mu;
    std::condition_variable& cv;
    bool& open;
    void operator()() {
      {
        std::lock_guard lk(mu);
        open = true;
      }
      cv.notify_all();
    }
    ~Opener() { (*this)(); }
  } opener{gate_mu, gate_cv, open_gate};
  cloud.start();

  auto edge = hub->connect();
  REQUIRE(edge->send(hello_frame(pair, 1)));
  {
    std::unique_lock lk(gate_mu);
    REQUIRE(gate_cv.wait_for(lk, 5s, [&] { return in_factory; }));
  }
  edge->close();  // gone while its Hello is being served
  const auto freed_by = Clock::now() + 5s;
  while (cloud.stats().sessions_disconnected < 1 && Clock::now() < freed_by) std::this_thread::sleep_for(5ms);
  REQUIRE(cloud.stats().sessions_disconnected == 1);
  opener();  // the worker finishes the Hello of a session already freed
  const auto served_by = Clock::now() + 5s;
  while (cloud.stats().sessions_opened < 1 && Clock::now() < served_by) std::this_thread::sleep_for(5ms);
  REQUIRE(cloud.stats().sessions_opened == 1);
  std::this_thread::sleep_for(50ms);  // a worker that would still uncount it later has had the time
  CHECK(cloud.stats().sessions_active == 0);
  cloud.stop();
}

// ---------------------------------------------------------------------------------------------------------
namespace {

struct Child {
  pid_t pid = -1;
  FILE* out = nullptr;
};

Child spawn_sh(const std::string& script) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  std::string a0 = "/bin/sh", a1 = "-c", a2 = script;
  char* args[] = {a0.data(), a1.data(), a2.data(), nullptr};
  Child c;
  const int rc = ::posix_spawn(&c.pid, a0.c_str(), &fa, nullptr, args, environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  REQUIRE(rc == 0);
  c.out = ::fdopen(fds[0], "r");
  REQUIRE(c.out != nullptr);
  return c;
}

/// CPU seconds (user + system) used so far by process `pid`.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto p = s.rfind(')');
  if (p == std::string::npos) return -1.0;
  std::istringstream fields(s.substr(p + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {  // fields 14 and 15: utime, stime (clock ticks)
    if (i == 14) utime = std::stoull(f);
    if (i == 15) stime = std::stoull(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace

TEST_CASE("zmq server out of file descriptors: stops accepting with a log line instead of spinning, recovers",
          "[zmq][fd]") {
  Child server = spawn_sh(std::string("ulimit -n 48 && exec ") + PICOSPEC_PEER_HELPER + " --server 25");
  char line[512] = {};
  REQUIRE(std::fgets(line, sizeof line, server.out) != nullptr);
  std::string first(line);
  REQUIRE(first.rfind("endpoint ", 0) == 0);
  const std::string endpoint = first.substr(9, first.size() - 10);
  std::vector<std::string> logs;
  std::mutex logs_mu;
  std::thread reader([&] {  // ends at the child's exit (EOF)
    char l[512];
    while (std::fgets(l, sizeof l, server.out)) {
      std::lock_guard lk(logs_mu);
      if (logs.size() < 1000) logs.emplace_back(l);
    }
  });
  auto logged = [&](const std::string& needle) {
    std::lock_guard lk(logs_mu);
    return std::any_of(logs.begin(), logs.end(), [&](auto& l) { return l.find(needle) != std::string::npos; });
  };

  // 80 clients against a server that has descriptors for about 30.
  auto ctx = std::make_shared<pz::Context>(1);
  std::vector<std::unique_ptr<pz::ZmqClientTransport>> clients;
  for (int i = 0; i < 80; ++i) {
    pz::ZmqOptions o;
    o.closed_on_disconnect = false;
    clients.push_back(std::make_unique<pz::ZmqClientTransport>(endpoint, o, ctx));
    (void)clients.back()->send(Frame{1});
  }
  std::this_thread::sleep_for(1500ms);
  const double c0 = cpu_seconds(server.pid);
  std::this_thread::sleep_for(2000ms);
  const double used = (cpu_seconds(server.pid) - c0) / 2.0;
  std::printf("fd limit: server CPU while out of descriptors %.1f%% of one core\n", used * 100.0);
  CHECK(used >= 0.0);
  CHECK(used < 0.10);  // without the pause, libzmq retries accept() in a loop: 31% of a core measured here
  CHECK(logged("out of file descriptors"));
  int served = 0;
  const auto serve_end = std::chrono::steady_clock::now() + 10s;  // bounded; answers come at once on a quiet machine
  while (served == 0 && std::chrono::steady_clock::now() < serve_end)
    for (auto& c : clients) served += c->recv(10ms).ok();
  CHECK(served > 0);  // those connected are served meanwhile

  // Descriptors freed: new connections are accepted again.
  clients.clear();
  pz::ZmqClientTransport fresh(endpoint);
  REQUIRE(fresh.send(Frame{9}));
  auto r = fresh.recv(30000ms);  // bounded; the server listens again after its backoff
  CHECK(r.ok());
  CHECK(logged("accepting new connections"));

  ::kill(server.pid, SIGKILL);
  int status = 0;
  ::waitpid(server.pid, &status, 0);
  reader.join();
  std::fclose(server.out);
}

TEST_CASE("cloud: memory is bounded by bytes: a session that floods frames is ended (too_large), its bytes freed",
          "[cloud][limits]") {
  // The worker is held by a slow Prefill (synthetic latency) while the same connection sends ten 1 MiB frames:
  // with 4 MiB allowed per session the fifth cannot be queued, so the session ends with an Error and every queued
  // byte is released; counters and the Prometheus text say so.
  auto pair = tiny_pair();
  pair.time_scale = 50.0;  // tiny target: (4 + 1 n) ms x 50 -> a 5-token prefill takes about 450 ms
  loopback::LoopbackParams lp;
  lp.max_frame_bytes = 0;
  auto hub = std::make_unique<loopback::LoopbackHub>(lp);
  auto* h = hub.get();
  CloudOptions co;
  co.workers = 1;
  co.max_queued_bytes_per_session = std::size_t{4} << 20;
  co.max_queued_bytes_total = std::size_t{8} << 20;
  CloudServer cloud([pair] { return synthetic::make_verifier(pair); }, std::move(hub), co);
  cloud.start();
  auto t = h->connect();
  REQUIRE(t->send(hello_frame(pair, 1)));
  std::uint64_t sid = 0;
  for (auto end = Clock::now() + 10s; sid == 0 && Clock::now() < end;) {
    auto r = t->recv(100ms);
    if (!r.ok()) continue;
    const auto m = wire::try_decode(r.frame);
    REQUIRE(m.ok());
    REQUIRE(std::holds_alternative<wire::Welcome>(m.message->body));
    sid = m.message->header.session_id;
  }
  REQUIRE(sid != 0);
  wire::Header hd;
  hd.session_id = sid;
  hd.seq = 2;
  REQUIRE(t->send(wire::encode(hd, wire::Prefill{{3, 14, 15, 92, 65}})));
  for (std::uint32_t i = 0; i < 10; ++i) {
    wire::Draft d;
    d.start_position = 5;
    d.tokens = {1};
    d.q_frames = {std::vector<std::uint8_t>(std::size_t{1} << 20, 0x5a)};
    hd.seq = 3 + i;
    REQUIRE(t->send(wire::encode(hd, d)));
  }
  bool too_large = false;
  for (auto end = Clock::now() + 10s; !too_large && Clock::now() < end;) {
    auto r = t->recv(100ms);
    if (!r.ok()) continue;
    const auto m = wire::try_decode(r.frame);
    if (m.ok() && std::holds_alternative<wire::ErrorMessage>(m.message->body))
      too_large = std::get<wire::ErrorMessage>(m.message->body).code == wire::ErrorCode::too_large;
  }
  CHECK(too_large);
  CloudStats st;
  for (auto end = Clock::now() + 10s; Clock::now() < end; std::this_thread::sleep_for(20ms)) {
    st = cloud.stats();
    if (st.queued_bytes == 0 && st.sessions_active == 0) break;
  }
  CHECK(st.sessions_over_limit == 1);
  CHECK(st.queued_bytes == 0);
  CHECK(st.queued_frames == 0);
  CHECK(st.sessions_active == 0);
  const std::string text = to_prometheus(st);
  CHECK(text.find("# TYPE picospec_cloud_sessions_over_limit_total counter\npicospec_cloud_sessions_over_limit_total 1\n") !=
        std::string::npos);
  CHECK(text.find("picospec_cloud_batch_size_bucket{le=\"+Inf\"} ") != std::string::npos);
  CHECK(to_json(st).find("\"sessions_over_limit_total\":1,") != std::string::npos);
  cloud.stop();
}
