// picospec-bench-batch: what multi-session batched verification (CausalLM::forward_batch, issue 12) buys on the
// LLaMA backend with a real model: N sessions, each with its own context, verify a chunk of C tokens; the same
// work is timed one session at a time (the baseline: N forward calls) and as one batched call, interleaved round
// by round so both see the same machine load. Prints ms per round of each, and the batched throughput gain.
// The rows are bit-identical either way (tests/llama/test_model.cpp "forward_batch").
//
//   picospec-bench-batch [-m target.gguf] [--sessions 1,2,4,8,16] [--chunk C] [--rounds R] [--threads T] [--json]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "picospec/llama/model.hpp"

using namespace picospec;
using namespace picospec::llama;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"picospec-bench-batch: N sessions' verify chunks one by one vs as one batched forward (LLaMA backend)"};
  std::string model = std::string(PICOSPEC_SOURCE_MODELS_DIR) + "/target.gguf";
  std::vector<std::size_t> sessions{1, 2, 4, 8, 16};
  std::size_t chunk = 4, rounds = 7, threads = 1;
  bool json = false;
  app.add_option("-m,--model", model, "target model (GGUF)")->check(CLI::ExistingFile);
  app.add_option("--sessions", sessions, "session counts to measure")->delimiter(',')->check(CLI::Range(1, 64));
  app.add_option("--chunk", chunk, "tokens per session's chunk (gamma + 1)")->check(CLI::Range(1, 64));
  app.add_option("--rounds", rounds, "interleaved rounds")->check(CLI::Range(1, 100));
  app.add_option("-t,--threads", threads, "threads of the model")->check(CLI::Range(1, 64));
  app.add_flag("--json", json, "one JSON object");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto w = LlamaWeights::load(model);
    const std::size_t max_n = *std::max_element(sessions.begin(), sessions.end());
    std::vector<std::unique_ptr<LlamaModel>> models;
    std::vector<std::vector<Token>> prompts, chunks;
    const char* texts[] = {"Once upon a time", "The little dog ran", "She looked at the sky and",
                           "In the morning, Tom", "The king said"};
    for (std::size_t i = 0; i < max_n; ++i) {
      models.push_back(std::make_unique<LlamaModel>(w, LlamaParams{.threads = threads}));
      prompts.push_back(models.back()->tokenizer()->encode(texts[i % 5], true));
      std::vector<Token> c;
      for (std::size_t j = 0; j < chunk; ++j) c.push_back(prompts.back()[(i + j) % prompts.back().size()]);
      chunks.push_back(c);
    }
    std::vector<LogitRows> outs(max_n);
    auto reset_all = [&](std::size_t n) {
      for (std::size_t i = 0; i < n; ++i) {
        models[i]->reset();
        models[i]->forward(prompts[i], outs[i], LogitsFor::last);
      }
    };
    std::ostringstream js;
    js << "{\"model\":\"" << w->name() << "\",\"chunk\":" << chunk << ",\"threads\":" << threads << ",\"rows\":[";
    if (!json)
      std::printf("picospec-bench-batch: %s, chunk %zu tokens per session, %zu thread(s), median of %zu rounds\n"
                  "%9s %14s %14s %10s\n",
                  w->name().c_str(), chunk, threads, rounds, "sessions", "one by one ms", "batched ms", "gain");
    bool first = true;
    for (std::size_t n : sessions) {
      std::vector<double> solo, batched;
      for (std::size_t r = 0; r < rounds; ++r) {
        reset_all(n);
        auto t0 = Clock::now();
        for (std::size_t i = 0; i < n; ++i) models[i]->forward(chunks[i], outs[i]);
        solo.push_back(ms_since(t0));
        reset_all(n);
        std::vector<CausalLM::BatchItem> items;
        for (std::size_t i = 0; i < n; ++i) items.push_back({models[i].get(), chunks[i], &outs[i]});
        t0 = Clock::now();
        CausalLM::forward_batch(items);
        batched.push_back(ms_since(t0));
      }
      const double a = median(solo), b = median(batched);
      if (json) {
        js << (first ? "" : ",") << "{\"sessions\":" << n << ",\"one_by_one_ms\":" << a << ",\"batched_ms\":" << b
           << ",\"gain\":" << a / b << "}";
      } else {
        std::printf("%9zu %14.3f %14.3f %9.2fx\n", n, a, b, a / b);
      }
      first = false;
    }
    if (json) std::printf("%s]}\n", js.str().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "picospec-bench-batch: %s\n", e.what());
    return 1;
  }
  return 0;
}
