// picospec-demo: edge-cloud speculative decoding with two real GGUF models, end to end.
//
// The cloud (target model) serves on a ZeroMQ ROUTER socket at tcp://127.0.0.1 (ephemeral port). The edge (draft
// model) connects with a DEALER socket wrapped in the link emulator, so every frame pays the latency and bandwidth of
// the chosen link profile. For each prompt the demo runs, through the same server and link:
//   1. cloud-ar   : the cloud generates alone and streams tokens down (the baseline);
//   2. picospec   : pipelined speculative decoding, greedy — checked token for token against cloud-ar;
//   3. picospec   : sampled (temperature > 0, exact candidate-stream rejection sampling), seeded;
//   4. vanilla    : stop-and-wait speculative decoding that uplinks full draft distributions (sampled, same seed).
// and prints the text, throughput, acceptance and bytes on the wire per token.
//
// The two shared models are tiny (260K/280K parameters, same size), so their compute is negligible and the
// timings here are dominated by the link: they show the protocol's behaviour, not a speed-up from a large target.
// For what-if speed-ups with paper-measured latencies see picospec-bench-pipeline (scripts/demo.sh runs both).
//
// Usage: picospec-demo [--models DIR] [--link PROFILE] [-n N] [--temp T] [--seed S] [--gamma G]

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "picospec/cloud_server.hpp"
#include "picospec/edge_session.hpp"
#include "picospec/link.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/tokenizer.hpp"
#include "picospec/lm_adapters.hpp"
#include "picospec/zmq/zmq_transport.hpp"

namespace {

using namespace picospec;

struct Options {
  std::string models = "../shared/models";
  std::string target = "stories260K.gguf";
  std::string draft = "tinystories-xs-280K.gguf";
  std::string link = "wan";
  std::uint32_t n = 48;
  float temp = 0.8f;
  std::uint64_t seed = 7;
  std::uint32_t gamma = 4;
};

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "picospec-demo: %s\n", msg.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    auto number = [&](double lo, double hi) {
      const std::string v = value();
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(d >= lo && d <= hi))
        usage_error(a + " expects a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + v + "'");
      return d;
    };
    if (a == "--models") o.models = value();
    else if (a == "--target") o.target = value();
    else if (a == "--draft") o.draft = value();
    else if (a == "--link") o.link = value();
    else if (a == "-n") o.n = static_cast<std::uint32_t>(number(1, 400));
    else if (a == "--temp") o.temp = static_cast<float>(number(0.01, 5));
    else if (a == "--seed") o.seed = static_cast<std::uint64_t>(number(0, 1e15));
    else if (a == "--gamma") o.gamma = static_cast<std::uint32_t>(number(1, 16));
    else if (a == "-h" || a == "--help") {
      std::printf("usage: picospec-demo [--models DIR] [--target F] [--draft F] [--link PROFILE] [-n N] [--temp T] "
                  "[--seed S] [--gamma G]\n  link profiles: none lan wan paper-wan cellular or rtt_ms:up_mbit:down_mbit\n");
      std::exit(0);
    } else usage_error("unknown argument '" + a + "' (try --help)");
  }
  return o;
}

struct Run {
  std::string label;
  GenerateResult result;
  std::string text;
};

