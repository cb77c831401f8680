// Control paths: stale epochs, cancel, EOS, max tokens, refused Hello, concurrent sessions, bad frames,
// timeouts, bad parameters.
#include <catch2/catch.hpp>

#include <atomic>
#include <functional>
#include <limits>
#include <thread>

#include "pipeline_fixture.hpp"
#include "picospec/protocol.hpp"
#include "picospec/sparse_codec.hpp"
#include "reference_decoder.hpp"

using namespace picospec;

namespace {
GenerateParams sampled(PipelineMode mode, std::uint64_t seed, std::uint32_t n) {
  GenerateParams gp;
  gp.mode = mode;
  gp.seed = seed;
  gp.max_tokens = n;
  return gp;
}

// A scripted cloud for the edge under test: a loopback hub whose other end is an EdgeSession, and a thread that
// decodes every frame from the edge and hands it to `on_message`, which answers through send()/welcome().
// The thread stops at the edge's Bye, when the hub closes, or when the rig is destroyed.
class FakeCloud {
 public:
  using Handler = std::function<void(FakeCloud&, PeerId, const wire::Message&)>;

  FakeCloud(const synthetic::PairParams& pair, Millis response_timeout, Handler on_message)
      : hub_(unlimited()),
        target(wire::fingerprint(synthetic::make_verifier(pair)->info())),
        edge(synthetic::make_drafter(pair), hub_.connect(), options(response_timeout)),
        thread_([this, h = std::move(on_message)] { serve(h); }) {}
  ~FakeCloud() {
    quit_ = true;
    hub_.close();
    thread_.join();
  }
  FakeCloud(const FakeCloud&) = delete;
  FakeCloud& operator=(const FakeCloud&) = delete;

  void send(PeerId peer, std::uint64_t session, std::uint32_t seq, std::uint32_t epoch, wire::Body body) {
    wire::Header h;
    h.session_id = session;
    h.seq = seq;
    h.epoch = epoch;
    (void)hub_.send(peer, wire::encode(h, std::move(body)));
  }
  /// The Welcome for session 1, echoing the Hello's seq as the protocol requires.
  void welcome(PeerId peer, const wire::Message& hello) {
    send(peer, 1, hello.header.seq, 0, wire::Welcome{target, "fake"});
  }

 private:
  static loopback::LoopbackParams unlimited() {
    loopback::LoopbackParams lp;
    lp.max_frame_bytes = 0;
    return lp;
  }
  static EdgeOptions options(Millis response_timeout) {
    EdgeOptions eo;
    eo.response_timeout = response_timeout;
    return eo;
  }
  void serve(const Handler& on_message) {
    try {
      while (!quit_.load()) {
        const auto r = hub_.recv(Millis(20));
        if (r.status == RecvStatus::closed) return;
        if (!r.ok()) continue;
        const auto msg = wire::decode(r.frame);
        if (std::holds_alternative<wire::Bye>(msg.body)) return;
        on_message(*this, r.peer, msg);
      }
    } catch (...) {  // the assertions are on the edge's side
    }
  }

  loopback::LoopbackHub hub_;

 public:
  const wire::ModelFingerprint target;
  EdgeSession edge;

 private:
  std::atomic<bool> quit_{false};
  std::thread thread_;
};

// Runs `generate` while another thread calls edge.cancel() every 50 ms until it returns (a cancel() that lands
// before generate() has started has no effect, so one shot could be lost on a loaded machine).
template <class F>
auto cancel_repeatedly(EdgeSession& edge, F&& generate) {
  std::atomic<bool> returned{false};
  std::thread canceller([&] {
    while (!returned.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      edge.cancel();
    }
  });
  struct Join {
    std::atomic<bool>& flag;
    std::thread& t;
    ~Join() {
      flag = true;
      t.join();
    }
  } join{returned, canceller};
  return generate();
}
// After a Welcome on `raw`: sends the Prefill of `prompt` (seq 1) and returns the session's header for what follows.
wire::Header prefill(Transport& raw, const wire::Message& welcome, const std::vector<Token>& prompt) {
  REQUIRE(std::holds_alternative<wire::Welcome>(welcome.body));
  wire::Header hs;
  hs.session_id = welcome.header.session_id;
  hs.seq = 1;
  REQUIRE(raw.send(wire::encode(hs, wire::Prefill{prompt})));
  return hs;
}
}  // namespace

