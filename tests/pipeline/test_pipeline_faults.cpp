// Faults seen from the edge: the cloud lost mid-generation (CloudLoss::stop / edge_only / raise), a server restart
// resumed from the committed tokens (loopback and ZeroMQ tcp on one endpoint), and the `length` stop at either
// side's context length. Greedy runs are checked token for token against the sequential reference decoder
// (reference_decoder.hpp, written independently of src/) and against the drafter's own greedy continuation.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "pipeline_fixture.hpp"
#include "picospec/lm_adapters.hpp"
#include "picospec/sampling.hpp"
#include "chi_square.hpp"
#include "reference_decoder.hpp"
#ifdef PICOSPEC_TEST_HAVE_ZMQ
#include "picospec/zmq/zmq_transport.hpp"
#endif

using namespace picospec;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

GenerateParams greedy(PipelineMode mode, std::uint32_t n) {
  GenerateParams gp;
  gp.mode = mode;
  gp.sampling.temperature = 0.0f;
  gp.seed = 5;
  gp.max_tokens = n;
  gp.gamma = 3;
  return gp;
}

std::vector<Token> target_greedy(const synthetic::PairParams& pair, std::uint32_t n) {
  test::ReferenceParams rp;
  rp.sampling.temperature = 0.0f;
  rp.max_tokens = n;
  return test::reference_generate(pair, test::test_prompt(), rp);
}

// The drafter's own greedy continuation of prompt + `prefix`, `n` tokens (no network, no EdgeSession).
std::vector<Token> draft_greedy_after(const synthetic::PairParams& pair, const std::vector<Token>& prefix,
                                      std::size_t n) {
  auto lm = synthetic::make_draft_lm(pair);
  std::vector<Token> ctx = test::test_prompt();
  ctx.insert(ctx.end(), prefix.begin(), prefix.end());
  std::vector<float> logits(pair.profile.vocab_size);
  std::vector<Token> out;
  while (out.size() < n) {
    lm->logits_for(ctx, logits);
    out.push_back(argmax(logits));
    ctx.push_back(out.back());
  }
  return out;
}

// Stops `cloud` (on another thread) once the edge has committed `after` tokens; records when.
struct Killer {
  std::atomic<std::size_t> committed{0};
  std::atomic<bool> fired{false};
  Clock::time_point fired_at{};
  std::thread thread;
  Killer(std::size_t after, std::function<void()> kill)
      : thread([this, after, k = std::move(kill)] {
          const auto give_up = Clock::now() + 60s;
          while (committed.load() < after && Clock::now() < give_up) std::this_thread::sleep_for(1ms);
          fired_at = Clock::now();
          k();
          fired = true;
        }) {}
  ~Killer() {
    if (thread.joinable()) thread.join();
  }
  Killer(const Killer&) = delete;
  Killer& operator=(const Killer&) = delete;
};

// A synthetic model pair member with a context length.
std::unique_ptr<synthetic::SyntheticLM> with_context(std::unique_ptr<synthetic::SyntheticLM> lm, std::uint32_t ctx) {
  synthetic::ModelParams mp = lm->params();
  mp.context_length = ctx;
  return std::make_unique<synthetic::SyntheticLM>(mp);
}

}  // namespace

TEST_CASE("cloud lost mid-generation: stop returns every committed token with cloud_lost", "[pipeline][faults]") {
  const auto pair = test::small_pair(0.7, 128, 1.0);  // real (scaled) latencies, so the stop lands mid-way
  const std::uint32_t n = 400;
  const auto ref = target_greedy(pair, n);
  for (PipelineMode mode : {PipelineMode::picospec, PipelineMode::cloud_ar}) {
    INFO(to_string(mode));
    test::Cloud cloud(pair);
    EdgeOptions eo;
    eo.response_timeout = 2000ms;
    auto edge = cloud.edge(pair, std::nullopt, eo);
    auto gp = greedy(mode, n);
    gp.on_cloud_loss = CloudLoss::stop;
    std::vector<Token> streamed;
    Killer killer(20, [&] { cloud.server->stop(); });
    const auto r = edge->generate(test::test_prompt(), gp, [&](Token t) {
      streamed.push_back(t);
      killer.committed = streamed.size();
    });
    const auto returned_at = Clock::now();
    killer.thread.join();
    REQUIRE(killer.fired.load());
    REQUIRE(r.finish == FinishReason::cloud_lost);
    REQUIRE(r.cloud_lost);
    REQUIRE_FALSE(r.error.empty());
    REQUIRE(r.edge_only_tokens == 0);
    REQUIRE(r.tokens == streamed);  // every streamed token is in the result, nothing more
    REQUIRE(r.tokens.size() >= 20);
    REQUIRE(r.tokens.size() < n);
    REQUIRE(std::equal(r.tokens.begin(), r.tokens.end(), ref.begin()));  // all of them the target's
    // Noticed at once (the transport closed), well inside the 2 s answer timeout.
    REQUIRE(returned_at - killer.fired_at < 2000ms);
  }
}

