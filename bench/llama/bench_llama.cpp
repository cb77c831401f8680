// bench_llama: prompt processing and decode throughput of the LLaMA backend, and the cost of verifying a chunk
// of 5 tokens relative to decoding one token (measured in the same loop and reported as `ratio`).
//
// Baseline in the same run: before each picospec benchmark, the same figure for PlainLlama (plain_llama.hpp: a
// plain one-thread reference loop over the same file, weights dequantized to F32) is measured as `.../plain`;
// the picospec rows then print `x_plain` (prefill), `decode_x_plain` and `verify5_x_plain`: how many times faster
// picospec is. `max_abs_diff` on the plain rows is the largest logit difference between the two on the verify chunk
// (a check that both compute the same function). All times are wall-clock (UseRealTime).
//
// Models: the two shared GGUF models (rows skipped visibly when ../shared is absent) and a larger random model
// written by the bench itself (dim 512, 8 layers, 8 heads / 4 KV heads, ffn 1376, vocab 32000) in F32, in Q8_0
// computed directly from the file (the integer path, the default; and `random512x8_q8_0_floatpath`, the exact float
// path, LlamaParams::q8_activations = false, against the same file's plain baseline), and in Q8_0 dequantized to
// F32 at load; and a Qwen3-shaped random model (qwen3
// architecture with Qwen3-0.6B's widths: dim 1024, 16 heads / 8 KV heads of 128, ffn 3072, vocab 151936, tied
// embeddings, but 4 layers instead of 28) in F32 and in llama-quantize's Q4_K_M mix (Q4_K, Q6_K for the tied
// output/embedding matrix and for attn_v / ffn_down on the layers Q4_K_M gives more bits); and a LLaMA model with
// widths that K-quants take (dim 1024, 8 layers, 16 heads / 8 KV heads, ffn 2816, vocab 32000) in the Q4_K_M mix,
// on the integer path (the default) and on the exact float path (`random1024x8_q4_k_m_floatpath`): a file
// llama.cpp reads too (/tmp/picospec_bench_llama_1024x8_q4_k_m.gguf; bench/llama/wall_vs_llama_bench.sh).
//
//   bench_llama [--benchmark_filter=...]        threads: PICOSPEC_BENCH_THREADS (default: all cores)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <string>

#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"
#include "plain_llama.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

std::size_t bench_threads() {
  const char* e = std::getenv("PICOSPEC_BENCH_THREADS");
  return e != nullptr ? static_cast<std::size_t>(std::atoi(e)) : 0;
}

struct ModelSpec {
  std::string label;
  std::string path;  // empty: random
  GgmlType type = GgmlType::f32;
  WeightFormat format = WeightFormat::native;
  bool qwen3_shape = false;  // the Qwen3-shaped random model instead of the 512x8 one
  bool wide = false;         // the 1024x8 LLaMA model (widths multiples of 256, for K-quants) instead of 512x8
  bool q4_k_m = false;       // llama-quantize's Q4_K_M mix (Q4_K + Q6_K) instead of `type`
  std::optional<bool> q8 = std::nullopt;  // LlamaParams::q8_activations (unset: the default, the integer path)
};

std::string random_model_path(const ModelSpec& spec) {
  const std::string kind = spec.q4_k_m ? "q4_k_m" : (spec.type == GgmlType::f32 ? "f32" : "q8_0");
  const std::string shape = spec.qwen3_shape ? "qwen3shape_" : (spec.wide ? "1024x8_" : "512x8_");
  const auto path = std::filesystem::temp_directory_path() / ("picospec_bench_llama_" + shape + kind + ".gguf");
  if (!std::filesystem::exists(path)) {
    RandomLlamaSpec s;
    if (spec.qwen3_shape) {  // Qwen3-0.6B's widths, vocabulary and tied embeddings; 4 of its 28 layers
      s.arch = "qwen3";
      s.vocab_size = 151936;
      s.dim = 1024;
      s.n_layers = 4;
      s.n_heads = 16;
      s.n_kv_heads = 8;
      s.head_dim = 128;
      s.ffn_dim = 3072;
      s.rope_base = 1000000.0f;
      s.tied_output = true;
    } else if (spec.wide) {  // a LLaMA model whose K-quant mix llama.cpp reads too (no qwen3 needed)
      s.vocab_size = 32000;
      s.dim = 1024;
      s.n_layers = 8;
      s.n_heads = 16;
      s.n_kv_heads = 8;
      s.ffn_dim = 2816;
    } else {
      s.vocab_size = 32000;
      s.dim = 512;
      s.n_layers = 8;
      s.n_heads = 8;
      s.n_kv_heads = 4;
      s.ffn_dim = 1376;
    }
    s.context_length = 1024;
    s.type = spec.type;
    s.q4_k_m = spec.q4_k_m;
    s.seed = 42;
    const auto tmp = path.string() + ".tmp";
    random_llama_gguf(s).write_file(tmp);
    std::filesystem::rename(tmp, path);
  }
  return path.string();
}

