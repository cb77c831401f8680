// Sampling transform benchmarks per vocabulary size, beside one plain pass over the same row (same run):
// softmax, top-k (k = 40), top-p (0.95, no top-k: grows a ranked prefix), min-p (0.05), the llama.cpp-like
// default chain (top-k 40 + top-p 0.95 + min-p 0.05, T = 0.8), greedy, and argmax; and the coupled race
// (coupled_sample, and coupled_sample_top with 2 runners-up: RejectionMode::coupled's draw on each side, one per
// position) over the softmax of the same row.
#include <vector>

#include "bench_common.hpp"
#include "picospec/sampling.hpp"

using namespace picospec;
using namespace picospec_bench;

namespace {

const std::vector<std::int64_t> kVocabs{32000, 128256, 151936};

void BM_logit_pass(benchmark::State& st) {  // baseline: one plain pass over the logit row
  const auto& l = logit_row(static_cast<std::size_t>(st.range(0)));
  for (auto _ : st) {
    float s = 0;
    for (const float x : l) s += x;
    benchmark::DoNotOptimize(s);
  }
}

void BM_argmax(benchmark::State& st) {
  const auto& l = logit_row(static_cast<std::size_t>(st.range(0)));
  for (auto _ : st) benchmark::DoNotOptimize(argmax(l));
}

void BM_softmax(benchmark::State& st) {
  const auto& l = logit_row(static_cast<std::size_t>(st.range(0)));
  std::vector<float> p;
  for (auto _ : st) {
    softmax(l, p);
    benchmark::DoNotOptimize(p.data());
  }
}

void run_params(benchmark::State& st, SamplingParams sp) {
  const auto& l = logit_row(static_cast<std::size_t>(st.range(0)));
  std::vector<float> p;
  SamplingWorkspace ws;
  for (auto _ : st) {
    logits_to_probs(l, sp, p, ws);
    benchmark::DoNotOptimize(p.data());
  }
  std::size_t kept = 0;
  for (float x : p) kept += x > 0.0f;
  st.counters["kept"] = static_cast<double>(kept);
}

void BM_top_k(benchmark::State& st) { run_params(st, {1.0f, 40, 1.0f, 0.0f}); }
void BM_top_p(benchmark::State& st) { run_params(st, {1.0f, 0, 0.95f, 0.0f}); }
void BM_min_p(benchmark::State& st) { run_params(st, {1.0f, 0, 1.0f, 0.05f}); }
void BM_chain(benchmark::State& st) { run_params(st, {0.8f, 40, 0.95f, 0.05f}); }
void BM_greedy(benchmark::State& st) { run_params(st, {0.0f, 0, 1.0f, 0.0f}); }

void BM_sparse_top_k(benchmark::State& st) {  // sparse output: no dense zero-fill
  const auto& l = logit_row(static_cast<std::size_t>(st.range(0)));
  SamplingWorkspace ws;
  for (auto _ : st) {
    SparseDist d = logits_to_sparse(l, {1.0f, 40, 1.0f, 0.0f}, ws);
    benchmark::DoNotOptimize(d.probs.data());
  }
}

// The coupled race over a dense distribution (the row's softmax, made once): one draw per call, a new position each
// time so that every call runs its own race (as the edge and the cloud do, one position after the other).
void BM_coupled_sample(benchmark::State& st) {
  std::vector<float> p;
  softmax(logit_row(static_cast<std::size_t>(st.range(0))), p);
  std::uint64_t pos = 0;
  for (auto _ : st) benchmark::DoNotOptimize(coupled_sample(p, 42, pos++));
}
void BM_coupled_sample_top(benchmark::State& st) {
  std::vector<float> p;
  softmax(logit_row(static_cast<std::size_t>(st.range(0))), p);
  std::vector<Token> runners_up;
  std::uint64_t pos = 0;
  for (auto _ : st) benchmark::DoNotOptimize(coupled_sample_top(p, 42, pos++, 2, runners_up));
}

void v_only(benchmark::internal::Benchmark* b) {
  for (auto v : kVocabs) b->Arg(v);
}

}  // namespace

BENCHMARK(BM_logit_pass)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_argmax)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_softmax)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_top_k)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_sparse_top_k)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_top_p)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_min_p)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_chain)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_greedy)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_coupled_sample)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_coupled_sample_top)->Apply(v_only)->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  return run_with_ratios(argc, argv, "Ratios from this run (CPU time), vs one plain pass over the logit row", [](RatioReporter& rep) {
    for (auto v : kVocabs) {
      const std::string vs = std::to_string(v);
      for (const char* b : {"BM_argmax", "BM_softmax", "BM_top_k", "BM_sparse_top_k", "BM_top_p", "BM_min_p",
                            "BM_chain", "BM_greedy", "BM_coupled_sample", "BM_coupled_sample_top"})
        rep.ratio(std::string(b + 3) + " V=" + vs, std::string(b) + "/" + vs, "BM_logit_pass/" + vs);
    }
  });
}
