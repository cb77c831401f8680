// picospec-generate: in-process text generation with a GGUF LLaMA model, alone or speculatively with a draft.
//
//   picospec-generate -m target.gguf [-md draft.gguf] [-p "Once upon a time"] [-n 128] [--temp 0.8]
//                     [--top-k 40] [--top-p 0.95] [--min-p 0] [-s|--seed 1] [--draft-max 4] [-t|--threads N] [--json]
//                     [--chat]
//   (picospec-generate --help lists them with their defaults and ranges)
//
// Target alone: the model's logits go through picospec::sampling (temperature 0 = greedy); each draw uses
// uniform(seed, Purpose::target_sample, position, 0), so the output equals the cloud-ar baseline with the same seed.
// With a draft: an EdgeSession (draft model) and a CloudServer (target model) in one process over the loopback
// transport, in picospec's default pipeline mode; the output is distributed exactly as the target's own sampling
// (identical to it under greedy decoding).
// Text streams to stdout as tokens are committed; --json prints one JSON object at the end instead. Generation stops
// at any end-of-generation token of the model (EOS, <|eot_id|>, <|im_end|> ...). --chat wraps the prompt in the
// model's chat template (ChatML for Qwen, the Llama 3 header format; detected from the GGUF metadata).
// Bad flags or files: one line on stderr and exit status 2 (usage) or 1 (runtime).

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cli.hpp"
#include "picospec/cloud_server.hpp"
#include "picospec/edge_session.hpp"
#include "picospec/llama/chat.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/lm_adapters.hpp"
#include "picospec/loopback/loopback.hpp"
#include "picospec/rng.hpp"
#include "picospec/sampling.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

struct Options {
  std::string target, draft, prompt;
  std::uint32_t n = 128;
  SamplingParams sampling{0.8f, 40, 0.95f, 0.0f};
  std::uint64_t seed = 0;
  std::uint32_t draft_max = 4;
  std::size_t threads = 0;
  bool json = false;
  bool chat = false;
};

struct Output {
  std::string text;
  std::size_t tokens = 0;
  double seconds = 0;
  std::optional<double> acceptance;
};

class Streamer {
 public:
  Streamer(const Tokenizer& tok, bool echo, Token prev) : tok_(tok), echo_(echo), prev_(prev) {}
  void operator()(Token t) {
    const std::string s = tok_.token_to_text(t, prev_);
    prev_ = t;
    text_ += s;
    if (echo_) {
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    }
  }
  [[nodiscard]] const std::string& text() const noexcept { return text_; }

 private:
  const Tokenizer& tok_;
  bool echo_;
  Token prev_;
  std::string text_;
};