LlamaModel& model_for(const ModelSpec& spec) {
  static std::map<std::string, std::unique_ptr<LlamaModel>> cache;
  auto& m = cache[spec.label];
  if (!m) {
    const std::string path = spec.path.empty() ? random_model_path(spec) : spec.path;
    m = LlamaModel::load(path, {.threads = bench_threads(), .weights = spec.format, .q8_activations = spec.q8});
    std::printf("%s: %zu threads, %s kernels, quantized-weight path %s\n", spec.label.c_str(), m->threads(), m->kernel_isa(),
                m->q8_path());
  }
  return *m;
}

std::vector<Token> tokens_of(std::size_t n, std::uint32_t vocab) {
  std::vector<Token> t(n);
  for (std::size_t i = 0; i < n; ++i) t[i] = static_cast<Token>((i * 7919 + 13) % vocab);
  return t;
}

constexpr std::size_t kPrompt = 64;

struct PlainFigures {
  double prefill_s = 0, decode_s = 0, verify_s = 0;  // per call
};
std::map<std::string, PlainFigures>& plain_figures() {
  static std::map<std::string, PlainFigures> m;
  return m;
}
std::string path_of(const ModelSpec& spec) { return spec.path.empty() ? random_model_path(spec) : spec.path; }

plain::PlainLlama& plain_for(const ModelSpec& spec) {
  static std::map<std::string, std::unique_ptr<plain::PlainLlama>> cache;
  auto& m = cache[path_of(spec)];
  if (!m) m = std::make_unique<plain::PlainLlama>(path_of(spec));
  return *m;
}

void bm_plain_prefill(benchmark::State& state, const ModelSpec& spec) {
  plain::PlainLlama& m = plain_for(spec);
  const auto toks = tokens_of(kPrompt, model_for(spec).info().vocab_size);
  using clock = std::chrono::steady_clock;
  double total_s = 0;
  for (auto _ : state) {
    const auto t0 = clock::now();
    benchmark::DoNotOptimize(m.forward(toks, 0, false));
    total_s += std::chrono::duration<double>(clock::now() - t0).count();
  }
  const double per = total_s / static_cast<double>(state.iterations());
  state.counters["tok/s"] = static_cast<double>(kPrompt) / per;
  plain_figures()[path_of(spec)].prefill_s = per;
}

void bm_plain_decode_vs_verify5(benchmark::State& state, const ModelSpec& spec) {
  plain::PlainLlama& m = plain_for(spec);
  LlamaModel& pm = model_for(spec);
  const auto toks = tokens_of(kPrompt + 5, pm.info().vocab_size);
  const std::vector<Token> prompt(toks.begin(), toks.begin() + kPrompt), one(toks.begin() + kPrompt, toks.begin() + kPrompt + 1),
      five(toks.begin() + kPrompt, toks.end());
  m.forward(prompt, 0, false);
  // Same function check: picospec's verify rows against the plain loop's.
  LogitRows rows;
  pm.reset();
  pm.forward(prompt, rows, LogitsFor::last);
  pm.forward(five, rows);
  const auto ref = m.forward(five, kPrompt, true);
  double diff = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) diff = std::max(diff, static_cast<double>(std::abs(ref[i] - rows.data()[i])));
  pm.reset();
  using clock = std::chrono::steady_clock;
  double decode_s = 0, verify_s = 0;
  for (auto _ : state) {
    auto t0 = clock::now();
    benchmark::DoNotOptimize(m.forward(one, kPrompt, false));
    auto t1 = clock::now();
    benchmark::DoNotOptimize(m.forward(five, kPrompt, true));
    auto t2 = clock::now();
    decode_s += std::chrono::duration<double>(t1 - t0).count();
    verify_s += std::chrono::duration<double>(t2 - t1).count();
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["decode_ms"] = decode_s / n * 1e3;
  state.counters["verify5_ms"] = verify_s / n * 1e3;
  state.counters["max_abs_diff"] = diff;
  plain_figures()[path_of(spec)].decode_s = decode_s / n;
  plain_figures()[path_of(spec)].verify_s = verify_s / n;
}

