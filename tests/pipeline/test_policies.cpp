// The rejection policies (src/policies/), driven directly, without threads, transports or models: the edge half
// drafts from q's logits, its uplink goes through the real wire encoder/decoder, the cloud half tests against
// p's logits and builds the verdict (also through the wire), the edge half decides (asking for more candidates
// when needed). Checks: every exact mode commits tokens distributed as p (chi-square, fixed seed, same method
// as tests/core/test_rejection.cpp), a deliberately wrong committer is rejected by the same check, cloud-decided
// corrections are reported identically on both sides, and each half refuses verdicts/drafts of another mode.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "picospec/analytic.hpp"
#include "picospec/protocol.hpp"
#include "picospec/rejection.hpp"
#include "picospec/rng.hpp"
#include "pipeline/chi_square.hpp"
#include "policies/policy.hpp"

using namespace picospec;
using namespace picospec::detail;

namespace {

constexpr std::uint64_t kSeed = 777;
constexpr int kTrials = 40'000;

std::vector<float> normalized(std::vector<double> w) {
  double s = 0;
  for (double x : w) s += x;
  std::vector<float> out(w.size());
  for (std::size_t i = 0; i < w.size(); ++i) out[i] = static_cast<float>(w[i] / s);
  return out;
}
std::vector<float> random_dist(std::size_t v, std::uint64_t tag, double scale, std::size_t zeros = 0) {
  std::vector<double> w(v);
  for (std::size_t i = 0; i < v; ++i) w[i] = std::exp(scale * (uniform(tag, Purpose::user, i, 0) - 0.5));
  for (std::size_t i = 0; i < zeros && i < v - 1; ++i) w[(i * 7 + 3) % v] = 0.0;
  return normalized(w);
}
std::vector<float> logits_of(const std::vector<float>& p) {
  std::vector<float> l(p.size());
  for (std::size_t i = 0; i < p.size(); ++i)
    l[i] = p[i] > 0 ? std::log(p[i]) : -std::numeric_limits<float>::infinity();
  return l;
}
// p as the cloud sees it after its sampling transforms (temperature 1 softmax of log p: p up to rounding).
std::vector<float> target_probs(const std::vector<float>& logits) {
  std::vector<float> out;
  logits_to_probs(logits, SamplingParams{}, out);
  return out;
}

template <class Body>
Body round_trip(Body body) {
  wire::Header h;
  h.session_id = 1;
  return std::get<Body>(wire::decode(wire::encode(h, std::move(body))).body);
}

struct Pair {
  std::string name;
  std::vector<float> p, q;
};
std::vector<Pair> pairs() {
  return {{"random V=16", random_dist(16, 1, 4.0), random_dist(16, 2, 4.0)},
          {"disjoint supports V=8", normalized({1, 2, 3, 4, 0, 0, 0, 0}), normalized({0, 0, 0, 0, 4, 3, 2, 1})},
          {"peaked, zeros V=64", random_dist(64, 4, 9.0, 10), random_dist(64, 5, 9.0, 20)}};
}

struct Side {
  std::unique_ptr<EdgePolicy> edge;
  std::unique_ptr<CloudPolicy> cloud;
};
Side make(RejectionMode mode, std::uint32_t vocab, std::string codec = "", std::uint32_t m = 4) {
  PolicyConfig cfg;
  cfg.seed = kSeed;
  cfg.vocab = vocab;
  cfg.codec = std::move(codec);
  cfg.candidates_m = m;
  cfg.topk_k = 3;
  if (mode == RejectionMode::greedy) cfg.sampling.temperature = 0.0f;
  return {make_edge_policy(mode, cfg), make_cloud_policy(mode, cfg)};
}

// One position, both halves, exactly as the pipeline runs them; returns the committed token.
Token commit(Side& s, const std::vector<float>& lq, const std::vector<float>& lp, std::uint64_t pos,
             long* follow_ups = nullptr) {
  SpecToken st;
  s.edge->draft(lq, pos, 0, st);
  wire::Draft d;
  d.start_position = static_cast<std::uint32_t>(pos);
  d.tokens = {st.token};
  s.edge->add_uplink(st, d);
  d = round_trip(std::move(d));
  s.cloud->check_draft(d);
  if (s.cloud->test(d, 0, lp, pos, 0)) return d.tokens[0];
  wire::Verdict v;
  v.start_position = d.start_position;
  const CloudRejection rej = s.cloud->reject(v, pos, 0);
  v = round_trip(std::move(v));
  EdgeDecision dec = s.edge->on_rejection(v, pos, 0, st);
  while (!dec.decided) {
    if (follow_ups) ++*follow_ups;
    wire::MoreCandidates mc{static_cast<std::uint32_t>(pos), dec.more_from};
    wire::Verdict more;
    s.cloud->more(round_trip(mc), more);
    dec = s.edge->on_follow_up(round_trip(std::move(more)));
  }
  REQUIRE(dec.send_fixed == !rej.cloud_decided);
  if (rej.cloud_decided) REQUIRE(dec.correction == v.correction);
  return dec.correction;
}

test::ChiResult run(RejectionMode mode, const Pair& pq, const std::string& codec, long* follow_ups = nullptr) {
  Side s = make(mode, static_cast<std::uint32_t>(pq.p.size()), codec);
  const auto lq = logits_of(pq.q), lp = logits_of(pq.p);
  std::vector<long> counts(pq.p.size(), 0);
  for (int t = 0; t < kTrials; ++t) ++counts[static_cast<std::size_t>(commit(s, lq, lp, 100 + t, follow_ups))];
  return test::chi_square(target_probs(lp), counts, kTrials);
}

}  // namespace