TEST_CASE("chunks of an old epoch are dropped by the cloud", "[pipeline][control]") {
  // A fast edge (no draft latency) with depth 3 keeps chunks in flight; every rejection voids them.
  auto pair = test::small_pair(0.5, 128, 1.0);
  pair.profile.draft = synthetic::Latency{0.0, 0.0};
  pair.profile.target = synthetic::Latency{1.0, 0.5};
  test::Cloud cloud(pair);
  auto edge = cloud.edge(pair);
  auto gp = sampled(PipelineMode::picospec, 4, 60);
  gp.depth = 3;
  gp.gamma = 2;
  const auto r = edge->generate(test::test_prompt(), gp);
  test::ReferenceParams rp;
  rp.seed = 4;
  rp.max_tokens = 60;
  REQUIRE(r.tokens == test::reference_generate(pair, test::test_prompt(), rp));
  REQUIRE(r.metrics.rollbacks > 0);
  REQUIRE(r.metrics.wasted_drafts > 0);
  REQUIRE(cloud.server->stats().stale_dropped > 0);
}

TEST_CASE("max_tokens is exact for any gamma", "[pipeline][control]") {
  const auto pair = test::small_pair(0.7);
  test::Cloud cloud(pair);
  auto edge = cloud.edge(pair);
  for (std::uint32_t n : {1u, 2u, 13u}) {
    for (auto mode : {PipelineMode::cloud_ar, PipelineMode::vanilla, PipelineMode::paper, PipelineMode::picospec,
                      PipelineMode::edge_only}) {
      auto gp = sampled(mode, 3, n);
      gp.gamma = 4;
      gp.depth = 2;
      const auto r = edge->generate(test::test_prompt(), gp);
      INFO(to_string(mode) << " n " << n);
      REQUIRE(r.tokens.size() == n);
      REQUIRE(r.finish == FinishReason::max_tokens);
    }
  }
}

TEST_CASE("generation stops after the EOS token in every mode", "[pipeline][control]") {
  auto pair = test::small_pair(0.7);
  // Pick as EOS the 9th token of a reference run that does not occur before it.
  test::ReferenceParams rp;
  rp.seed = 21;
  rp.max_tokens = 40;
  const auto base = test::reference_generate(pair, test::test_prompt(), rp);
  std::size_t k = 8;
  while (std::find(base.begin(), base.begin() + static_cast<std::ptrdiff_t>(k), base[k]) !=
         base.begin() + static_cast<std::ptrdiff_t>(k))
    ++k;
  pair.eos = base[k];
  test::Cloud cloud(pair);
  auto edge = cloud.edge(pair);
  auto gp = sampled(PipelineMode::picospec, 21, 40);
  const auto r = edge->generate(test::test_prompt(), gp);
  REQUIRE(r.finish == FinishReason::eos);
  REQUIRE(r.tokens == std::vector<Token>(base.begin(), base.begin() + static_cast<std::ptrdiff_t>(k + 1)));
  // cloud-ar stops at the target's EOS too (its own sampling keys, so its own sequence).
  gp.mode = PipelineMode::cloud_ar;
  gp.sampling.temperature = 0.0f;
  const auto ref = test::reference_target_alone(pair, test::test_prompt(), gp.sampling, 21, 200);
  const auto it = std::find(ref.begin(), ref.end(), pair.eos);
  const auto ar = edge->generate(test::test_prompt(), gp);
  if (it != ref.end()) {
    REQUIRE(ar.finish == FinishReason::eos);
    REQUIRE(ar.tokens == std::vector<Token>(ref.begin(), it + 1));
  }
  gp.stop_at_eos = false;
  gp.mode = PipelineMode::picospec;
  gp.sampling.temperature = 1.0f;
  REQUIRE(edge->generate(test::test_prompt(), gp).tokens.size() == 40);
}

TEST_CASE("cancel stops a running generation from the callback or another thread", "[pipeline][control]") {
  auto pair = test::small_pair(0.7, 128, 1.0);  // tiny profile: 2 ms draft, 5 ms target per token
  test::Cloud cloud(pair);
  auto edge = cloud.edge(pair);
  for (auto mode : {PipelineMode::cloud_ar, PipelineMode::picospec, PipelineMode::edge_only}) {
    auto gp = sampled(mode, 1, 100000);
    std::size_t seen = 0;
    const auto r = edge->generate(test::test_prompt(), gp, [&](Token) {
      if (++seen == 5) edge->cancel();
    });
    INFO(to_string(mode));
    REQUIRE(r.finish == FinishReason::cancelled);
    REQUIRE(r.tokens.size() >= 5);
    REQUIRE(r.tokens.size() < 100);
  }
  auto gp = sampled(PipelineMode::picospec, 2, 100000);
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    edge->cancel();
  });
  const auto r = edge->generate(test::test_prompt(), gp);
  canceller.join();
  REQUIRE(r.finish == FinishReason::cancelled);
  // The session is usable afterwards, and the cloud freed the cancelled sessions.
  REQUIRE(edge->generate(test::test_prompt(), sampled(PipelineMode::picospec, 2, 10)).tokens.size() == 10);
  for (int i = 0; i < 100 && cloud.server->stats().sessions_active != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(cloud.server->stats().sessions_active == 0);
}

