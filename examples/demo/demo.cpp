// picospec-demo: the main job. Our own trained pair (models/target.gguf, 21M parameters, in the cloud;
// models/draft.gguf, 1M parameters, on the edge), end to end over ZeroMQ tcp and an emulated network link.
//
// The cloud serves the target on a ZeroMQ ROUTER socket at tcp://127.0.0.1 (ephemeral port). The edge drafts
// with the draft model and talks to the cloud through a DEALER socket wrapped in the link emulator, so every
// frame pays the link's latency and bandwidth. Each mode (cloud-ar, edge-only, vanilla, paper, picospec) runs the
// same prompts through the same server and link; the text streams as tokens commit, then one table compares
// the modes. The cloud's target model is wrapped in a counter, so the table also shows the cloud forward passes
// per generated token: the cloud-cost saving of speculation, which holds whatever the link.
//
// The cloud's target computes with `--cloud-threads` threads, the edge's draft with `--threads` (default 1 each: the
// demo plays two machines on one, so each side gets a core of its own; with `--cloud-threads 2` on a 2-core machine
// the edge's drafting takes cycles from the cloud, which two real machines would not do).
//
// picospec runs with the `coupled` rejection and cloud fill by default: whenever no draft can be verified the
// cloud commits the next token itself, so it never waits for the edge, and the tokens are the target's own coupled
// draws, the very tokens cloud-ar (which the demo asks to sample the same way) produces for the same seed.
//
//   picospec-demo                       # models/, the default link, every mode
//   picospec-demo --temp 0 --mode all   # greedy: picospec's text equals cloud-ar's, token for token
//   picospec-demo --json                # one JSON document (each mode's figures and text)
//   picospec-demo -m TARGET.gguf -md DRAFT.gguf --link wan

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cli.hpp"

#include "picospec/cloud_server.hpp"
#include "picospec/edge_session.hpp"
#include "picospec/link.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/tokenizer.hpp"
#include "picospec/lm_adapters.hpp"
#include "picospec/zmq/zmq_transport.hpp"

namespace {

using namespace picospec;

// The configuration the demo runs unless told otherwise, and why (printed in one line). Measured with our pair on
// the 2-core VM (docs/benchmarks.md, "Our trained pair"): verifying a chunk on this CPU costs about 2x a decode step
// (the 21M target is compute-bound in cache), so a verify pass commits ~1.6x the tokens of a decode step's time;
// the round trip after each rejection is filled by the cloud's own tokens; two chunks in flight and chunks of 3
// drafts were the best of a grid (gamma 2-5, depth 1-3).
constexpr const char* kDefaultLink = "lan";
constexpr const char* kDefaultWhy =
    "a LAN-class edge-cloud link (RTT 1 ms), where a verify pass still beats decode steps on this CPU and the "
    "cloud fills each round trip with tokens of its own; on slower links the lead shrinks (docs/benchmarks.md)";

struct Options {
  std::string models;
  std::string target, draft;
  std::string link = kDefaultLink;
  std::string mode = "all";
  std::vector<std::string> prompts;
  std::uint32_t n = 96;
  float temp = 0.8f;
  std::uint64_t seed = 7;
  std::uint32_t gamma = 3;
  std::uint32_t depth = 2;
  bool adaptive = false;
  std::uint32_t branches = 0;
  std::string rejection = "coupled";
  bool no_fill = false;
  bool unpaced_fill = false;
  std::size_t threads = 1;
  std::size_t cloud_threads = 1;
  bool json = false;
  bool quiet = false;
};

std::vector<std::string> default_model_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("PICOSPEC_MODELS")) dirs.emplace_back(env);
  dirs.emplace_back(PICOSPEC_SOURCE_MODELS_DIR);    // the source tree's models/ (a build from a clone)
  dirs.emplace_back(PICOSPEC_INSTALLED_MODELS_DIR);  // <prefix>/share/picospec/models (cmake --install)
  dirs.emplace_back("models");
  return dirs;
}

/// A CausalLM decorator that counts forward passes (calls) and the tokens they evaluate.
class CountingLM final : public CausalLM {
 public:
  CountingLM(std::unique_ptr<CausalLM> inner, std::atomic<std::uint64_t>& calls)
      : CausalLM(inner->info()), inner_(std::move(inner)), calls_(calls) {}