TEST_CASE("policies: full, sparse_draft, candidates and coupled commit tokens ~ p through the wire (chi-square)",
          "[policies][stat]") {
  for (const auto& pq : pairs()) {
    for (const auto& [mode, codec] : std::vector<std::pair<RejectionMode, std::string>>{
             {RejectionMode::full, "dense_f32"},
             {RejectionMode::sparse_draft, "topk_q:4"},
             {RejectionMode::sparse_draft, "dense_f32"},
             {RejectionMode::candidates, ""},
             {RejectionMode::coupled, ""}}) {
      long follow_ups = 0;
      const auto r = run(mode, pq, codec, &follow_ups);
      INFO(pq.name << " / " << to_string(mode) << " " << codec << ": chi2 " << r.chi2 << " dof " << r.dof
                   << " crit " << r.crit << " impossible " << r.impossible << " follow-ups " << follow_ups);
      CHECK(r.pass());
      if (mode == RejectionMode::candidates && pq.name.rfind("disjoint", 0) == 0) CHECK(follow_ups == 0);
    }
  }
}

TEST_CASE("policies: candidates with m = 4 exercise MoreCandidates rounds", "[policies][stat]") {
  // q close to p: a rejected draft's candidates are often refused, so the edge asks for more.
  const Pair pq{"near V=12", random_dist(12, 8, 3.0), random_dist(12, 8, 3.2)};
  long follow_ups = 0;
  const auto r = run(RejectionMode::candidates, pq, "", &follow_ups);
  INFO("chi2 " << r.chi2 << " crit " << r.crit << " follow-ups " << follow_ups);
  CHECK(r.pass());
  CHECK(follow_ups > 0);
}

TEST_CASE("policies: the chi-square check rejects a committer that skips the acceptance test", "[policies][stat]") {
  const Pair pq = pairs()[0];
  Side s = make(RejectionMode::candidates, 16);
  const auto lq = logits_of(pq.q);
  std::vector<long> counts(16, 0);
  for (int t = 0; t < kTrials; ++t) {
    SpecToken st;
    s.edge->draft(lq, 100 + t, 0, st);
    ++counts[static_cast<std::size_t>(st.token)];  // mutant: every draft committed
  }
  CHECK_FALSE(test::chi_square(target_probs(logits_of(pq.p)), counts, kTrials).pass());
}