TEST_CASE("an incompatible Hello is refused with a reason", "[pipeline][control]") {
  const auto pair = test::small_pair(0.7, 128);
  test::Cloud cloud(pair);
  SECTION("vocabulary mismatch") {
    const auto other = test::small_pair(0.7, 100);
    auto edge = cloud.edge(other);
    try {
      (void)edge->generate(test::test_prompt(), sampled(PipelineMode::picospec, 1, 5));
      FAIL("no exception");
    } catch (const Error& e) {
      INFO(e.what());
      REQUIRE(std::string(e.what()).find("refused") != std::string::npos);
      REQUIRE(std::string(e.what()).find("vocab") != std::string::npos);
    }
  }
  SECTION("unknown codec") {
    auto edge = cloud.edge(pair);
    auto gp = sampled(PipelineMode::picospec, 1, 5);
    gp.rejection = RejectionMode::sparse_draft;
    gp.sparse_codec = "no_such_codec";
    REQUIRE_THROWS_WITH(edge->generate(test::test_prompt(), gp), Catch::Contains("refused"));
  }
  SECTION("the server stays healthy") {
    auto edge = cloud.edge(pair);
    REQUIRE(edge->generate(test::test_prompt(), sampled(PipelineMode::picospec, 1, 5)).tokens.size() == 5);
  }
  REQUIRE(cloud.server->stats().sessions_refused + cloud.server->stats().sessions_opened > 0);
}

