// Multi-session batched verification (issue 12): Verifier::score_batch / CausalLM::forward_batch give exactly
// the rows of one-by-one evaluation, validate before anything changes, cost one call on a shared device; a
// CloudServer that batches the chunks of concurrent sessions commits the same tokens as one that does not, and
// a long cloud-ar generation no longer holds a worker.
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "pipeline_fixture.hpp"

using namespace picospec;
using Clock = std::chrono::steady_clock;

namespace {

synthetic::PairParams device_pair(double time_scale, std::shared_ptr<synthetic::Device> device) {
  auto p = test::small_pair(0.7, 256, time_scale);
  p.target_device = std::move(device);
  return p;
}

bool same_rows(const LogitRows& a, const LogitRows& b) {
  if (a.rows() != b.rows() || a.vocab() != b.vocab()) return false;
  for (std::size_t i = 0; i < a.rows() * a.vocab(); ++i)
    if (a.data()[i] != b.data()[i]) return false;
  return true;
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

}  // namespace

TEST_CASE("score_batch gives exactly the rows of score() one by one, and lengths and pending rows follow",
          "[pipeline][batching]") {
  const auto pair = device_pair(0.0, std::make_shared<synthetic::Device>());
  const std::vector<std::vector<Token>> prompts{{1, 2, 3}, {4, 5}, {6}, {7, 8, 9, 10}};
  const std::vector<std::vector<Token>> chunks{{11, 12, 13, 14}, {15}, {}, {16, 17}};
  std::vector<std::unique_ptr<Verifier>> batched, alone;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    batched.push_back(synthetic::make_verifier(pair));
    alone.push_back(synthetic::make_verifier(pair));
    batched.back()->begin(prompts[i]);
    alone.back()->begin(prompts[i]);
  }
  REQUIRE(batched[0]->batch_key() != nullptr);
  REQUIRE(batched[0]->batch_key() == batched[1]->batch_key());
  std::vector<LogitRows> out(prompts.size()), ref(prompts.size());
  std::vector<Verifier::ScoreItem> items;
  for (std::size_t i = 0; i < prompts.size(); ++i) items.push_back({batched[i].get(), chunks[i], &out[i]});
  Verifier::score_batch(items);
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    alone[i]->score(chunks[i], ref[i]);
    CHECK(same_rows(out[i], ref[i]));
    CHECK(batched[i]->length() == alone[i]->length());
  }
  // The rows cached for rollback are the same too.
  batched[0]->rollback(5);
  alone[0]->rollback(5);
  const auto a = batched[0]->pending_logits(), b = alone[0]->pending_logits();
  CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
}

TEST_CASE("score_batch validates every item before evaluating any", "[pipeline][batching]") {
  const auto pair = device_pair(0.0, std::make_shared<synthetic::Device>());
  auto v1 = synthetic::make_verifier(pair), v2 = synthetic::make_verifier(pair);
  v1->begin(std::vector<Token>{1, 2});
  v2->begin(std::vector<Token>{3});
  const std::vector<Token> good{5, 6}, bad{7, 100000};
  LogitRows o1, o2;
  std::vector<Verifier::ScoreItem> items{{v1.get(), good, &o1}, {v2.get(), bad, &o2}};
  CHECK_THROWS_AS(Verifier::score_batch(items), Error);
  CHECK(v1->length() == 2);
  CHECK(v2->length() == 1);
  std::vector<Verifier::ScoreItem> twice{{v1.get(), good, &o1}, {v1.get(), good, &o2}};
  CHECK_THROWS_AS(Verifier::score_batch(twice), Error);
  CHECK(v1->length() == 2);
  CHECK(v1->score_problem(bad).find("vocab") != std::string::npos);
}

TEST_CASE("forward_batch on a shared device costs one a + b*N call; without a device, one call per model",
          "[pipeline][batching][timing]") {
  // tiny profile target: a = 4 ms, b = 1 ms per token; time_scale 5 -> 20 + 5 N ms.
  const double scale = 5.0;
  auto run = [&](bool shared) {
    auto pair = test::small_pair(0.7, 64, scale);
    if (shared) pair.target_device = std::make_shared<synthetic::Device>();
    std::vector<std::unique_ptr<synthetic::SyntheticLM>> lms;
    std::vector<LogitRows> outs(4);
    std::vector<CausalLM::BatchItem> items;
    const std::vector<Token> two{1, 2};
    for (int i = 0; i < 4; ++i) lms.push_back(synthetic::make_target_lm(pair));
    for (int i = 0; i < 4; ++i) items.push_back({lms[static_cast<std::size_t>(i)].get(), two, &outs[static_cast<std::size_t>(i)]});
    const auto t0 = Clock::now();
    CausalLM::forward_batch(items);
    const double ms = ms_since(t0);
    for (auto& lm : lms) CHECK(lm->length() == 2);
    return ms;
  };
  const double batched = run(true);   // one call: 20 + 5 * 8 = 60 ms
  const double separate = run(false);  // four calls: 4 * (20 + 10) = 120 ms
  CHECK(batched >= 59.0);
  CHECK(separate >= 119.0);
  CHECK(batched < separate);
}

