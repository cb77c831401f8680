// Llama 3.2-style (llama3 RoPE scaling, tied embeddings), Qwen2.5-style (Q/K/V biases, NEOX rotation) and
// Qwen3-style (per-head Q/K RMSNorm, head size != dim / heads) models against Hugging Face transformers.
//
// tests/llama/golden/hf_tiny/<model>/ holds a randomly initialised (seeded) small checkpoint and golden.json:
// transformers 5.17.0's float32 logits for every position of 16 fixed token ids and its 64-token greedy
// continuation (tools/convert/make_goldens.py, run once on the CPU of the GPU machine). hf_tiny.sh converts the
// checkpoint with tools/convert/hf_to_gguf.py at test time and passes the GGUF in PICOSPEC_HF_GGUF and the golden
// in PICOSPEC_HF_GOLDEN.
//   - logits within 1e-3 (absolute) of transformers' at every position
//   - the same greedy continuation, token for token (64 tokens)
//   - batch invariance: one-at-a-time, chunked and multi-threaded evaluation give bit-identical logits
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "picospec/llama/model.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

nlohmann::json golden() {
  std::ifstream in(env("PICOSPEC_HF_GOLDEN"));
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

std::shared_ptr<const LlamaWeights> weights() {
  const std::string path = env("PICOSPEC_HF_GGUF");
  REQUIRE(!path.empty());
  return LlamaWeights::load(path);
}

Token argmax(std::span<const float> row) {
  return static_cast<Token>(std::max_element(row.begin(), row.end()) - row.begin());
}

}  // namespace

TEST_CASE("logits and greedy continuation equal transformers'", "[hf]") {
  const auto g = golden();
  const auto w = weights();
  const std::string name = g["model"];
  const auto& hp = w->hparams();
  INFO(name << " (arch " << hp.arch << ")");
  if (name == "llama3_tiny") {
    CHECK(hp.arch == "llama");
    CHECK(hp.rope_freq_factors);
    CHECK(hp.tied_output);
    CHECK_FALSE(hp.rope_neox);
  } else if (name == "qwen2_tiny") {
    CHECK(hp.arch == "qwen2");
    CHECK(hp.qkv_bias);
    CHECK(hp.rope_neox);
    CHECK_FALSE(hp.tied_output);
  } else {
    CHECK(hp.arch == "qwen3");
    CHECK(hp.qk_norm);
    CHECK(hp.rope_neox);
    CHECK(hp.tied_output);
    CHECK(hp.head_dim == 32);
    CHECK(hp.head_dim * hp.n_heads != hp.dim);
  }

  const auto ids = g["input_ids"].get<std::vector<Token>>();
  const auto want = g["logits"].get<std::vector<std::vector<double>>>();
  LlamaModel m(w, {.threads = 1});
  LogitRows out;
  m.forward(ids, out);
  REQUIRE(out.rows() == want.size());
  double worst = 0;
  for (std::size_t i = 0; i < out.rows(); ++i)
    for (std::size_t v = 0; v < out.vocab(); ++v)
      worst = std::max(worst, std::fabs(static_cast<double>(out.row(i)[v]) - want[i][v]));
  UNSCOPED_INFO(name << ": max |logit - transformers| = " << worst);
  CHECK(worst <= 1e-3);

  // Greedy: 64 tokens, one decode step at a time after the prompt.
  const auto greedy = g["greedy"].get<std::vector<Token>>();
  std::vector<Token> got;
  Token t = argmax(out.row(out.rows() - 1));
  for (std::size_t k = 0; k < greedy.size(); ++k) {
    got.push_back(t);
    LogitRows one;
    m.forward(std::span<const Token>(&t, 1), one);
    t = argmax(one.row(0));
  }
  CHECK(got == greedy);

  // Batch invariance: token by token with 2 threads, and chunks of 5, give the same bits.
  for (std::size_t chunk : {std::size_t{1}, std::size_t{5}}) {
    LlamaModel m2(w, {.threads = 2});
    std::vector<float> all;
    for (std::size_t i = 0; i < ids.size(); i += chunk) {
      LogitRows r;
      const std::size_t n = std::min(chunk, ids.size() - i);
      m2.forward(std::span<const Token>(ids.data() + i, n), r);
      all.insert(all.end(), r.data(), r.data() + r.rows() * r.vocab());
    }
    REQUIRE(all.size() == out.rows() * out.vocab());
    CHECK(std::equal(all.begin(), all.end(), out.data()));
  }
}