void print_run(const Run& r) {
  const Metrics& m = r.result.metrics;
  const double tok = static_cast<double>(std::max<std::uint64_t>(m.tokens, 1));
  std::printf("  %-22s %6.1f tok/s  TTFT %6.1f ms  accepted/round %4.2f  up %6.1f B/tok  down %6.1f B/tok  frames %llu/%llu\n",
              r.label.c_str(), m.tokens_per_s, m.ttft_ms, m.rounds ? m.mean_accepted_length : 0.0,
              static_cast<double>(m.bytes_up) / tok, static_cast<double>(m.bytes_down) / tok,
              static_cast<unsigned long long>(m.frames_up), static_cast<unsigned long long>(m.frames_down));
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    const auto target_path = std::filesystem::path(o.models) / o.target;
    const auto draft_path = std::filesystem::path(o.models) / o.draft;
    if (!std::filesystem::exists(target_path) || !std::filesystem::exists(draft_path)) {
      std::fprintf(stderr,
                   "picospec-demo: models not found (%s, %s). Point --models at a folder holding %s and %s.\n",
                   target_path.c_str(), draft_path.c_str(), o.target.c_str(), o.draft.c_str());
      return 1;
    }
    const auto link = LinkProfile::parse(o.link);
    const auto target = llama::LlamaWeights::load(target_path.string());
    const auto draft = llama::LlamaWeights::load(draft_path.string());
    const auto tok = target->tokenizer();
    if (!tok) throw Error(target_path.string() + ": no tokenizer in the file");

    // Cloud: ROUTER on an ephemeral tcp port; one LmVerifier (own KV cache) per session, weights shared.
    auto server_transport = std::make_unique<zmq::ZmqServerTransport>("tcp://127.0.0.1:*");
    const std::string endpoint = server_transport->endpoint();
    CloudOptions co;
    co.workers = 1;
    CloudServer cloud([target] { return std::make_unique<LmVerifier>(std::make_unique<llama::LlamaModel>(target, llama::LlamaParams{.threads = 1})); },
                      std::move(server_transport), co);
    cloud.start();

    // Edge: DEALER wrapped in the link emulator.
    auto edge_transport = std::make_unique<LinkTransport>(std::make_unique<zmq::ZmqClientTransport>(endpoint), link);
    EdgeOptions eo;
    eo.label_backend = "llama";
    eo.label_profile = o.draft + " -> " + o.target;
    EdgeSession edge(std::make_unique<LmDrafter>(std::make_unique<llama::LlamaModel>(draft, llama::LlamaParams{.threads = 1})),
                     std::move(edge_transport), eo);

    std::printf("picospec demo\n  cloud: %s serving %s\n  edge : %s drafting, link %s\n\n", endpoint.c_str(),
                o.target.c_str(), o.draft.c_str(), link.describe().c_str());

    const std::vector<std::string> prompts = {"Once upon a time, there was a little girl named Lily.",
                                              "Tom and his dog went to the park. They saw a big"};
    bool all_identical = true;
    for (const auto& prompt_text : prompts) {
      const std::vector<Token> prompt = tok->encode(prompt_text, true);
      auto run = [&](const std::string& label, PipelineMode mode, float temp) {
        GenerateParams gp;
        gp.mode = mode;
        gp.sampling.temperature = temp;
        gp.seed = o.seed;
        gp.max_tokens = o.n;
        gp.gamma = o.gamma;
        Run r;
        r.label = label;
        r.result = edge.generate(prompt, gp);
        Token prev = prompt.back();
        for (Token t : r.result.tokens) {
          r.text += tok->token_to_text(t, prev);
          prev = t;
        }
        return r;
      };
      std::printf("prompt: \"%s\"\n", prompt_text.c_str());
      const Run ar = run("cloud-ar  greedy", PipelineMode::cloud_ar, 0.0f);
      const Run spec = run("picospec  greedy", PipelineMode::picospec, 0.0f);
      const Run sampled = run("picospec  T=" + std::to_string(o.temp).substr(0, 4), PipelineMode::picospec, o.temp);
      const Run vanilla = run("vanilla   T=" + std::to_string(o.temp).substr(0, 4), PipelineMode::vanilla, o.temp);
      const bool same = ar.result.tokens == spec.result.tokens;
      all_identical = all_identical && same;
      std::printf("  cloud-ar text : %s\n", ar.text.c_str());
      std::printf("  picospec text : %s\n", spec.text.c_str());
      std::printf("  greedy picospec == cloud-ar token for token: %s (%zu tokens)\n", same ? "yes" : "NO",
                  spec.result.tokens.size());
      std::printf("  sampled text  : %s\n", sampled.text.c_str());
      for (const Run* r : {&ar, &spec, &sampled, &vanilla}) print_run(*r);
      std::printf("\n");
    }
    const CloudStats cs = cloud.stats();
    std::printf("cloud: %llu sessions, %llu chunks verified, %llu/%llu drafts accepted, %llu rejections\n",
                static_cast<unsigned long long>(cs.sessions_opened), static_cast<unsigned long long>(cs.chunks_verified),
                static_cast<unsigned long long>(cs.drafts_accepted), static_cast<unsigned long long>(cs.drafts_tested),
                static_cast<unsigned long long>(cs.rejections));
    std::printf(
        "note: these models are tiny (about 0.2 ms per token), so cloud-ar, which streams tokens without waiting for\n"
        "      the edge, is bound only by the link, while speculative decoding pays a round trip per chunk. Speculation\n"
        "      pays off when the target's time per token is large beside RTT / gamma: part 2 of scripts/demo.sh shows\n"
        "      the modes with the latencies the PicoSpec paper measured for real edge and cloud models.\n");
    cloud.stop();
    return all_identical ? 0 : 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "picospec-demo: %s\n", e.what());
    return 1;
  }
}