TEST_CASE("one server serves several concurrent sessions exactly", "[pipeline][control]") {
  // Wrong implementation caught: per-session state shared between sessions, frames routed to the wrong peer,
  // two workers serving one session at once (out-of-order verification).
  auto pair = test::small_pair(0.6, 128, 0.5);
  CloudOptions co;
  co.workers = 2;
  test::Cloud cloud(pair, co);
  constexpr int kEdges = 4;
  std::vector<std::vector<Token>> got(kEdges), want(kEdges);
  std::vector<std::string> errors(kEdges);
  std::vector<std::thread> threads;
  for (int i = 0; i < kEdges; ++i) {
    test::ReferenceParams rp;
    rp.seed = 100 + static_cast<std::uint64_t>(i);
    rp.max_tokens = 30;
    rp.rejection = i % 2 ? RejectionMode::candidates : RejectionMode::sparse_draft;
    want[static_cast<std::size_t>(i)] = test::reference_generate(pair, test::test_prompt(), rp);
  }
  for (int i = 0; i < kEdges; ++i) {
    threads.emplace_back([&, i] {
      try {
        auto edge = cloud.edge(pair, i == 3 ? std::optional(LinkProfile::lan()) : std::nullopt);
        auto gp = sampled(PipelineMode::picospec, 100 + static_cast<std::uint64_t>(i), 30);
        gp.rejection = i % 2 ? RejectionMode::candidates : RejectionMode::sparse_draft;
        gp.depth = 1 + static_cast<std::uint32_t>(i % 3);
        got[static_cast<std::size_t>(i)] = edge->generate(test::test_prompt(), gp).tokens;
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(i)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kEdges; ++i) {
    INFO("edge " << i << " error: " << errors[static_cast<std::size_t>(i)]);
    REQUIRE(errors[static_cast<std::size_t>(i)].empty());
    REQUIRE(got[static_cast<std::size_t>(i)] == want[static_cast<std::size_t>(i)]);
  }
  REQUIRE(cloud.server->stats().sessions_opened >= kEdges);
}

TEST_CASE("the cloud answers bad frames with errors and keeps serving", "[pipeline][control][robust]") {
  const auto pair = test::small_pair(0.7, 128);
  test::Cloud cloud(pair);
  auto raw = cloud.hub->connect();
  auto expect_error = [&](Frame f, wire::ErrorCode code) {
    REQUIRE(raw->send(std::move(f)));
    const auto r = raw->recv(Millis(5000));
    REQUIRE(r.ok());
    const auto msg = wire::decode(r.frame);
    const auto* e = std::get_if<wire::ErrorMessage>(&msg.body);
    REQUIRE(e != nullptr);
    REQUIRE(e->code == code);
  };
  expect_error(Frame{1, 2, 3}, wire::ErrorCode::malformed);
  // A Draft for a session that does not exist.
  wire::Header h;
  h.session_id = 0xdeadbeef;
  wire::Draft d;
  d.tokens = {1, 2};
  expect_error(wire::encode(h, d), wire::ErrorCode::unknown_session);
  // Random garbage with a valid-looking header prefix.
  std::uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 200; ++i) {
    Frame f(static_cast<std::size_t>(i % 64));
    for (auto& b : f) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      b = static_cast<std::uint8_t>(x);
    }
    REQUIRE(raw->send(std::move(f)));
  }
  // A Draft before Prefill in a real session -> bad_state.
  REQUIRE(raw->send(wire::encode(wire::Header{}, wire::Hello{wire::kVersion, wire::fingerprint(
                                                                 synthetic::make_draft_lm(pair)->info()),
                                                             SamplingParams{}, RejectionMode::candidates,
                                                             PipelineMode::picospec, "", 10, 8, 1, 4, 10})));
  // Drain error replies to the garbage until the Welcome.
  std::uint64_t sid = 0;
  for (int i = 0; i < 400 && sid == 0; ++i) {
    const auto r = raw->recv(Millis(5000));
    REQUIRE(r.ok());
    const auto msg = wire::decode(r.frame);
    if (std::holds_alternative<wire::Welcome>(msg.body)) sid = msg.header.session_id;
  }
  REQUIRE(sid != 0);
  wire::Header hs;
  hs.session_id = sid;
  expect_error(wire::encode(hs, d), wire::ErrorCode::bad_state);
  // Still serving real sessions.
  auto edge = cloud.edge(pair);
  REQUIRE(edge->generate(test::test_prompt(), sampled(PipelineMode::picospec, 1, 8)).tokens.size() == 8);
}

TEST_CASE("generate fails cleanly on bad parameters, timeouts and closed transports", "[pipeline][control]") {
  const auto pair = test::small_pair(0.7, 128);
  test::Cloud cloud(pair);
  auto edge = cloud.edge(pair);
  auto gp = sampled(PipelineMode::picospec, 1, 5);
  gp.gamma = 0;
  REQUIRE_THROWS_AS(edge->generate(test::test_prompt(), gp), Error);
  gp.gamma = 4;
  gp.max_tokens = 0;
  REQUIRE_THROWS_AS(edge->generate(test::test_prompt(), gp), Error);
  gp.max_tokens = 5;
  REQUIRE_THROWS_AS(edge->generate(std::vector<Token>{}, gp), Error);
  REQUIRE_THROWS_AS(edge->generate(std::vector<Token>{1, 1000}, gp), Error);
  gp.mode = PipelineMode::vanilla;
  gp.rejection = RejectionMode::candidates;
  REQUIRE_THROWS_AS(edge->generate(test::test_prompt(), gp), Error);
  // Still usable.
  REQUIRE(edge->generate(test::test_prompt(), sampled(PipelineMode::picospec, 1, 5)).tokens.size() == 5);

  // No server behind the hub: the response timeout fires.
  loopback::LoopbackHub lonely;
  EdgeOptions eo;
  eo.response_timeout = std::chrono::milliseconds(200);
  EdgeSession orphan(synthetic::make_drafter(pair), lonely.connect(), eo);
  REQUIRE_THROWS_WITH(orphan.generate(test::test_prompt(), sampled(PipelineMode::picospec, 1, 5)),
                      Catch::Contains("Welcome"));
  // The server goes away mid-way: the closed transport surfaces as an exception.
  auto pair2 = test::small_pair(0.7, 128, 1.0);
  auto cloud2 = std::make_unique<test::Cloud>(pair2);
  auto edge2 = cloud2->edge(pair2);
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    cloud2->server->stop();
  });
  REQUIRE_THROWS_AS(edge2->generate(test::test_prompt(), sampled(PipelineMode::picospec, 1, 100000)), Error);
  killer.join();
  // Edge-only needs no transport.
  EdgeSession alone(synthetic::make_drafter(pair), nullptr);
  REQUIRE(alone.generate(test::test_prompt(), sampled(PipelineMode::edge_only, 1, 7)).tokens.size() == 7);
  REQUIRE_THROWS_AS(alone.generate(test::test_prompt(), sampled(PipelineMode::picospec, 1, 7)), Error);
}