TEST_CASE("policies: greedy commits argmax p; topk draws from the Top-K residual", "[policies]") {
  const Pair pq = pairs()[0];
  const auto lq = logits_of(pq.q), lp = logits_of(pq.p);
  Side g = make(RejectionMode::greedy, 16);
  const Token best = argmax(lp);
  for (int t = 0; t < 50; ++t) CHECK(commit(g, lq, lp, 5 + t) == best);
  // topk: the same token as the rejection.hpp functions called directly with the same keyed draws.
  Side k = make(RejectionMode::topk, 16);
  const auto p = target_probs(lp), q = target_probs(lq);
  int rejections = 0;
  for (std::uint64_t pos = 5; pos < 405; ++pos) {
    const Token d = sample_from(q, uniform(kSeed, Purpose::draft_sample, pos, 0));
    Token expect = d;
    if (!accept_draft(p[static_cast<std::size_t>(d)], q[static_cast<std::size_t>(d)],
                      uniform(kSeed, Purpose::accept, pos, 0))) {
      ++rejections;
      expect = residual_topk(top_k(p, 3), q, uniform(kSeed, Purpose::topk_residual, pos, 0));
    }
    CHECK(commit(k, lq, lp, pos) == expect);
  }
  CHECK(rejections > 20);
}

TEST_CASE("policies: coupled sends ids only, its correction is the target's coupled draw", "[policies]") {
  const auto pq = pairs()[0];
  Side s = make(RejectionMode::coupled, 16);
  const auto lq = logits_of(pq.q), lp = logits_of(pq.p);
  const auto p = target_probs(lp);
  int accepted = 0;
  for (std::uint64_t pos = 0; pos < 400; ++pos) {
    SpecToken st;
    s.edge->draft(lq, pos, 0, st);
    wire::Draft d;
    d.tokens = {st.token};
    s.edge->add_uplink(st, d);
    CHECK(d.q_scalars.empty());
    CHECK(d.q_frames.empty());
    const Token want = coupled_sample(p, kSeed, pos);
    const bool ok = s.cloud->test(d, 0, lp, pos, 0);
    CHECK(ok == (st.token == want));
    accepted += ok;
    if (!ok) {
      wire::Verdict v;
      s.cloud->reject(v, pos, 0);
      CHECK(v.correction == want);
      CHECK(s.edge->on_rejection(v, pos, 0, st).correction == want);
    }
  }
  CHECK(accepted > 100);  // the coupling makes the draft the target's draw often (random pairs, TV about 0.4)
  wire::Draft with_q;
  with_q.tokens = {1};
  with_q.q_scalars = {0.5f};
  CHECK_THROWS_AS(s.cloud->check_draft(with_q), PolicyFailure);
}

TEST_CASE("policies: each half refuses the other modes' messages", "[policies]") {
  const Pair pq = pairs()[0];
  const auto lq = logits_of(pq.q);
  Side c = make(RejectionMode::candidates, 16);
  SpecToken st;
  c.edge->draft(lq, 3, 0, st);
  wire::Verdict wrong;
  wrong.kind = wire::VerdictKind::correction_token;
  wrong.correction = 1;
  CHECK_THROWS_AS(c.edge->on_rejection(wrong, 3, 0, st), PolicyFailure);
  wire::Draft no_scalars;
  no_scalars.tokens = {1, 2};
  CHECK_THROWS_AS(c.cloud->check_draft(no_scalars), PolicyFailure);
  CHECK_THROWS_AS(c.cloud->more(wire::MoreCandidates{3, 4}, wrong), PolicyFailure);  // no rejection pending
  Side f = make(RejectionMode::full, 16, "dense_f32");
  wire::Verdict cands;
  cands.kind = wire::VerdictKind::candidates;
  CHECK_THROWS_AS(f.edge->on_rejection(cands, 3, 0, st), PolicyFailure);
  CHECK_THROWS_AS(f.cloud->check_draft(no_scalars), PolicyFailure);
  PolicyConfig no_codec;
  no_codec.vocab = 16;
  CHECK_THROWS_AS(make_cloud_policy(RejectionMode::sparse_draft, no_codec), PolicyFailure);
}