 protected:
  void do_forward(std::span<const Token> tokens, LogitRows& out) override {
    calls_.fetch_add(1, std::memory_order_relaxed);
    inner_->forward(tokens, out);
  }
  void do_forward_last(std::span<const Token> tokens, LogitRows& out) override {
    calls_.fetch_add(1, std::memory_order_relaxed);
    inner_->forward(tokens, out, LogitsFor::last);
  }
  void do_truncate(std::size_t n) override { inner_->truncate(n); }

 private:
  std::unique_ptr<CausalLM> inner_;
  std::atomic<std::uint64_t>& calls_;
};

struct ModeRun {
  PipelineMode mode;
  std::vector<GenerateResult> results;  // one per prompt
  std::vector<std::string> texts;
  std::uint64_t cloud_forwards = 0;
  double cloud_verify_ms = 0;  // time inside the cloud's Verifier calls (CloudStats::verify_ms delta)
  double draft_ms = 0;         // edge time inside the drafter + sampling
  std::uint64_t drafted = 0;
  // Aggregates over prompts.
  std::uint64_t tokens = 0, bytes_up = 0, bytes_down = 0, accepted = 0, tested = 0, rounds = 0;
  double wall_ms = 0, ttft_ms = 0;
  [[nodiscard]] double tok_s() const { return wall_ms > 0 ? 1000.0 * static_cast<double>(tokens) / wall_ms : 0; }
  [[nodiscard]] double per_token(std::uint64_t x) const {
    return tokens ? static_cast<double>(x) / static_cast<double>(tokens) : 0;
  }
  [[nodiscard]] bool speculative() const {
    return mode == PipelineMode::vanilla || mode == PipelineMode::paper || mode == PipelineMode::picospec;
  }
};

