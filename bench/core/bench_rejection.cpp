// Rejection sampler benchmarks, each beside its baseline in the same run:
//  - acceptance tests of a chunk (gamma = 4, 8)          vs  gamma RNG draws alone
//  - residual sampling over a dense row (full mode)       vs  one plain pass over the row / sample_from(p)
//  - candidate stream: cloud draw (m = 32) + encode,
//    edge decode + pick                                   vs  sample_from(p) (one inverse-CDF draw)
#include <vector>

#include "bench_common.hpp"
#include "picospec/rejection.hpp"
#include "picospec/sparse_codec.hpp"

using namespace picospec;
using namespace picospec_bench;

namespace {

const std::vector<std::int64_t> kVocabs{32000, 128256, 151936};

void BM_rng_draws(benchmark::State& st) {
  const auto gamma = static_cast<std::uint64_t>(st.range(0));
  std::uint64_t pos = 0;
  for (auto _ : st) {
    double s = 0;
    for (std::uint64_t i = 0; i < gamma; ++i) s += uniform(1, Purpose::accept, pos + i, 0);
    benchmark::DoNotOptimize(s);
    pos += gamma;
  }
}

void BM_accept_chunk(benchmark::State& st) {
  const auto gamma = static_cast<std::size_t>(st.range(0));
  const auto& p = prob_row(151936);
  std::vector<DenseView> rows(gamma, DenseView(p));
  std::vector<Token> drafts(gamma);
  std::vector<float> qd(gamma);
  for (std::size_t i = 0; i < gamma; ++i) {
    drafts[i] = static_cast<Token>((i * 7919) % 151936);
    qd[i] = p[static_cast<std::size_t>(drafts[i])] * 0.5f;  // q < p: all gamma accepted, so all gamma tests run
  }
  std::uint64_t pos = 0;
  for (auto _ : st) {
    const AcceptResult r = accept_chunk(drafts, qd, rows, 1, pos, 0);
    benchmark::DoNotOptimize(r);
    pos += gamma;
  }
}

void BM_sample_from(benchmark::State& st) {
  const auto& p = prob_row(static_cast<std::size_t>(st.range(0)));
  std::uint64_t pos = 0;
  for (auto _ : st) benchmark::DoNotOptimize(sample_from(p, uniform(1, Purpose::target_sample, pos++, 0)));
}

void BM_residual_dense(benchmark::State& st) {
  const auto v = static_cast<std::size_t>(st.range(0));
  const auto& p = prob_row(v);
  std::vector<float> q(p.rbegin(), p.rend());  // a different distribution over the same vocabulary
  std::uint64_t pos = 0;
  for (auto _ : st) benchmark::DoNotOptimize(residual_dense(p, q, uniform(1, Purpose::residual, pos++, 0)));
}

void BM_candidates_cloud(benchmark::State& st) {  // draw m = 32 + encode
  const auto& p = prob_row(static_cast<std::size_t>(st.range(0)));
  std::vector<std::uint8_t> out;
  std::uint64_t pos = 0;
  for (auto _ : st) {
    out.clear();
    encode_candidates(draw_candidates(p, 32, 1, pos++, 0, 0), out);
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["bytes"] = static_cast<double>(out.size());
}

void BM_candidates_edge(benchmark::State& st) {  // decode + pick
  const auto v = static_cast<std::size_t>(st.range(0));
  const auto& p = prob_row(v);
  std::vector<float> q(p.rbegin(), p.rend());
  std::vector<std::uint8_t> frame;
  encode_candidates(draw_candidates(p, 32, 1, 5, 0, 0), frame);
  std::uint64_t pos = 0;
  for (auto _ : st) {
    const CandidateStream s = decode_candidates(frame, static_cast<std::uint32_t>(v));
    benchmark::DoNotOptimize(pick_candidate(s, q, 1, pos++, 0));
  }
}

void v_only(benchmark::internal::Benchmark* b) {
  for (auto v : kVocabs) b->Arg(v);
}

}  // namespace

BENCHMARK(BM_rng_draws)->Arg(4)->Arg(8)->Unit(benchmark::kNanosecond);
BENCHMARK(BM_accept_chunk)->Arg(4)->Arg(8)->Unit(benchmark::kNanosecond);
BENCHMARK(BM_pass_sum)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_sample_from)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_residual_dense)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_candidates_cloud)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_candidates_edge)->Apply(v_only)->Unit(benchmark::kNanosecond);

int main(int argc, char** argv) {
  return run_with_ratios(argc, argv, "Ratios from this run (CPU time)", [](RatioReporter& rep) {
    for (const char* g : {"4", "8"})
      rep.ratio(std::string("accept_chunk gamma=") + g + " vs gamma RNG draws", std::string("BM_accept_chunk/") + g,
                std::string("BM_rng_draws/") + g);
    for (auto v : kVocabs) {
      const std::string vs = std::to_string(v);
      rep.ratio("residual_dense V=" + vs + " vs plain pass", "BM_residual_dense/" + vs, "BM_pass_sum/" + vs);
      rep.ratio("residual_dense V=" + vs + " vs sample_from(p)", "BM_residual_dense/" + vs, "BM_sample_from/" + vs);
      rep.ratio("candidates cloud (draw 32 + encode) V=" + vs + " vs sample_from(p)", "BM_candidates_cloud/" + vs,
                "BM_sample_from/" + vs);
    }
  });
}
