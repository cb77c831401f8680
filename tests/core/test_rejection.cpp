// Rejection sampling: exactness proofs for full / candidates / sparse_draft, greedy identity, the paper's topk
// mode's measured error, and the edge cases of each cloud/edge half.
//
// Statistical method: for each hand-made (p, q) pair, simulate the committed token at one position N = 1e5
// times (draft d ~ q or q̂, accept w.p. min(1, p/q), else the mode's correction) with every draw keyed by the
// counter-based RNG (fixed seed, position = trial number), then compare the counts with N * p by Pearson's
// chi-square. Bins with expected count < 5 are pooled; tokens with p = 0 must never appear. Critical value at
// p-value 1e-6 (Wilson-Hilferty), so a correct sampler essentially never fails, while each "mutant" below (a
// deliberately wrong implementation) is rejected by the same check with the same seed.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "picospec/rejection.hpp"
#include "picospec/sparse_codec.hpp"

using namespace picospec;

namespace {

constexpr std::uint64_t kSeed = 20240611;
constexpr int kTrials = 100'000;

std::vector<float> normalized(std::vector<double> w) {
  double s = 0;
  for (double x : w) s += x;
  std::vector<float> out(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) out[i] = static_cast<float>(w[i] / s);
  return out;
}

// Pseudo-random distribution on V tokens: weights exp(scale * z), z from the RNG (Purpose::user).
std::vector<float> random_dist(std::size_t v, std::uint64_t tag, double scale, std::size_t zeros = 0) {
  std::vector<double> w(v);
  for (std::size_t i = 0; i < v; ++i)
    w[i] = std::exp(scale * (uniform(tag, Purpose::user, i, 0) - 0.5));
  for (std::size_t i = 0; i < zeros && i < v - 1; ++i) w[(i * 7 + 3) % v] = 0.0;
  return normalized(w);
}

struct Pair {
  std::string name;
  std::vector<float> p, q;
};

std::vector<Pair> pairs() {
  std::vector<Pair> v;
  v.push_back({"random V=16", random_dist(16, 1, 4.0), random_dist(16, 2, 4.0)});
  v.push_back({"disjoint supports V=8", normalized({1, 2, 3, 4, 0, 0, 0, 0}), normalized({0, 0, 0, 0, 4, 3, 2, 1})});
  v.push_back({"q = p V=10", random_dist(10, 3, 3.0), random_dist(10, 3, 3.0)});
  v.push_back({"p one-hot V=6", normalized({0, 0, 0, 1, 0, 0}), normalized({1, 1, 1, 1, 1, 1})});
  v.push_back({"q one-hot V=6", normalized({1, 2, 3, 1, 2, 3}), normalized({0, 1, 0, 0, 0, 0})});
  v.push_back({"both one-hot, different V=4", normalized({0, 0, 1, 0}), normalized({1, 0, 0, 0})});
  v.push_back({"peaked, partial overlap, zeros V=64", random_dist(64, 4, 9.0, 10), random_dist(64, 5, 9.0, 20)});
  return v;
}

struct ChiResult {
  double chi2 = 0, crit = 0;
  int dof = 0;
  long impossible = 0;  // draws of tokens with p = 0
  [[nodiscard]] bool pass() const { return impossible == 0 && chi2 < crit; }
};

// Critical value of chi-square with k dof at upper tail 1e-6 (Wilson-Hilferty; z = 4.7534).
double chi2_crit(int k) {
  const double z = 4.7534, a = 2.0 / (9.0 * k);
  return k * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

ChiResult chi_square(const std::vector<float>& p, const std::vector<long>& counts, long n) {
  ChiResult r;
  double pooled_e = 0, pooled_o = 0;
  int bins = 0;
  double psum = 0;
  for (float x : p) psum += x;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double e = n * (p[i] / psum);
    if (p[i] == 0.0f) {
      r.impossible += counts[i];
      continue;
    }
    if (e < 5.0) {
      pooled_e += e;
      pooled_o += static_cast<double>(counts[i]);
      continue;
    }
    r.chi2 += (counts[i] - e) * (counts[i] - e) / e;
    ++bins;
  }
  if (pooled_e > 0) {
    r.chi2 += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e;
    ++bins;
  }
  r.dof = std::max(1, bins - 1);
  r.crit = chi2_crit(r.dof);
  return r;
}

using Committer = std::function<Token(const Pair&, std::uint64_t position)>;

ChiResult run(const Pair& pq, const Committer& commit) {
  std::vector<long> counts(pq.p.size(), 0);
  for (int t = 0; t < kTrials; ++t) ++counts[static_cast<std::size_t>(commit(pq, static_cast<std::uint64_t>(t)))];
  return chi_square(pq.p, counts, kTrials);
}

// ---- the modes, exactly as the pipeline runs them (draws keyed by purpose/position/epoch) ----------------

Token commit_full(const Pair& pq, std::uint64_t pos) {
  const Token d = sample_from(pq.q, uniform(kSeed, Purpose::draft_sample, pos, 0));
  const auto i = static_cast<std::size_t>(d);
  if (accept_draft(pq.p[i], pq.q[i], uniform(kSeed, Purpose::accept, pos, 0))) return d;
  return residual_dense(pq.p, pq.q, uniform(kSeed, Purpose::residual, pos, 0));
}

// m small so that the "need more candidates" path is exercised often.
Token commit_candidates(const Pair& pq, std::uint64_t pos, std::uint32_t m) {
  const Token d = sample_from(pq.q, uniform(kSeed, Purpose::draft_sample, pos, 0));
  const auto i = static_cast<std::size_t>(d);
  if (accept_draft(pq.p[i], pq.q[i], uniform(kSeed, Purpose::accept, pos, 0))) return d;
  std::uint32_t first = 0;
  for (;;) {  // cloud draws, edge picks; on exhaustion the edge asks for the next m
    const CandidateStream s = draw_candidates(pq.p, m, kSeed, pos, 0, first);
    std::vector<std::uint8_t> wire;
    encode_candidates(s, wire);
    const CandidateStream got = decode_candidates(wire, static_cast<std::uint32_t>(pq.p.size()));
    if (auto y = pick_candidate(got, pq.q, kSeed, pos, 0)) return *y;
    first += m;
    if (first > 100000) throw std::runtime_error("candidate stream never accepted");
  }
}

// The edge drafts from q̂ = decode(encode(q)); the cloud decodes the same bytes and holds the same q̂
// (q is the same at every trial, so the frame is encoded once per pair).
Token commit_sparse_draft(const Pair& pq, std::uint64_t pos, const SparseDist& q_hat) {
  const Token d = sample_from(q_hat, uniform(kSeed, Purpose::draft_sample, pos, 0));
  if (accept_draft(pq.p[static_cast<std::size_t>(d)], q_hat.prob(d), uniform(kSeed, Purpose::accept, pos, 0)))
    return d;
  return residual_sparse_q(pq.p, q_hat, uniform(kSeed, Purpose::residual, pos, 0));
}

}  // namespace