// Prompt processing: 64 tokens in one forward() from an empty context.
void bm_prefill(benchmark::State& state, const ModelSpec& spec) {
  LlamaModel& m = model_for(spec);
  const auto toks = tokens_of(kPrompt, m.info().vocab_size);
  LogitRows rows;
  using clock = std::chrono::steady_clock;
  double total_s = 0;
  for (auto _ : state) {
    const auto t0 = clock::now();
    m.reset();
    m.forward(toks, rows, LogitsFor::last);  // a prefill needs the last row only (as LmDrafter/LmVerifier ask)
    benchmark::DoNotOptimize(rows.data());
    total_s += std::chrono::duration<double>(clock::now() - t0).count();
  }
  const double per = total_s / static_cast<double>(state.iterations());
  state.counters["tok/s"] = static_cast<double>(kPrompt) / per;
  if (auto it = plain_figures().find(path_of(spec)); it != plain_figures().end() && it->second.prefill_s > 0)
    state.counters["x_plain"] = it->second.prefill_s / per;
}

// Decode vs verify, interleaved in the same loop at the same context length (64): one single-token forward
// (the baseline) and one 5-token forward, each rolled back afterwards.
void bm_decode_vs_verify5(benchmark::State& state, const ModelSpec& spec) {
  LlamaModel& m = model_for(spec);
  const auto toks = tokens_of(kPrompt + 5, m.info().vocab_size);
  LogitRows rows;
  m.reset();
  m.forward(std::span<const Token>(toks).first(kPrompt), rows);
  using clock = std::chrono::steady_clock;
  double decode_s = 0, verify_s = 0;
  for (auto _ : state) {
    auto t0 = clock::now();
    m.forward(std::span<const Token>(toks).subspan(kPrompt, 1), rows);
    auto t1 = clock::now();
    m.truncate(kPrompt);
    auto t2 = clock::now();
    m.forward(std::span<const Token>(toks).subspan(kPrompt, 5), rows);
    auto t3 = clock::now();
    m.truncate(kPrompt);
    decode_s += std::chrono::duration<double>(t1 - t0).count();
    verify_s += std::chrono::duration<double>(t3 - t2).count();
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["decode_ms"] = decode_s / n * 1e3;
  state.counters["verify5_ms"] = verify_s / n * 1e3;
  state.counters["decode_tok/s"] = n / decode_s;
  state.counters["ratio"] = verify_s / decode_s;  // bar: <= 2 on the random 512x8 model
  if (auto it = plain_figures().find(path_of(spec)); it != plain_figures().end() && it->second.decode_s > 0) {
    state.counters["decode_x_plain"] = it->second.decode_s / (decode_s / n);
    state.counters["verify5_x_plain"] = it->second.verify_s / (verify_s / n);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string shared = PICOSPEC_SHARED_DIR;
  std::vector<ModelSpec> specs;
  for (const char* name : {"stories260K", "tinystories-xs-280K"}) {
    const std::string p = shared + "/models/" + name + ".gguf";
    if (std::filesystem::exists(p))
      specs.push_back({name, p});
    else
      std::printf("SKIPPED %s: %s not found (../shared absent)\n", name, p.c_str());
  }
  specs.push_back({"random512x8_f32", "", GgmlType::f32, WeightFormat::native});
  specs.push_back({"random512x8_q8_0", "", GgmlType::q8_0, WeightFormat::native});
  specs.push_back({"random512x8_q8_0_floatpath", "", GgmlType::q8_0, WeightFormat::native, false, false, false, false});
  specs.push_back({"random512x8_q8_0_dequant_at_load", "", GgmlType::q8_0, WeightFormat::f32});
  specs.push_back({"qwen3shape_f32", "", GgmlType::f32, WeightFormat::native, true, false, false});
  specs.push_back({"qwen3shape_q4_k_m", "", GgmlType::f32, WeightFormat::native, true, false, true});
  specs.push_back({"random1024x8_q4_k_m", "", GgmlType::f32, WeightFormat::native, false, true, true});
  specs.push_back({"random1024x8_q4_k_m_floatpath", "", GgmlType::f32, WeightFormat::native, false, true, true, false});
  for (const auto& s : specs) {
    // one plain baseline per file (the float-path row uses the integer-path row's, measured just before)
    const bool plain = s.format == WeightFormat::native && s.q8 != std::optional<bool>(false);
    if (plain)
      benchmark::RegisterBenchmark(("prefill64/" + s.label + "/plain").c_str(), bm_plain_prefill, s)
          ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("prefill64/" + s.label).c_str(), bm_prefill, s)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    if (plain)
      benchmark::RegisterBenchmark(("decode_vs_verify5/" + s.label + "/plain").c_str(), bm_plain_decode_vs_verify5, s)
          ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("decode_vs_verify5/" + s.label).c_str(), bm_decode_vs_verify5, s)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
