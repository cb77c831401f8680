// picospec-edge: the edge half. Loads a draft GGUF model, connects to a picospec-server and generates.
//
//   picospec-edge -md draft.gguf [--connect tcp://HOST:5555] [-p PROMPT] [-n N] [--mode picospec|paper|vanilla|
//                 cloud-ar|edge-only] [--temp T] [--top-k K] [--top-p P] [--min-p P] [-s|--seed S] [--gamma G]
//                 [--depth D] [-t N] [--link PROFILE] [--curve-server-key KEY] [--timeout-ms MS] [--json]
//   (picospec-edge --help lists them with their defaults and ranges)
//
// Text streams to stdout as the cloud commits it; metrics (tokens/s, acceptance, bytes per token) go to stderr,
// or everything as one JSON object with --json. --link wraps the connection in the link emulator (e.g. `wan`,
// `cellular`, `20:100:100`) to try a slower network from a fast one.

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include "common/cli.hpp"
#include "picospec/edge_session.hpp"
#include "picospec/link.hpp"
#include "picospec/llama/chat.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/tokenizer.hpp"
#include "picospec/lm_adapters.hpp"
#include "picospec/zmq/zmq_transport.hpp"

namespace {

using namespace picospec;

struct Options {
  std::string draft;
  std::string connect = "tcp://127.0.0.1:5555";
  std::string prompt;
  std::string mode = "picospec";
  std::string link = "none";
  std::string curve_server_key;
  GenerateParams gen;
  std::size_t threads = 1;
  std::uint64_t timeout_ms = 30000;
  bool json = false;
  bool chat = false;  // --chat: the prompt wrapped in the model's chat template
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.gen.max_tokens = 64;
  CLI::App app{"picospec-edge: the edge half. Loads a draft GGUF model, connects to a picospec-server and generates; "
               "text streams to stdout, metrics to stderr (or one JSON object with --json).",
               "picospec-edge"};
  examples::Cli cli(app, {{"-md", "--draft"}});
  app.add_option("--draft", o.draft, "draft model (GGUF, llama architecture; same vocabulary as the server's)")
      ->required();
  app.add_option("--connect", o.connect, "picospec-server endpoint");
  app.add_option("-p,--prompt", o.prompt, "prompt (empty: start from BOS)");
  app.add_option("-n", o.gen.max_tokens, "tokens to generate")->check(examples::range(1u, 100000u));
  app.add_option("--mode", o.mode, "pipeline mode: picospec paper vanilla cloud-ar edge-only")
      ->check(examples::parsed_by([](const std::string& v) { (void)parse_pipeline_mode(v); }));
  examples::add_sampling(app, o.gen.sampling);
  examples::add_seed(app, o.gen.seed);
  app.add_option("--gamma", o.gen.gamma, "draft tokens per chunk")->check(examples::range(1u, 64u));
  app.add_option("--depth", o.gen.depth, "chunks in flight")->check(examples::range(1u, 16u));
  examples::add_threads(app, o.threads, "of the draft model's pool (0 = all cores)");
  app.add_option("--link", o.link,
                 "emulate a slower network: none lan wan paper-wan cellular, or rtt_ms:up_mbit:down_mbit[:jitter_ms]")
      ->check(examples::parsed_by([](const std::string& v) { (void)LinkProfile::parse(v); }));
  app.add_option("--curve-server-key", o.curve_server_key, "the server's CURVE public key (Z85): encrypt the link");
  app.add_option("--timeout-ms", o.timeout_ms, "give up when the server is silent this long")
      ->check(examples::range(std::uint64_t{1}, std::uint64_t{3600000}));
  app.add_flag("--json", o.json, "print one JSON object (text, finish, metrics) at the end instead of streaming");
  app.add_flag("--chat", o.chat, "wrap the prompt in the model's chat template (Qwen: ChatML, Llama 3: headers)");
  return cli.run(argc, argv, [&]() -> int {
    o.gen.mode = parse_pipeline_mode(o.mode);
    examples::Progress progress("loading " + o.draft);
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
    progress.done();
    const std::vector<Token> prompt =
        o.chat ? llama::chat_tokens(weights->file(), *tok, o.prompt) : tok->encode(o.prompt, true);
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