TEST_CASE("full mode: committed token ~ p (chi-square, 1e5 trials per pair)", "[rejection][stat]") {
  for (const auto& pq : pairs()) {
    const auto r = run(pq, commit_full);
    INFO(pq.name << ": chi2 " << r.chi2 << " dof " << r.dof << " crit " << r.crit << " impossible " << r.impossible);
    CHECK(r.pass());
  }
}

TEST_CASE("candidates mode: committed token ~ p, incl. 'need more candidates' rounds", "[rejection][stat]") {
  for (const std::uint32_t m : {1u, 4u, 32u}) {
    for (const auto& pq : pairs()) {
      const auto r = run(pq, [m](const Pair& x, std::uint64_t pos) { return commit_candidates(x, pos, m); });
      INFO(pq.name << " m=" << m << ": chi2 " << r.chi2 << " dof " << r.dof << " crit " << r.crit);
      CHECK(r.pass());
    }
  }
}

TEST_CASE("sparse_draft mode: committed token ~ p for lossless and lossy q̂ codecs", "[rejection][stat]") {
  for (const char* spec : {"dense_f32", "topk_q:3", "topk_f32:5", "topk_q:8:0.7"}) {
    const auto codec = make_codec(spec);
    for (const auto& pq : pairs()) {
      std::vector<std::uint8_t> wire;
      codec->encode(pq.q, wire);
      const SparseDist q_hat = codec->decode(wire, static_cast<std::uint32_t>(pq.q.size()));
      const auto r = run(pq, [&](const Pair& x, std::uint64_t pos) { return commit_sparse_draft(x, pos, q_hat); });
      INFO(spec << " / " << pq.name << ": chi2 " << r.chi2 << " dof " << r.dof << " crit " << r.crit);
      CHECK(r.pass());
    }
  }
}

