// Loader rules for the keys and tensors issue 11 added: RoPE scaling keys (linear applied, factor 1 == none,
// YaRN refused), head size from key_length, and incomplete Qwen2/Qwen3 tensor sets refused with the tensor's name.
#include <catch2/catch.hpp>

#include <functional>

#include "picospec/llama/gguf.hpp"
#include "picospec/llama/gguf_writer.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

// A random llama model rewritten: `arch` renames the llama.* keys, `edit` adds keys/tensors, `drop` removes tensors.
std::vector<std::uint8_t> rewrite(const std::string& arch, const std::function<void(GgufWriter&)>& edit,
                                  const std::function<bool(const std::string&)>& drop = {}) {
  RandomLlamaSpec s;
  const auto bytes = random_llama_gguf(s).bytes();
  const GgufFile f = GgufFile::from_bytes(bytes);
  GgufWriter w;
  for (const auto& [k, v] : f.metadata()) {
    if (k == "general.alignment") continue;
    if (k == "general.architecture") {
      w.add_string(k, arch);
    } else if (k.rfind("llama.", 0) == 0) {
      w.add(arch + k.substr(5), v);
    } else {
      w.add(k, v);
    }
  }
  for (const auto& t : f.tensors()) {
    if (drop && drop(t.name)) continue;
    const auto d = f.tensor_data(t);
    w.add_tensor_raw(t.name, t.dims, t.type, std::vector<std::uint8_t>(d.begin(), d.end()));
  }
  edit(w);
  return w.bytes();
}

std::vector<float> logits(const std::vector<std::uint8_t>& bytes, std::size_t n) {
  LlamaModel m(LlamaWeights::from_gguf(GgufFile::from_bytes(bytes, "m.gguf")), {.threads = 1});
  std::vector<Token> ids;
  for (std::size_t i = 0; i < n; ++i) ids.push_back(static_cast<Token>(3 + 11 * i));
  LogitRows out;
  m.forward(ids, out);
  return {out.data(), out.data() + out.rows() * out.vocab()};
}

std::string error_of(const std::vector<std::uint8_t>& bytes) {
  try {
    (void)LlamaWeights::from_gguf(GgufFile::from_bytes(bytes, "m.gguf"));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("RoPE scaling keys: linear applied, YaRN refused", "[model][arch]") {
  const auto plain = rewrite("llama", [](GgufWriter&) {});
  const auto lin1 = rewrite("llama", [](GgufWriter& w) {
    w.add_string("llama.rope.scaling.type", "linear");
    w.add_f32("llama.rope.scaling.factor", 1.0f);
  });
  const auto lin4 = rewrite("llama", [](GgufWriter& w) {
    w.add_string("llama.rope.scaling.type", "linear");
    w.add_f32("llama.rope.scaling.factor", 4.0f);
  });
  CHECK(LlamaWeights::from_gguf(GgufFile::from_bytes(lin4))->hparams().rope_freq_scale == 0.25f);
  const auto a = logits(plain, 6), b = logits(lin1, 6), c = logits(lin4, 6);
  CHECK(a == b);
  const std::size_t vocab = a.size() / 6;
  CHECK(std::equal(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(vocab), c.begin()));  // position 0: no rotation
  CHECK(a != c);
  CHECK_THAT(error_of(rewrite("llama", [](GgufWriter& w) { w.add_string("llama.rope.scaling.type", "yarn"); })),
             Catch::Contains("llama.rope.scaling.type") && Catch::Contains("yarn"));
  CHECK_THAT(error_of(rewrite("llama", [](GgufWriter& w) {
               w.add_string("llama.rope.scaling.type", "linear");
               w.add_f32("llama.rope.scaling.factor", 0.5f);
             })),
             Catch::Contains("llama.rope.scaling.factor"));
}

TEST_CASE("qwen2 / qwen3 files: keys under their own prefix, NEOX rotation, incomplete tensor sets refused",
          "[model][arch]") {
  const auto q2 = rewrite("qwen2", [](GgufWriter&) {});
  const auto w2 = LlamaWeights::from_gguf(GgufFile::from_bytes(q2));
  CHECK(w2->hparams().arch == "qwen2");
  CHECK(w2->hparams().rope_neox);
  CHECK_FALSE(w2->hparams().qkv_bias);
  // same weights, NEOX instead of interleaved rotation: different logits after position 0
  const auto a = logits(rewrite("llama", [](GgufWriter&) {}), 4), b = logits(q2, 4);
  const std::size_t vocab = a.size() / 4;
  CHECK(std::equal(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(vocab), b.begin()));
  CHECK(a != b);
  // a bias for Q only: the missing K bias is named
  CHECK_THAT(error_of(rewrite("qwen2", [](GgufWriter& w) {
               w.add_tensor("blk.0.attn_q.bias", {64}, GgmlType::f32, std::vector<float>(64, 0.0f));
             })),
             Catch::Contains("blk.0.attn_k.bias"));
  // qwen3 Q norm without K norm
  CHECK_THAT(error_of(rewrite("qwen3", [](GgufWriter& w) {
               w.add_tensor("blk.0.attn_q_norm.weight", {16}, GgmlType::f32, std::vector<float>(16, 1.0f));
             })),
             Catch::Contains("blk.0.attn_k_norm.weight"));
  // key_length that disagrees with the projections' shapes, and with value_length
  CHECK_THAT(error_of(rewrite("qwen3", [](GgufWriter& w) { w.add_u32("qwen3.attention.key_length", 32); })),
             Catch::Contains("blk.0.attn_q.weight"));
  CHECK_THAT(error_of(rewrite("qwen3", [](GgufWriter& w) {
               w.add_u32("qwen3.attention.key_length", 16);
               w.add_u32("qwen3.attention.value_length", 32);
             })),
             Catch::Contains("qwen3.attention.value_length"));
  CHECK(LlamaWeights::from_gguf(GgufFile::from_bytes(rewrite("qwen3", [](GgufWriter& w) {
          w.add_u32("qwen3.attention.key_length", 16);
        })))->hparams().head_dim == 16);
  // rope_freqs of the wrong length
  CHECK_THAT(error_of(rewrite("llama", [](GgufWriter& w) {
               w.add_tensor("rope_freqs.weight", {4}, GgmlType::f32, std::vector<float>(4, 1.0f));
             })),
             Catch::Contains("rope_freqs.weight"));
}