TEST_CASE("cloud lost mid-generation: edge_only finishes with the drafter", "[pipeline][faults]") {
  const auto pair = test::small_pair(0.7, 128, 1.0);
  const std::uint32_t n = 400;
  const auto ref = target_greedy(pair, n);
  for (PipelineMode mode : {PipelineMode::picospec, PipelineMode::cloud_ar}) {
    INFO(to_string(mode));
    test::Cloud cloud(pair);
    auto edge = cloud.edge(pair);
    auto gp = greedy(mode, n);
    gp.on_cloud_loss = CloudLoss::edge_only;
    std::vector<Token> streamed;
    Killer killer(20, [&] { cloud.server->stop(); });
    const auto r = edge->generate(test::test_prompt(), gp, [&](Token t) {
      streamed.push_back(t);
      killer.committed = streamed.size();
    });
    killer.thread.join();
    REQUIRE(r.finish == FinishReason::max_tokens);
    REQUIRE(r.cloud_lost);
    REQUIRE_FALSE(r.error.empty());
    REQUIRE(r.tokens == streamed);
    REQUIRE(r.tokens.size() == n);
    REQUIRE(r.edge_only_tokens > 0);
    REQUIRE(r.edge_only_tokens <= n - 20);
    const std::size_t by_cloud = n - r.edge_only_tokens;
    const std::vector<Token> head(r.tokens.begin(), r.tokens.begin() + static_cast<std::ptrdiff_t>(by_cloud));
    const std::vector<Token> tail(r.tokens.begin() + static_cast<std::ptrdiff_t>(by_cloud), r.tokens.end());
    REQUIRE(std::equal(head.begin(), head.end(), ref.begin()));  // the target's up to the loss
    REQUIRE(tail == draft_greedy_after(pair, head, tail.size()));  // then exactly the drafter's
    REQUIRE(tail != std::vector<Token>(ref.begin() + static_cast<std::ptrdiff_t>(by_cloud), ref.end()));
  }
}

TEST_CASE("cloud lost: the default raises, and a silent cloud is noticed within the answer timeout",
          "[pipeline][faults]") {
  const auto pair = test::small_pair(0.7, 128);
  // A hub with no server: nothing ever answers.
  loopback::LoopbackHub silent;
  EdgeOptions eo;
  eo.response_timeout = 300ms;
  {
    EdgeSession edge(synthetic::make_drafter(pair), silent.connect(), eo);
    REQUIRE_THROWS_WITH(edge.generate(test::test_prompt(), greedy(PipelineMode::picospec, 10)),
                        Catch::Contains("no Welcome"));
  }
  {
    EdgeSession edge(synthetic::make_drafter(pair), silent.connect(), eo);
    auto gp = greedy(PipelineMode::picospec, 10);
    gp.on_cloud_loss = CloudLoss::stop;
    const auto t0 = Clock::now();
    const auto r = edge.generate(test::test_prompt(), gp);
    REQUIRE(Clock::now() - t0 < 3000ms);
    REQUIRE(r.finish == FinishReason::cloud_lost);
    REQUIRE(r.tokens.empty());
    REQUIRE_THAT(r.error, Catch::Contains("no Welcome"));
  }
  {  // never reached the cloud: edge_only generates everything with the drafter
    EdgeSession edge(synthetic::make_drafter(pair), silent.connect(), eo);
    auto gp = greedy(PipelineMode::picospec, 12);
    gp.on_cloud_loss = CloudLoss::edge_only;
    const auto r = edge.generate(test::test_prompt(), gp);
    REQUIRE(r.cloud_lost);
    REQUIRE(r.edge_only_tokens == 12);
    REQUIRE(r.tokens == draft_greedy_after(pair, {}, 12));
  }
}