TEST_CASE("the edge refuses a verdict kind its rejection mode has no decoder for", "[pipeline][control][robust]") {
  // Wrong implementation caught: a Top-K verdict in candidates mode was decoded with the Top-K codec, which only
  // exists in topk mode (null pointer dereference, a crash instead of a protocol error).
  std::uint32_t seq = 0;
  FakeCloud cloud(test::small_pair(0.7, 128), Millis(5000), [&](FakeCloud& c, PeerId peer, const wire::Message& msg) {
    if (std::holds_alternative<wire::Hello>(msg.body)) {
      c.welcome(peer, msg);
    } else if (const auto* d = std::get_if<wire::Draft>(&msg.body)) {
      wire::Verdict v;
      v.start_position = d->start_position;
      v.accepted = 0;
      v.kind = wire::VerdictKind::topk;
      std::vector<float> p(128, 0.0f);
      p[1] = 1.0f;
      make_codec("topk_f32:4")->encode(p, v.payload);
      c.send(peer, 1, ++seq, 1, std::move(v));
    }
  });
  auto gp = sampled(PipelineMode::picospec, 1, 20);
  gp.rejection = RejectionMode::candidates;
  REQUIRE_THROWS_WITH(cloud.edge.generate(test::test_prompt(), gp), Catch::Contains("protocol error"));
}

TEST_CASE("the cloud refuses a candidate count no verdict frame can carry", "[pipeline][control][robust]") {
  // Wrong implementation caught: any u32 m accepted at Hello, so the first rejection makes a worker draw, sort and
  // hold m candidates (gigabytes for m near 2^32) before encode_candidates fails on the frame limit.
  const auto pair = test::small_pair(0.7, 128);
  test::Cloud cloud(pair);
  auto raw = cloud.hub->connect();
  auto hello_reply = [&](std::uint32_t m) {
    const wire::Hello hello{wire::kVersion, wire::fingerprint(synthetic::make_draft_lm(pair)->info()),
                            SamplingParams{}, RejectionMode::candidates, PipelineMode::picospec, "", 10, m, 1,
                            4, 10};
    REQUIRE(raw->send(wire::encode(wire::Header{}, hello)));
    const auto r = raw->recv(Millis(5000));
    REQUIRE(r.ok());
    return wire::decode(r.frame);
  };
  const auto refused = hello_reply(0xffffffffu);
  const auto* e = std::get_if<wire::ErrorMessage>(&refused.body);
  REQUIRE(e != nullptr);
  REQUIRE(e->code == wire::ErrorCode::invalid_params);
  REQUIRE(std::holds_alternative<wire::ErrorMessage>(hello_reply(kMaxCandidatesPerFrame + 1).body));
  REQUIRE(std::holds_alternative<wire::Welcome>(hello_reply(kMaxCandidatesPerFrame).body));
}

TEST_CASE("CloudServer::start after stop throws instead of leaving threads unjoined", "[pipeline][control]") {
  // Wrong implementation caught: start() checked only `started`, so start() after stop() launched threads that
  // the (already stopped) destructor never joined: std::terminate.
  const auto pair = test::small_pair(0.7, 128);
  CloudServer server([pair] { return synthetic::make_verifier(pair); }, std::make_unique<loopback::LoopbackHub>());
  server.stop();
  REQUIRE_THROWS_AS(server.start(), Error);
}

TEST_CASE("cancel wakes a generation blocked on a silent cloud", "[pipeline][control]") {
  // Wrong implementation caught: cancel() not waking the drafting thread blocked on the event queue (or setting
  // the flag without the queue mutex, so the wake-up can be lost): generate() would sit out response_timeout.
  // The lost wake-up is a narrow race, so this run checks the wake-up path rather than reproducing the race.
  FakeCloud cloud(test::small_pair(0.7, 128), Millis(20000), [](FakeCloud& c, PeerId peer, const wire::Message& msg) {
    if (std::holds_alternative<wire::Hello>(msg.body)) c.welcome(peer, msg);  // then silence
  });
  for (int round = 0; round < 3; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = cancel_repeatedly(cloud.edge, [&] {
      return cloud.edge.generate(test::test_prompt(), sampled(PipelineMode::picospec, 1, 1000));
    });
    const auto waited = std::chrono::steady_clock::now() - t0;
    REQUIRE(r.finish == FinishReason::cancelled);
    REQUIRE(waited < std::chrono::seconds(5));
  }
}