namespace {
// llama-paper's latencies on paper-wan: D = 43, Lt(n) = 139.33 + 6.67 n (Lt(1) = 146, Lt(4) = 166), RTT 20 ms.
AnalyticInputs llama_paper_inputs() {
  AnalyticInputs in;
  in.draft_a_ms = 38;
  in.draft_b_ms = 5;
  in.target_a_ms = 146 - 20.0 / 3;
  in.target_b_ms = 20.0 / 3;
  in.rtt_ms = 20;
  return in;
}
}  // namespace

TEST_CASE("best_gamma is the argmax of the model's steady-state rate and follows the latencies", "[analytic]") {
  AnalyticInputs in = llama_paper_inputs();
  in.alpha = 0.9;
  in.edge_decides_correction = true;
  const auto rate = [&](std::uint32_t g) {
    AnalyticInputs x = in;
    x.gamma = g;
    const auto r = predict(PipelineMode::picospec, x);
    return r.tokens_per_round / r.round_ms;
  };
  const std::uint32_t g = best_gamma(PipelineMode::picospec, in, 12);
  for (std::uint32_t k = 1; k <= 12; ++k) CHECK(rate(k) <= rate(g) * (1 + 1e-9));
  // A free, fast draft and an expensive verify call favour long chunks; a poor draft favours short ones.
  AnalyticInputs fast = in;
  fast.draft_a_ms = 1;
  fast.draft_b_ms = 0;
  CHECK(best_gamma(PipelineMode::picospec, fast, 12) > g);
  AnalyticInputs poor = in;
  poor.alpha = 0.3;
  CHECK(best_gamma(PipelineMode::picospec, poor, 12) < g);
  CHECK(best_gamma(PipelineMode::picospec, in, 1) == 1);
  CHECK_THROWS_AS(best_gamma(PipelineMode::picospec, in, 0), Error);
}

TEST_CASE("the model of cloud fill: passes that fit the wait after a miss, paced or not", "[analytic][fill]") {
  AnalyticInputs in = llama_paper_inputs();
  in.alpha = 0.9;
  in.gamma = 4;
  in.tokens = 1000;
  const auto none = predict(PipelineMode::picospec, in);
  in.cloud_fill = true;
  const auto paced = predict(PipelineMode::picospec, in);
  in.fill_paced = false;
  const auto unpaced = predict(PipelineMode::picospec, in);
  // By hand. The wait after a miss is W = 4·43 + 20 = 192 ms; a round after a hit L_async = 20 + 166 = 186 ms.
  // Paced: one pass (146 ms) fits (a second would start with 46 ms left, less than 146 minus the ~70 ms a token
  // takes); the chunk's first draft equals its token with probability 0.9, then 3 drafts are verified with it.
  const double hit = std::pow(0.9, 4), e3 = 1 + 0.9 + 0.81, e4 = e3 + 0.729;
  const double t1 = std::max(192.0, 146.0) + 0.9 * (146 - 20.0 / 3 + 20.0 / 3 * 4);
  CHECK(paced.round_ms == Approx(hit * 186 + (1 - hit) * t1));
  CHECK(paced.tokens_per_round == Approx(hit * e4 + (1 - hit) * (1 + 0.9 * e3)));
  // Unpaced: passes run until the chunk arrives, two of them (292 ms), and the chunk's last 2 drafts follow.
  const double t2 = 2 * 146.0 + 0.81 * (146 - 20.0 / 3 + 20.0 / 3 * 3);
  CHECK(unpaced.round_ms == Approx(hit * 186 + (1 - hit) * t2));
  CHECK(unpaced.tokens_per_round == Approx(hit * e4 + (1 - hit) * (2 + 0.81 * (1 + 0.9))));
  // Without fill the cloud waits W, pre-verifies nothing in it and verifies 4 drafts: L_sync = 192 + 166.
  CHECK(none.round_ms == Approx(hit * 186 + (1 - hit) * (192 + 166)));
  CHECK(paced.tokens_per_s > none.tokens_per_s);
  CHECK(paced.tokens_per_s > unpaced.tokens_per_s);
  // An edge-decided correction (candidates, topk) cannot be filled: the model ignores the flag there.
  in.edge_decides_correction = true;
  const auto edge = predict(PipelineMode::picospec, in);
  in.cloud_fill = false;
  CHECK(edge.tokens_per_s == Approx(predict(PipelineMode::picospec, in).tokens_per_s));
}

