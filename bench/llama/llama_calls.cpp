// llama_calls: repeats one kind of forward() call on a GGUF file, for timing from outside (perf stat, time).
//
//   llama_calls FILE decode|verify|prefill REPEATS THREADS
//
// decode = one token at context 64, verify = 5 tokens at context 64 (all rows), prefill = 64 tokens from an empty
// context (last row only); each rolled back after the call. The 64-token context is built once before the
// repetitions, so the difference between two runs with different REPEATS is the cost of the calls alone
// (bench/llama/cpu_time_vs_llama_bench.sh uses it beside llama.cpp's llama-bench). Prints the best and the median
// wall time. Q8_0, Q4_0, Q4_K and Q6_K weights take the integer path unless PICOSPEC_LLAMA_Q8=float (docs/llama.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "picospec/llama/model.hpp"

using namespace picospec;
using namespace picospec::llama;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: llama_calls FILE decode|verify|prefill REPEATS THREADS\n");
    return 2;
  }
  const std::string path = argv[1], mode = argv[2];
  const long n = std::strtol(argv[3], nullptr, 10), threads = std::strtol(argv[4], nullptr, 10);
  if ((mode != "decode" && mode != "verify" && mode != "prefill") || n < 0 || n > 1000000 || threads < 1 ||
      threads > 1024) {
    std::fprintf(stderr, "llama_calls: bad arguments\n");
    return 2;
  }
  try {
    auto m = LlamaModel::load(path, {.threads = static_cast<std::size_t>(threads)});
    std::vector<Token> t(69);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<Token>((i * 7919 + 13) % m->info().vocab_size);
    const std::span<const Token> s(t);
    LogitRows rows;
    m->forward(s.first(64), rows, LogitsFor::last);
    std::vector<double> times;
    for (long it = 0; it < n; ++it) {
      const auto t0 = std::chrono::steady_clock::now();
      if (mode == "decode") {
        m->forward(s.subspan(64, 1), rows);
        m->truncate(64);
      } else if (mode == "verify") {
        m->forward(s.subspan(64, 5), rows);
        m->truncate(64);
      } else {
        m->reset();
        m->forward(s.first(64), rows, LogitsFor::last);
      }
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      times.push_back(dt);
    }
    std::sort(times.begin(), times.end());
    const double best = times.empty() ? 0.0 : times.front(), median = times.empty() ? 0.0 : times[times.size() / 2];
    std::printf("%s: %s, %ld threads, %s kernels, quantized-weight path %s, best of %ld: %.3f ms, median %.3f ms\n", path.c_str(),
                mode.c_str(), threads, m->kernel_isa(), m->q8_path(), n, best * 1e3, median * 1e3);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llama_calls: %s\n", e.what());
    return 1;
  }
  return 0;
}
