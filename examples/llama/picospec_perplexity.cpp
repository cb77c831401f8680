// picospec-perplexity: perplexity of a GGUF LLaMA model on a text file, by llama.cpp's llama-perplexity method.
//
//   picospec-perplexity -m model.gguf -f text.txt [-c N_CTX] [--chunks N] [-b BATCH] [-t THREADS] [--json]
//
// Method (exactly; the model card's figures and a PyTorch re-implementation depend on it):
//   tokens   = tokenize(the whole file, with BOS)
//   n_ctx    = -c (default: the model's context length)
//   n_chunks = min(--chunks, len(tokens) / n_ctx)
//   chunk i: window = tokens[i*n_ctx, (i+1)*n_ctx) with its first token replaced by BOS, evaluated from an empty
//            KV cache; for j in [n_ctx/2, n_ctx-2]: nll += -log_softmax(logits[j])[window[j+1]] (in double from
//            the float logits), count += 1. Only the second half of each window is scored, so every scored token
//            has at least n_ctx/2 tokens of context.
//   PPL = exp(nll / count); its error is PPL x the standard error of the per-token nll (sqrt(var / (count-1))).
// stderr shows the running PPL after each chunk ("[1]12.3456,[2]...") and the final line
// "Final estimate: PPL = X +/- Y"; with --json, stdout gets {"ppl","ppl_err","tokens_scored","chunks","n_ctx"}.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cli.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/tokenizer.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

struct Options {
  std::string model, text_file;
  std::uint32_t n_ctx = 0;  // 0: the model's context length
  std::uint64_t chunks = std::numeric_limits<std::uint64_t>::max();
  std::size_t threads = 0;  // 0: all cores
  std::size_t batch = 512;  // tokens per forward() call
  bool json = false;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the text file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path + ": read error");
  return ss.str();
}

/// -log softmax(row)[target], in double from the float logits (max-shifted log-sum-exp).
double token_nll(std::span<const float> row, Token target) {
  double mx = -std::numeric_limits<double>::infinity();
  for (float v : row) mx = std::max(mx, static_cast<double>(v));
  double sum = 0.0;
  for (float v : row) sum += std::exp(static_cast<double>(v) - mx);
  return -((static_cast<double>(row[target]) - mx) - std::log(sum));
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"picospec-perplexity: perplexity of a GGUF model on a text file (llama.cpp's llama-perplexity method: "
               "windows of N_CTX tokens starting with BOS, the second half of each window scored).",
               "picospec-perplexity"};
  examples::Cli cli(app);
  app.add_option("-m,--model", o.model, "model (GGUF, llama architecture, with a tokenizer)")->required();
  app.add_option("-f,--file", o.text_file, "text file, tokenized whole with BOS")->required();
  app.add_option("-c,--ctx-size", o.n_ctx, "window length in tokens; 0 = the model's context length")
      ->check(examples::range(0u, 1u << 20));
  app.add_option("--chunks", o.chunks, "score at most N windows (default: as many as the text holds)")
      ->check(examples::range(std::uint64_t{1}, std::numeric_limits<std::uint64_t>::max()))
      ->capture_default_str()
      ->default_str("all");
  app.add_option("-b,--batch-size", o.batch, "tokens per forward pass (memory: logits of N tokens); no effect on "
                 "the result")->check(examples::range(std::size_t{1}, std::size_t{1} << 20));
  examples::add_threads(app, o.threads, "of the model's pool (0 = all cores)");
  app.add_flag("--json", o.json, "print {\"ppl\",\"ppl_err\",\"tokens_scored\",\"chunks\",\"n_ctx\"} on stdout");
  return cli.run(argc, argv, [&]() -> int {
    if (o.n_ctx != 0 && o.n_ctx < 4)
      throw examples::UsageError("-c must be 0 (the model's) or at least 4 (half of each window is scored)");
    const std::string text = read_file(o.text_file);
    examples::Progress progress("loading " + o.model);
    const auto weights = LlamaWeights::load(o.model);
    const auto tok = weights->tokenizer();
    if (!tok) throw Error(o.model + ": the file has no tokenizer (tokenizer.ggml.tokens)");
    const std::uint32_t model_ctx = weights->hparams().context_length;
    const std::size_t n_ctx = o.n_ctx != 0 ? o.n_ctx : model_ctx;
    if (n_ctx < 4) throw Error(o.model + ": context length " + std::to_string(n_ctx) + " is too short (need >= 4)");
    if (model_ctx != 0 && n_ctx > model_ctx)
      throw Error("-c " + std::to_string(n_ctx) + " exceeds the model's context length " + std::to_string(model_ctx));
    progress.update("tokenizing " + o.text_file);
    const std::vector<Token> tokens = tok->encode(text, true);
    const std::size_t available = tokens.size() / n_ctx;
    if (available == 0)
      throw Error(o.text_file + ": " + std::to_string(tokens.size()) + " tokens, fewer than one window of " +
                  std::to_string(n_ctx) + " (give a longer text or a smaller -c)");
    const std::size_t n_chunks = static_cast<std::size_t>(std::min<std::uint64_t>(o.chunks, available));
    LlamaModel model(weights, LlamaParams{.threads = o.threads, .context_length = static_cast<std::uint32_t>(n_ctx)});
    progress.done();
    std::fprintf(stderr, "picospec-perplexity: %s on %s: %zu tokens, %zu chunks of %zu, %zu threads\n",
                 o.model.c_str(), o.text_file.c_str(), tokens.size(), n_chunks, n_ctx, model.threads());

    const std::size_t first = n_ctx / 2;
    double nll = 0.0, nll2 = 0.0;
    std::size_t count = 0;
    std::vector<Token> window(n_ctx);
    LogitRows rows;
    for (std::size_t i = 0; i < n_chunks; ++i) {
      std::copy_n(tokens.begin() + static_cast<std::ptrdiff_t>(i * n_ctx), n_ctx, window.begin());
      window[0] = tok->bos();
      model.reset();
      // In batches of -b tokens (bounded logits memory); the model's logits do not depend on the batching.
      for (std::size_t b = 0; b < n_ctx; b += o.batch) {
        const std::size_t len = std::min(o.batch, n_ctx - b);
        model.forward(std::span<const Token>(window.data() + b, len), rows);
        for (std::size_t j = std::max(b, first); j < b + len && j + 1 < n_ctx; ++j) {
          const double v = token_nll(rows.row(j - b), window[j + 1]);
          nll += v;
          nll2 += v * v;
          ++count;
        }
      }
      std::fprintf(stderr, "[%zu]%.4f,", i + 1, std::exp(nll / static_cast<double>(count)));
      std::fflush(stderr);
    }
    std::fprintf(stderr, "\n");
    const double mean = nll / static_cast<double>(count);
    const double ppl = std::exp(mean);
    const double var = nll2 / static_cast<double>(count) - mean * mean;
    const double ppl_err =
        count > 1 && var > 0 ? ppl * std::sqrt(var / static_cast<double>(count - 1)) : 0.0;
    std::fprintf(stderr, "Final estimate: PPL = %.4f +/- %.5f\n", ppl, ppl_err);
    if (o.json) {
      nlohmann::json j;
      j["ppl"] = ppl;
      j["ppl_err"] = ppl_err;
      j["tokens_scored"] = count;
      j["chunks"] = n_chunks;
      j["n_ctx"] = n_ctx;
      std::printf("%s\n", j.dump().c_str());
    }
    return 0;
  });
}
