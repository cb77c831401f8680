// picospec-edge: the edge half. Loads a draft GGUF model, connects to a picospec-server and generates.
//
//   picospec-edge -md draft.gguf [--connect tcp://HOST:5555] [-p PROMPT] [-n N] [--mode picospec|paper|vanilla|
//                 cloud-ar|edge-only] [--temp T] [--top-k K] [--top-p P] [--min-p P] [-s|--seed S] [--gamma G]
//                 [--depth D] [-t N] [--link PROFILE] [--curve-server-key KEY] [--curve-client-key FILE]
//                 [--timeout-ms MS] [--on-cloud-loss fail|edge-only] [--resume N] [--json]
//   (picospec-edge --help lists them with their defaults and ranges)
//
// Text streams to stdout as the cloud commits it; metrics (tokens/s, acceptance, bytes per token) go to stderr,
// or everything as one JSON object with --json. --link wraps the connection in the link emulator (e.g. `wan`,
// `cellular`, `20:100:100`) to try a slower network from a fast one.
// When the cloud is lost mid-generation the edge first reconnects and resumes (--resume N times), then either
// stops (--on-cloud-loss fail: exit 1) or finishes with the draft model alone (edge-only: exit 0, a warning on
// stderr). Whatever happens, what was committed is printed: with --json one object with "text", "finish"
// (max_tokens eos length cloud_lost error ...), "error" when something failed, and the metrics when there are any.

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include "common/cli.hpp"
#include "common/keys.hpp"
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
  std::string curve_client_key;
  std::string on_cloud_loss = "fail";
  std::uint32_t resume = 1;
  GenerateParams gen;
  std::size_t threads = 1;
  std::uint64_t timeout_ms = 30000;
  bool json = false;
  bool chat = false;  // --chat: the prompt wrapped in the model's chat template
  std::string rejection;  // --rejection: override the mode's default
};

// Length of the well-formed UTF-8 sequence at text[i] (1-4), or 0 when the bytes there are not one.
std::size_t utf8_length(const std::string& text, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = b(i);
  std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > text.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  if ((n == 2 && c < 0xC2) || (n == 3 && c == 0xE0 && b(i + 1) < 0xA0) || (n == 3 && c == 0xED && b(i + 1) >= 0xA0) ||
      (n == 4 && c == 0xF0 && b(i + 1) < 0x90) || (n == 4 && (c > 0xF4 || (c == 0xF4 && b(i + 1) >= 0x90))))
    return 0;  // overlong forms, surrogates, above U+10FFFF
  return n;
}

