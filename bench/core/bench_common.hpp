#pragma once
// Shared helpers of the core benches: LLM-like rows, baselines (one pass over the row), and a console reporter
// that remembers per-iteration times so that main() can print ratios from the same run.

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include "picospec/rng.hpp"

namespace picospec_bench {

/// Peaked probability row over v tokens (a few tokens hold most mass, a long tail; unsorted ids),
/// normalized in double. Cached per v.
inline const std::vector<float>& prob_row(std::size_t v) {
  static std::map<std::size_t, std::vector<float>> cache;
  auto& p = cache[v];
  if (p.empty()) {
    std::vector<double> w(v);
    double s = 0;
    for (std::size_t i = 0; i < v; ++i) {
      const double z = picospec::uniform(v, picospec::Purpose::user, i, 0);
      w[i] = std::exp(18.0 * z * z * z * z);
      s += w[i];
    }
    p.resize(v);
    for (std::size_t i = 0; i < v; ++i) p[i] = static_cast<float>(w[i] / s);
  }
  return p;
}

/// Logit row: N(0, 2.5)-ish logits (sum of uniforms), cached per v.
inline const std::vector<float>& logit_row(std::size_t v) {
  static std::map<std::size_t, std::vector<float>> cache;
  auto& l = cache[v];
  if (l.empty()) {
    l.resize(v);
    for (std::size_t i = 0; i < v; ++i) {
      double z = 0;
      for (std::uint32_t j = 0; j < 4; ++j) z += picospec::uniform(v, picospec::Purpose::user, i, 1, j);
      l[i] = static_cast<float>(5.0 * (z - 2.0));
    }
  }
  return l;
}

/// Baseline 1: one plain pass, sequential float sum (what a straightforward loop over the row costs).
inline void BM_pass_sum(benchmark::State& st) {
  const auto& p = prob_row(static_cast<std::size_t>(st.range(0)));
  for (auto _ : st) {
    float s = 0;
    for (const float x : p) s += x;
    benchmark::DoNotOptimize(s);
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * p.size() * sizeof(float)));
}

/// Baseline 2: one vectorizable pass (8 independent accumulators) -- close to the memory-bound floor.
inline void BM_pass_sum8(benchmark::State& st) {
  const auto& p = prob_row(static_cast<std::size_t>(st.range(0)));
  for (auto _ : st) {
    float a[8] = {};
    std::size_t i = 0;
    for (; i + 8 <= p.size(); i += 8)
      for (std::size_t j = 0; j < 8; ++j) a[j] += p[i + j];
    for (; i < p.size(); ++i) a[0] += p[i];
    float s = 0;
    for (float x : a) s += x;
    benchmark::DoNotOptimize(s);
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * p.size() * sizeof(float)));
}

/// Baseline 3: memcpy of the row.
inline void BM_memcpy(benchmark::State& st) {
  const auto& p = prob_row(static_cast<std::size_t>(st.range(0)));
  std::vector<float> dst(p.size());
  for (auto _ : st) {
    std::memcpy(dst.data(), p.data(), p.size() * sizeof(float));
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * p.size() * sizeof(float)));
}

/// Console reporter that also keeps CPU seconds per iteration by benchmark name (CPU time: the 2-core VM is
/// shared, and wall time includes preemption by other processes).
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  /// Colour only on a terminal (a custom reporter does not see --benchmark_color).
  RatioReporter() : benchmark::ConsoleReporter(isatty(fileno(stdout)) ? OO_ColorTabular : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& r : runs)
      if (r.run_type == Run::RT_Iteration && r.iterations > 0)
        secs_[r.benchmark_name()] = r.cpu_accumulated_time / static_cast<double>(r.iterations);
    ConsoleReporter::ReportRuns(runs);
  }
  /// Seconds per iteration of `name`, or -1 if it did not run (filtered out).
  [[nodiscard]] double secs(const std::string& name) const {
    const auto it = secs_.find(name);
    return it == secs_.end() ? -1.0 : it->second;
  }
  void ratio(const std::string& what, const std::string& a, const std::string& b) const {
    const double x = secs(a), y = secs(b);
    if (x < 0 || y < 0) return;
    std::printf("RATIO %-58s %10.3f us / %10.3f us = %6.2fx\n", what.c_str(), x * 1e6, y * 1e6, x / y);
  }

 private:
  std::map<std::string, double> secs_;
};

/// The shared main(): runs the selected benchmarks through a RatioReporter, then prints `title` and the same-run
/// ratios that `ratios` asks for (ratios of benchmarks filtered out are skipped).
inline int run_with_ratios(int argc, char** argv, const char* title, const std::function<void(RatioReporter&)>& ratios) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter rep;
  benchmark::RunSpecifiedBenchmarks(&rep);
  std::cout << std::flush;  // the reporter writes through std::cout; keep the order when piped
  std::printf("\n# %s\n", title);
  ratios(rep);
  benchmark::Shutdown();
  return 0;
}

}  // namespace picospec_bench
