// The README's usage example, verbatim inside readme_example(), run on two small random GGUF models the test
// writes itself (so it needs no ../shared). If this stops compiling, the README is wrong. It also checks the text
// the snippet streams, and shows on a hand-made vocabulary why streaming needs token_to_text(t, prev).
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <string>

#include <picospec/cloud_server.hpp>
#include <picospec/edge_session.hpp>
#include <picospec/lm_adapters.hpp>
#include <picospec/llama/model.hpp>
#include <picospec/llama/random_model.hpp>
#include <picospec/llama/tokenizer.hpp>
#include <picospec/loopback/loopback.hpp>

namespace {

struct Outcome {
  picospec::GenerateResult result;
  std::vector<picospec::Token> prompt;
  std::string text;  // as streamed
  std::shared_ptr<const picospec::llama::Tokenizer> tok;
};

Outcome readme_example() {
  // ---- begin README snippet ----
using namespace picospec;

auto target = llama::LlamaWeights::load("target.gguf");            // shared, immutable weights
auto draft  = llama::LlamaWeights::load("draft.gguf");
const llama::LlamaParams lp{.threads = 2};                         // each model owns a pool this size (see below)
CloudServer cloud([&] { return std::make_unique<LmVerifier>(std::make_unique<llama::LlamaModel>(target, lp)); },
                  std::make_unique<loopback::LoopbackHub>());        // one Verifier (KV cache) per session
cloud.start();
auto edge_end = cloud.transport_as<loopback::LoopbackHub>().connect();  // an edge end of the server's hub
EdgeSession edge(std::make_unique<LmDrafter>(std::make_unique<llama::LlamaModel>(draft, lp)), std::move(edge_end));

GenerateParams gp;                        // mode picospec, gamma 4, depth 1 by default
gp.sampling.temperature = 0.8f;           // checked locally: NaN, negative, top_p 0 ... throw before anything is sent
gp.seed = 42;
gp.max_tokens = 64;
auto tok = target->tokenizer();
auto prompt = tok->encode("Once upon a time", /*add_bos=*/true);
std::string text;
Token prev = prompt.back();               // on_token runs as tokens commit, in order
auto result = edge.generate(prompt, gp, [&](Token t) {
  const std::string piece = tok->token_to_text(t, prev);   // a token's text depends on the one before (spaces)
  std::fputs(piece.c_str(), stdout);
  std::fflush(stdout);
  text += piece;
  prev = t;
});
std::puts(result.metrics.to_json().c_str());   // tokens/s, acceptance, bytes up/down, ...
  // ---- end README snippet ----
  cloud.stop();
  return Outcome{result, prompt, text, tok};
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
  Outcome out;
  REQUIRE_NOTHROW(out = readme_example());
  const picospec::GenerateResult& r = out.result;
  fs::current_path(old_cwd);
  fs::remove_all(dir);
  CHECK(r.tokens.size() <= 64u);
  CHECK(!r.tokens.empty());
  CHECK(r.metrics.tokens == r.tokens.size());
  CHECK(r.metrics.mode == "picospec");
  CHECK(r.metrics.bytes_up > 0);
  CHECK(r.metrics.bytes_down > 0);
  // The streamed text is the whole decode of prompt + output after the prompt's text (spaces included).
  std::vector<picospec::Token> all = out.prompt;
  all.insert(all.end(), r.tokens.begin(), r.tokens.end());
  const std::string whole = out.tok->decode(all), head = out.tok->decode(out.prompt);
  REQUIRE(whole.compare(0, head.size(), head) == 0);
  CHECK(out.text == whole.substr(head.size()));
}

TEST_CASE("streaming with token_to_text(t, prev) keeps the spaces that per-token decode drops", "[integration]") {
  // A hand-made SentencePiece vocabulary (not the library's test models): pieces with U+2581 start a word.
  using picospec::Token;
  const std::string sp = "\xE2\x96\x81";  // U+2581
  std::vector<std::string> pieces{"<unk>", "<s>", "</s>", sp + "Once", sp + "upon", sp + "a", sp + "time", ",", "ly"};
  const std::vector<std::int32_t> types{2, 3, 3, 1, 1, 1, 1, 1, 1};  // unknown, control, control, normal...
  const picospec::llama::Tokenizer tok(pieces, std::vector<float>(pieces.size(), 0.0f), types, 1, 2, 0);
  const std::vector<Token> prompt{1, 3, 4};     // <s> Once upon
  const std::vector<Token> output{5, 6, 8, 7};  // " a" " time" "ly" ","
  std::string streamed, alone;
  Token prev = prompt.back();
  for (Token t : output) {
    streamed += tok.token_to_text(t, prev);
    prev = t;
    alone += tok.decode(std::vector<Token>{t});
  }
  CHECK(streamed == " a timely,");
  CHECK(alone == "atimely,");                // what per-token decode gives: every word glued
  CHECK(tok.decode(output) == "a timely,");  // and decode(output) loses the first space
  std::vector<Token> all = prompt;
  all.insert(all.end(), output.begin(), output.end());
  CHECK(tok.decode(all) == "Once upon a timely,");
}
