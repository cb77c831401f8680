// The installed conformance suites (picospec/testing/*.hpp) run on the host application's own plug-ins, with the
// user's Catch2: BigramDrafter (Drafter suite) and TapTransport around loopback and ZeroMQ (Transport suite);
// plus the CausalLM and SparseCodec suites on the library's own LlamaModel and codecs, to show every suite
// compiles and runs from an installed package.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <memory>

#include <picospec/loopback/loopback.hpp>
#include <picospec/sparse_codec.hpp>
#include <picospec/testing/drafter_conformance.hpp>
#include <picospec/testing/sparse_codec_conformance.hpp>
#include <picospec/testing/transport_conformance.hpp>
#ifdef CONSUMER_HAS_ZMQ
#include <picospec/zmq/zmq_transport.hpp>
#endif
#ifdef CONSUMER_HAS_LLAMA
#include <picospec/llama/gguf.hpp>
#include <picospec/llama/model.hpp>
#include <picospec/llama/random_model.hpp>
#include <picospec/lm_adapters.hpp>
#include <picospec/testing/causal_lm_conformance.hpp>
#include <picospec/testing/verifier_conformance.hpp>
#endif

#include "host_parts.hpp"

using namespace picospec;

TEST_CASE("BigramDrafter passes the Drafter conformance suite") {
  ModelInfo info;  // a stand-in target vocabulary
  info.name = "target";
  info.vocab_size = 50;
  info.eos = 2;
  testing::check_drafter_conformance([&] { return std::make_unique<host::BigramDrafter>(info); }, {1, 7, 7, 3, 7});
  testing::check_drafter_conformance([&] { return std::make_unique<host::BigramDrafter>(info); }, {4});
}

TEST_CASE("TapTransport over loopback passes the Transport conformance suite") {
  testing::check_transport_conformance([] {
    testing::TransportSetup s;
    auto hub = std::make_unique<loopback::LoopbackHub>(loopback::LoopbackParams{256, std::size_t{1} << 20});
    auto* h = hub.get();
    s.server = std::move(hub);
    s.connect = [h] { return std::make_unique<host::TapTransport>(h->connect()); };
    return s;
  });
}

#ifdef CONSUMER_HAS_ZMQ
TEST_CASE("TapTransport over ZeroMQ tcp passes the Transport conformance suite") {
  testing::check_transport_conformance([] {
    testing::TransportSetup s;
    zmq::ZmqOptions opt;
    opt.heartbeat_ivl_ms = 200;  // a vanished peer is noticed within about a second
    opt.heartbeat_timeout_ms = 1000;
    auto server = std::make_unique<zmq::ZmqServerTransport>("tcp://127.0.0.1:*", opt);
    const std::string endpoint = server->endpoint();
    s.server = std::move(server);
    s.connect = [endpoint, opt] {
      return std::make_unique<host::TapTransport>(std::make_unique<zmq::ZmqClientTransport>(endpoint, opt));
    };
    return s;
  });
}
#endif

TEST_CASE("the built-in topk_q codec passes the SparseCodec conformance suite") {
  testing::check_sparse_codec_conformance(*make_codec("topk_q:16"));
}

#ifdef CONSUMER_HAS_LLAMA
TEST_CASE("LlamaModel and its adapters pass the CausalLM, Drafter and Verifier suites") {
  llama::RandomLlamaSpec spec;
  spec.seed = 11;
  const auto w = llama::LlamaWeights::from_gguf(llama::GgufFile::from_bytes(llama::random_llama_gguf(spec).bytes()));
  const llama::LlamaParams one{.threads = 1};
  const std::vector<Token> prompt{1, 17, 42, 99};
  testing::check_causal_lm_conformance([&] { return std::make_unique<llama::LlamaModel>(w, one); }, prompt);
  testing::check_drafter_conformance(
      [&] { return std::make_unique<LmDrafter>(std::make_unique<llama::LlamaModel>(w, one)); }, prompt);
  testing::check_verifier_conformance(
      [&] { return std::make_unique<LmVerifier>(std::make_unique<llama::LlamaModel>(w, one)); }, prompt);
}
#endif