TEST_CASE("the chi-square check rejects deliberately wrong samplers (same seed)", "[rejection][stat]") {
  const Pair pq = pairs()[0];
  SECTION("full: correction drawn from p instead of max(0, p - q)") {
    const auto r = run(pq, [](const Pair& x, std::uint64_t pos) {
      const Token d = sample_from(x.q, uniform(kSeed, Purpose::draft_sample, pos, 0));
      const auto i = static_cast<std::size_t>(d);
      if (accept_draft(x.p[i], x.q[i], uniform(kSeed, Purpose::accept, pos, 0))) return d;
      return sample_from(x.p, uniform(kSeed, Purpose::residual, pos, 0));
    });
    CHECK_FALSE(r.pass());
  }
  SECTION("full: residual max(0, p - q) used without renormalisation (rest of the mass falls on the draft)") {
    const auto r = run(pq, [](const Pair& x, std::uint64_t pos) {
      const Token d = sample_from(x.q, uniform(kSeed, Purpose::draft_sample, pos, 0));
      const auto i = static_cast<std::size_t>(d);
      if (accept_draft(x.p[i], x.q[i], uniform(kSeed, Purpose::accept, pos, 0))) return d;
      const double u = uniform(kSeed, Purpose::residual, pos, 0);
      double cum = 0;
      for (std::size_t t = 0; t < x.p.size(); ++t) {
        cum += std::max(0.0, static_cast<double>(x.p[t]) - x.q[t]);
        if (cum > u) return static_cast<Token>(t);
      }
      return d;
    });
    CHECK_FALSE(r.pass());
  }
  SECTION("candidates: accept w.p. q/p instead of max(0, 1 - q/p)") {
    const auto r = run(pq, [](const Pair& x, std::uint64_t pos) {
      const Token d = sample_from(x.q, uniform(kSeed, Purpose::draft_sample, pos, 0));
      const auto i = static_cast<std::size_t>(d);
      if (accept_draft(x.p[i], x.q[i], uniform(kSeed, Purpose::accept, pos, 0))) return d;
      for (std::uint32_t first = 0;; first += 8) {
        const auto s = draw_candidates(x.p, 8, kSeed, pos, 0, first);
        for (std::size_t k = 0; k < s.size(); ++k) {
          const double a = std::min(1.0, static_cast<double>(x.q[static_cast<std::size_t>(s.ids[k])]) / s.p[k]);
          if (uniform(kSeed, Purpose::candidate_accept, pos, 0, first + static_cast<std::uint32_t>(k)) < a)
            return s.ids[k];
        }
      }
    });
    CHECK_FALSE(r.pass());
  }
  SECTION("candidates: first candidate taken as the correction (no edge-side rejection)") {
    const auto r = run(pq, [](const Pair& x, std::uint64_t pos) {
      const Token d = sample_from(x.q, uniform(kSeed, Purpose::draft_sample, pos, 0));
      const auto i = static_cast<std::size_t>(d);
      if (accept_draft(x.p[i], x.q[i], uniform(kSeed, Purpose::accept, pos, 0))) return d;
      return draw_candidates(x.p, 1, kSeed, pos, 0, 0).ids[0];
    });
    CHECK_FALSE(r.pass());
  }
  SECTION("sparse_draft: acceptance tested with the full q(d) instead of q̂(d) (q̂ not the one sampled from)") {
    const auto codec = make_codec("topk_q:4");
    const SparseDist q_hat = codec->round_trip(pq.q);
    const auto r = run(pq, [&](const Pair& x, std::uint64_t pos) {
      const Token d = sample_from(q_hat, uniform(kSeed, Purpose::draft_sample, pos, 0));
      if (accept_draft(x.p[static_cast<std::size_t>(d)], x.q[static_cast<std::size_t>(d)],
                       uniform(kSeed, Purpose::accept, pos, 0)))
        return d;
      return residual_sparse_q(x.p, q_hat, uniform(kSeed, Purpose::residual, pos, 0));
    });
    CHECK_FALSE(r.pass());
  }
  SECTION("sparse_draft: q̂ left unnormalized (raw top-K values)") {
    const auto codec = make_codec("topk_q:4");
    std::vector<std::uint8_t> wire;
    codec->encode(pq.q, wire);
    const SparseDist raw = codec->decode(wire, static_cast<std::uint32_t>(pq.q.size()), Normalization::raw);
    const auto r = run(pq, [&](const Pair& x, std::uint64_t pos) {
      const Token d = sample_from(raw, uniform(kSeed, Purpose::draft_sample, pos, 0));
      if (accept_draft(x.p[static_cast<std::size_t>(d)], raw.prob(d), uniform(kSeed, Purpose::accept, pos, 0)))
        return d;
      return residual_sparse_q(x.p, raw, uniform(kSeed, Purpose::residual, pos, 0));
    });
    CHECK_FALSE(r.pass());
  }
}

