#pragma once
// Helpers shared by the LlamaModel tests (test_model.cpp, test_q8.cpp): random models written in memory, random
// token streams, chunked runs and bit-for-bit comparison of logits.
#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <vector>

#include "picospec/llama/gguf.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"

namespace picospec::llama::test {

inline std::shared_ptr<const LlamaWeights> weights_for(const RandomLlamaSpec& s,
                                                       WeightFormat f = WeightFormat::native) {
  return LlamaWeights::from_gguf(GgufFile::from_bytes(random_llama_gguf(s).bytes(), "random.gguf"), f);
}

inline std::vector<Token> random_tokens(std::size_t n, std::uint32_t vocab, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Token> t(n);
  for (auto& x : t) x = static_cast<Token>(rng() % vocab);
  return t;
}

/// Runs `tokens` through a fresh model in chunks of `chunk` and returns all logits rows concatenated.
/// q8: LlamaParams::q8_activations (unset: the default, the integer path).
inline std::vector<float> run_chunked(const std::shared_ptr<const LlamaWeights>& w, const std::vector<Token>& tokens,
                                      std::size_t chunk, std::size_t threads,
                                      std::optional<bool> q8 = std::nullopt) {
  LlamaModel m(w, {.threads = threads, .q8_activations = q8});
  std::vector<float> all;
  LogitRows rows;
  for (std::size_t i = 0; i < tokens.size(); i += chunk) {
    const std::size_t n = std::min(chunk, tokens.size() - i);
    m.forward(std::span<const Token>(tokens).subspan(i, n), rows);
    all.insert(all.end(), rows.data(), rows.data() + rows.rows() * rows.vocab());
  }
  return all;
}

inline bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace picospec::llama::test
