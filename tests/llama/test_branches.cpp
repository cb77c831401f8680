// No flush on a miss with real models: pre-drafted branches (GenerateParams::branch_heads) through the whole
// pipeline (EdgeSession + CloudServer over loopback), draft tinystories-xs-280K, target stories260K. The LLaMA
// backend has no batched multi-branch form, so LmDrafter evaluates each branch by forwarding after its base and
// truncating (exact because the backend is batch-invariant). Checks, on 8 prompts from tinystories_val.txt:
// greedy output with branches equals the target-alone greedy output; seeded sampled output with branches equals
// the same seed without them, for two schedules and depths. Prints how often a correction matched a branch.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "picospec/cloud_server.hpp"
#include "picospec/edge_session.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/lm_adapters.hpp"
#include "picospec/loopback/loopback.hpp"
#include "support/shared.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

std::vector<std::string> prompts(std::size_t n) {
  std::ifstream f(test::shared_data("corpus/tinystories_val.txt"));
  std::vector<std::string> out;
  std::string line;
  while (out.size() < n && std::getline(f, line)) {
    std::istringstream words(line);
    std::string w, p;
    for (int k = 0; k < 8 && (words >> w); ++k) p += (k ? " " : "") + w;
    if (p.size() >= 10) out.push_back(p);
  }
  return out;
}

std::vector<Token> target_alone_greedy(const std::shared_ptr<const LlamaWeights>& w, const std::vector<Token>& prompt,
                                       std::size_t n) {
  LlamaModel m(w, {.threads = 1});
  LogitRows rows;
  m.forward(prompt, rows);
  std::vector<Token> out;
  for (std::size_t i = 0; i < n; ++i) {
    const auto r = rows.row(rows.rows() - 1);
    const auto t = static_cast<Token>(std::max_element(r.begin(), r.end()) - r.begin());
    out.push_back(t);
    if (t == m.info().eos) break;
    m.forward(std::span<const Token>(&t, 1), rows);
  }
  return out;
}

}  // namespace

TEST_CASE("branches keep greedy output equal to the target's and seeded output equal to a run without them",
          "[speculative][branches]") {
  const auto draft = LlamaWeights::load(test::shared_model("tinystories-xs-280K.gguf").string());
  const auto target = LlamaWeights::load(test::shared_model("stories260K.gguf").string());
  loopback::LoopbackParams lp;
  lp.max_frame_bytes = 0;
  auto hub_owner = std::make_unique<loopback::LoopbackHub>(lp);
  auto* hub = hub_owner.get();
  CloudOptions co;
  co.workers = 1;
  CloudServer cloud(
      [target] { return std::make_unique<LmVerifier>(std::make_unique<LlamaModel>(target, LlamaParams{.threads = 1})); },
      std::move(hub_owner), co);
  cloud.start();
  EdgeSession edge(std::make_unique<LmDrafter>(std::make_unique<LlamaModel>(draft, LlamaParams{.threads = 1})),
                   hub->connect());
  const auto tok = target->tokenizer();
  std::uint64_t hits = 0, corrections = 0, used = 0;
  std::size_t runs = 0;
  for (const auto& text : prompts(8)) {
    const auto prompt = tok->encode(text, true);
    INFO("prompt: " << text);
    GenerateParams gp;
    gp.mode = PipelineMode::picospec;
    gp.sampling.temperature = 0.0f;
    gp.max_tokens = 40;
    gp.branch_heads = 2;
    gp.branch_schedule = BranchSchedule::fused;
    const auto greedy = edge.generate(prompt, gp);
    CHECK(greedy.tokens == target_alone_greedy(target, prompt, gp.max_tokens));
    hits += greedy.metrics.branch_hits;
    used += greedy.metrics.branch_used;
    corrections += greedy.metrics.corrections;
    for (const RejectionMode rm : {RejectionMode::candidates, RejectionMode::sparse_draft}) {
      GenerateParams sp;
      sp.mode = PipelineMode::picospec;
      sp.rejection = rm;
      sp.sampling.temperature = 0.8f;
      sp.seed = 42 + runs;
      sp.max_tokens = 40;
      const auto off = edge.generate(prompt, sp);
      for (const auto& [schedule, depth] : {std::pair{BranchSchedule::fused, 1u}, std::pair{BranchSchedule::fused, 2u},
                                            std::pair{BranchSchedule::idle, 1u}}) {
        sp.branch_heads = 2;
        sp.branch_schedule = schedule;
        sp.depth = depth;
        const auto on = edge.generate(prompt, sp);
        INFO(to_string(rm) << " depth " << depth);
        CHECK(on.tokens == off.tokens);
        hits += on.metrics.branch_hits;
        used += on.metrics.branch_used;
        corrections += on.metrics.corrections;
      }
      sp.branch_heads = 0;
      sp.depth = 1;
    }
    ++runs;
  }
  cloud.stop();
  REQUIRE(runs == 8);
  CHECK(hits > 0);
  std::printf("branches (real pair, 2 heads): %llu of %llu corrections matched a branch, %llu branch drafts sent\n",
              static_cast<unsigned long long>(hits), static_cast<unsigned long long>(corrections),
              static_cast<unsigned long long>(used));
}