TEST_CASE("edge_only after a loss samples the drafter's distribution, not the target's", "[pipeline][faults][stat]") {
  // A closed transport: the cloud is lost at the first send, so every token is the drafter's. The first token over
  // 4000 seeds (T = 1) is checked against q (the draft model's distribution after the prompt) by Pearson chi-square
  // at upper tail 1e-6, and must fail against p (the target's), so the test can tell the two apart.
  const auto pair = test::small_pair(0.6, 128);
  loopback::LoopbackHub hub;
  auto end = hub.connect();
  end->close();
  EdgeSession edge(synthetic::make_drafter(pair), std::move(end));
  const long n = 4000;
  std::vector<long> counts(pair.profile.vocab_size, 0);
  for (long seed = 0; seed < n; ++seed) {
    GenerateParams gp;
    gp.seed = static_cast<std::uint64_t>(seed);
    gp.max_tokens = 1;
    gp.on_cloud_loss = CloudLoss::edge_only;
    const auto r = edge.generate(test::test_prompt(), gp);
    REQUIRE(r.tokens.size() == 1);
    REQUIRE(r.edge_only_tokens == 1);
    ++counts[static_cast<std::size_t>(r.tokens[0])];
  }
  std::vector<float> lq(pair.profile.vocab_size), lp(pair.profile.vocab_size), q, p;
  synthetic::make_draft_lm(pair)->logits_for(test::test_prompt(), lq);
  synthetic::make_target_lm(pair)->logits_for(test::test_prompt(), lp);
  logits_to_probs(lq, SamplingParams{}, q);
  logits_to_probs(lp, SamplingParams{}, p);
  const auto vs_q = test::chi_square(q, counts, n);
  const auto vs_p = test::chi_square(p, counts, n);
  INFO("chi2 vs q " << vs_q.chi2 << " (crit " << vs_q.crit << "), vs p " << vs_p.chi2 << " (crit " << vs_p.crit << ")");
  REQUIRE(vs_q.pass());
  REQUIRE_FALSE(vs_p.pass());
}

TEST_CASE("a server restart is resumed from the committed tokens (loopback)", "[pipeline][faults]") {
  const auto pair = test::small_pair(0.7, 128, 1.0);
  const std::uint32_t n = 300;
  const auto ref = target_greedy(pair, n);
  for (PipelineMode mode : {PipelineMode::picospec, PipelineMode::cloud_ar}) {
    INFO(to_string(mode));
    test::Cloud first(pair);
    test::Cloud second(pair);  // the "restarted" server
    EdgeOptions eo;
    eo.reconnect = [&second] { return std::unique_ptr<Transport>(second.hub->connect()); };
    eo.resume_backoff = 20ms;
    auto edge = first.edge(pair, std::nullopt, eo);
    auto gp = greedy(mode, n);
    gp.resume_attempts = 3;
    std::vector<Token> streamed;
    Killer killer(40, [&] { first.server->stop(); });
    const auto r = edge->generate(test::test_prompt(), gp, [&](Token t) {
      streamed.push_back(t);
      killer.committed = streamed.size();
    });
    killer.thread.join();
    REQUIRE(r.finish == FinishReason::max_tokens);
    REQUIRE(r.cloud_lost);
    REQUIRE(r.resumes == 1);
    REQUIRE(r.edge_only_tokens == 0);
    REQUIRE(streamed == r.tokens);  // nothing streamed twice
    REQUIRE(r.tokens == ref);       // nothing lost, nothing duplicated: the target's greedy output
    REQUIRE(second.server->stats().sessions_opened == 1);
  }
}

