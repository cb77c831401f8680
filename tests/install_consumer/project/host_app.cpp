// A small host application built against the INSTALLED picospec (find_package, see CMakeLists.txt): cloud and edge
// in one process, over loopback and over ZeroMQ tcp, with the library's LLaMA drafter and with our own
// BigramDrafter, every edge behind our own TapTransport decorator, the text printed as it streams.
//
//   host_app [model.gguf]      without a model: a seeded random LLaMA model (its text is gibberish, but must still
//                              stream exactly as the tokenizer decodes it)
//
// It checks what a user relies on and exits non-zero on any mismatch:
//  * greedy output over every transport and drafter equals the target's own greedy decoding (a plain argmax loop
//    here, independent of the pipeline), token for token;
//  * the streamed text (Tokenizer::token_to_text(t, prev) per token) equals decode(prompt + output) after the
//    prompt's text: spaces included, also the first token's;
//  * a sampled generation gives the same tokens over loopback and over ZeroMQ (same seed, same drafter);
//  * a NaN temperature fails before anything is sent;
//  * the decorator's counters agree with the transport it wraps.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <picospec/cloud_server.hpp>
#include <picospec/edge_session.hpp>
#include <picospec/lm_adapters.hpp>
#include <picospec/llama/gguf.hpp>
#include <picospec/llama/model.hpp>
#include <picospec/llama/random_model.hpp>
#include <picospec/loopback/loopback.hpp>
#ifdef CONSUMER_HAS_ZMQ
#include <picospec/zmq/zmq_transport.hpp>
#endif

#include "host_parts.hpp"

using namespace picospec;

namespace {

int failures = 0;
void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "FAILED: %s\n", what.c_str());
  }
}

/// The target alone, greedy: argmax of each row (lowest id on ties), until n tokens or EOS.
std::vector<Token> greedy_reference(const std::shared_ptr<const llama::LlamaWeights>& w, std::vector<Token> ctx,
                                    std::size_t n) {
  llama::LlamaModel m(w, llama::LlamaParams{.threads = 1});
  LogitRows rows;
  std::vector<Token> out;
  m.forward(ctx, rows);
  while (out.size() < n) {
    const auto row = rows.row(rows.rows() - 1);
    Token best = 0;
    for (std::size_t i = 1; i < row.size(); ++i)
      if (row[i] > row[static_cast<std::size_t>(best)]) best = static_cast<Token>(i);
    out.push_back(best);
    if (best == m.info().eos) break;
    const Token one[1] = {best};
    m.forward(one, rows);
  }
  return out;
}

/// One generation on `edge`, printing the text as it streams; checks the streamed text against a whole decode.
std::vector<Token> run(EdgeSession& edge, const llama::Tokenizer& tok, const std::vector<Token>& prompt,
                       const GenerateParams& gp, const std::string& label) {
  std::string streamed;
  Token prev = prompt.back();  // the first new token follows the prompt, not the start of the text
  std::printf("[%s] ", label.c_str());
  const GenerateResult r = edge.generate(prompt, gp, [&](Token t) {
    const std::string piece = tok.token_to_text(t, prev);
    prev = t;
    streamed += piece;
    std::fputs(piece.c_str(), stdout);
    std::fflush(stdout);
  });
  std::printf("\n");
  std::vector<Token> all = prompt;
  all.insert(all.end(), r.tokens.begin(), r.tokens.end());
  const std::string whole = tok.decode(all), head = tok.decode(prompt);
  expect(whole.compare(0, head.size(), head) == 0, label + ": decode(prompt + output) starts with decode(prompt)");
  expect(streamed == whole.substr(std::min(head.size(), whole.size())),
         label + ": streamed text == decode(prompt + output) minus the prompt's text");
  auto* tap = dynamic_cast<host::TapTransport*>(edge.transport());
  expect(tap != nullptr, label + ": the edge's transport is our decorator");
  if (tap) {
    const TransportStats outer = tap->stats(), inner = tap->inner_stats();
    expect(outer.frames_sent == inner.frames_sent && outer.bytes_sent == inner.bytes_sent &&
               outer.frames_received == inner.frames_received && outer.bytes_received == inner.bytes_received,
           label + ": decorator counters == inner transport counters");
    expect(r.metrics.bytes_up > 0 && r.metrics.bytes_up <= outer.bytes_sent, label + ": metrics bytes_up counted");
  }
  std::printf("[%s] %zu tokens, %s, metrics %s\n", label.c_str(), r.tokens.size(), edge.transport()->describe().c_str(),
              r.metrics.to_json().c_str());
  return r.tokens;
}

}  // namespace

