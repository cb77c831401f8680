#include "picospec/llama/random_model.hpp"

#include <cmath>
#include <string>
#include <vector>

namespace picospec::llama {

namespace {

struct SplitMix {
  std::uint64_t s;
  std::uint64_t next() noexcept {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform() noexcept { return static_cast<float>(next() >> 40) * 0x1p-24f; }  // [0,1)
};

std::vector<float> random_values(SplitMix& rng, std::size_t n, float scale) {
  std::vector<float> v(n);
  for (auto& x : v) x = (2.0f * rng.uniform() - 1.0f) * scale;
  return v;
}

}  // namespace

GgufWriter random_llama_gguf(const RandomLlamaSpec& s) {
  if (s.vocab_size < 260) throw Error("random_llama_gguf: vocab_size must be >= 260");
  if (s.n_heads == 0 || s.dim % s.n_heads != 0 || s.n_kv_heads == 0 || s.n_heads % s.n_kv_heads != 0)
    throw Error("random_llama_gguf: dim must divide by n_heads and n_heads by n_kv_heads");
  const std::uint32_t hd = s.dim / s.n_heads;
  const std::uint32_t kv = s.n_kv_heads * hd;
  SplitMix rng{s.seed};
  GgufWriter w(s.gguf_version);
  w.add_string("general.architecture", "llama");
  w.add_string("general.name", "random-llama");
  w.add_u32("llama.context_length", s.context_length);
  w.add_u32("llama.embedding_length", s.dim);
  w.add_u32("llama.feed_forward_length", s.ffn_dim);
  w.add_u32("llama.block_count", s.n_layers);
  w.add_u32("llama.attention.head_count", s.n_heads);
  w.add_u32("llama.attention.head_count_kv", s.n_kv_heads);
  w.add_u32("llama.rope.dimension_count", s.rope_dim != 0 ? s.rope_dim : hd);
  w.add_f32("llama.rope.freq_base", s.rope_base);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);

  // Vocabulary: <unk> <s> </s>, 256 byte tokens, U+2581, then letters and synthetic pieces.
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<std::int32_t> types = {2, 3, 3};
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
    types.push_back(6);
  }
  const std::string sp = "\xE2\x96\x81";
  tokens.push_back(sp);
  types.push_back(1);
  for (std::uint32_t i = 0; tokens.size() < s.vocab_size; ++i) {
    std::string p = (i % 2 == 0) ? sp : std::string();
    for (std::uint32_t k = i / 2 + 1; k > 0; k /= 27) p.push_back(static_cast<char>('a' + (k % 27 == 0 ? 0 : k % 27 - 1)));
    tokens.push_back(p + "#" + std::to_string(i));  // unique
    types.push_back(1);
  }
  std::vector<float> scores(tokens.size());
  for (std::size_t i = 0; i < scores.size(); ++i) scores[i] = types[i] == 1 ? -static_cast<float>(i) : 0.0f;
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_f32_array("tokenizer.ggml.scores", scores);
  w.add_i32_array("tokenizer.ggml.token_type", types);
  w.add_u32("tokenizer.ggml.unknown_token_id", 0);
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);

  auto mat = [&](const std::string& name, std::uint32_t cols, std::uint32_t rows, GgmlType t) {
    const auto v = random_values(rng, static_cast<std::size_t>(cols) * rows, 1.0f / std::sqrt(static_cast<float>(cols)));
    w.add_tensor(name, {cols, rows}, t, v);
  };
  auto norm = [&](const std::string& name) {
    auto v = random_values(rng, s.dim, 0.1f);
    for (auto& x : v) x += 1.0f;
    w.add_tensor(name, {s.dim}, GgmlType::f32, v);
  };
  {
    const auto v = random_values(rng, static_cast<std::size_t>(s.dim) * s.vocab_size, 1.0f);
    w.add_tensor("token_embd.weight", {s.dim, s.vocab_size}, s.type, v);
  }
  norm("output_norm.weight");
  if (!s.tied_output) mat("output.weight", s.dim, s.vocab_size, s.type);
  for (std::uint32_t l = 0; l < s.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    mat(p + "attn_q.weight", s.dim, s.dim, s.type);
    mat(p + "attn_k.weight", s.dim, kv, s.type);
    mat(p + "attn_v.weight", s.dim, kv, s.type);
    mat(p + "attn_output.weight", s.dim, s.dim, s.type);
    norm(p + "attn_norm.weight");
    mat(p + "ffn_gate.weight", s.dim, s.ffn_dim, s.type);
    mat(p + "ffn_down.weight", s.ffn_dim, s.dim, s.type);
    mat(p + "ffn_up.weight", s.dim, s.ffn_dim, s.type);
    norm(p + "ffn_norm.weight");
  }
  return w;
}

}  // namespace picospec::llama
