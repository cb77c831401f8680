// Q4_0, Q4_K, Q5_K, Q6_K: ggml's block layouts and values, picospec's quantizer, and models that use them.
//
//  - golden blocks (tests/llama/golden/ggml_quant_blocks.json): seeded random blocks dequantized by llama.cpp's
//    gguf-py quants.py (the NumPy port of ggml's dequantize_row_*; source and commit in the file): picospec's
//    values must be bit-identical
//  - quantize -> dequantize of Gaussian rows stays within each type's error (relative RMS bounds below)
//  - a random 256-wide model in Q6_K, Q4_K_M (Q4_K with Q6_K for output, attn_v, ffn_down, as llama-quantize's
//    Q4_K_M) and Q4_0 stays within the expected error of its F32 logits; the error ordering is Q6_K < Q4_K_M < Q4_0
//  - native (dequantize per row) and WeightFormat::f32 (dequantize at load) give bit-identical logits
//  - greedy speculative decoding (F32 draft, Q4_K_M target) equals the Q4_K_M target alone, token for token
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>

#include <nlohmann/json.hpp>

#include "picospec/cloud_server.hpp"
#include "picospec/edge_session.hpp"
#include "picospec/llama/gguf.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"
#include "picospec/lm_adapters.hpp"
#include "picospec/loopback/loopback.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

std::vector<std::uint8_t> from_hex(const std::string& h) {
  std::vector<std::uint8_t> out(h.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::uint8_t>(std::stoi(h.substr(2 * i, 2), nullptr, 16));
  return out;
}

GgmlType type_of(const std::string& n) {
  if (n == "q4_0") return GgmlType::q4_0;
  if (n == "q4_k") return GgmlType::q4_k;
  if (n == "q5_k") return GgmlType::q5_k;
  if (n == "q6_k") return GgmlType::q6_k;
  FAIL("unknown type " << n);
  return GgmlType::f32;
}

// The F32 random model and a copy with per-tensor types chosen by `pick` (tensor name -> type).
RandomLlamaSpec spec256() {
  RandomLlamaSpec s;
  s.dim = 256;
  s.ffn_dim = 512;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.n_layers = 2;
  s.vocab_size = 300;
  s.seed = 7;
  return s;
}

template <class Pick>
std::vector<std::uint8_t> requantized(const GgufFile& f32, Pick pick) {
  GgufWriter w;
  for (const auto& [k, v] : f32.metadata())
    if (k != "general.alignment") w.add(k, v);
  for (const auto& t : f32.tensors()) {
    std::vector<float> vals(static_cast<std::size_t>(t.n_elements));
    const std::size_t row = static_cast<std::size_t>(t.dims[0]);
    const auto data = f32.tensor_data(t);
    for (std::size_t r = 0; r < vals.size() / row; ++r)
      dequantize_row(t.type, data.data() + r * row_bytes(t.type, row), vals.data() + r * row, row);
    w.add_tensor(t.name, t.dims, t.dims.size() == 2 ? pick(t.name) : GgmlType::f32, vals);
  }
  return w.bytes();
}

GgmlType q4_k_m(const std::string& name) {
  if (name == "output.weight" || name.find("attn_v") != std::string::npos || name.find("ffn_down") != std::string::npos)
    return GgmlType::q6_k;
  return GgmlType::q4_k;
}

/// q8: LlamaParams::q8_activations (unset: the default, the integer path for Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K).
std::vector<float> logits_of(const std::shared_ptr<const LlamaWeights>& w, const std::vector<Token>& ids,
                             std::optional<bool> q8 = std::nullopt) {
  LlamaModel m(w, {.threads = 1, .q8_activations = q8});
  LogitRows out;
  m.forward(ids, out);
  return {out.data(), out.data() + out.rows() * out.vocab()};
}

double rel_rms(const std::vector<float>& a, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (static_cast<double>(a[i]) - ref[i]) * (static_cast<double>(a[i]) - ref[i]);
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(num / den);
}

std::vector<Token> prompt_ids() {
  std::vector<Token> ids;
  for (int i = 0; i < 24; ++i) ids.push_back(static_cast<Token>(3 + (i * 37) % 290));
  return ids;
}

}  // namespace

TEST_CASE("dequantized blocks are bit-identical to ggml's (gguf-py quants.py goldens)", "[quant]") {
  std::ifstream in(PICOSPEC_LLAMA_GOLDEN_DIR "/ggml_quant_blocks.json");
  REQUIRE(in.good());
  const auto g = nlohmann::json::parse(in);
  std::size_t types = 0;
  for (const auto& t : g["types"]) {
    const GgmlType type = type_of(t["type"]);
    INFO(t["type"].get<std::string>());
    const auto traits = ggml_type_traits(static_cast<std::uint32_t>(type));
    REQUIRE(traits);
    CHECK(traits->block_elems == t["block_elems"].get<std::uint32_t>());
    CHECK(traits->block_bytes == t["block_bytes"].get<std::uint32_t>());
    CHECK(ggml_type_computable(type));
    const auto bytes = from_hex(t["bytes_hex"]);
    const auto want_bytes = from_hex(t["values_f32_hex"]);
    const std::size_t n = want_bytes.size() / 4;
    REQUIRE(bytes.size() == row_bytes(type, n));
    std::vector<float> got(n), want(n);
    std::memcpy(want.data(), want_bytes.data(), want_bytes.size());
    dequantize_row(type, bytes.data(), got.data(), n);
    std::size_t diff = 0;
    for (std::size_t i = 0; i < n; ++i) diff += std::memcmp(&got[i], &want[i], 4) != 0;
    CHECK(diff == 0);
    ++types;
  }
  CHECK(types == 4);
}