TEST_CASE("late answers from an earlier generation are not taken for this generation's handshake",
          "[pipeline][control][robust]") {
  // Wrong implementation caught: before the Welcome, the edge took any Error or Welcome as the answer to its Hello.
  // A stale Error about the previous generation's session (e.g. the cloud rejecting a prompt the edge had already
  // given up on) then refused the next generation, and a late Welcome to an earlier Hello bound the generation to
  // the wrong cloud session. Replies to a Hello now echo its seq, unique per EdgeSession.
  FakeCloud cloud(test::small_pair(0.7, 128), Millis(5000), [](FakeCloud& c, PeerId peer, const wire::Message& msg) {
    if (std::holds_alternative<wire::Hello>(msg.body)) {
      const std::uint32_t s = msg.header.seq;
      c.send(peer, 7, s - 1, 0, wire::ErrorMessage{wire::ErrorCode::invalid_params, "stale: about an earlier session"});
      c.send(peer, 0, s + 100, 0, wire::ErrorMessage{wire::ErrorCode::busy, "stale: answer to another Hello"});
      c.send(peer, 99, s + 1, 0, wire::Welcome{c.target, "stale welcome"});
      c.welcome(peer, msg);
    } else if (const auto* p = std::get_if<wire::Prefill>(&msg.body)) {
      const auto start = static_cast<std::uint32_t>(p->tokens.size());
      c.send(peer, 99, 0, 0, wire::Tokens{start, {9, 9, 9}, true});
      c.send(peer, 1, 0, 0, wire::Tokens{start, {5, 6, 7}, true});
    }
  });
  GenerateResult res;
  REQUIRE_NOTHROW(res = cloud.edge.generate(test::test_prompt(), sampled(PipelineMode::cloud_ar, 1, 3)));
  CHECK(res.tokens == std::vector<Token>{5, 6, 7});
  CHECK(res.metrics.stale_dropped >= 4);
}

TEST_CASE("cancel before the cloud answers the Hello returns cancelled", "[pipeline][control]") {
  // Wrong implementation caught: a cancel during the handshake surfaced as "no Welcome from the cloud" (an
  // exception) instead of FinishReason::cancelled as the header promises.
  FakeCloud cloud(test::small_pair(0.7, 128), Millis(20000), [](FakeCloud&, PeerId, const wire::Message&) {});
  const auto t0 = std::chrono::steady_clock::now();
  GenerateResult res;
  REQUIRE_NOTHROW(res = cancel_repeatedly(cloud.edge, [&] {
                    return cloud.edge.generate(test::test_prompt(), sampled(PipelineMode::picospec, 1, 5));
                  }));
  CHECK(res.finish == FinishReason::cancelled);
  CHECK(res.tokens.empty());
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
}

TEST_CASE("bad sampling parameters are refused locally, before anything is sent", "[pipeline][control]") {
  const auto pair = test::small_pair(0.7, 128);
  loopback::LoopbackHub lonely;  // nobody answers: a parameter that reached the wire would end in a timeout
  EdgeOptions eo;
  eo.response_timeout = std::chrono::milliseconds(5000);
  EdgeSession edge(synthetic::make_drafter(pair), lonely.connect(), eo);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  struct Bad {
    float temperature, top_p, min_p;
    const char* field;
  };
  for (const Bad& b : {Bad{nan, 1.0f, 0.0f, "temperature"}, Bad{inf, 1.0f, 0.0f, "temperature"},
                       Bad{-0.5f, 1.0f, 0.0f, "temperature"}, Bad{0.8f, nan, 0.0f, "top_p"},
                       Bad{0.8f, 0.0f, 0.0f, "top_p"}, Bad{0.8f, 1.5f, 0.0f, "top_p"}, Bad{0.8f, 1.0f, nan, "min_p"},
                       Bad{0.8f, 1.0f, 1.0f, "min_p"}, Bad{0.8f, 1.0f, -0.1f, "min_p"}}) {
    for (auto mode : {PipelineMode::picospec, PipelineMode::edge_only}) {
      auto gp = sampled(mode, 1, 5);
      gp.sampling.temperature = b.temperature;
      gp.sampling.top_p = b.top_p;
      gp.sampling.min_p = b.min_p;
      INFO(b.field << " " << to_string(mode));
      const auto t0 = std::chrono::steady_clock::now();
      REQUIRE_THROWS_WITH(edge.generate(test::test_prompt(), gp), Catch::Contains(b.field));
      CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1000));
    }
  }
  CHECK(edge.transport()->stats().frames_sent == 0);
  // The boundaries themselves are accepted (greedy, top_p 1, min_p 0): the edge-only run completes.
  auto ok = sampled(PipelineMode::edge_only, 1, 3);
  ok.sampling.temperature = 0.0f;
  REQUIRE(edge.generate(test::test_prompt(), ok).tokens.size() == 3);
}

