// Randomized robustness: >= 10^4 truncated or mutated copies of a small GGUF model (written by the test itself)
// are parsed and loaded as a model. Each must either load or throw picospec::Error (DecodeError included) —
// never crash, hang, read out of bounds (run under ASan/UBSan) or throw anything else. Models that do load must
// run a forward pass.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>

#include "picospec/llama/gguf.hpp"
#include "picospec/llama/gguf_writer.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

enum class Outcome { loaded, rejected };

Outcome try_load(const std::vector<std::uint8_t>& bytes) {
  try {
    auto w = LlamaWeights::from_gguf(GgufFile::from_bytes(bytes, "mutant.gguf"));
    LlamaModel m(w, {.threads = 1, .context_length = 8});
    LogitRows rows;
    const Token toks[2] = {1, static_cast<Token>(m.info().vocab_size - 1)};
    m.forward(toks, rows);
    return Outcome::loaded;
  } catch (const Error&) {
    return Outcome::rejected;
  }
}

}  // namespace

TEST_CASE("10^4 truncated and mutated GGUF files load or fail cleanly", "[gguf][robust]") {
  RandomLlamaSpec spec;
  spec.vocab_size = 260;
  spec.dim = 32;
  spec.ffn_dim = 32;
  spec.n_layers = 1;
  spec.n_heads = 2;
  spec.n_kv_heads = 1;
  spec.type = GgmlType::q8_0;
  const auto good = random_llama_gguf(spec).bytes();
  REQUIRE(try_load(good) == Outcome::loaded);

  // Locate the header end so mutations focus where parsing happens (and some hit the data too).
  const auto header_end = static_cast<std::size_t>(GgufFile::from_bytes(good).data_offset());

  std::mt19937_64 rng(20240611);
  std::size_t loaded = 0, rejected = 0;
  const int kCases = 10000;
  for (int c = 0; c < kCases; ++c) {
    std::vector<std::uint8_t> m = good;
    const int kind = c % 4;
    if (kind == 0) {  // truncation anywhere
      m.resize(std::uniform_int_distribution<std::size_t>(0, good.size() - 1)(rng));
    } else {
      const int n_mut = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < n_mut; ++k) {
        const std::size_t limit = (kind == 3) ? m.size() : header_end;  // mostly header bytes
        const std::size_t pos = std::uniform_int_distribution<std::size_t>(0, limit - 1)(rng);
        if (kind == 1) {
          m[pos] = static_cast<std::uint8_t>(rng());
        } else {  // set a whole 8-byte field to an extreme value (lengths, counts, offsets, dims)
          static const std::uint64_t extremes[] = {0, 1, 0xFFFFFFFFull, 0xFFFFFFFFFFFFFFFFull, 0x8000000000000000ull,
                                                   0x100000000ull, 1ull << 40, 13};
          const std::uint64_t v = extremes[rng() % 8];
          for (std::size_t b = 0; b < 8 && pos + b < m.size(); ++b) m[pos + b] = static_cast<std::uint8_t>(v >> (8 * b));
        }
      }
    }
    if (try_load(m) == Outcome::loaded) ++loaded; else ++rejected;
  }
  WARN("loaded " << loaded << ", rejected " << rejected);
  CHECK(loaded + rejected == static_cast<std::size_t>(kCases));
  CHECK(rejected > static_cast<std::size_t>(kCases) / 2);  // the mutations do hit validation
}