TEST_CASE("quantize then dequantize stays within each type's error", "[quant]") {
  struct Case {
    GgmlType type;
    double bound;  // relative RMS error on N(0, 1) rows (measured: see the printed figures)
  };
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(4096), y(4096);
  for (auto& v : x) v = nd(rng);
  double prev = 0;
  for (const Case c : {Case{GgmlType::q6_k, 0.03}, Case{GgmlType::q5_k, 0.06}, Case{GgmlType::q4_k, 0.12},
                       Case{GgmlType::q4_0, 0.15}}) {
    std::vector<std::uint8_t> q(row_bytes(c.type, x.size()));
    quantize_row(c.type, x.data(), q.data(), x.size());
    dequantize_row(c.type, q.data(), y.data(), y.size());
    const double e = rel_rms(y, x);
    std::printf("quantize/dequantize %s: relative RMS error %.4f\n", ggml_type_name(static_cast<std::uint32_t>(c.type)).c_str(), e);
    CHECK(e < c.bound);
    CHECK(e > prev);  // more bits, less error
    prev = e;
    // requantizing what dequantization gave changes nothing beyond rounding of the f16 scales
    std::vector<std::uint8_t> q2(q.size());
    std::vector<float> y2(y.size());
    quantize_row(c.type, y.data(), q2.data(), y.size());
    dequantize_row(c.type, q2.data(), y2.data(), y2.size());
    CHECK(rel_rms(y2, y) < c.bound / 4);
  }
  // all-zero rows stay zero
  std::vector<float> z(256, 0.0f), zo(256, 1.0f);
  for (GgmlType t : {GgmlType::q4_0, GgmlType::q4_k, GgmlType::q5_k, GgmlType::q6_k}) {
    std::vector<std::uint8_t> q(row_bytes(t, 256));
    quantize_row(t, z.data(), q.data(), 256);
    dequantize_row(t, q.data(), zo.data(), 256);
    CHECK(std::all_of(zo.begin(), zo.end(), [](float v) { return v == 0.0f; }));
  }
}

TEST_CASE("quantized models stay within the expected error of the F32 logits", "[quant]") {
  const auto f32_bytes = random_llama_gguf(spec256()).bytes();
  const GgufFile f32 = GgufFile::from_bytes(f32_bytes, "f32.gguf");
  const auto ref_w = LlamaWeights::from_gguf(GgufFile::from_bytes(f32_bytes, "f32.gguf"));
  const auto ids = prompt_ids();
  const auto ref = logits_of(ref_w, ids);
  struct Case {
    const char* name;
    GgmlType (*pick)(const std::string&);
    double bound;
  };
  const Case cases[] = {
      {"Q6_K", [](const std::string&) { return GgmlType::q6_k; }, 0.03},
      {"Q4_K_M", q4_k_m, 0.10},
      {"Q4_0", [](const std::string&) { return GgmlType::q4_0; }, 0.15},
  };
  double prev = 0;
  for (const auto& c : cases) {
    const auto bytes = requantized(f32, c.pick);
    const auto w = LlamaWeights::from_gguf(GgufFile::from_bytes(bytes, c.name));
    const auto got = logits_of(w, ids, false);  // the exact float path
    const auto got_int = logits_of(w, ids);      // the default: 8-bit activations, integer block products
    const double e = rel_rms(got, ref), e_int = rel_rms(got_int, ref), e_paths = rel_rms(got_int, got);
    std::printf("%s model: logits relative RMS error vs F32 %.4f on the float path, %.4f on the integer path "
                "(%.4f between the paths; %zu bytes of weights vs %zu)\n",
                c.name, e, e_int, e_paths, w->weight_bytes(), ref_w->weight_bytes());
    INFO(c.name);
    CHECK(e < c.bound);
    CHECK(e_int < c.bound);
    CHECK(e > prev);
    prev = e;
    // 8-bit activations add little to the weights' own error (measured: 0.005-0.007 between the paths).
    CHECK(e_paths < 0.02);
    CHECK(e_paths > 0.0);
    CHECK(w->weight_bytes() < ref_w->weight_bytes() / 4);
    // Dequantized at load (WeightFormat::f32) = dequantized per row while computing: the same bits.
    const auto wf = LlamaWeights::from_gguf(GgufFile::from_bytes(bytes, c.name), WeightFormat::f32);
    CHECK(logits_of(wf, ids) == got);
  }
}