TEST_CASE("cloud fill: refused outside greedy/coupled; a peer's drafts behind, beyond or against the cloud's tokens",
          "[pipeline][control][robust][fill]") {
  const auto pair = test::small_pair(0.7, 128);
  test::Cloud cloud(pair);
  auto raw = cloud.hub->connect();
  const auto fp = wire::fingerprint(synthetic::make_draft_lm(pair)->info());
  std::uint32_t seq = 0;
  auto hello = [&](RejectionMode rej) {
    wire::Header h;
    h.flags = wire::kHelloFlagCloudFill;
    h.seq = ++seq;
    SamplingParams sp;
    sp.temperature = 1.0f;
    REQUIRE(raw->send(wire::encode(
        h, wire::Hello{wire::kVersion, fp, sp, rej, PipelineMode::picospec, "", 10, 8, 3, 4, 12})));
    const auto r = raw->recv(Millis(5000));
    REQUIRE(r.ok());
    return wire::decode(r.frame);
  };
  // Fill with the candidates rejection: its tokens depend on the draft, so the cloud refuses.
  const auto refused = hello(RejectionMode::candidates);
  const auto* e = std::get_if<wire::ErrorMessage>(&refused.body);
  REQUIRE(e != nullptr);
  CHECK(e->code == wire::ErrorCode::invalid_params);
  CHECK(e->message.find("cloud fill") != std::string::npos);
  // Coupled: after the Prefill the cloud streams its own tokens at once, up to max_new_tokens (12), done on the last.
  const std::vector<Token> prompt = test::test_prompt();
  wire::Header hs = prefill(*raw, hello(RejectionMode::coupled), prompt);
  std::vector<Token> got;
  std::uint32_t epoch = 0;
  bool done = false;
  while (!done) {
    const auto r = raw->recv(Millis(5000));
    REQUIRE(r.ok());
    const auto m = wire::decode(r.frame);
    const auto* t = std::get_if<wire::Tokens>(&m.body);
    REQUIRE(t != nullptr);
    REQUIRE(t->start_position == prompt.size() + got.size());
    got.insert(got.end(), t->tokens.begin(), t->tokens.end());
    done = t->done;
    epoch = m.header.epoch;
  }
  SamplingParams sp;
  sp.temperature = 1.0f;
  // The cloud's own tokens are the target's coupled draws.
  REQUIRE(got == test::reference_target_alone(pair, prompt, sp, 3, 12, true));
  // A Draft wholly behind the cloud and equal to its tokens: consumed, no verdict; one that differs: void, no
  // verdict, the epoch moves on; one beyond the cloud's length: bad_state.
  wire::Draft same;
  same.start_position = static_cast<std::uint32_t>(prompt.size() + 2);
  same.tokens = {got[2], got[3]};
  hs.seq = 2;
  hs.epoch = epoch;
  REQUIRE(raw->send(wire::encode(hs, same)));
  wire::Draft other = same;
  other.tokens[1] = static_cast<Token>((got[3] + 1) % 128);
  hs.seq = 3;
  REQUIRE(raw->send(wire::encode(hs, other)));
  wire::Draft beyond;
  beyond.start_position = static_cast<std::uint32_t>(prompt.size() + got.size() + 1);
  beyond.tokens = {1};
  hs.seq = 4;
  hs.epoch = epoch + 1;  // the void moved the cloud's epoch on: this Draft is current, and beyond its length
  REQUIRE(raw->send(wire::encode(hs, beyond)));
  const auto r = raw->recv(Millis(5000));
  REQUIRE(r.ok());
  const auto m = wire::decode(r.frame);
  const auto* err = std::get_if<wire::ErrorMessage>(&m.body);
  REQUIRE(err != nullptr);  // no verdict came before it
  CHECK(err->code == wire::ErrorCode::bad_state);
  CHECK(err->message.find("beyond") != std::string::npos);
  const CloudStats st = cloud.server->stats();
  CHECK(st.chunks_consumed == 1);
  CHECK(st.chunks_voided == 1);
  CHECK(st.fill_tokens >= 12);
}