TEST_CASE("greedy mode is exact: the committed token is always argmax p", "[rejection]") {
  for (std::uint64_t row = 0; row < 50; ++row) {
    std::vector<float> logits(37);
    for (std::size_t i = 0; i < logits.size(); ++i)
      logits[i] = static_cast<float>(std::floor(8 * uniform(row, Purpose::user, i, 1)));  // many ties
    const Token best = argmax(logits);
    for (Token d = 0; d < static_cast<Token>(logits.size()); ++d) {
      const Token committed = greedy_accept(logits, d) ? d : greedy_correction(logits);
      REQUIRE(committed == best);
    }
    for (std::size_t i = 0; i < static_cast<std::size_t>(best); ++i) REQUIRE(logits[i] < logits[static_cast<std::size_t>(best)]);
  }
}

TEST_CASE("topk mode: measured TV error is reported and bounded by the mass outside the top-K", "[rejection][stat]") {
  // Committed distribution (derivation in docs/algorithm.md): min(p, q) + sum_{x in K} max(0, p - q) rescaled to Z,
  // so TV(committed, p) = sum_{x not in K} max(0, p(x) - q(x)) <= mass of p outside its top-K.
  const Pair pq{"V=32 flat-ish target", random_dist(32, 11, 2.0), random_dist(32, 12, 6.0)};
  for (const std::uint32_t k : {2u, 8u, 32u}) {
    const SparseDist ptop = top_k(pq.p, k);
    std::vector<long> counts(pq.p.size(), 0);
    for (int t = 0; t < kTrials; ++t) {
      const auto pos = static_cast<std::uint64_t>(t);
      const Token d = sample_from(pq.q, uniform(kSeed, Purpose::draft_sample, pos, 0));
      const auto i = static_cast<std::size_t>(d);
      Token c = d;
      if (!accept_draft(pq.p[i], pq.q[i], uniform(kSeed, Purpose::accept, pos, 0)))
        c = residual_topk(ptop, pq.q, uniform(kSeed, Purpose::topk_residual, pos, 0));
      ++counts[static_cast<std::size_t>(c)];
    }
    double tv = 0, predicted = 0;
    for (std::size_t x = 0; x < pq.p.size(); ++x) {
      tv += std::abs(static_cast<double>(counts[x]) / kTrials - pq.p[x]);
      if (ptop.prob(static_cast<Token>(x)) == 0.0f) predicted += std::max(0.0, static_cast<double>(pq.p[x]) - pq.q[x]);
    }
    tv *= 0.5;
    const double bound = mass_outside_top_k(pq.p, k);
    // Sampling noise of an empirical TV at N = 1e5, V = 32: about 0.5 * sum sqrt(p / N) <= 0.009; slack 0.015.
    WARN("topk mode K=" << k << ": measured TV " << tv << ", predicted " << predicted << ", mass outside top-K "
                        << bound);
    CHECK(tv <= bound + 0.015);
    CHECK(std::abs(tv - predicted) < 0.015);
    if (k == 2) CHECK(predicted > 0.05);  // the approximation is visible: the test would notice an "exact" topk
  }
}

TEST_CASE("accept_draft edge cases", "[rejection]") {
  CHECK(accept_draft(0.5f, 0.25f, 0.999));   // p >= q: always
  CHECK(accept_draft(0.5f, 0.5f, 0.999));
  CHECK_FALSE(accept_draft(0.0f, 0.5f, 0.0)); // p = 0: never
  CHECK_FALSE(accept_draft(0.0f, 0.0f, 0.0));
  CHECK(accept_draft(0.1f, 0.0f, 0.999));    // q = 0, p > 0: ratio +inf
  CHECK(accept_draft(0.25f, 0.5f, 0.49));
  CHECK_FALSE(accept_draft(0.25f, 0.5f, 0.5));
  CHECK_THROWS_AS(accept_draft(std::nanf(""), 0.5f, 0.1), Error);
  CHECK_THROWS_AS(accept_draft(0.5f, -0.1f, 0.1), Error);
  CHECK_THROWS_AS(accept_draft(0.5f, 0.5f, std::nan("")), Error);
}