namespace {

// A qwen3-style file with what issue 11 added: byte-level BPE metadata (merges, pre-tokenizer name), key_length,
// RoPE scaling keys, per-head Q/K norms, Q/K/V biases, rope_freqs, and Q4_0 / Q4_K / Q5_K / Q6_K tensors.
std::vector<std::uint8_t> qwen_like_file() {
  GgufWriter w;
  w.add_string("general.architecture", "qwen3");
  w.add_u32("qwen3.context_length", 64);
  w.add_u32("qwen3.embedding_length", 256);
  w.add_u32("qwen3.feed_forward_length", 64);
  w.add_u32("qwen3.block_count", 1);
  w.add_u32("qwen3.attention.head_count", 2);
  w.add_u32("qwen3.attention.head_count_kv", 1);
  w.add_u32("qwen3.attention.key_length", 64);
  w.add_u32("qwen3.attention.value_length", 64);
  w.add_f32("qwen3.rope.freq_base", 1000000.0f);
  w.add_f32("qwen3.attention.layer_norm_rms_epsilon", 1e-6f);
  w.add_string("qwen3.rope.scaling.type", "linear");
  w.add_f32("qwen3.rope.scaling.factor", 2.0f);
  std::vector<std::string> tokens;
  std::vector<std::int32_t> types;
  int next = 256;
  for (int b = 0; b < 256; ++b) {  // GPT-2 byte alphabet
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const int cp = printable ? b : next++;
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    tokens.push_back(s);
    types.push_back(1);
  }
  for (const char* t : {"he", "ll", "hell", "<|im_end|>"}) tokens.emplace_back(t);
  types.insert(types.end(), {1, 1, 1, 3});
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", "qwen2");
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_i32_array("tokenizer.ggml.token_type", types);
  w.add_string_array("tokenizer.ggml.merges", {"h e", "l l", "he ll"});
  w.add_u32("tokenizer.ggml.eos_token_id", 259);
  w.add_bool("tokenizer.ggml.add_bos_token", false);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 0.5f);
  auto values = [&](std::size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng);
    return v;
  };
  auto ones = [](std::size_t n) { return std::vector<float>(n, 1.0f); };
  w.add_tensor("token_embd.weight", {256, 260}, GgmlType::q4_k, values(256 * 260));
  w.add_tensor("output_norm.weight", {256}, GgmlType::f32, ones(256));
  w.add_tensor("rope_freqs.weight", {32}, GgmlType::f32, ones(32));
  w.add_tensor("blk.0.attn_norm.weight", {256}, GgmlType::f32, ones(256));
  w.add_tensor("blk.0.ffn_norm.weight", {256}, GgmlType::f32, ones(256));
  w.add_tensor("blk.0.attn_q.weight", {256, 128}, GgmlType::q4_k, values(256 * 128));
  w.add_tensor("blk.0.attn_k.weight", {256, 64}, GgmlType::q6_k, values(256 * 64));
  w.add_tensor("blk.0.attn_v.weight", {256, 64}, GgmlType::q5_k, values(256 * 64));
  w.add_tensor("blk.0.attn_q.bias", {128}, GgmlType::f32, values(128));
  w.add_tensor("blk.0.attn_k.bias", {64}, GgmlType::f32, values(64));
  w.add_tensor("blk.0.attn_v.bias", {64}, GgmlType::f32, values(64));
  w.add_tensor("blk.0.attn_q_norm.weight", {64}, GgmlType::f32, ones(64));
  w.add_tensor("blk.0.attn_k_norm.weight", {64}, GgmlType::f32, ones(64));
  w.add_tensor("blk.0.attn_output.weight", {128, 256}, GgmlType::q4_0, values(128 * 256));
  w.add_tensor("blk.0.ffn_gate.weight", {256, 64}, GgmlType::q4_k, values(256 * 64));
  w.add_tensor("blk.0.ffn_up.weight", {256, 64}, GgmlType::q6_k, values(256 * 64));
  w.add_tensor("blk.0.ffn_down.weight", {64, 256}, GgmlType::q4_0, values(64 * 256));
  return w.bytes();
}

}  // namespace

TEST_CASE("mutated qwen3 / BPE / K-quant GGUF files load or fail cleanly", "[gguf][robust]") {
  const auto good = qwen_like_file();
  REQUIRE(try_load(good) == Outcome::loaded);
  {
    const auto w = LlamaWeights::from_gguf(GgufFile::from_bytes(good));
    REQUIRE(w->tokenizer());
    CHECK(w->tokenizer()->kind() == TokenizerKind::bpe);
    CHECK(w->hparams().head_dim == 64);
    CHECK(w->hparams().qk_norm);
    CHECK(w->hparams().qkv_bias);
    CHECK(w->hparams().rope_freq_factors);
    CHECK(w->hparams().rope_freq_scale == 0.5f);
  }
  const auto header_end = static_cast<std::size_t>(GgufFile::from_bytes(good).data_offset());
  std::mt19937_64 rng(20261202);
  std::size_t loaded = 0, rejected = 0;
  const int kCases = 4000;
  for (int c = 0; c < kCases; ++c) {
    std::vector<std::uint8_t> m = good;
    const int kind = c % 4;
    if (kind == 0) {
      m.resize(std::uniform_int_distribution<std::size_t>(0, good.size() - 1)(rng));
    } else {
      const int n_mut = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < n_mut; ++k) {
        const std::size_t limit = (kind == 3) ? m.size() : header_end;
        const std::size_t pos = std::uniform_int_distribution<std::size_t>(0, limit - 1)(rng);
        if (kind == 1) {
          m[pos] = static_cast<std::uint8_t>(rng());
        } else {
          static const std::uint64_t extremes[] = {0, 1, 0xFFFFFFFFull, 0xFFFFFFFFFFFFFFFFull, 0x8000000000000000ull,
                                                   0x100000000ull, 1ull << 40, 13};
          const std::uint64_t v = extremes[rng() % 8];
          for (std::size_t b = 0; b < 8 && pos + b < m.size(); ++b) m[pos + b] = static_cast<std::uint8_t>(v >> (8 * b));
        }
      }
    }
    if (try_load(m) == Outcome::loaded) ++loaded; else ++rejected;
  }
  WARN("qwen3/BPE/K-quant file: loaded " << loaded << ", rejected " << rejected);
  CHECK(loaded + rejected == static_cast<std::size_t>(kCases));
  CHECK(rejected > static_cast<std::size_t>(kCases) / 2);
}