// A JSON string body: quotes, backslashes and control characters escaped; bytes that are not UTF-8 (a text cut
// inside a multi-byte character by a byte-fallback token) become U+FFFD, so the output is always valid JSON.
std::string json_escape(const std::string& text) {
  std::string escaped;
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const std::size_t n = utf8_length(text, i);
    if (n == 0) { escaped += "\xEF\xBF\xBD"; ++i; continue; }
    if (c == '"' || c == '\\') escaped += '\\';
    if (c < 0x20) { char buf[8]; std::snprintf(buf, sizeof buf, "\\u%04x", c); escaped += buf; }
    else escaped.append(text, i, n);
    i += n;
  }
  return escaped;
}

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
  app.add_option("--rejection", o.rejection,
                 "rejection: candidates (picospec's default), sparse_draft or coupled (picospec; cloud-ar: sample "
                 "the coupled draws), full (vanilla), topk (paper)")
      ->check(CLI::IsMember({"candidates", "sparse_draft", "coupled", "full", "topk"}));
  app.add_flag("--fill", o.gen.cloud_fill,
               "cloud fill: the cloud commits tokens itself whenever it has no draft to verify (greedy or "
               "--rejection coupled)");
  examples::add_threads(app, o.threads, "of the draft model's pool (0 = all cores)");
  app.add_option("--link", o.link,
                 "emulate a slower network: none lan wan paper-wan cellular, or rtt_ms:up_mbit:down_mbit[:jitter_ms]")
      ->check(examples::parsed_by([](const std::string& v) { (void)LinkProfile::parse(v); }));
  app.add_option("--curve-server-key", o.curve_server_key, "the server's CURVE public key (Z85): encrypt the link")
      ->check(examples::parsed_by([](const std::string& v) {
        if (!examples::is_z85_key(v)) throw Error("not a 40-character Z85 CURVE public key");
      }));
  app.add_option("--curve-client-key", o.curve_client_key,
                 "file with this edge's CURVE key pair ('public KEY' and 'secret KEY' lines, as picospec-server "
                 "--curve-keygen prints) for a server with an allow-list; default: a fresh pair per run");
  app.add_option("--on-cloud-loss", o.on_cloud_loss,
                 "when the cloud is lost (after --resume): fail (print what was committed, exit 1) or edge-only "
                 "(finish with the draft model alone)")
      ->check(CLI::IsMember({"fail", "edge-only"}));
  app.add_option("--resume", o.resume, "reconnect and resume this many times after losing the cloud")
      ->check(examples::range(0u, 100u));
  app.add_option("--timeout-ms", o.timeout_ms, "give up when the server is silent this long")
      ->check(examples::range(std::uint64_t{1}, std::uint64_t{3600000}));
  app.add_flag("--json", o.json, "print one JSON object (text, finish, metrics) at the end instead of streaming");
  app.add_flag("--chat", o.chat, "wrap the prompt in the model's chat template (Qwen: ChatML, Llama 3: headers)");
  return cli.run(argc, argv, [&]() -> int {
    o.gen.mode = parse_pipeline_mode(o.mode);
    if (!o.rejection.empty()) o.gen.rejection = parse_rejection_mode(o.rejection);
    o.gen.on_cloud_loss = o.on_cloud_loss == "edge-only" ? CloudLoss::edge_only : CloudLoss::stop;
    o.gen.resume_attempts = o.resume;
    if (!o.curve_client_key.empty() && o.curve_server_key.empty())
      throw examples::UsageError("--curve-client-key needs --curve-server-key");
    zmq::ZmqOptions zo;  // (keys first: a bad key file fails before the model loads)
    zo.max_message_bytes = std::size_t{64} << 20;
    zo.fail_on_handshake_error = true;  // a wrong server key or a refused client key fails now, with the reason
    if (!o.curve_server_key.empty()) {
      zo.curve.enabled = true;
      zo.curve.server_public_key = o.curve_server_key;
      if (!o.curve_client_key.empty()) {
        auto [pub, sec] = examples::read_key_pair(o.curve_client_key);
        zo.curve.client_public_key = pub;
        zo.curve.client_secret_key = sec;
      }
    }
    examples::Progress progress("loading " + o.draft);
    const auto weights = llama::LlamaWeights::load(o.draft);
    const auto tok = weights->tokenizer();
    if (!tok) throw Error(o.draft + ": no tokenizer in the file");
    const LinkProfile link = LinkProfile::parse(o.link);
    auto connect = [&o, zo, link]() -> std::unique_ptr<Transport> {
      std::unique_ptr<Transport> t = std::make_unique<zmq::ZmqClientTransport>(o.connect, zo);
      if (o.link != "none") t = std::make_unique<LinkTransport>(std::move(t), link);
      return t;
    };
    std::unique_ptr<Transport> transport;
    if (o.gen.mode != PipelineMode::edge_only) transport = connect();
    EdgeOptions eo;
    eo.reconnect = connect;
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
    std::size_t committed = 0;
    GenerateResult r;
    try {
      r = edge.generate(prompt, o.gen, [&](Token t) {
        const std::string piece = tok->token_to_text(t, prev);
        prev = t;
        text += piece;
        ++committed;
        if (!o.json) {
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
        }
      });
    } catch (const std::exception& e) {  // what was committed is printed whatever failed
      if (o.json) {
        std::printf("{\"text\":\"%s\",\"tokens\":%zu,\"finish\":\"error\",\"error\":\"%s\"}\n",
                    json_escape(text).c_str(), committed, json_escape(e.what()).c_str());
        std::fflush(stdout);
      } else {
        std::printf("\n");
      }
      throw;  // one line on stderr, exit 1
    }
    if (o.json) {
      // Metrics::to_json() is one JSON object; splice the text in front of it.
      const std::string m = r.metrics.to_json();
      std::string extra;
      if (r.cloud_lost)
        extra = ",\"cloud_lost\":true,\"resumes\":" + std::to_string(r.resumes) +
                ",\"edge_only_tokens\":" + std::to_string(r.edge_only_tokens) + ",\"error\":\"" +
                json_escape(r.error) + "\"";
      std::printf("{\"text\":\"%s\",\"tokens\":%zu,\"finish\":\"%s\"%s,\"metrics\":%s}\n",
                  json_escape(text).c_str(), r.tokens.size(), std::string(to_string(r.finish)).c_str(),
                  extra.c_str(), m.c_str());
      std::fflush(stdout);  // before any error line on stderr
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
    if (r.finish == FinishReason::cloud_lost)
      throw Error("cloud lost after " + std::to_string(r.tokens.size()) + " committed tokens: " + r.error);
    if (r.cloud_lost)
      std::fprintf(stderr, "picospec-edge: warning: the cloud was lost (%s); %zu tokens came from the draft model "
                   "alone\n", r.error.c_str(), r.edge_only_tokens);
    return 0;
  });
}