TEST_CASE("accept_chunk keys acceptance by absolute position and stops at the first rejection", "[rejection]") {
  const std::vector<float> p = normalized({1, 1, 1, 1});
  const std::vector<DenseView> rows(4, DenseView(p));
  const std::vector<Token> drafts{0, 1, 2, 3};
  const std::vector<float> q_hi{1.0f, 1.0f, 1.0f, 1.0f};  // acceptance 0.25 each
  const AcceptResult r = accept_chunk(drafts, q_hi, rows, 5, 100, 2);
  std::uint32_t expect = 0;
  while (expect < 4 && uniform(5, Purpose::accept, 100 + expect, 2) < 0.25) ++expect;
  CHECK(r.accepted == expect);
  CHECK(r.rejected == (expect < 4));
  const std::vector<float> q_lo{0.1f, 0.1f, 0.1f, 0.1f};
  CHECK(accept_chunk(drafts, q_lo, rows, 5, 100, 2) == AcceptResult{4, false});
  CHECK_THROWS_AS(accept_chunk(drafts, std::vector<float>{0.1f}, rows, 5, 100, 2), Error);
  const std::vector<Token> bad{0, 9};
  CHECK_THROWS_AS(accept_chunk(bad, std::vector<float>{0.1f, 0.1f}, rows, 5, 100, 2), Error);
}

TEST_CASE("draw_candidates equals m independent inverse-CDF draws", "[rejection]") {
  const auto p = random_dist(1000, 21, 12.0, 100);
  const auto s = draw_candidates(p, 64, 77, 12, 3, 10);
  REQUIRE(s.size() == 64);
  CHECK(s.first_index == 10);
  for (std::uint32_t k = 0; k < 64; ++k) {
    const Token y = sample_from(p, uniform(77, Purpose::candidate_draw, 12, 3, 10 + k));
    CHECK(s.ids[k] == y);
    CHECK(s.p[k] == p[static_cast<std::size_t>(y)]);
    CHECK(s.p[k] > 0.0f);
  }
  CHECK(draw_candidates(p, 0, 1, 1, 1).size() == 0);
}

TEST_CASE("pick_candidate: never picks when q >= p on every candidate; reports the index", "[rejection]") {
  const std::vector<float> p = normalized({1, 1, 0, 0}), q = normalized({1, 1, 1, 1});
  CandidateStream s{0, {0, 1, 0}, {0.5f, 0.5f, 0.5f}};
  CHECK(pick_candidate(s, p, 1, 1, 1) == std::nullopt);  // q == p on the candidates: acceptance 0
  s.p = {0.5f, 0.5f, 0.5f};
  const auto pick = pick_candidate_at(s, q, 1, 1, 1);   // acceptance 1 - 0.25/0.5 = 0.5 each
  if (pick) {
    CHECK(pick->token == s.ids[pick->k]);
    for (std::uint32_t k = 0; k < pick->k; ++k) CHECK(uniform(1, Purpose::candidate_accept, 1, 1, k) >= 0.5);
    CHECK(uniform(1, Purpose::candidate_accept, 1, 1, pick->k) < 0.5);
  }
  CandidateStream bad{0, {7}, {0.5f}};
  CHECK_THROWS_AS(pick_candidate(bad, q, 1, 1, 1), Error);
  CandidateStream zero{0, {1}, {0.0f}};
  CHECK_THROWS_AS(pick_candidate(zero, q, 1, 1, 1), Error);
}

