// picospec-edge: the edge half. Loads a draft GGUF model, connects to a picospec-server and generates.
//
//   picospec-edge -md draft.gguf [--connect tcp://HOST:5555] [-p PROMPT] [-n N] [--mode picospec|paper|vanilla|
//                 cloud-ar|edge-only] [--temp T] [--top-k K] [--top-p P] [--seed S] [--gamma G] [--depth D]
//                 [--link PROFILE] [--curve-server-key KEY] [--timeout-ms MS] [--json]
//
// Text streams to stdout as the cloud commits it; metrics (tokens/s, acceptance, bytes per token) go to stderr,
// or everything as one JSON object with --json. --link wraps the connection in the link emulator (e.g. `wan`,
// `cellular`, `20:100:100`) to try a slower network from a fast one.

#include <cstdio>
#include <memory>
#include <string>

#include "common/args.hpp"
#include "picospec/edge_session.hpp"
#include "picospec/link.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/tokenizer.hpp"
#include "picospec/lm_adapters.hpp"
#include "picospec/zmq/zmq_transport.hpp"

namespace {

using namespace picospec;
using examples::UsageError;

struct Options {
  std::string draft;
  std::string connect = "tcp://127.0.0.1:5555";
  std::string prompt;
  std::string link = "none";
  std::string curve_server_key;
  GenerateParams gen;
  std::size_t threads = 1;
  std::uint64_t timeout_ms = 30000;
  bool json = false;
};

Options parse(int argc, char** argv) {
  Options o;
  o.gen.max_tokens = 64;
  examples::Args args(argc, argv);
  std::string f;
  while (args.next(f)) {
    if (f == "-md" || f == "--draft") o.draft = args.value();
    else if (f == "--connect") o.connect = args.value();
    else if (f == "-p" || f == "--prompt") o.prompt = args.value();
    else if (f == "-n") o.gen.max_tokens = static_cast<std::uint32_t>(args.integer(1, 100000));
    else if (f == "--mode") {
      try {
        o.gen.mode = parse_pipeline_mode(args.value());
      } catch (const Error& e) {
        throw UsageError(e.what());
      }
    } else if (f == "--temp") o.gen.sampling.temperature = static_cast<float>(args.number(0, 100));
    else if (f == "--top-k") o.gen.sampling.top_k = static_cast<std::int32_t>(args.integer(0, 1u << 30));
    else if (f == "--top-p") o.gen.sampling.top_p = static_cast<float>(args.number(1e-6, 1));
    else if (f == "--min-p") o.gen.sampling.min_p = static_cast<float>(args.number(0, 1));
    else if (f == "--seed") o.gen.seed = args.integer(0, UINT64_MAX);
    else if (f == "--gamma") o.gen.gamma = static_cast<std::uint32_t>(args.integer(1, 64));
    else if (f == "--depth") o.gen.depth = static_cast<std::uint32_t>(args.integer(1, 16));
    else if (f == "--threads") o.threads = args.integer(1, 1024);
    else if (f == "--link") o.link = args.value();
    else if (f == "--curve-server-key") o.curve_server_key = args.value();
    else if (f == "--timeout-ms") o.timeout_ms = args.integer(1, 3600000);
    else if (f == "--json") o.json = true;
    else if (f == "-h" || f == "--help") {
      std::printf("usage: picospec-edge -md draft.gguf [--connect ENDPOINT] [-p PROMPT] [-n N] [--mode MODE]\n"
                  "                     [--temp T] [--top-k K] [--top-p P] [--min-p P] [--seed S] [--gamma G]\n"
                  "                     [--depth D] [--threads N] [--link PROFILE] [--curve-server-key KEY]\n"
                  "                     [--timeout-ms MS] [--json]\n"
                  "  modes: picospec (default) paper vanilla cloud-ar edge-only\n"
                  "  link profiles: none lan wan paper-wan cellular, or rtt_ms:up_mbit:down_mbit[:jitter_ms]\n");
      std::exit(0);
    } else args.unknown();
  }
  if (o.draft.empty()) throw UsageError("-md draft.gguf is required");
  try {
    (void)LinkProfile::parse(o.link);
  } catch (const Error& e) {
    throw UsageError(std::string("--link: ") + e.what());
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::run_main("picospec-edge", [&] { return parse(argc, argv); }, [](const Options& o) -> int {
    const auto weights = llama::LlamaWeights::load(o.draft);
    const auto tok = weights->tokenizer();
    if (!tok) throw Error(o.draft + ": no tokenizer in the file");
    std::unique_ptr<Transport> transport;
    if (o.gen.mode != PipelineMode::edge_only) {
      zmq::ZmqOptions zo;
      zo.max_message_bytes = std::size_t{64} << 20;
      if (!o.curve_server_key.empty()) {
        zo.curve.enabled = true;
        zo.curve.server_public_key = o.curve_server_key;
      }
      transport = std::make_unique<zmq::ZmqClientTransport>(o.connect, zo);
      const LinkProfile link = LinkProfile::parse(o.link);
      if (o.link != "none") transport = std::make_unique<LinkTransport>(std::move(transport), link);
    }
    EdgeOptions eo;
    eo.label_backend = "llama";
    eo.response_timeout = std::chrono::milliseconds(o.timeout_ms);
    EdgeSession edge(std::make_unique<LmDrafter>(std::make_unique<llama::LlamaModel>(weights, llama::LlamaParams{.threads = o.threads})),
                     std::move(transport), eo);
    const std::vector<Token> prompt = tok->encode(o.prompt, true);
    if (prompt.empty()) throw Error(o.draft + ": the model has no BOS token; give a non-empty prompt");
    std::string text;
    Token prev = prompt.back();
    if (!o.json) {
      std::fputs(o.prompt.c_str(), stdout);
      std::fflush(stdout);
    }
    const GenerateResult r = edge.generate(prompt, o.gen, [&](Token t) {
      const std::string piece = tok->token_to_text(t, prev);
      prev = t;
      text += piece;
      if (!o.json) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      }
    });
    if (o.json) {
      // Metrics::to_json() is one JSON object; splice the text in front of it.
      std::string escaped;
      for (unsigned char c : text) {
        if (c == '"' || c == '\\') { escaped += '\\'; escaped += static_cast<char>(c); }
        else if (c < 0x20) { char buf[8]; std::snprintf(buf, sizeof buf, "\\u%04x", c); escaped += buf; }
        else escaped += static_cast<char>(c);
      }
      const std::string m = r.metrics.to_json();
      std::printf("{\"text\":\"%s\",\"finish\":\"%s\",\"metrics\":%s}\n", escaped.c_str(),
                  std::string(to_string(r.finish)).c_str(), m.c_str());
    } else {
      const Metrics& m = r.metrics;
      const double n = static_cast<double>(std::max<std::uint64_t>(m.tokens, 1));
      std::printf("\n");
      std::fprintf(stderr, "[%s, %llu tokens, %.1f tokens/s, TTFT %.1f ms, acceptance %.3f, %.1f B/token up, %.1f "
                   "B/token down, finish %s]\n",
                   m.mode.c_str(), static_cast<unsigned long long>(m.tokens), m.tokens_per_s, m.ttft_ms,
                   m.acceptance_rate, static_cast<double>(m.bytes_up) / n, static_cast<double>(m.bytes_down) / n,
                   std::string(to_string(r.finish)).c_str());
    }
    return 0;
  });
}
