// The example PromptLookupDrafter (examples/basic) is a Drafter like any other: it must pass the Drafter
// conformance suite, and the pipeline with it must reproduce the target's greedy output token for token.
#include <catch2/catch.hpp>

#include <memory>

#include "basic/prompt_lookup_drafter.hpp"
#include "picospec/cloud_server.hpp"
#include "picospec/edge_session.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"
#include "picospec/lm_adapters.hpp"
#include "picospec/loopback/loopback.hpp"
#include "picospec/testing/drafter_conformance.hpp"

using namespace picospec;

namespace {
std::shared_ptr<const llama::LlamaWeights> small_target() {
  llama::RandomLlamaSpec spec;
  spec.seed = 5;
  return llama::LlamaWeights::from_gguf(llama::GgufFile::from_bytes(llama::random_llama_gguf(spec).bytes()));
}
}  // namespace

TEST_CASE("PromptLookupDrafter passes the Drafter conformance suite", "[integration][drafter]") {
  const auto w = small_target();
  const ModelInfo info = llama::LlamaModel(w).info();
  testing::check_drafter_conformance([&] { return std::make_unique<examples::PromptLookupDrafter>(info); },
                                  {1, 10, 11, 12, 10, 11});
}

TEST_CASE("PromptLookupDrafter keeps greedy output identical to the target", "[integration][pipeline]") {
  const auto w = small_target();
  auto hub = std::make_unique<loopback::LoopbackHub>();
  auto edge_end = hub->connect();
  CloudServer cloud([&] { return std::make_unique<LmVerifier>(std::make_unique<llama::LlamaModel>(w)); },
                    std::move(hub));
  cloud.start();
  EdgeSession edge(std::make_unique<examples::PromptLookupDrafter>(llama::LlamaModel(w).info()), std::move(edge_end));
  const std::vector<Token> prompt = {1, 40, 41, 42, 40, 41, 42, 40};
  GenerateParams gp;
  gp.sampling.temperature = 0.0f;
  gp.max_tokens = 40;
  gp.stop_at_eos = false;
  gp.mode = PipelineMode::cloud_ar;
  const auto ar = edge.generate(prompt, gp);
  for (std::uint32_t gamma : {1u, 3u, 6u}) {
    gp.mode = PipelineMode::picospec;
    gp.gamma = gamma;
    const auto spec = edge.generate(prompt, gp);
    CHECK(spec.tokens == ar.tokens);
  }
  cloud.stop();
}