TEST_CASE("residuals join sparse distributions by token id and have defined fallbacks", "[rejection]") {
  const std::vector<float> p = normalized({0, 1, 0, 3, 0, 0}), q = normalized({0, 0, 0, 4, 0, 0});
  // residual = max(0, p - q) = only token 1
  for (double u : {0.0, 0.3, 0.999}) CHECK(residual_dense(p, q, u) == 1);
  SparseDist q_hat{6, {3}, {1.0f}};  // q̂ on token 3 only; array index 0 != token 0
  for (double u : {0.0, 0.5, 0.999}) CHECK(residual_sparse_q(p, q_hat, u) == 1);
  // Z = 0 (p == q): fall back to p
  CHECK(residual_dense(p, p, 0.1) == 1);
  CHECK(residual_dense(p, p, 0.9) == 3);
  CHECK_THROWS_AS(residual_dense(p, std::vector<float>(5, 0.2f), 0.1), Error);
  SparseDist bad_order{6, {3, 1}, {0.5f, 0.5f}};
  CHECK_THROWS_AS(residual_sparse_q(p, bad_order, 0.1), Error);
  SparseDist bad_vocab{7, {3}, {1.0f}};
  CHECK_THROWS_AS(residual_sparse_q(p, bad_vocab, 0.1), Error);
  // topk: residual all zero -> fallback
  const SparseDist ptop = top_k(p, 1);  // token 3 with raw value 0.75, q(3) = 1
  REQUIRE(ptop.ids == std::vector<Token>{3});
  CHECK(ptop.probs[0] == 0.75f);
  CHECK(residual_topk(ptop, q, 0.5, TopkFallback::renormalized_p) == 3);
  CHECK(residual_topk(ptop, q, 0.5, TopkFallback::argmax_p) == 3);
  const SparseDist ptop2 = top_k(p, 4);  // zero-probability tokens never included
  CHECK(ptop2.ids == std::vector<Token>{1, 3});
  CHECK(residual_topk(ptop2, q, 0.7) == 1);
}

TEST_CASE("RejectionMode names round-trip; unknown names throw", "[rejection]") {
  for (auto m : {RejectionMode::greedy, RejectionMode::full, RejectionMode::topk, RejectionMode::candidates,
                 RejectionMode::sparse_draft})
    CHECK(parse_rejection_mode(to_string(m)) == m);
  CHECK_FALSE(is_exact(RejectionMode::topk));
  CHECK(is_exact(RejectionMode::candidates));
  CHECK_THROWS_AS(parse_rejection_mode("Full"), Error);
}

// ---- block verification (Sun et al. 2024) --------------------------------------------------------------------

namespace {

// A context-dependent pair on V tokens: p(.|prev) and q(.|prev) for prev in {start, 0..V-1}.
struct Chain {
  std::size_t v;
  std::vector<std::vector<float>> p, q;  // index prev + 1 (0 = start)
};
Chain make_chain(std::size_t v, std::uint64_t tag, double scale) {
  Chain c{v, {}, {}};
  for (std::size_t k = 0; k <= v; ++k) {
    c.p.push_back(random_dist(v, tag * 1000 + k, scale, k % 3));
    c.q.push_back(random_dist(v, tag * 1000 + 500 + k, scale, (k + 1) % 4));
  }
  return c;
}

// Speculative decoding of the first `n` tokens with chunks of `gamma` drafts, verified by block_verify (or by
// token-level accept_draft + residual_dense), drafts keyed like the pipeline; returns the tokens and adds the
// accepted drafts to *accepted.
std::vector<Token> spec_decode(const Chain& c, std::uint64_t seed, std::size_t n, std::size_t gamma, bool block,
                               long* accepted) {
  std::vector<Token> out;
  std::uint64_t epoch = 0;
  auto row = [&](const std::vector<std::vector<float>>& t, Token prev) -> DenseView {
    return t[static_cast<std::size_t>(prev + 1)];
  };
  while (out.size() < n) {
    const std::uint64_t first = out.size();
    std::vector<Token> d;
    std::vector<DenseView> ps, qs;
    Token prev = out.empty() ? kNoToken : out.back();
    for (std::size_t i = 0; i < gamma; ++i) {
      ps.push_back(row(c.p, prev));
      qs.push_back(row(c.q, prev));
      const Token t = sample_from(qs.back(), uniform(seed, Purpose::draft_sample, first + i, epoch));
      d.push_back(t);
      prev = t;
    }
    BlockVerdict r;
    if (block) {
      r = block_verify(d, ps, qs, seed, first, epoch);
    } else {
      for (std::size_t i = 0; i < gamma; ++i) {
        const auto x = static_cast<std::size_t>(d[i]);
        if (!accept_draft(ps[i][x], qs[i][x], uniform(seed, Purpose::accept, first + i, epoch))) {
          r.rejected = true;
          r.correction = residual_dense(ps[i], qs[i], uniform(seed, Purpose::residual, first + i, epoch));
          break;
        }
        ++r.accepted;
      }
    }
    *accepted += r.accepted;
    for (std::uint32_t i = 0; i < r.accepted; ++i) out.push_back(d[i]);
    if (r.rejected) {
      out.push_back(r.correction);
      ++epoch;
    }
  }
  out.resize(n);
  return out;
}

}  // namespace

