// The README's usage example, verbatim inside readme_example(), run on two small random GGUF models the test
// writes itself (so it needs no ../shared). If this stops compiling, the README is wrong.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <string>

#include <picospec/cloud_server.hpp>
#include <picospec/edge_session.hpp>
#include <picospec/lm_adapters.hpp>
#include <picospec/llama/model.hpp>
#include <picospec/llama/random_model.hpp>
#include <picospec/loopback/loopback.hpp>

namespace {

picospec::GenerateResult readme_example() {
  // ---- begin README snippet ----
using namespace picospec;

auto target = llama::LlamaWeights::load("target.gguf");            // shared, immutable weights
auto draft  = llama::LlamaWeights::load("draft.gguf");
auto hub = std::make_unique<loopback::LoopbackHub>();
auto edge_end = hub->connect();
CloudServer cloud([&] { return std::make_unique<LmVerifier>(std::make_unique<llama::LlamaModel>(target)); },
                  std::move(hub));                                   // one Verifier (KV cache) per session
cloud.start();
EdgeSession edge(std::make_unique<LmDrafter>(std::make_unique<llama::LlamaModel>(draft)), std::move(edge_end));

GenerateParams gp;                        // mode picospec, gamma 4, depth 1 by default
gp.sampling.temperature = 0.8f;
gp.seed = 42;
gp.max_tokens = 64;
auto prompt = target->tokenizer()->encode("Once upon a time", /*add_bos=*/true);
std::vector<Token> streamed;                                     // on_token runs as tokens commit
auto result = edge.generate(prompt, gp, [&](Token t) { streamed.push_back(t); });
std::puts(result.metrics.to_json().c_str());   // tokens/s, acceptance, bytes up/down, ...
  // ---- end README snippet ----
  cloud.stop();
  return result;
}

}  // namespace

TEST_CASE("the README usage example runs as written", "[integration]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("picospec_readme_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path old_cwd = fs::current_path();
  picospec::llama::RandomLlamaSpec spec;
  spec.seed = 11;
  picospec::llama::random_llama_gguf(spec).write_file((dir / "target.gguf").string());
  spec.seed = 12;
  spec.n_layers = 1;
  picospec::llama::random_llama_gguf(spec).write_file((dir / "draft.gguf").string());
  fs::current_path(dir);
  picospec::GenerateResult r;
  REQUIRE_NOTHROW(r = readme_example());
  fs::current_path(old_cwd);
  fs::remove_all(dir);
  CHECK(r.tokens.size() <= 64u);
  CHECK(!r.tokens.empty());
  CHECK(r.metrics.tokens == r.tokens.size());
  CHECK(r.metrics.mode == "picospec");
  CHECK(r.metrics.bytes_up > 0);
  CHECK(r.metrics.bytes_down > 0);
}