Output run_target_alone(const Options& o, const std::shared_ptr<const LlamaWeights>& target,
                        const std::vector<Token>& prompt) {
  LlamaModel m(target, {.threads = o.threads});
  const auto tok = target->tokenizer();
  Streamer stream(*tok, !o.json, prompt.back());
  const auto t0 = std::chrono::steady_clock::now();
  LogitRows rows;
  m.forward(prompt, rows);
  std::vector<float> probs;
  SamplingWorkspace ws;
  Output out;
  for (std::uint32_t i = 0; i < o.n; ++i) {
    const auto row = rows.row(rows.rows() - 1);
    Token t;
    if (o.sampling.greedy()) {
      t = argmax(row);
    } else {
      logits_to_probs(row, o.sampling, probs, ws);
      t = sample_from(probs, uniform(o.seed, Purpose::target_sample, m.length(), 0));
    }
    ++out.tokens;
    stream(t);
    if (m.info().is_eog(t) || m.length() >= m.info().context_length) break;
    m.forward(std::span<const Token>(&t, 1), rows);
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.text = stream.text();
  return out;
}

Output run_speculative(const Options& o, const std::shared_ptr<const LlamaWeights>& target,
                       const std::shared_ptr<const LlamaWeights>& draft, const std::vector<Token>& prompt) {
  loopback::LoopbackParams lp;
  lp.max_frame_bytes = 0;
  auto hub_owner = std::make_unique<loopback::LoopbackHub>(lp);
  auto* hub = hub_owner.get();
  CloudOptions co;
  co.workers = 1;
  const std::size_t threads = o.threads;
  CloudServer cloud(
      [target, threads] { return std::make_unique<LmVerifier>(std::make_unique<LlamaModel>(target, LlamaParams{.threads = threads})); },
      std::move(hub_owner), co);
  cloud.start();
  EdgeOptions eo;
  eo.label_backend = "llama";
  EdgeSession edge(std::make_unique<LmDrafter>(std::make_unique<LlamaModel>(draft, LlamaParams{.threads = threads})),
                   hub->connect(), eo);
  GenerateParams gp;
  gp.mode = PipelineMode::picospec;
  gp.sampling = o.sampling;
  gp.seed = o.seed;
  gp.max_tokens = o.n;
  gp.gamma = o.draft_max;
  Streamer stream(*target->tokenizer(), !o.json, prompt.back());
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = edge.generate(prompt, gp, [&](Token t) { stream(t); });
  Output out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.tokens = r.tokens.size();
  out.text = stream.text();
  out.acceptance = r.metrics.acceptance_rate;
  cloud.stop();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"picospec-generate: text generation with a GGUF model, alone or speculative with a draft model (in one "
               "process); text streams to stdout, figures to stderr (or one JSON object with --json).",
               "picospec-generate"};
  examples::Cli cli(app, {{"-md", "--draft"}});
  app.add_option("-m,--target,--model", o.target, "target model (GGUF, llama architecture)")->required();
  app.add_option("--draft,--model-draft", o.draft, "draft model: speculative decoding (optional)");
  app.add_option("-p,--prompt", o.prompt, "prompt (empty: start from BOS)");
  app.add_option("-n,--n-predict", o.n, "tokens to generate")->check(examples::range(1u, 1u << 30));
  examples::add_sampling(app, o.sampling);
  examples::add_seed(app, o.seed);
  app.add_option("--draft-max", o.draft_max, "draft tokens per chunk")->check(examples::range(1u, 64u));
  examples::add_threads(app, o.threads, "per model (0 = all cores)");
  app.add_flag("--json", o.json, "print one JSON object (text, tokens, tokens_per_s, acceptance) at the end");
  app.add_flag("--chat", o.chat, "wrap the prompt in the model's chat template (Qwen: ChatML, Llama 3: headers)");
  return cli.run(argc, argv, [&]() -> int {
    examples::Progress progress("loading " + o.target);
    const auto target = LlamaWeights::load(o.target);
    if (!target->tokenizer()) throw Error(o.target + ": the file has no tokenizer (tokenizer.ggml.tokens)");
    std::shared_ptr<const LlamaWeights> draft;
    if (!o.draft.empty()) {
      progress.update("loading " + o.draft);
      draft = LlamaWeights::load(o.draft);
      if (!draft->tokenizer() || draft->tokenizer()->fingerprint() != target->tokenizer()->fingerprint())
        throw Error("draft " + o.draft + " and target " + o.target + " have different vocabularies");
    }
    const auto tok = target->tokenizer();
    std::vector<Token> prompt = o.chat ? chat_tokens(target->file(), *tok, o.prompt) : tok->encode(o.prompt, true);
    if (prompt.empty()) throw Error(o.target + ": the model has no BOS token; give a non-empty prompt");
    progress.done();
    if (!o.json) {
      const std::string shown = tok->decode(prompt);
      std::fwrite(shown.data(), 1, shown.size(), stdout);
      std::fflush(stdout);
    }
    const Output out = draft ? run_speculative(o, target, draft, prompt) : run_target_alone(o, target, prompt);
    const double tps = out.seconds > 0 ? static_cast<double>(out.tokens) / out.seconds : 0.0;
    if (o.json) {
      nlohmann::json j;
      j["text"] = out.text;
      j["tokens"] = out.tokens;
      j["prompt_tokens"] = prompt.size();
      j["tokens_per_s"] = tps;
      j["mode"] = draft ? "speculative" : "target";
      if (out.acceptance) j["acceptance"] = *out.acceptance;
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::printf("\n");
      std::fprintf(stderr, "[%zu tokens, %.1f tokens/s", out.tokens, tps);
      if (out.acceptance) std::fprintf(stderr, ", acceptance %.3f", *out.acceptance);
      std::fprintf(stderr, "]\n");
    }
    return 0;
  });
}