TEST_CASE("greedy speculative decoding over a Q4_K_M target equals that target alone", "[quant][speculative]") {
  const auto f32_bytes = random_llama_gguf(spec256()).bytes();
  const auto draft = LlamaWeights::from_gguf(GgufFile::from_bytes(f32_bytes, "draft-f32.gguf"));
  const auto target =
      LlamaWeights::from_gguf(GgufFile::from_bytes(requantized(GgufFile::from_bytes(f32_bytes), q4_k_m), "q4km.gguf"));
  loopback::LoopbackParams lp;
  lp.max_frame_bytes = 0;
  auto hub_owner = std::make_unique<loopback::LoopbackHub>(lp);
  auto* hub = hub_owner.get();
  CloudOptions co;
  co.workers = 1;
  CloudServer cloud(
      [target] { return std::make_unique<LmVerifier>(std::make_unique<LlamaModel>(target, LlamaParams{.threads = 1})); },
      std::move(hub_owner), co);
  cloud.start();
  EdgeSession edge(std::make_unique<LmDrafter>(std::make_unique<LlamaModel>(draft, LlamaParams{.threads = 1})),
                   hub->connect());
  std::size_t runs = 0;
  double acc = 0;
  for (int p = 0; p < 4; ++p) {
    std::vector<Token> prompt = {1};
    for (int i = 0; i < 6; ++i) prompt.push_back(static_cast<Token>(3 + (p * 53 + i * 29) % 290));
    GenerateParams gp;
    gp.sampling.temperature = 0.0f;
    gp.max_tokens = 40;
    gp.gamma = 4;
    gp.stop_at_eos = false;
    const auto spec = edge.generate(prompt, gp);
    LlamaModel alone(target, {.threads = 1});
    LogitRows rows;
    alone.forward(prompt, rows);
    std::vector<Token> want;
    for (std::size_t i = 0; i < gp.max_tokens; ++i) {
      const auto r = rows.row(rows.rows() - 1);
      const auto t = static_cast<Token>(std::max_element(r.begin(), r.end()) - r.begin());
      want.push_back(t);
      alone.forward(std::span<const Token>(&t, 1), rows);
    }
    CHECK(spec.tokens == want);
    acc += spec.metrics.acceptance_rate;
    ++runs;
  }
  cloud.stop();
  std::printf("speculative greedy F32 draft -> Q4_K_M target: identical on %zu prompts, mean acceptance %.3f\n", runs,
              acc / static_cast<double>(runs));
}

TEST_CASE("random_llama_gguf's Q4_K_M mix and Qwen3 shape: the tensor types, and batch-invariant logits",
          "[quant]") {
  RandomLlamaSpec s;
  s.arch = "qwen3";
  s.dim = 256;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.head_dim = 64;
  s.ffn_dim = 512;
  s.n_layers = 8;  // Q4_K_M gives more bits to layers 0 and 7 (first / last eighth) and 3, 6 (every third between)
  s.vocab_size = 300;
  s.tied_output = true;
  s.q4_k_m = true;
  s.seed = 11;
  const GgufFile f = GgufFile::from_bytes(random_llama_gguf(s).bytes(), "q4km-qwen3.gguf");
  CHECK(f.tensor("token_embd.weight").type == GgmlType::q6_k);  // the tied output matrix
  CHECK(f.find_tensor("output.weight") == nullptr);
  for (std::uint32_t l = 0; l < s.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const bool more = l == 0 || l == 3 || l == 6 || l == 7;
    INFO("layer " << l);
    CHECK(q4_k_m_more_bits(l, s.n_layers) == more);
    CHECK(f.tensor(p + "attn_v.weight").type == (more ? GgmlType::q6_k : GgmlType::q4_k));
    CHECK(f.tensor(p + "ffn_down.weight").type == (more ? GgmlType::q6_k : GgmlType::q4_k));
    for (const char* t : {"attn_q.weight", "attn_k.weight", "attn_output.weight", "ffn_gate.weight", "ffn_up.weight"})
      CHECK(f.tensor(p + t).type == GgmlType::q4_k);
    CHECK(f.tensor(p + "attn_q_norm.weight").dims == std::vector<std::uint64_t>{64});
  }
  const auto w = LlamaWeights::from_gguf(GgufFile::from_bytes(random_llama_gguf(s).bytes(), "q4km-qwen3.gguf"));
  CHECK(w->hparams().qk_norm);
  CHECK(w->hparams().rope_neox);
  CHECK(w->hparams().head_dim == 64);
  const auto ids = prompt_ids();
  const auto all = logits_of(w, ids);
  // Token by token (and with 2 threads): the same bits as one chunk.
  LlamaModel m(w, {.threads = 2});
  LogitRows rows;
  std::vector<float> one_by_one;
  for (Token t : ids) {
    m.forward(std::span<const Token>(&t, 1), rows);
    one_by_one.insert(one_by_one.end(), rows.data(), rows.data() + rows.vocab());
  }
  CHECK(one_by_one == all);
  for (float x : all) REQUIRE(std::isfinite(x));
}
