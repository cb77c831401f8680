// Codec benchmarks: top-K selection + encode from a dense fp32 row, and decode, for V in {32000, 128256, 151936}
// and K in {8, 32, 256}, beside baselines over the same row (plain pass, vectorized pass, memcpy) in the same run.
// Bar (issue 2): top-K selection + encode from a 151936-entry row <= 3x one pass; decode of a K = 32 frame < 1 us.
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "picospec/sparse_codec.hpp"

using namespace picospec;
using namespace picospec_bench;

namespace {

const std::vector<std::int64_t> kVocabs{32000, 128256, 151936};

void BM_encode(benchmark::State& st, const char* family) {
  const auto v = static_cast<std::size_t>(st.range(0));
  const auto& p = prob_row(v);
  const auto codec = make_codec(std::string(family) + ":" + std::to_string(st.range(1)));
  std::vector<std::uint8_t> out;
  for (auto _ : st) {
    out.clear();
    codec->encode(p, out);
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["bytes"] = static_cast<double>(out.size());
}

void BM_decode(benchmark::State& st, const char* family) {
  const auto v = static_cast<std::size_t>(st.range(0));
  const auto codec = make_codec(std::string(family) + ":" + std::to_string(st.range(1)));
  std::vector<std::uint8_t> frame;
  codec->encode(prob_row(v), frame);
  for (auto _ : st) {
    SparseDist d = codec->decode(frame, static_cast<std::uint32_t>(v));
    benchmark::DoNotOptimize(d.probs.data());
  }
  st.counters["bytes"] = static_cast<double>(frame.size());
}

void BM_dense_encode(benchmark::State& st) {
  const auto& p = prob_row(static_cast<std::size_t>(st.range(0)));
  const auto codec = make_codec("dense_f32");
  std::vector<std::uint8_t> out;
  for (auto _ : st) {
    out.clear();
    codec->encode(p, out);
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["bytes"] = static_cast<double>(out.size());
}

void BM_dense_decode(benchmark::State& st) {
  const auto v = static_cast<std::size_t>(st.range(0));
  const auto codec = make_codec("dense_f32");
  std::vector<std::uint8_t> frame;
  codec->encode(prob_row(v), frame);
  for (auto _ : st) {
    SparseDist d = codec->decode(frame, static_cast<std::uint32_t>(v));
    benchmark::DoNotOptimize(d.probs.data());
  }
}

void BM_candidates_roundtrip(benchmark::State& st) {
  const auto v = static_cast<std::size_t>(st.range(0));
  const auto s = draw_candidates(prob_row(v), 32, 1, 2, 3, 0);
  std::vector<std::uint8_t> out;
  for (auto _ : st) {
    out.clear();
    encode_candidates(s, out);
    CandidateStream d = decode_candidates(out, static_cast<std::uint32_t>(v));
    benchmark::DoNotOptimize(d.ids.data());
  }
  st.counters["bytes"] = static_cast<double>(out.size());
}

void vk(benchmark::internal::Benchmark* b) {
  for (auto v : kVocabs)
    for (std::int64_t k : {8, 32, 256}) b->Args({v, k});
}
void v_only(benchmark::internal::Benchmark* b) {
  for (auto v : kVocabs) b->Arg(v);
}

}  // namespace

BENCHMARK(BM_pass_sum)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_pass_sum8)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_memcpy)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_encode, topk_f32, "topk_f32")->Apply(vk)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_encode, topk_q, "topk_q")->Apply(vk)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_decode, topk_f32, "topk_f32")->Apply(vk)->Unit(benchmark::kNanosecond);
BENCHMARK_CAPTURE(BM_decode, topk_q, "topk_q")->Apply(vk)->Unit(benchmark::kNanosecond);
BENCHMARK(BM_dense_encode)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_dense_decode)->Apply(v_only)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_candidates_roundtrip)->Apply(v_only)->Unit(benchmark::kNanosecond);

int main(int argc, char** argv) {
  return run_with_ratios(argc, argv, "Ratios from this run (lower is better)", [](RatioReporter& rep) {
    for (auto v : kVocabs) {
      const std::string vs = std::to_string(v);
      for (const char* fam : {"topk_f32", "topk_q"})
        for (int k : {8, 32, 256}) {
          const std::string name = "BM_encode/" + std::string(fam) + "/" + vs + "/" + std::to_string(k);
          rep.ratio(std::string(fam) + ":" + std::to_string(k) + " select+encode V=" + vs + " vs plain pass", name,
                    "BM_pass_sum/" + vs);
          rep.ratio(std::string(fam) + ":" + std::to_string(k) + " select+encode V=" + vs + " vs vectorized pass",
                    name, "BM_pass_sum8/" + vs);
        }
      rep.ratio("dense_f32 encode V=" + vs + " vs memcpy", "BM_dense_encode/" + vs, "BM_memcpy/" + vs);
    }
    for (const char* fam : {"topk_f32", "topk_q"}) {
      const double s = rep.secs("BM_decode/" + std::string(fam) + "/151936/32");
      if (s >= 0) std::printf("DECODE %s:32 frame: %.1f ns (bar < 1000 ns)\n", fam, s * 1e9);
    }
  });
}
