// The generic LmDrafter / LmVerifier adapters run unchanged on the LLaMA backend: the Drafter and Verifier
// conformance suites (and the CausalLM suite on LlamaModel itself), on a tiny random model written by the test
// (no ../shared needed). The model is batch-invariant, so the suites
// demand bit-exact rows across chunkings and rollbacks.
#include <catch2/catch.hpp>

#include "picospec/llama/gguf.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"
#include "picospec/lm_adapters.hpp"
#include "picospec/testing/causal_lm_conformance.hpp"
#include "picospec/testing/drafter_conformance.hpp"
#include "picospec/testing/verifier_conformance.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {
std::shared_ptr<const LlamaWeights> tiny_weights() {
  static const auto w = [] {
    RandomLlamaSpec s;
    s.dim = 48;
    s.n_heads = 4;
    s.n_kv_heads = 2;
    s.ffn_dim = 64;
    s.vocab_size = 280;
    s.type = GgmlType::q8_0;
    s.dim = 64;
    return LlamaWeights::from_gguf(GgufFile::from_bytes(random_llama_gguf(s).bytes(), "tiny.gguf"));
  }();
  return w;
}
}  // namespace

TEST_CASE("LmDrafter over LlamaModel passes the Drafter conformance suite", "[adapters]") {
  testing::check_drafter_conformance([] { return std::make_unique<LmDrafter>(std::make_unique<LlamaModel>(tiny_weights(),
                                                                            LlamaParams{.threads = 2})); },
                                  {1, 17, 42, 99, 5});
}

TEST_CASE("LmVerifier over LlamaModel passes the Verifier conformance suite", "[adapters]") {
  testing::check_verifier_conformance([] { return std::make_unique<LmVerifier>(std::make_unique<LlamaModel>(tiny_weights(),
                                                                             LlamaParams{.threads = 2})); },
                                   {1, 17, 42, 99, 5});
}

TEST_CASE("LlamaModel passes the CausalLM conformance suite", "[adapters]") {
  testing::check_causal_lm_conformance([] { return std::make_unique<LlamaModel>(tiny_weights(), LlamaParams{.threads = 2}); },
                                       {1, 17, 42, 99, 5});
}

TEST_CASE("LlamaWeights::info() is what a LlamaModel on those weights reports", "[adapters]") {
  const auto w = tiny_weights();
  const ModelInfo a = w->info();
  const ModelInfo b = LlamaModel(w, LlamaParams{.threads = 1}).info();
  CHECK(a.name == b.name);
  CHECK(a.vocab_size == 280);
  CHECK(a.vocab_size == b.vocab_size);
  CHECK(a.context_length == b.context_length);
  CHECK(a.tokenizer_fingerprint != 0);
  CHECK(a.tokenizer_fingerprint == w->tokenizer()->fingerprint());
  CHECK(a.tokenizer_fingerprint == b.tokenizer_fingerprint);
  CHECK(a.bos == b.bos);
  CHECK(a.eos == b.eos);
  CHECK(a.batch_invariant == b.batch_invariant);
}