TEST_CASE("a cloud with CloudOptions::cloud_fill off ignores the request: same tokens, no cloud tokens",
          "[pipeline][control][fill]") {
  const auto pair = test::small_pair(0.6, 128);
  CloudOptions co;
  co.cloud_fill = false;
  test::Cloud off(pair, co);
  test::Cloud on(pair);
  for (const float temp : {0.0f, 1.0f}) {
    GenerateParams gp = sampled(PipelineMode::picospec, 12, 40);
    gp.sampling.temperature = temp;
    gp.rejection = RejectionMode::coupled;
    gp.cloud_fill = true;
    gp.depth = 2;
    const auto a = off.edge(pair)->generate(test::test_prompt(), gp);
    const auto b = on.edge(pair)->generate(test::test_prompt(), gp);
    CHECK(a.tokens == b.tokens);
    CHECK(a.metrics.cloud_filled == 0);
    CHECK(b.metrics.cloud_filled > 0);
  }
  CHECK(off.server->stats().fill_tokens == 0);
}

TEST_CASE("paced fill: a cloud pass that would hold up a chunk about to arrive is skipped; same tokens",
          "[pipeline][control][fill]") {
  // A slow target pass (30 ms) and a fast edge (4 drafts in ~4 ms): once the cloud has timed its edge's redraft
  // after a rejection, a fill pass would only delay the chunk, so paced fill skips it; unpaced fill runs it.
  auto pair = test::small_pair(0.6, 128, 1.0);
  pair.profile.draft = synthetic::Latency{0.5, 0.5};
  pair.profile.target = synthetic::Latency{29.0, 1.0};
  CloudOptions unpaced_opts;
  unpaced_opts.fill_paced = false;
  test::Cloud paced(pair);
  test::Cloud unpaced(pair, unpaced_opts);
  GenerateParams gp = sampled(PipelineMode::picospec, 3, 40);
  gp.rejection = RejectionMode::coupled;
  gp.cloud_fill = true;
  const auto a = paced.edge(pair)->generate(test::test_prompt(), gp);
  const auto b = unpaced.edge(pair)->generate(test::test_prompt(), gp);
  CHECK(a.tokens == b.tokens);
  const CloudStats sa = paced.server->stats(), sb = unpaced.server->stats();
  INFO("rejections " << sa.rejections << ", fill tokens paced " << sa.fill_tokens << " unpaced " << sb.fill_tokens);
  REQUIRE(sa.rejections >= 3);  // alpha 0.6: about 16 misses in 40 tokens
  CHECK(sa.fill_paused > 0);
  CHECK(sb.fill_paused == 0);
  CHECK(sa.fill_tokens < sb.fill_tokens);
}

TEST_CASE("a Draft beyond the session's context limit gets context_full, after which the edge stops with length",
          "[pipeline][control][robust]") {
  const auto pair = test::small_pair(0.7, 128);
  CloudOptions co;
  co.max_context = static_cast<std::size_t>(test::test_prompt().size()) + 3;
  test::Cloud cloud(pair, co);
  auto raw = cloud.hub->connect();
  const auto fp = wire::fingerprint(synthetic::make_draft_lm(pair)->info());
  wire::Header h;
  h.seq = 1;
  SamplingParams sp;
  sp.temperature = 0.0f;
  REQUIRE(raw->send(wire::encode(
      h, wire::Hello{wire::kVersion, fp, sp, RejectionMode::greedy, PipelineMode::picospec, "", 10, 8, 3, 4, 12})));
  const auto w = raw->recv(Millis(5000));
  REQUIRE(w.ok());
  const std::vector<Token> prompt = test::test_prompt();
  wire::Header hs = prefill(*raw, wire::decode(w.frame), prompt);
  wire::Draft d;  // 4 tokens where 3 fit
  d.start_position = static_cast<std::uint32_t>(prompt.size());
  d.tokens = {1, 2, 3, 4};
  hs.seq = 2;
  REQUIRE(raw->send(wire::encode(hs, d)));
  const auto r = raw->recv(Millis(5000));
  REQUIRE(r.ok());
  const auto m = wire::decode(r.frame);
  const auto* e = std::get_if<wire::ErrorMessage>(&m.body);
  REQUIRE(e != nullptr);
  CHECK(e->code == wire::ErrorCode::context_full);
  CHECK(wire::to_string(e->code) == "context_full");
  CHECK(e->message.find("context limit") != std::string::npos);
  CHECK(cloud.server->stats().sessions_context_limited == 1);
}
