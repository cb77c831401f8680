// EdgeSession + CloudServer end to end on loopback with the synthetic backend: every mode runs, greedy
// speculative output equals cloud-ar output, metrics are consistent.
#include <catch2/catch.hpp>

#include "pipeline_fixture.hpp"

using namespace picospec;

TEST_CASE("greedy speculative modes reproduce cloud-ar token for token", "[pipeline]") {
  // Wrong implementation caught: an off-by-one between the verifier rows and draft positions, a missing
  // pre-verify after a correction, or a stale drafter KV after rollback all change the greedy output.
  const auto pair = test::small_pair(0.6);
  test::Cloud cloud(pair);
  GenerateParams gp;
  gp.sampling.temperature = 0.0f;
  gp.max_tokens = 60;
  gp.mode = PipelineMode::cloud_ar;
  auto edge = cloud.edge(pair);
  const auto ref = edge->generate(test::test_prompt(), gp);
  REQUIRE(ref.tokens.size() == 60);
  REQUIRE(ref.finish == FinishReason::max_tokens);
  for (auto mode : {PipelineMode::vanilla, PipelineMode::paper, PipelineMode::picospec}) {
    for (std::uint32_t depth : {1u, 2u}) {
      gp.mode = mode;
      gp.depth = depth;
      std::vector<Token> streamed;
      const auto got = edge->generate(test::test_prompt(), gp, [&](Token t) { streamed.push_back(t); });
      INFO(to_string(mode) << " depth " << depth);
      REQUIRE(got.tokens == ref.tokens);
      REQUIRE(streamed == got.tokens);
      REQUIRE(got.metrics.rejection == "greedy");
      REQUIRE(got.metrics.rounds > 0);
      REQUIRE(got.metrics.rollbacks == got.metrics.corrections);
    }
  }
}

TEST_CASE("every mode runs and reports metrics", "[pipeline]") {
  const auto pair = test::small_pair(0.7);
  test::Cloud cloud(pair);
  auto edge = cloud.edge(pair);
  for (auto mode : {PipelineMode::cloud_ar, PipelineMode::edge_only, PipelineMode::vanilla, PipelineMode::paper,
                    PipelineMode::picospec}) {
    GenerateParams gp;
    gp.mode = mode;
    gp.seed = 11;
    gp.max_tokens = 40;
    const auto r = edge->generate(test::test_prompt(), gp);
    INFO(to_string(mode));
    REQUIRE(r.tokens.size() == 40);
    const auto& m = r.metrics;
    REQUIRE(m.tokens == 40);
    REQUIRE(m.mode == std::string(to_string(mode)));
    REQUIRE(m.backend == "synthetic");
    REQUIRE(m.tokens_per_s > 0);
    REQUIRE(m.ttft_ms >= 0);
    const std::string json = m.to_json();
    REQUIRE(json.find("\"tokens\":40") != std::string::npos);
    if (mode == PipelineMode::edge_only) {
      REQUIRE(m.bytes_up == 0);
    } else {
      REQUIRE(m.bytes_up > 0);
      REQUIRE(m.bytes_down > 0);
    }
    if (mode == PipelineMode::vanilla || mode == PipelineMode::paper || mode == PipelineMode::picospec) {
      REQUIRE(m.rounds > 0);
      REQUIRE(m.mean_accepted_length >= 1.0);
      REQUIRE(m.acceptance_rate > 0.3);
      REQUIRE(m.acceptance_rate < 0.95);
    }
  }
}

TEST_CASE("metrics JSON reports unknown figures as null, known ones as numbers", "[pipeline][metrics]") {
  Metrics m;  // what an edge alone knows: no backend label, no cloud figures
  std::string json = m.to_json();
  CHECK(json.find("\"backend\":null") != std::string::npos);
  CHECK(json.find("\"cloud_verify_ms\":null") != std::string::npos);
  CHECK(json.find("\"cloud_idle_pct\":null") != std::string::npos);
  m.backend = "llama";
  m.cloud_verify_ms = 12.5;
  m.cloud_idle_pct = 0.0;
  json = m.to_json();
  CHECK(json.find("\"backend\":\"llama\"") != std::string::npos);
  CHECK(json.find("\"cloud_verify_ms\":12.5") != std::string::npos);
  CHECK(json.find("\"cloud_idle_pct\":0.0") != std::string::npos);
}

namespace {
class SilentServer final : public ServerTransport {  // a ServerTransport that is not a LoopbackHub
 public:
  std::string describe() const override { return "silent"; }

 protected:
  bool do_send(PeerId, Frame) override { return false; }
  PeerReceived do_recv(Millis) override { return {RecvStatus::closed, 0, {}}; }
  void do_close() override {}
};
}  // namespace

TEST_CASE("CloudServer::transport_as gives the concrete transport after it moved into the server", "[pipeline]") {
  const auto pair = test::small_pair(0.7);
  CloudServer server([pair] { return synthetic::make_verifier(pair); }, std::make_unique<loopback::LoopbackHub>());
  server.start();
  auto& hub = server.transport_as<loopback::LoopbackHub>();
  CHECK(&hub == &server.transport());
  EdgeSession edge(synthetic::make_drafter(pair), hub.connect());  // an extra in-process edge, no cast needed
  GenerateParams gp;
  gp.max_tokens = 5;
  CHECK(edge.generate(test::test_prompt(), gp).tokens.size() == 5);
  server.stop();

  CloudServer other([pair] { return synthetic::make_verifier(pair); }, std::make_unique<SilentServer>());
  REQUIRE_THROWS_WITH(other.transport_as<loopback::LoopbackHub>(), Catch::Contains("silent"));
}
