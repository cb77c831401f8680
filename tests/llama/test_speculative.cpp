// Greedy speculative decoding with real models through the whole pipeline (EdgeSession + CloudServer over
// loopback): draft tinystories-xs-280K, target stories260K (and the reverse order). For 10 prompts from
// tinystories_val.txt the speculative output must equal the target-alone greedy output token for token; the
// acceptance rate is reported. This holds only because the backend is batch-invariant: the target scores a
// chunk of draft tokens in one forward() and must give the same argmax as one token at a time.
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

void check_order(const char* draft_name, const char* target_name) {
  const auto draft = LlamaWeights::load(test::shared_model(draft_name).string());
  const auto target = LlamaWeights::load(test::shared_model(target_name).string());
  loopback::LoopbackParams lp;
  lp.max_frame_bytes = 0;
  auto hub_owner = std::make_unique<loopback::LoopbackHub>(lp);
  auto* hub = hub_owner.get();
  CloudOptions co;
  co.workers = 1;
  CloudServer cloud([target] { return std::make_unique<LmVerifier>(std::make_unique<LlamaModel>(target, LlamaParams{.threads = 1})); },
                    std::move(hub_owner), co);
  cloud.start();
  EdgeSession edge(std::make_unique<LmDrafter>(std::make_unique<LlamaModel>(draft, LlamaParams{.threads = 1})),
                   hub->connect());
  const auto tok = target->tokenizer();
  double accepted_sum = 0;
  std::size_t runs = 0;
  for (const auto& text : prompts(10)) {
    const auto prompt = tok->encode(text, true);
    GenerateParams gp;
    gp.mode = PipelineMode::picospec;
    gp.sampling.temperature = 0.0f;
    gp.max_tokens = 48;
    gp.gamma = 4;
    const auto spec = edge.generate(prompt, gp);
    const auto want = target_alone_greedy(target, prompt, gp.max_tokens);
    INFO(draft_name << " -> " << target_name << " prompt: " << text);
    CHECK(spec.tokens == want);
    accepted_sum += spec.metrics.acceptance_rate;
    ++runs;
  }
  cloud.stop();
  REQUIRE(runs == 10);
  std::printf("speculative greedy %s (draft) -> %s (target): identical on %zu prompts, mean acceptance %.3f\n",
              draft_name, target_name, runs, accepted_sum / static_cast<double>(runs));
}

}  // namespace

TEST_CASE("greedy speculative output equals the target's own greedy output", "[speculative]") {
  check_order("tinystories-xs-280K.gguf", "stories260K.gguf");
  check_order("stories260K.gguf", "tinystories-xs-280K.gguf");
}