int main(int argc, char** argv) try {
  std::shared_ptr<const llama::LlamaWeights> weights;
  const bool real_model = argc > 1;
  if (real_model) {
    weights = llama::LlamaWeights::load(argv[1]);
  } else {
    std::printf("no model given: using a seeded random LLaMA model (gibberish text, same checks)\n");
    llama::RandomLlamaSpec spec;
    spec.seed = 3;
    weights = llama::LlamaWeights::from_gguf(llama::GgufFile::from_bytes(llama::random_llama_gguf(spec).bytes()));
  }
  const auto tok = weights->tokenizer();
  if (!tok) throw Error("the model has no tokenizer");
  const std::vector<Token> prompt = tok->encode("Once upon a time", /*add_bos=*/true);
  constexpr std::size_t kTokens = 40;
  const auto ref = greedy_reference(weights, prompt, kTokens);

  // Thread budget: one verify worker, one thread per model (every LlamaModel owns a pool of `threads`).
  auto verifier = [weights] {
    return std::make_unique<LmVerifier>(std::make_unique<llama::LlamaModel>(weights, llama::LlamaParams{.threads = 1}));
  };
  CloudOptions co;
  co.workers = 1;

  GenerateParams greedy;
  greedy.sampling.temperature = 0.0f;
  greedy.max_tokens = kTokens;
  GenerateParams sampled = greedy;
  sampled.sampling.temperature = 0.8f;
  sampled.seed = 7;

  // --- Loopback: the hub moves into the server; edges come from transport_as<LoopbackHub>().connect().
  CloudServer local(verifier, std::make_unique<loopback::LoopbackHub>(), co);
  local.start();
  auto& hub = local.transport_as<loopback::LoopbackHub>();
  EdgeSession lm_edge(std::make_unique<LmDrafter>(std::make_unique<llama::LlamaModel>(weights, llama::LlamaParams{.threads = 1})),
                      std::make_unique<host::TapTransport>(hub.connect()));
  expect(run(lm_edge, *tok, prompt, greedy, "loopback, LlamaModel drafter, greedy") == ref,
         "loopback greedy == the target's greedy decoding");
  EdgeSession bigram_local(std::make_unique<host::BigramDrafter>(weights->info()),
                           std::make_unique<host::TapTransport>(hub.connect()));
  expect(run(bigram_local, *tok, prompt, greedy, "loopback, bigram drafter, greedy") == ref,
         "loopback bigram greedy == the target's greedy decoding");
  const auto sampled_local = run(bigram_local, *tok, prompt, sampled, "loopback, bigram drafter, T=0.8");

  // A bad sampling parameter is refused locally: nothing reaches the transport.
  GenerateParams bad = greedy;
  bad.sampling.temperature = std::nanf("");
  const auto frames_before = bigram_local.transport()->stats().frames_sent;
  bool refused = false;
  try {
    (void)bigram_local.generate(prompt, bad);
  } catch (const Error& e) {
    refused = std::string(e.what()).find("temperature") != std::string::npos;
  }
  expect(refused, "NaN temperature refused with a message naming it");
  expect(bigram_local.transport()->stats().frames_sent == frames_before, "NaN temperature: nothing sent");

#ifdef CONSUMER_HAS_ZMQ
  // --- ZeroMQ tcp on an ephemeral port: the bound endpoint is read from the server after the move.
  CloudServer remote(verifier, std::make_unique<zmq::ZmqServerTransport>("tcp://127.0.0.1:*"), co);
  remote.start();
  const std::string endpoint = remote.transport_as<zmq::ZmqServerTransport>().endpoint();
  expect(endpoint.rfind("tcp://127.0.0.1:", 0) == 0 && endpoint.back() != '*', "bound endpoint " + endpoint);
  EdgeSession bigram_zmq(std::make_unique<host::BigramDrafter>(weights->info()),
                         std::make_unique<host::TapTransport>(std::make_unique<zmq::ZmqClientTransport>(endpoint)));
  expect(run(bigram_zmq, *tok, prompt, greedy, "zmq, bigram drafter, greedy") == ref,
         "zmq bigram greedy == the target's greedy decoding");
  expect(run(bigram_zmq, *tok, prompt, sampled, "zmq, bigram drafter, T=0.8") == sampled_local,
         "sampled: same tokens over zmq as over loopback");
  remote.stop();
#else
  std::printf("SKIPPED: ZeroMQ runs (picospec::zmq not requested)\n");
#endif
  local.stop();

  std::string ref_text;
  for (std::size_t i = 0; i < ref.size(); ++i) ref_text += tok->token_to_text(ref[i], i ? ref[i - 1] : prompt.back());
  if (real_model) expect(ref_text.find(' ') != std::string::npos, "a real model's text has spaces: '" + ref_text + "'");
  if (failures) {
    std::fprintf(stderr, "host_app: %d check(s) failed\n", failures);
    return 1;
  }
  std::printf("host_app: all checks passed\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "host_app: %s\n", e.what());
  return 1;
}
