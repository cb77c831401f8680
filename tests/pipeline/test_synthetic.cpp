// Synthetic backend + LmDrafter/LmVerifier: conformance, tunable agreement, latency profile.
#include <catch2/catch.hpp>

#include <chrono>

#include "picospec/lm_adapters.hpp"
#include "picospec/sampling.hpp"
#include "picospec/synthetic/synthetic.hpp"
#include "picospec/testing/causal_lm_conformance.hpp"
#include "picospec/testing/drafter_conformance.hpp"
#include "picospec/testing/verifier_conformance.hpp"

using namespace picospec;
namespace syn = picospec::synthetic;

namespace {
syn::PairParams tiny_pair(double alpha = 0.8, std::uint32_t vocab = 64) {
  syn::PairParams p;
  p.profile = syn::profile("tiny");
  p.profile.vocab_size = vocab;
  p.alpha = alpha;
  p.time_scale = 0.0;
  p.world_seed = 42;
  return p;
}
}  // namespace

TEST_CASE("synthetic drafter passes the Drafter conformance suite", "[pipeline][synthetic]") {
  for (std::uint32_t vocab : {64u, 5000u}) {
    const auto p = tiny_pair(0.7, vocab);
    testing::check_drafter_conformance([&] { return syn::make_drafter(p); }, {1, 2, 3});
    testing::check_drafter_conformance([&] { return syn::make_drafter(p); }, {9});
  }
}

TEST_CASE("synthetic verifier passes the Verifier conformance suite", "[pipeline][synthetic]") {
  for (std::uint32_t vocab : {64u, 5000u}) {
    const auto p = tiny_pair(0.7, vocab);
    testing::check_verifier_conformance([&] { return syn::make_verifier(p); }, {1, 2, 3});
    testing::check_verifier_conformance([&] { return syn::make_verifier(p); }, {7});
  }
}

TEST_CASE("synthetic target and draft models pass the CausalLM conformance suite", "[pipeline][synthetic]") {
  for (std::uint32_t vocab : {64u, 5000u}) {
    const auto p = tiny_pair(0.7, vocab);
    testing::check_causal_lm_conformance([&] { return syn::make_target_lm(p); }, {1, 2, 3});
    testing::check_causal_lm_conformance([&] { return syn::make_draft_lm(p); }, {9, 4});
  }
}

TEST_CASE("synthetic models declare batch invariance and share a tokenizer fingerprint", "[pipeline][synthetic]") {
  const auto p = tiny_pair();
  const auto t = syn::make_target_lm(p);
  const auto d = syn::make_draft_lm(p);
  REQUIRE(t->info().batch_invariant);
  REQUIRE(d->info().batch_invariant);
  REQUIRE(t->info().tokenizer_fingerprint == d->info().tokenizer_fingerprint);
  REQUIRE(t->info().vocab_size == 64);
  REQUIRE_THROWS_AS(syn::profile("nope"), Error);
  syn::ModelParams bad;
  bad.alpha = 1.5;
  REQUIRE_THROWS_AS(syn::SyntheticLM(bad), Error);
}

TEST_CASE("synthetic draft agreement alpha is tunable and measured", "[pipeline][synthetic]") {
  // Wrong implementation caught: a perturbation whose agreement does not track the requested alpha
  // (e.g. mixing in logit space instead of probability space).
  for (std::uint32_t vocab : {64u, 4096u}) {
    for (double alpha : {0.3, 0.5, 0.8, 0.95}) {
      const double got = syn::measure_alpha(tiny_pair(alpha, vocab), SamplingParams{}, 64);
      INFO("vocab " << vocab << " alpha " << alpha << " measured " << got);
      REQUIRE(got == Approx(alpha).margin(0.01));
    }
  }
  // Distributions change with the context and the world seed.
  auto p = tiny_pair();
  const auto t = syn::make_target_lm(p);
  std::vector<float> a(64), b(64);
  t->logits_for(std::vector<Token>{1, 2}, a);
  t->logits_for(std::vector<Token>{1, 3}, b);
  REQUIRE(a != b);
}

TEST_CASE("synthetic zipf exponent tunes the entropy", "[pipeline][synthetic]") {
  auto entropy = [](double s) {
    auto p = tiny_pair(0.8, 2048);
    p.zipf_s = s;
    const auto t = syn::make_target_lm(p);
    std::vector<float> l(2048), pr;
    double h = 0.0;
    for (Token c = 0; c < 16; ++c) {
      t->logits_for(std::vector<Token>{c, static_cast<Token>(c + 1)}, l);
      softmax(l, pr);
      for (float x : pr)
        if (x > 0) h -= x * std::log(static_cast<double>(x));
    }
    return h / 16;
  };
  const double h1 = entropy(0.8), h2 = entropy(1.2), h3 = entropy(2.0);
  REQUIRE(h1 > h2);
  REQUIRE(h2 > h3);
}

TEST_CASE("synthetic latency profile: forward lasts time_scale * (a + b n)", "[pipeline][synthetic]") {
  auto p = tiny_pair();
  p.profile.target = syn::Latency{10.0, 5.0};
  p.time_scale = 1.0;
  const auto t = syn::make_target_lm(p);
  LogitRows rows;
  const auto start = std::chrono::steady_clock::now();
  t->forward(std::vector<Token>{1, 2, 3, 4}, rows);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(ms >= 30.0);
  REQUIRE(ms < 30.0 + 200.0);  // generous: shared CI machine
  // Named profiles: a + b = AR time, a + 4b = verify time of a 4-token chunk.
  const auto q = syn::profile("qwen-paper");
  REQUIRE(q.vocab_size == 151936);
  REQUIRE(q.draft.forward_ms(1) == Approx(24.0));
  REQUIRE(q.target.forward_ms(1) == Approx(72.0));
  REQUIRE(q.target.forward_ms(4) == Approx(87.0));
  const auto l = syn::profile("llama-paper");
  REQUIRE(l.vocab_size == 128256);
  REQUIRE(l.draft.forward_ms(1) == Approx(43.0));
  REQUIRE(l.target.forward_ms(1) == Approx(146.0));
  REQUIRE(l.target.forward_ms(4) == Approx(166.0));
}