bool stderr_is_tty() { return ::isatty(STDERR_FILENO) == 1; }

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"picospec-demo: edge-cloud speculative decoding with our trained draft/target pair, every mode on "
               "the same prompts and link, over ZeroMQ tcp and an emulated network.", "picospec-demo"};
  examples::Cli cli(app, {{"-md", "--draft"}});
  app.add_option("--models", o.models, "folder holding target.gguf and draft.gguf (default: the project's models/)");
  app.add_option("-m,--target", o.target, "target model (GGUF), overrides --models");
  app.add_option("--draft", o.draft, "draft model (GGUF), overrides --models");
  app.add_option("--link", o.link, "link profile: none, lan, wan, paper-wan, cellular, or rtt_ms:up_mbit:down_mbit[:jitter_ms]")
      ->check(examples::parsed_by([](const std::string& v) { (void)LinkProfile::parse(v); }));
  app.add_option("--mode", o.mode, "cloud-ar, edge-only, vanilla, paper, picospec, a comma-separated list, or all")
      ->check(examples::parsed_by([](const std::string& v) {
        for (std::size_t b = 0; v != "all" && b <= v.size();) {
          const std::size_t e = std::min(v.find(',', b), v.size());
          (void)parse_pipeline_mode(v.substr(b, e - b));
          b = e + 1;
        }
      }));
  app.add_option("-p,--prompt", o.prompts, "prompt (repeatable; default: three story openings)");
  app.add_option("-n,--n-predict", o.n, "tokens to generate per prompt")->check(examples::range(1u, 400u));
  app.add_option("--temp", o.temp, "temperature, 0 = greedy")->check(examples::range(0.0f, 5.0f));
  examples::add_seed(app, o.seed);
  app.add_option("--gamma", o.gamma, "draft tokens per chunk")->check(examples::range(1u, 16u));
  app.add_option("--depth", o.depth, "chunks in flight while the edge drafts the next")->check(examples::range(1u, 8u));
  app.add_flag("--adaptive", o.adaptive, "adaptive draft length (at most --gamma) from measured acceptance and times");
  app.add_option("--branches", o.branches, "pre-drafted branches per draft (no flush on a miss); 0 = off")
      ->check(examples::range(0u, 4u));
  app.add_option("--rejection", o.rejection,
                 "picospec's rejection at temperature > 0: coupled (the default: the cloud fills, and cloud-ar "
                 "samples the same way, so the texts are equal), candidates or sparse_draft")
      ->check(CLI::IsMember({"coupled", "candidates", "sparse_draft"}));
  app.add_flag("--no-fill", o.no_fill, "picospec: the cloud waits for drafts instead of committing tokens itself");
  app.add_flag("--unpaced-fill", o.unpaced_fill,
               "picospec: fill passes even when the edge's next chunk is due (CloudOptions::fill_paced off)");
  app.add_option("-t,--threads", o.threads, "threads of the edge's draft model")
      ->check(examples::range(std::size_t{1}, std::size_t{64}));
  app.add_option("--cloud-threads", o.cloud_threads, "threads of the cloud's target model (default 1: one core per side, as two machines)")
      ->check(examples::range(std::size_t{1}, std::size_t{64}));
  app.add_flag("--json", o.json, "print one JSON document instead of the text and table");
  app.add_flag("-q,--quiet", o.quiet, "do not stream the generated text");
  return cli.run(argc, argv, [&]() -> int {
  {
    // Modes.
    std::vector<PipelineMode> modes;
    if (o.mode == "all") {
      modes = {PipelineMode::cloud_ar, PipelineMode::edge_only, PipelineMode::vanilla, PipelineMode::paper,
               PipelineMode::picospec};
    } else {
      std::string rest = o.mode;
      while (!rest.empty()) {
        const auto comma = rest.find(',');
        modes.push_back(parse_pipeline_mode(rest.substr(0, comma)));
        rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
      }
    }
    // cloud-ar first: the baseline of the speed-up column and of the greedy identity check.
    std::stable_sort(modes.begin(), modes.end(),
                     [](PipelineMode a, PipelineMode b) { return a == PipelineMode::cloud_ar && b != a; });

    // Models.
    std::string dir = o.models;
    if (dir.empty() && (o.target.empty() || o.draft.empty())) {
      for (const auto& d : default_model_dirs())
        if (std::filesystem::exists(std::filesystem::path(d) / "target.gguf")) {
          dir = d;
          break;
        }
      if (dir.empty()) throw Error("no models/target.gguf found; pass --models DIR or -m/-md");
    }
    const std::string target_path = o.target.empty() ? (std::filesystem::path(dir) / "target.gguf").string() : o.target;
    const std::string draft_path = o.draft.empty() ? (std::filesystem::path(dir) / "draft.gguf").string() : o.draft;
    const LinkProfile link = LinkProfile::parse(o.link);

    const bool progress = stderr_is_tty();
    if (progress) std::fprintf(stderr, "loading %s and %s ...\n", target_path.c_str(), draft_path.c_str());
    const auto target = llama::LlamaWeights::load(target_path);
    const auto draft = llama::LlamaWeights::load(draft_path);
    const auto tok = target->tokenizer();
    if (!tok) throw Error(target_path + ": no tokenizer in the file");
    if (!draft->tokenizer() || draft->tokenizer()->fingerprint() != tok->fingerprint())
      throw Error("the draft and the target do not share one tokenizer");
    if (o.prompts.empty())
      o.prompts = {"Once upon a time, there was a little girl named Lily.",
                   "Tom and his dog went to the park. They saw a big", "The old man looked at the sea and said,"};

    // Cloud: ROUTER on an ephemeral tcp port; one LmVerifier (own KV cache) per session, weights shared; the
    // target model is wrapped in a forward-pass counter.
    std::atomic<std::uint64_t> cloud_forwards{0};
    auto server_transport = std::make_unique<zmq::ZmqServerTransport>("tcp://127.0.0.1:*");
    const std::string endpoint = server_transport->endpoint();
    CloudOptions co;
    co.workers = 1;
    co.fill_paced = !o.unpaced_fill;
    const llama::LlamaParams mp{.threads = o.threads};
    const llama::LlamaParams cp{.threads = o.cloud_threads};
    CloudServer cloud(
        [&] {
          return std::make_unique<LmVerifier>(
              std::make_unique<CountingLM>(std::make_unique<llama::LlamaModel>(target, cp), cloud_forwards));
        },
        std::move(server_transport), co);
    cloud.start();

    EdgeOptions eo;
    eo.label_backend = "llama";
    eo.label_profile = target->name() + " <- " + draft->name();
    EdgeSession edge(std::make_unique<LmDrafter>(std::make_unique<llama::LlamaModel>(draft, mp)),
                     std::make_unique<LinkTransport>(std::make_unique<zmq::ZmqClientTransport>(endpoint), link), eo);

    const bool stream = !o.json && !o.quiet;
    if (!o.json) {
      std::printf("picospec demo: target %s (cloud, %s) <- draft %s (edge)\n", target->name().c_str(),
                  endpoint.c_str(), draft->name().c_str());
      std::printf("link: %s\n", link.describe().c_str());
      if (o.link == kDefaultLink) std::printf("why this link: %s\n", kDefaultWhy);
      std::printf("temperature %.2f, seed %llu, gamma %u, depth %u, %u tokens per prompt, threads: cloud %zu, edge %zu\n\n",
                  o.temp, static_cast<unsigned long long>(o.seed), o.gamma, o.depth, o.n, o.cloud_threads, o.threads);
    }

    std::vector<ModeRun> runs;
    for (PipelineMode mode : modes) {
      ModeRun r{mode, {}, {}};
      if (stream) std::printf("── %s ──\n", std::string(to_string(mode)).c_str());
      const std::uint64_t fwd0 = cloud_forwards.load();
      const double verify0 = cloud.stats().verify_ms;
      for (std::size_t pi = 0; pi < o.prompts.size(); ++pi) {
        const std::vector<Token> prompt = tok->encode(o.prompts[pi], true);
        GenerateParams gp;
        gp.mode = mode;
        gp.sampling.temperature = o.temp;
        gp.seed = o.seed + pi;
        gp.max_tokens = o.n;
        gp.gamma = o.gamma;
        gp.depth = o.depth;
        gp.adaptive_gamma = o.adaptive;
        gp.branch_heads = o.branches;
        // picospec's rejection; cloud-ar samples with the coupled draws when picospec's rejection is coupled.
        const RejectionMode rej = parse_rejection_mode(o.rejection);
        if (mode == PipelineMode::picospec || (mode == PipelineMode::cloud_ar && rej == RejectionMode::coupled))
          gp.rejection = rej;
        gp.cloud_fill = mode == PipelineMode::picospec && !o.no_fill && o.branches == 0 &&
                        (o.temp == 0.0f || rej == RejectionMode::coupled);
        std::string text;
        Token prev = prompt.back();
        if (stream) std::printf("%s", o.prompts[pi].c_str());
        if (progress && !stream)
          std::fprintf(stderr, "\r%s: prompt %zu/%zu ...", std::string(to_string(mode)).c_str(), pi + 1,
                       o.prompts.size());
        auto res = edge.generate(prompt, gp, [&](Token t) {
          const std::string piece = tok->token_to_text(t, prev);
          prev = t;
          text += piece;
          if (stream) {
            std::fputs(piece.c_str(), stdout);
            std::fflush(stdout);
          }
        });
        if (stream) std::printf("\n\n");
        const Metrics& m = res.metrics;
        r.tokens += m.tokens;
        r.wall_ms += m.wall_ms;
        r.ttft_ms += m.ttft_ms;
        r.bytes_up += m.bytes_up;
        r.bytes_down += m.bytes_down;
        r.accepted += m.accepted;
        for (auto x : m.position_tested) r.tested += x;
        r.rounds += m.rounds;
        r.draft_ms += m.draft_ms;
        r.drafted += m.drafted;
        r.texts.push_back(std::move(text));
        r.results.push_back(std::move(res));
      }
      if (progress && !stream) std::fprintf(stderr, "\r%*s\r", 40, "");
      r.ttft_ms /= static_cast<double>(o.prompts.size());
      r.cloud_forwards = cloud_forwards.load() - fwd0;
      r.cloud_verify_ms = cloud.stats().verify_ms - verify0;
      runs.push_back(std::move(r));
    }
    cloud.stop();

    const ModeRun* ar = nullptr;
    for (const auto& r : runs)
      if (r.mode == PipelineMode::cloud_ar) ar = &r;
    // Identity: every greedy speculative mode must reproduce cloud-ar token for token; sampled, so must picospec
    // with the coupled rejection (cloud-ar then samples with the same coupled draws).
    std::map<std::string, bool> identical;
    const bool coupled = o.temp > 0.0f && o.rejection == "coupled";
    if ((o.temp == 0.0f || coupled) && ar != nullptr)
      for (const auto& r : runs)
        if (o.temp == 0.0f ? r.speculative() : r.mode == PipelineMode::picospec) {
          bool same = true;
          for (std::size_t i = 0; i < r.results.size(); ++i)
            same = same && r.results[i].tokens == ar->results[i].tokens;
          identical[std::string(to_string(r.mode))] = same;
        }

    auto acceptance = [](const ModeRun& r) {
      return r.tested ? static_cast<double>(r.accepted) / static_cast<double>(r.tested) : 0.0;
    };
    auto mean_len = [](const ModeRun& r) {
      return r.rounds ? 1.0 + static_cast<double>(r.accepted) / static_cast<double>(r.rounds) : 0.0;
    };
    if (o.json) {
      nlohmann::json doc;
      doc["target"] = target->name();
      doc["draft"] = draft->name();
      doc["link"] = link.describe();
      doc["temperature"] = o.temp;
      doc["seed"] = o.seed;
      doc["gamma"] = o.gamma;
      doc["threads_per_side"] = o.threads;
      doc["prompts"] = o.prompts;
      for (const auto& r : runs) {
        nlohmann::json j;
        j["mode"] = to_string(r.mode);
        j["tokens"] = r.tokens;
        j["tokens_per_s"] = r.tok_s();
        j["speedup_vs_cloud_ar"] = ar && ar->tok_s() > 0 ? r.tok_s() / ar->tok_s() : 0.0;
        j["acceptance_rate"] = acceptance(r);
        j["mean_accepted_length"] = mean_len(r);
        j["bytes_up_per_token"] = r.per_token(r.bytes_up);
        j["bytes_down_per_token"] = r.per_token(r.bytes_down);
        j["ttft_ms"] = r.ttft_ms;
        j["cloud_forwards_per_token"] = r.per_token(r.cloud_forwards);
        j["cloud_forwards"] = r.cloud_forwards;
        j["cloud_ms_per_forward"] = r.cloud_forwards ? r.cloud_verify_ms / static_cast<double>(r.cloud_forwards) : 0.0;
        j["draft_ms_per_token"] = r.drafted ? r.draft_ms / static_cast<double>(r.drafted) : 0.0;
        j["wall_ms"] = r.wall_ms;
        j["text"] = r.texts;
        j["metrics"] = nlohmann::json::array();
        for (const auto& res : r.results) j["metrics"].push_back(nlohmann::json::parse(res.metrics.to_json()));
        doc["modes"].push_back(j);
      }
      doc["rejection"] = o.temp == 0.0f ? "greedy" : o.rejection;
      doc["cloud_fill"] = !o.no_fill && o.branches == 0 && (o.temp == 0.0f || coupled);
      for (const auto& [m, same] : identical) doc[o.temp == 0.0f ? "greedy_identical_to_cloud_ar" : "identical_to_cloud_ar"][m] = same;
      // Generated text may end inside a UTF-8 sequence (byte-fallback tokens): such bytes print as U+FFFD.
      std::printf("%s\n", doc.dump(1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::printf("%-10s %8s %9s %10s %9s %10s %11s %9s %12s\n", "mode", "tok/s", "vs c-ar", "accept", "mean len",
                  "up B/tok", "down B/tok", "TTFT ms", "cloud fwd/tok");
      for (const auto& r : runs) {
        const bool spec = r.speculative();
        std::printf("%-10s %8.1f %8.2fx %10s %9s %10.1f %11.1f %9.1f %12.2f\n", std::string(to_string(r.mode)).c_str(),
                    r.tok_s(), ar && ar->tok_s() > 0 ? r.tok_s() / ar->tok_s() : 0.0,
                    spec ? std::to_string(acceptance(r)).substr(0, 5).c_str() : "-",
                    spec ? std::to_string(mean_len(r)).substr(0, 4).c_str() : "-", r.per_token(r.bytes_up),
                    r.per_token(r.bytes_down), r.ttft_ms, r.per_token(r.cloud_forwards));
      }
      std::printf("\n(%zu prompts x %u tokens per mode; tok/s = tokens / wall time; cloud fwd/tok = target forward "
                  "passes per generated token, prefill included)\n",
                  o.prompts.size(), o.n);
      for (const auto& [m, same] : identical)
        std::printf("%s %s text == cloud-ar text, token for token: %s\n", o.temp == 0.0f ? "greedy" : "sampled",
                    m.c_str(), same ? "yes" : "NO");
      if (coupled)
        std::printf("sampled (T = %.2f): picospec's coupled rejection and cloud-ar draw each token with the same "
                    "keyed exponentials, so both give the target's own sample; vanilla is exact too, paper is "
                    "approximate (Top-K); their texts differ.\n",
                    o.temp);
      else if (o.temp > 0.0f)
        std::printf("sampled (T = %.2f): each speculative mode draws exactly from the target's distribution except "
                    "paper (Top-K, approximate); texts differ between modes. Run with --temp 0 to see them equal.\n",
                    o.temp);
    }
    for (const auto& [m, same] : identical)
      if (!same) return 3;
    return 0;
  }
  });
}
