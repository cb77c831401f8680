#include "picospec/llama/random_model.hpp"

#include <cmath>
#include <string>
#include <vector>

#include "picospec/llama/gguf.hpp"

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

void add_synthetic_vocab(GgufWriter& w, std::uint32_t vocab_size);

}  // namespace

bool q4_k_m_more_bits(std::uint32_t i, std::uint32_t n) noexcept {
  return i < n / 8 || i >= 7 * n / 8 || (i >= n / 8 && (i - n / 8) % 3 == 2);
}

GgufWriter random_llama_gguf(const RandomLlamaSpec& s) {
  if (s.arch != "llama" && s.arch != "qwen3") throw Error("random_llama_gguf: arch must be 'llama' or 'qwen3'");
  if (s.tokenizer_from == nullptr && s.vocab_size < 260) throw Error("random_llama_gguf: vocab_size must be >= 260");
  if (s.n_heads == 0 || s.n_kv_heads == 0 || s.n_heads % s.n_kv_heads != 0 ||
      (s.head_dim == 0 && s.dim % s.n_heads != 0))
    throw Error("random_llama_gguf: dim must divide by n_heads (unless head_dim is set) and n_heads by n_kv_heads");
  const std::uint32_t hd = s.head_dim != 0 ? s.head_dim : s.dim / s.n_heads;
  const std::uint32_t qd = s.n_heads * hd;
  const std::uint32_t kv = s.n_kv_heads * hd;
  SplitMix rng{s.seed};
  GgufWriter w(s.gguf_version);
  const std::string a = s.arch;
  w.add_string("general.architecture", a);
  w.add_string("general.name", "random-" + a);
  w.add_u32(a + ".context_length", s.context_length);
  w.add_u32(a + ".embedding_length", s.dim);
  w.add_u32(a + ".feed_forward_length", s.ffn_dim);
  w.add_u32(a + ".block_count", s.n_layers);
  w.add_u32(a + ".attention.head_count", s.n_heads);
  w.add_u32(a + ".attention.head_count_kv", s.n_kv_heads);
  if (s.head_dim != 0) {
    w.add_u32(a + ".attention.key_length", hd);
    w.add_u32(a + ".attention.value_length", hd);
  }
  w.add_u32(a + ".rope.dimension_count", s.rope_dim != 0 ? s.rope_dim : hd);
  w.add_f32(a + ".rope.freq_base", s.rope_base);
  w.add_f32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);

  if (s.tokenizer_from != nullptr) {
    const GgufFile& f = *s.tokenizer_from;
    if (!f.has("tokenizer.ggml.tokens") || f.get_array("tokenizer.ggml.tokens").items.size() != s.vocab_size)
      throw Error("random_llama_gguf: tokenizer_from's token count differs from vocab_size");
    for (const auto& [key, value] : f.metadata())
      if (key.starts_with("tokenizer.")) w.add(key, value);
  } else {
    add_synthetic_vocab(w, s.vocab_size);
  }

  auto type_of = [&](const std::string& name, std::uint32_t layer) {
    if (!s.q4_k_m) return s.type;
    // The output matrix gets Q6_K; with tied embeddings that is token_embd (llama-quantize does the same).
    if (name == "output.weight" || (name == "token_embd.weight" && s.tied_output)) return GgmlType::q6_k;
    if ((name == "attn_v.weight" || name == "ffn_down.weight") && q4_k_m_more_bits(layer, s.n_layers))
      return GgmlType::q6_k;
    return GgmlType::q4_k;
  };
  auto mat = [&](const std::string& name, std::uint32_t cols, std::uint32_t rows, GgmlType t) {
    const float scale = 1.0f / std::sqrt(static_cast<float>(cols));
    w.add_tensor(name, {cols, rows}, t, random_values(rng, static_cast<std::size_t>(cols) * rows, scale));
  };
  auto vec = [&](const std::string& name, std::uint32_t n) {
    auto v = random_values(rng, n, 0.1f);
    for (auto& x : v) x += 1.0f;
    w.add_tensor(name, {n}, GgmlType::f32, v);
  };
  auto norm = [&](const std::string& name) { vec(name, s.dim); };
  {
    const auto v = random_values(rng, static_cast<std::size_t>(s.dim) * s.vocab_size, 1.0f);
    w.add_tensor("token_embd.weight", {s.dim, s.vocab_size}, type_of("token_embd.weight", 0), v);
  }
  norm("output_norm.weight");
  if (!s.tied_output) mat("output.weight", s.dim, s.vocab_size, type_of("output.weight", 0));
  for (std::uint32_t l = 0; l < s.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    mat(p + "attn_q.weight", s.dim, qd, type_of("attn_q.weight", l));
    mat(p + "attn_k.weight", s.dim, kv, type_of("attn_k.weight", l));
    mat(p + "attn_v.weight", s.dim, kv, type_of("attn_v.weight", l));
    mat(p + "attn_output.weight", qd, s.dim, type_of("attn_output.weight", l));
    if (s.arch == "qwen3") {
      vec(p + "attn_q_norm.weight", hd);
      vec(p + "attn_k_norm.weight", hd);
    }
    norm(p + "attn_norm.weight");
    mat(p + "ffn_gate.weight", s.dim, s.ffn_dim, type_of("ffn_gate.weight", l));
    mat(p + "ffn_down.weight", s.ffn_dim, s.dim, type_of("ffn_down.weight", l));
    mat(p + "ffn_up.weight", s.dim, s.ffn_dim, type_of("ffn_up.weight", l));
    norm(p + "ffn_norm.weight");
  }
  return w;
}

namespace {

// Vocabulary: <unk> <s> </s>, 256 byte tokens, U+2581, then letters and synthetic pieces.
void add_synthetic_vocab(GgufWriter& w, std::uint32_t vocab_size) {
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
  for (std::uint32_t i = 0; tokens.size() < vocab_size; ++i) {
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
}

}  // namespace

}  // namespace picospec::llama