TEST_CASE("the schedule model of coalesced verification", "[analytic][coalesce]") {
  AnalyticInputs in = llama_paper_inputs();
  in.gamma = 1;
  in.depth = 8;
  in.tokens = 100000;  // steady state: the first verdict's share vanishes
  in.coalesce = true;
  const auto rate = [&](AnalyticInputs x) {
    const auto r = predict(PipelineMode::picospec, x);
    return r.tokens_per_round / r.round_ms * 1000.0;
  };
  // By hand. α = 0: every draft is wrong. The edge hears of the rejection R/2 after the pass, drafts one token
  // (D), which arrives R/2 later and is scored with the correction: a cycle of R + D + Lt(2) for one token.
  AnalyticInputs zero = in;
  zero.alpha = 0.0;
  CHECK(rate(zero) == Approx(1000.0 / (20 + 43 + 146 + 20.0 / 3)));
  // With fill the cloud spends that wait (R + D = 63 ms) on a fill pass (146 ms), paced or not: its token
  // differs from the draft, which is void, and so on: the cloud commits one token per pass, as cloud-ar does.
  zero.cloud_fill = true;
  CHECK(rate(zero) == Approx(1000.0 / 146));
  zero.fill_paced = false;
  CHECK(rate(zero) == Approx(1000.0 / 146));
  // α = 1: nothing is ever wrong; the edge is the bottleneck (43 ms a draft against passes that keep up).
  AnalyticInputs one = in;
  one.alpha = 1.0;
  CHECK(rate(one) == Approx(1000.0 / 43).epsilon(0.01));
  // Between them: more acceptance, more speed; fill only adds; a deeper pipeline helps a streaming edge.
  double last = 0.0;
  for (const double a : {0.3, 0.6, 0.8, 0.9, 0.95}) {
    AnalyticInputs x = in;
    x.alpha = a;
    const double r = rate(x);
    CHECK(r > last);
    last = r;
    x.cloud_fill = true;
    CHECK(rate(x) >= r);
    AnalyticInputs shallow = x;
    shallow.depth = 1;
    CHECK(rate(shallow) < rate(x));
  }
  // With γ 4 and depth 1 chunks rarely queue: the schedule model stays near the round model of the same run
  // (measured on both: docs/benchmarks.md).
  AnalyticInputs paper_like = in;
  paper_like.alpha = 0.9;
  paper_like.gamma = 4;
  paper_like.depth = 1;
  AnalyticInputs rounds = paper_like;
  rounds.coalesce = false;
  CHECK(rate(paper_like) == Approx(rate(rounds)).epsilon(0.1));
  // Streaming beats the paper's chunking on this profile, as measured.
  AnalyticInputs stream = paper_like;
  stream.gamma = 1;
  stream.depth = 8;
  CHECK(rate(stream) > rate(rounds));
}