TEST_CASE("a batching server commits the same tokens as an unbatched one, in every mode", "[pipeline][batching]") {
  struct Case {
    PipelineMode mode;
    float temperature;
  };
  const Case cases[] = {{PipelineMode::picospec, 0.0f}, {PipelineMode::picospec, 0.8f}, {PipelineMode::vanilla, 0.8f},
                        {PipelineMode::paper, 0.8f},    {PipelineMode::cloud_ar, 0.8f}};
  const int clients = 6;
  auto run = [&](std::size_t max_batch, const Case& c, std::uint64_t* max_seen) {
    const auto pair = device_pair(0.5, std::make_shared<synthetic::Device>());  // a = 2 ms, b = 0.5 ms per token
    CloudOptions co;
    co.workers = 1;
    co.max_batch = max_batch;
    test::Cloud cloud(pair, co);
    std::vector<std::vector<Token>> outs(clients);
    std::vector<std::thread> threads;
    for (int i = 0; i < clients; ++i) {
      threads.emplace_back([&, i] {
        auto edge = cloud.edge(pair);
        GenerateParams gp;
        gp.mode = c.mode;
        gp.sampling.temperature = c.temperature;
        gp.seed = 100 + static_cast<std::uint64_t>(i);
        gp.max_tokens = 40;
        gp.depth = 2;
        outs[static_cast<std::size_t>(i)] = edge->generate(test::test_prompt(), gp).tokens;
      });
    }
    for (auto& t : threads) t.join();
    *max_seen = cloud.server->stats().max_batch_seen;
    return outs;
  };
  for (const Case& c : cases) {
    INFO("mode " << to_string(c.mode) << " T " << c.temperature);
    std::uint64_t seen1 = 0, seen_n = 0;
    const auto unbatched = run(1, c, &seen1);
    const auto batched = run(16, c, &seen_n);
    CHECK(seen1 == 1);
    CHECK(seen_n > 1);  // six sessions on one worker: chunks were evaluated together
    for (int i = 0; i < clients; ++i) {
      CHECK(batched[static_cast<std::size_t>(i)].size() == 40);
      CHECK(batched[static_cast<std::size_t>(i)] == unbatched[static_cast<std::size_t>(i)]);
    }
  }
}

TEST_CASE("a long cloud-ar generation does not hold the only worker", "[pipeline][batching][timing]") {
  // One worker. A cloud-ar request of 300 tokens (about 300 device calls of 2.5+ ms) starts first; a picospec
  // request of 8 tokens starts 20 ms later and must finish long before it: cloud-ar generates in steps.
  const auto pair = device_pair(0.5, std::make_shared<synthetic::Device>());
  CloudOptions co;
  co.workers = 1;
  test::Cloud cloud(pair, co);
  double ar_done_ms = 0.0, spec_done_ms = 0.0;
  const auto t0 = Clock::now();
  std::thread ar([&] {
    auto edge = cloud.edge(pair);
    GenerateParams gp;
    gp.mode = PipelineMode::cloud_ar;
    gp.max_tokens = 300;
    CHECK(edge->generate(test::test_prompt(), gp).tokens.size() == 300);
    ar_done_ms = ms_since(t0);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  {
    auto edge = cloud.edge(pair);
    GenerateParams gp;
    gp.max_tokens = 8;
    CHECK(edge->generate(test::test_prompt(), gp).tokens.size() == 8);
    spec_done_ms = ms_since(t0);
  }
  ar.join();
  INFO("picospec done at " << spec_done_ms << " ms, cloud-ar at " << ar_done_ms << " ms");
  CHECK(spec_done_ms < ar_done_ms);
  CHECK(cloud.server->stats().max_batch_seen > 1);  // the two sessions' steps shared evaluations
}

TEST_CASE("max_context ends a session at the per-session limit: the edge keeps its tokens, finish length",
          "[pipeline][limits]") {
  const auto pair = device_pair(0.0, nullptr);
  CloudOptions co;
  co.max_context = 16;  // prompt 5 + at most 11 tokens in the target's context
  test::Cloud cloud(pair, co);
  for (PipelineMode mode : {PipelineMode::picospec, PipelineMode::cloud_ar}) {
    INFO("mode " << to_string(mode));
    auto edge = cloud.edge(pair);
    GenerateParams gp;
    gp.mode = mode;
    gp.max_tokens = 40;
    const auto out = edge->generate(test::test_prompt(), gp);
    CHECK(out.finish == FinishReason::length);
    CHECK(out.tokens.size() >= 1);
    CHECK(out.tokens.size() <= 12);
  }
  CHECK(cloud.server->stats().sessions_context_limited == 2);
  // A prompt beyond the limit is refused outright.
  auto edge = cloud.edge(pair);
  GenerateParams gp;
  gp.max_tokens = 4;
  CHECK_THROWS(edge->generate(std::vector<Token>(20, 3), gp));
  CHECK(cloud.server->stats().sessions_context_limited == 3);
}