TEST_CASE("resume attempts are bounded; then on_cloud_loss applies", "[pipeline][faults]") {
  const auto pair = test::small_pair(0.7, 128, 1.0);
  test::Cloud cloud(pair);
  std::atomic<int> calls{0};
  EdgeOptions eo;
  eo.response_timeout = 200ms;
  eo.resume_backoff = 10ms;
  loopback::LoopbackHub nobody;  // reconnects lead nowhere
  eo.reconnect = [&] {
    ++calls;
    if (calls.load() == 2) throw Error("resolver failed");  // a factory that throws is one failed attempt
    return std::unique_ptr<Transport>(nobody.connect());
  };
  auto edge = cloud.edge(pair, std::nullopt, eo);
  auto gp = greedy(PipelineMode::picospec, 400);
  gp.resume_attempts = 3;
  gp.on_cloud_loss = CloudLoss::stop;
  std::atomic<std::size_t> got{0};
  Killer killer(10, [&] { cloud.server->stop(); });
  const auto r = edge->generate(test::test_prompt(), gp, [&](Token) { killer.committed = ++got; });
  killer.thread.join();
  REQUIRE(calls.load() == 3);
  REQUIRE(r.resumes == 2);  // two transports made, neither answered
  REQUIRE(r.finish == FinishReason::cloud_lost);
  REQUIRE(r.tokens.size() >= 10);
  REQUIRE_THAT(r.error, Catch::Contains("no Welcome"));
}

TEST_CASE("the draft model's context length ends the generation with finish length", "[pipeline][faults]") {
  const auto pair = test::small_pair(0.7, 128);
  const std::uint32_t room = 9;  // new tokens that fit
  const auto ctx = static_cast<std::uint32_t>(test::test_prompt().size()) + room;
  test::Cloud cloud(pair);
  const auto ref = target_greedy(pair, 50);
  for (PipelineMode mode : {PipelineMode::picospec, PipelineMode::vanilla, PipelineMode::edge_only}) {
    INFO(to_string(mode));
    EdgeSession edge(std::make_unique<LmDrafter>(with_context(synthetic::make_draft_lm(pair), ctx)),
                     cloud.hub->connect());
    auto gp = greedy(mode, 50);
    gp.gamma = 4;
    const auto r = edge.generate(test::test_prompt(), gp);
    REQUIRE(r.finish == FinishReason::length);
    REQUIRE(r.tokens.size() == room);
    if (mode != PipelineMode::edge_only) REQUIRE(std::equal(r.tokens.begin(), r.tokens.end(), ref.begin()));
    // Exactly the room: max_tokens.
    gp.max_tokens = room;
    REQUIRE(edge.generate(test::test_prompt(), gp).finish == FinishReason::max_tokens);
  }
  // A prompt that fills the context is refused before anything is sent.
  EdgeSession full(std::make_unique<LmDrafter>(with_context(synthetic::make_draft_lm(pair), 5)), cloud.hub->connect());
  REQUIRE_THROWS_WITH(full.generate(test::test_prompt(), greedy(PipelineMode::picospec, 4)),
                      Catch::Contains("no room"));
}

TEST_CASE("the target's context length ends the generation with finish length, not an exception",
          "[pipeline][faults]") {
  const auto pair = test::small_pair(0.7, 128);
  const auto ctx = static_cast<std::uint32_t>(test::test_prompt().size()) + 12;
  loopback::LoopbackParams lp;
  lp.max_frame_bytes = 0;
  auto hub_owned = std::make_unique<loopback::LoopbackHub>(lp);
  auto* hub = hub_owned.get();
  CloudServer server(
      [pair, ctx] { return std::make_unique<LmVerifier>(with_context(synthetic::make_target_lm(pair), ctx)); },
      std::move(hub_owned));
  server.start();
  const auto ref = target_greedy(pair, 50);
  for (PipelineMode mode : {PipelineMode::picospec, PipelineMode::cloud_ar}) {
    INFO(to_string(mode));
    EdgeSession edge(synthetic::make_drafter(pair), hub->connect());
    const auto r = edge.generate(test::test_prompt(), greedy(mode, 50));
    REQUIRE(r.finish == FinishReason::length);
    REQUIRE_FALSE(r.tokens.empty());
    // 12 tokens fill the target's context; cloud-ar may sample one more from the last logits (never stored).
    REQUIRE(r.tokens.size() <= 13);
    REQUIRE(std::equal(r.tokens.begin(), r.tokens.end(), ref.begin()));
    // The session stays usable.
    REQUIRE(edge.generate(test::test_prompt(), greedy(mode, 5)).tokens ==
            std::vector<Token>(ref.begin(), ref.begin() + 5));
    // A prompt longer than the target's context is an error, not a `length` stop with nothing.
    std::vector<Token> long_prompt(ctx + 1, 7);
    REQUIRE_THROWS_WITH(edge.generate(long_prompt, greedy(mode, 5)), Catch::Contains("context length"));
  }
  server.stop();
}

