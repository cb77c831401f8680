// picospec-bench-pair: decode time per token of our trained target and draft (models/), measured in the same run,
// interleaved round by round so that both see the same machine load; prints each model's median and best ms/token
// and the target/draft ratio per round (the model card's "decode ms/token" and the ">= 15x" figure).
//
//   picospec-bench-pair [--models DIR] [--threads N] [--rounds R] [--tokens T] [--json]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "picospec/llama/model.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

// ms per token of `tokens` greedy decode steps after a short prompt (from an empty cache).
double decode_ms_per_token(LlamaModel& m, std::size_t tokens) {
  m.reset();
  std::vector<Token> prompt = m.tokenizer()->encode("Once upon a time", true);
  LogitRows rows;
  m.forward(prompt, rows);
  auto argmax = [&](std::size_t r) {
    const auto row = rows.row(r);
    return static_cast<Token>(std::max_element(row.begin(), row.end()) - row.begin());
  };
  Token t = argmax(rows.rows() - 1);
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < tokens; ++i) {
    m.forward(std::span<const Token>(&t, 1), rows);
    t = argmax(0);
  }
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
         static_cast<double>(tokens);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = PICOSPEC_SOURCE_MODELS_DIR;
  std::size_t threads = 1, rounds = 7, tokens = 64;
  bool json = false;
  CLI::App app{"picospec-bench-pair: decode ms/token of models/target.gguf and models/draft.gguf, same run"};
  app.add_option("--models", dir, "folder holding target.gguf and draft.gguf");
  app.add_option("-t,--threads", threads, "threads per model")->check(CLI::Range(1, 64));
  app.add_option("--rounds", rounds, "interleaved rounds")->check(CLI::Range(1, 1000));
  app.add_option("--tokens", tokens, "decode steps per round")->check(CLI::Range(1, 400));
  app.add_flag("--json", json, "one JSON object");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "picospec-bench-pair: %s (try --help)\n", e.what());
    return 2;
  }
  try {
    auto target = LlamaModel::load((std::filesystem::path(dir) / "target.gguf").string(), {.threads = threads});
    auto draft = LlamaModel::load((std::filesystem::path(dir) / "draft.gguf").string(), {.threads = threads});
    decode_ms_per_token(*target, 8);  // warm-up: page in the weights
    decode_ms_per_token(*draft, 8);
    std::vector<double> t_ms, d_ms, ratio;
    for (std::size_t r = 0; r < rounds; ++r) {
      t_ms.push_back(decode_ms_per_token(*target, tokens));
      d_ms.push_back(decode_ms_per_token(*draft, tokens));
      ratio.push_back(t_ms.back() / d_ms.back());
    }
    const double tb = *std::min_element(t_ms.begin(), t_ms.end()), db = *std::min_element(d_ms.begin(), d_ms.end());
    if (json) {
      std::printf("{\"threads\":%zu,\"rounds\":%zu,\"tokens\":%zu,\"target_ms_median\":%.4f,\"target_ms_best\":%.4f,"
                  "\"draft_ms_median\":%.4f,\"draft_ms_best\":%.4f,\"ratio_median\":%.2f,\"ratio_best\":%.2f}\n",
                  threads, rounds, tokens, median(t_ms), tb, median(d_ms), db, median(ratio), tb / db);
    } else {
      std::printf("decode, %zu thread(s), %zu rounds x %zu tokens, interleaved\n", threads, rounds, tokens);
      std::printf("  target %-24s median %7.3f ms/token   best %7.3f\n", target->weights().name().c_str(),
                  median(t_ms), tb);
      std::printf("  draft  %-24s median %7.3f ms/token   best %7.3f\n", draft->weights().name().c_str(),
                  median(d_ms), db);
      std::printf("  target / draft: median of per-round ratios %.1fx, best/best %.1fx\n", median(ratio), tb / db);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "picospec-bench-pair: %s\n", e.what());
    return 1;
  }
}
