// bench_llama: prompt processing and decode throughput of the LLaMA backend, and the cost of verifying a chunk
// of 5 tokens relative to decoding one token (the baseline, measured in the same run and reported as `ratio`).
//
// Models: the two shared GGUF models (rows skipped visibly when ../shared is absent) and a larger random model
// written by the bench itself (dim 512, 8 layers, 8 heads / 4 KV heads, ffn 1376, vocab 32000) in F32, in Q8_0
// computed directly from the file, and in Q8_0 dequantized to F32 at load.
//
//   bench_llama [--benchmark_filter=...]        threads: PICOSPEC_BENCH_THREADS (default: all cores)
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <numeric>
#include <string>

#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"

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
};

std::string random_model_path(GgmlType type) {
  const auto path = std::filesystem::temp_directory_path() /
                    (std::string("picospec_bench_llama_512x8_") + (type == GgmlType::f32 ? "f32" : "q8_0") + ".gguf");
  if (!std::filesystem::exists(path)) {
    RandomLlamaSpec s;
    s.vocab_size = 32000;
    s.dim = 512;
    s.n_layers = 8;
    s.n_heads = 8;
    s.n_kv_heads = 4;
    s.ffn_dim = 1376;
    s.context_length = 1024;
    s.type = type;
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
    const std::string path = spec.path.empty() ? random_model_path(spec.type) : spec.path;
    m = LlamaModel::load(path, {.threads = bench_threads(), .weights = spec.format});
  }
  return *m;
}

std::vector<Token> tokens_of(std::size_t n, std::uint32_t vocab) {
  std::vector<Token> t(n);
  for (std::size_t i = 0; i < n; ++i) t[i] = static_cast<Token>((i * 7919 + 13) % vocab);
  return t;
}

constexpr std::size_t kPrompt = 64;

// Prompt processing: 64 tokens in one forward() from an empty context.
void bm_prefill(benchmark::State& state, const ModelSpec& spec) {
  LlamaModel& m = model_for(spec);
  const auto toks = tokens_of(kPrompt, m.info().vocab_size);
  LogitRows rows;
  for (auto _ : state) {
    m.reset();
    m.forward(toks, rows);
    benchmark::DoNotOptimize(rows.data());
  }
  state.counters["tok/s"] = benchmark::Counter(static_cast<double>(state.iterations() * kPrompt),
                                               benchmark::Counter::kIsRate);
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
  specs.push_back({"random512x8_q8_0_dequant_at_load", "", GgmlType::q8_0, WeightFormat::f32});
  for (const auto& s : specs) {
    benchmark::RegisterBenchmark(("prefill64/" + s.label).c_str(), bm_prefill, s)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("decode_vs_verify5/" + s.label).c_str(), bm_decode_vs_verify5, s)
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