#ifdef PICOSPEC_TEST_HAVE_ZMQ
TEST_CASE("a server restart on the same tcp endpoint is resumed (zmq)", "[pipeline][faults][zmq]") {
  const auto pair = test::small_pair(0.7, 128, 1.0);
  const std::uint32_t n = 300;
  const auto ref = target_greedy(pair, n);
  zmq::ZmqOptions zo;
  zo.max_message_bytes = std::size_t{16} << 20;
  auto make_server = [&](const std::string& ep) {
    auto s = std::make_unique<CloudServer>([pair] { return synthetic::make_verifier(pair); },
                                           std::make_unique<zmq::ZmqServerTransport>(ep, zo));
    s->start();
    return s;
  };
  auto first_t = std::make_unique<zmq::ZmqServerTransport>("tcp://127.0.0.1:*", zo);
  const std::string endpoint = first_t->endpoint();
  std::unique_ptr<CloudServer> server =
      std::make_unique<CloudServer>([pair] { return synthetic::make_verifier(pair); }, std::move(first_t));
  server->start();
  std::unique_ptr<CloudServer> restarted;
  std::mutex mu;
  EdgeOptions eo;
  eo.response_timeout = 10000ms;
  eo.resume_backoff = 50ms;
  eo.reconnect = [&] { return std::unique_ptr<Transport>(std::make_unique<zmq::ZmqClientTransport>(endpoint, zo)); };
  EdgeSession edge(synthetic::make_drafter(pair), std::make_unique<zmq::ZmqClientTransport>(endpoint, zo), eo);
  auto gp = greedy(PipelineMode::picospec, n);
  gp.resume_attempts = 3;
  std::vector<Token> streamed;
  Killer killer(40, [&] {
    server->stop();
    server.reset();  // the port is free again
    std::lock_guard lk(mu);
    restarted = make_server(endpoint);
  });
  const auto r = edge.generate(test::test_prompt(), gp, [&](Token t) {
    streamed.push_back(t);
    killer.committed = streamed.size();
  });
  killer.thread.join();
  REQUIRE(r.cloud_lost);
  REQUIRE(r.resumes >= 1);
  REQUIRE(r.finish == FinishReason::max_tokens);
  REQUIRE(streamed == r.tokens);
  REQUIRE(r.tokens == ref);
  std::lock_guard lk(mu);
  REQUIRE(restarted->stats().sessions_opened >= 1);
  restarted->stop();
}

TEST_CASE("a killed zmq server is noticed at once and the committed tokens kept", "[pipeline][faults][zmq]") {
  const auto pair = test::small_pair(0.7, 128, 1.0);
  const std::uint32_t n = 400;
  const auto ref = target_greedy(pair, n);
  zmq::ZmqOptions zo;
  auto server_t = std::make_unique<zmq::ZmqServerTransport>("tcp://127.0.0.1:*", zo);
  const std::string endpoint = server_t->endpoint();
  CloudServer server([pair] { return synthetic::make_verifier(pair); }, std::move(server_t));
  server.start();
  EdgeOptions eo;
  eo.response_timeout = 20000ms;
  EdgeSession edge(synthetic::make_drafter(pair), std::make_unique<zmq::ZmqClientTransport>(endpoint, zo), eo);
  auto gp = greedy(PipelineMode::picospec, n);
  gp.on_cloud_loss = CloudLoss::stop;
  std::atomic<std::size_t> got{0};
  Killer killer(20, [&] { server.stop(); });
  const auto r = edge.generate(test::test_prompt(), gp, [&](Token) { killer.committed = ++got; });
  const auto returned_at = Clock::now();
  killer.thread.join();
  REQUIRE(r.finish == FinishReason::cloud_lost);
  REQUIRE(r.tokens.size() >= 20);
  REQUIRE(std::equal(r.tokens.begin(), r.tokens.end(), ref.begin()));
  // Well before the 20 s answer timeout: the connection's end (or ZeroMQ's 3 s heartbeat) tells.
  REQUIRE(returned_at - killer.fired_at < 5000ms);
}
#endif
