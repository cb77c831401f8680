// stories260K against the independent NumPy reference (tests/llama/reference_forward.py) and against the greedy
// text llama2.c's author published for this model.
//
// The golden file tests/llama/golden/stories260K.json was produced by:
//   python3 tests/llama/reference_forward.py --model ../shared/models/stories260K.gguf --steps 200 --rows 4
//       --prompt-ids 1,403,407,261,378 --out tests/llama/golden/stories260K.json
// The ctest `llama_reference_live` reruns the script and points this binary at its fresh output through the
// PICOSPEC_LLAMA_GOLDEN environment variable.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "picospec/llama/model.hpp"
#include "support/shared.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

nlohmann::json golden() {
  const char* env = std::getenv("PICOSPEC_LLAMA_GOLDEN");
  const std::string path = env != nullptr ? env : PICOSPEC_LLAMA_GOLDEN_DIR "/stories260K.json";
  std::ifstream f(path);
  REQUIRE(f.good());
  return nlohmann::json::parse(f);
}

double max_abs_diff(std::span<const float> a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// Greedy output of llama2.c's `run stories260K.bin -z tok512.bin -t 0.0` as published with the model
// (karpathy/tinyllamas, stories260K/readme.md). Our 200 tokens must be a prefix of it.
const char* kLlama2cGreedy =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a "
    "big, red ball. She wanted to play with it, but it was too high.\nLily's mom said, \"Lily, let's go to the "
    "park.\" Lily was sad and didn't know what to do. She said, \"I want to play with your ball, but I can't find "
    "it.\"\nLily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to do.\"\nLily "
    "didn't want to help her mom, so she said, \"I'm sorry, mom. I didn't know what to do.\" Her mom said, \"Don't "
    "worry, Lily. We can help you.";

}  // namespace

TEST_CASE("stories260K logits match the NumPy reference to 1e-4", "[reference]") {
  const auto g = golden();
  auto m = LlamaModel::load(test::shared_model("stories260K.gguf").string(), {.threads = 2});
  const Token bos = g["bos"].get<Token>();
  const auto greedy = g["greedy"].get<std::vector<Token>>();
  const auto rows = g["logits"].get<std::vector<std::vector<double>>>();
  // One token at a time, as the reference does: position i sees bos, greedy[0..i-1].
  LogitRows out;
  std::vector<Token> seq = {bos};
  seq.insert(seq.end(), greedy.begin(), greedy.end());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    m->forward(std::span<const Token>(&seq[i], 1), out);
    INFO("position " << i);
    CHECK(max_abs_diff(out.row(0), rows[i]) < 1e-4);
  }
  // The same positions as one chunk (prompt processing) against the reference's prompt rows.
  if (g.contains("prompt_logits")) {
    const auto ids = g["prompt_ids"].get<std::vector<Token>>();
    const auto prow = g["prompt_logits"].get<std::vector<std::vector<double>>>();
    m->reset();
    m->forward(ids, out);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      INFO("prompt position " << i);
      CHECK(max_abs_diff(out.row(i), prow[i]) < 1e-4);
    }
  }
}

TEST_CASE("stories260K greedy 200 tokens from BOS equals the reference and llama2.c's text", "[reference]") {
  const auto g = golden();
  auto m = LlamaModel::load(test::shared_model("stories260K.gguf").string(), {.threads = 1});
  const auto want = g["greedy"].get<std::vector<Token>>();
  std::vector<Token> got;
  LogitRows out;
  Token tok = m->info().bos;
  for (std::size_t i = 0; i < want.size(); ++i) {
    m->forward(std::span<const Token>(&tok, 1), out);
    const auto row = out.row(0);
    tok = static_cast<Token>(std::max_element(row.begin(), row.end()) - row.begin());
    got.push_back(tok);
  }
  CHECK(got == want);
  const std::string text = m->tokenizer()->decode(got);
  CHECK(text == g["text"].get<std::string>());
  CHECK(std::string(kLlama2cGreedy).rfind(text, 0) == 0);  // a prefix of llama2.c's published output
}