TEST_CASE("block verification: the first three committed tokens ~ the target's joint (chi-square), and it accepts "
          "at least as many drafts as token-level verification", "[rejection][stat][block]") {
  for (const auto& [tag, scale, gamma] : {std::tuple{11ull, 3.0, 3u}, std::tuple{12ull, 6.0, 4u}, std::tuple{13ull, 1.5, 2u}}) {
    const Chain c = make_chain(5, tag, scale);
    // Target joint of the first three tokens.
    std::vector<float> joint(125);
    for (std::size_t a = 0; a < 5; ++a)
      for (std::size_t b = 0; b < 5; ++b)
        for (std::size_t e = 0; e < 5; ++e)
          joint[a * 25 + b * 5 + e] = c.p[0][a] * c.p[a + 1][b] * c.p[b + 1][e];
    std::vector<long> counts(125, 0);
    long acc_block = 0, acc_token = 0;
    for (int t = 0; t < kTrials; ++t) {
      const auto s = static_cast<std::uint64_t>(t) * 7919 + tag;
      const auto out = spec_decode(c, s, 3, gamma, true, &acc_block);
      ++counts[static_cast<std::size_t>(out[0] * 25 + out[1] * 5 + out[2])];
      (void)spec_decode(c, s, 3, gamma, false, &acc_token);
    }
    const auto r = chi_square(joint, counts, kTrials);
    INFO("tag " << tag << " gamma " << gamma << ": chi2 " << r.chi2 << " dof " << r.dof << " crit " << r.crit
                << " impossible " << r.impossible << "; accepted drafts block " << acc_block << " token "
                << acc_token);
    CHECK(r.pass());
    CHECK(static_cast<double>(acc_block) >= 0.99 * static_cast<double>(acc_token));
  }
  // The check has teeth: skipping the coins (keeping every draft) samples the draft chain instead.
  const Chain c = make_chain(5, 11, 3.0);
  std::vector<float> joint(125);
  for (std::size_t a = 0; a < 5; ++a)
    for (std::size_t b = 0; b < 5; ++b)
      for (std::size_t e = 0; e < 5; ++e) joint[a * 25 + b * 5 + e] = c.p[0][a] * c.p[a + 1][b] * c.p[b + 1][e];
  std::vector<long> wrong(125, 0);
  for (int t = 0; t < kTrials; ++t) {
    Token prev = kNoToken;
    std::size_t idx = 0;
    for (int k = 0; k < 3; ++k) {
      prev = sample_from(c.q[static_cast<std::size_t>(prev + 1)], uniform(t, Purpose::draft_sample, k, 0));
      idx = idx * 5 + static_cast<std::size_t>(prev);
    }
    ++wrong[idx];
  }
  CHECK_FALSE(chi_square(joint, wrong, kTrials).pass());
}

TEST_CASE("block verification with one draft is token-level verification; sizes are checked", "[rejection][block]") {
  const auto p = random_dist(16, 1, 4.0), q = random_dist(16, 2, 4.0);
  for (std::uint64_t pos = 0; pos < 500; ++pos) {
    const Token d = sample_from(q, uniform(3, Purpose::draft_sample, pos, 0));
    const Token one[1] = {d};
    const DenseView ps[1] = {p}, qs[1] = {q};
    const BlockVerdict b = block_verify(one, ps, qs, 3, pos, 0);
    const auto x = static_cast<std::size_t>(d);
    const bool ok = accept_draft(p[x], q[x], uniform(3, Purpose::accept, pos, 0));
    CHECK(b.accepted == (ok ? 1u : 0u));
    if (!ok) CHECK(b.correction == residual_dense(p, q, uniform(3, Purpose::residual, pos, 0)));
  }
  const Token two[2] = {1, 2};
  const DenseView ps[1] = {p};
  CHECK_THROWS_AS(block_verify(two, ps, ps, 1, 0, 0), Error);
}
