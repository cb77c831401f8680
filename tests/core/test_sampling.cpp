// Sampling transforms: order and semantics (top-k -> top-p -> min-p -> temperature), greedy, numerics, errors,
// large vocabularies, inverse-CDF draws.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "core/coupled_race.hpp"
#include "picospec/rng.hpp"
#include "picospec/sampling.hpp"

using namespace picospec;
using picospec::test::full_race;

namespace {
const float kInf = std::numeric_limits<float>::infinity();

std::vector<float> softmax_ref(const std::vector<float>& l, const std::vector<int>& keep, double t) {
  double m = -1e300;
  for (int i : keep) m = std::max(m, static_cast<double>(l[static_cast<std::size_t>(i)]));
  double z = 0;
  for (int i : keep) z += std::exp((l[static_cast<std::size_t>(i)] - m) / t);
  std::vector<float> out(l.size(), 0.0f);
  for (int i : keep) out[static_cast<std::size_t>(i)] = static_cast<float>(std::exp((l[static_cast<std::size_t>(i)] - m) / t) / z);
  return out;
}

std::vector<int> support(const std::vector<float>& p) {
  std::vector<int> s;
  for (std::size_t i = 0; i < p.size(); ++i)
    if (p[i] > 0.0f) s.push_back(static_cast<int>(i));
  return s;
}

SamplingParams params(float t, int k = 0, float top_p = 1.0f, float min_p = 0.0f) {
  SamplingParams sp;
  sp.temperature = t;
  sp.top_k = k;
  sp.top_p = top_p;
  sp.min_p = min_p;
  return sp;
}
}  // namespace

// logits chosen so that softmax at T = 1 is 0.5, 0.25, 0.125, 0.0625, 0.0625 (ln 2 steps) for ids 2,0,4,1,3.
const std::vector<float> kL{std::log(0.25f), std::log(0.0625f), std::log(0.5f), std::log(0.0625f), std::log(0.125f)};

TEST_CASE("no transforms: plain softmax; sums to 1", "[sampling]") {
  std::vector<float> p;
  logits_to_probs(kL, params(1.0f), p);
  const auto ref = softmax_ref(kL, {0, 1, 2, 3, 4}, 1.0);
  for (std::size_t i = 0; i < p.size(); ++i) CHECK(p[i] == Approx(ref[i]).epsilon(1e-6));
  CHECK(std::accumulate(p.begin(), p.end(), 0.0) == Approx(1.0).epsilon(1e-6));
}

TEST_CASE("top-k keeps the k largest; ties broken by lower id", "[sampling]") {
  std::vector<float> p;
  logits_to_probs(kL, params(1.0f, 2), p);
  CHECK(support(p) == std::vector<int>{0, 2});
  logits_to_probs(kL, params(1.0f, 4), p);   // ids 1 and 3 tie for 4th place: 1 wins
  CHECK(support(p) == std::vector<int>{0, 1, 2, 4});
  logits_to_probs(kL, params(1.0f, 99), p);  // k >= V: off
  CHECK(support(p).size() == 5);
}

TEST_CASE("top-p keeps the smallest ranked prefix reaching the mass, at least one token", "[sampling]") {
  std::vector<float> p;
  logits_to_probs(kL, params(1.0f, 0, 0.5f), p);
  CHECK(support(p) == std::vector<int>{2});             // 0.5 reaches 0.5
  logits_to_probs(kL, params(1.0f, 0, 0.6f), p);
  CHECK(support(p) == std::vector<int>{0, 2});          // 0.75
  logits_to_probs(kL, params(1.0f, 0, 0.8f), p);
  CHECK(support(p) == std::vector<int>{0, 2, 4});       // 0.875
  logits_to_probs(kL, params(1.0f, 0, 0.0f), p);
  CHECK(support(p) == std::vector<int>{2});
}

TEST_CASE("min-p keeps p >= min_p * p_max", "[sampling]") {
  std::vector<float> p;
  logits_to_probs(kL, params(1.0f, 0, 1.0f, 0.24f), p);  // threshold 0.12 (0.125 = 0.25 * p_max is a rounding tie)
  CHECK(support(p) == std::vector<int>{0, 2, 4});
  logits_to_probs(kL, params(1.0f, 0, 1.0f, 0.3f), p);
  CHECK(support(p) == std::vector<int>{0, 2});
}

TEST_CASE("order: top-p and min-p are computed before temperature (llama.cpp order)", "[sampling]") {
  // At T = 1 top_p = 0.6 keeps {2, 0}. Were temperature applied first, T = 4 flattens the distribution and
  // the 0.6 nucleus would need 3 tokens; T = 0.25 sharpens it so that token 2 alone would reach 0.6.
  std::vector<float> p;
  for (float t : {0.25f, 4.0f}) {
    logits_to_probs(kL, params(t, 0, 0.6f), p);
    CHECK(support(p) == std::vector<int>{0, 2});
    const auto ref = softmax_ref(kL, {0, 2}, t);
    CHECK(p[0] == Approx(ref[0]).epsilon(1e-6));
    CHECK(p[2] == Approx(ref[2]).epsilon(1e-6));
  }
  // min-p likewise uses temperature-1 probabilities
  logits_to_probs(kL, params(8.0f, 0, 1.0f, 0.24f), p);
  CHECK(support(p) == std::vector<int>{0, 2, 4});
  // top-k runs before top-p: with k = 1 nothing else can survive
  logits_to_probs(kL, params(1.0f, 1, 0.99f), p);
  CHECK(support(p) == std::vector<int>{2});
  // top-p renormalizes over the top-k set: after k = 2 the kept mass is {2: 2/3, 0: 1/3}; top_p 0.6 keeps only 2
  logits_to_probs(kL, params(1.0f, 2, 0.6f), p);
  CHECK(support(p) == std::vector<int>{2});
}

TEST_CASE("temperature 0 is greedy: one-hot argmax, ties -> lowest id", "[sampling]") {
  std::vector<float> p;
  const std::vector<float> l{1.0f, 3.0f, -kInf, 3.0f};
  logits_to_probs(l, params(0.0f, 1, 0.1f, 0.9f), p);
  CHECK(p == std::vector<float>{0, 1, 0, 0});
  CHECK(argmax(l) == 1);
  SamplingWorkspace ws;
  const auto s = logits_to_sparse(l, params(0.0f), ws);
  CHECK(s.ids == std::vector<Token>{1});
  CHECK(s.probs == std::vector<float>{1.0f});
}

TEST_CASE("numerics: huge logits, -inf masks, NaN/+inf/all -inf errors", "[sampling]") {
  std::vector<float> p;
  const std::vector<float> big{1e30f, 1e30f - 1e24f, -1e30f, -kInf};
  logits_to_probs(big, params(1.0f), p);
  CHECK(p[0] == 1.0f);
  CHECK(p[3] == 0.0f);
  const std::vector<float> masked{0.0f, -kInf, 0.0f};
  logits_to_probs(masked, params(0.7f), p);
  CHECK(p == std::vector<float>{0.5f, 0.0f, 0.5f});
  CHECK_THROWS_AS(logits_to_probs(std::vector<float>{0.0f, std::nanf("")}, params(1.0f), p), Error);
  CHECK_THROWS_AS(logits_to_probs(std::vector<float>{0.0f, kInf}, params(1.0f), p), Error);
  CHECK_THROWS_AS(logits_to_probs(std::vector<float>{-kInf, -kInf}, params(1.0f), p), Error);
  CHECK_THROWS_AS(logits_to_probs(std::vector<float>{}, params(1.0f), p), Error);
  CHECK_THROWS_AS(logits_to_probs(std::vector<float>{0.0f, std::nanf("")}, params(0.0f), p), Error);
  CHECK_THROWS_AS(logits_to_probs(kL, params(std::nanf("")), p), Error);
  CHECK_THROWS_AS(logits_to_probs(kL, params(1.0f, 0, std::nanf("")), p), Error);
  try {
    logits_to_probs(std::vector<float>{0.0f, std::nanf("")}, params(1.0f), p);
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("NaN") != std::string::npos);
  }
  CHECK_THROWS_AS(argmax(std::vector<float>{}), Error);
}

TEST_CASE("large vocabularies: 32000, 128256, 151936", "[sampling]") {
  SamplingWorkspace ws;
  std::vector<float> p;
  for (const std::size_t v : {32000u, 128256u, 151936u}) {
    std::vector<float> l(v);
    for (std::size_t i = 0; i < v; ++i) l[i] = static_cast<float>(12.0 * uniform(v, Purpose::user, i, 0));
    logits_to_probs(l, params(0.8f, 40, 0.95f, 0.05f), p, ws);
    REQUIRE(p.size() == v);
    const auto s = support(p);
    CHECK(s.size() >= 1);
    CHECK(s.size() <= 40);
    CHECK(std::accumulate(p.begin(), p.end(), 0.0) == Approx(1.0).epsilon(1e-5));
    // the kept set is exactly the top-ranked tokens
    std::vector<float> sorted = l;
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(s.size()) - 1, sorted.end(), std::greater<>());
    for (int i : s) CHECK(l[static_cast<std::size_t>(i)] >= sorted[s.size() - 1]);
    // top-p alone (no top-k) on a large vocabulary goes through the growing ranked prefix
    logits_to_probs(l, params(1.0f, 0, 0.9f), p, ws);
    const auto s2 = support(p);
    double kept = 0, total = 0, lm = *std::max_element(l.begin(), l.end());
    for (float x : l) total += std::exp(x - lm);
    for (int i : s2) kept += std::exp(l[static_cast<std::size_t>(i)] - lm);
    CHECK(kept / total >= 0.9);
    CHECK((kept - std::exp(l[static_cast<std::size_t>(s2.back())] - lm)) / total < 0.9 + 1e-6);  // minimal-ish
    const auto sp = logits_to_sparse(l, params(1.0f, 0, 0.9f), ws);
    CHECK(sp.size() == s2.size());
    CHECK(std::is_sorted(sp.ids.begin(), sp.ids.end()));
    CHECK(argmax(l) == argmax(p));
    std::vector<float> sm;
    softmax(l, sm);
    CHECK(std::accumulate(sm.begin(), sm.end(), 0.0) == Approx(1.0).epsilon(1e-5));
  }
}

TEST_CASE("sample_from: inverse CDF, never a zero-probability token, deterministic", "[sampling]") {
  const std::vector<float> p{0.0f, 0.25f, 0.0f, 0.75f, 0.0f};
  CHECK(sample_from(p, 0.0) == 1);
  CHECK(sample_from(p, 0.2499) == 1);
  CHECK(sample_from(p, 0.25) == 3);
  CHECK(sample_from(p, std::nextafter(1.0, 0.0)) == 3);  // last positive token, never the trailing zero
  const std::vector<float> unnorm{0.0f, 2.0f, 6.0f};
  CHECK(sample_from(unnorm, 0.24) == 1);
  CHECK(sample_from(unnorm, 0.26) == 2);
  const SparseDist sd{10, {2, 7}, {0.5f, 0.5f}};
  CHECK(sample_from(sd, 0.1) == 2);
  CHECK(sample_from(sd, 0.6) == 7);
  CHECK_THROWS_AS(sample_from(std::vector<float>{0.0f, 0.0f}, 0.5), Error);
  CHECK_THROWS_AS(sample_from(std::vector<float>{-0.1f, 1.0f}, 0.5), Error);
  CHECK_THROWS_AS(sample_from(p, 1.0), Error);
  CHECK_THROWS_AS(sample_from(p, -0.1), Error);
  CHECK_THROWS_AS(sample_from(SparseDist{}, 0.5), Error);
  // frequencies over a fine grid of u match p exactly
  std::vector<int> c(5, 0);
  for (int i = 0; i < 1000; ++i) ++c[static_cast<std::size_t>(sample_from(p, i / 1000.0))];
  CHECK(c == std::vector<int>{0, 250, 0, 750, 0});
}

TEST_CASE("exp_nonpositive: < 2 ulp from exp over [-87, 0], exact ends, 0 below the float range", "[sampling][exp]") {
  // Catches a wrong polynomial coefficient, a bad range reduction (n off by one near multiples of ln 2) or a
  // broken 2^n scale: each shows up as a relative error far above 2^-23.
  double worst = 0.0;
  float worst_x = 0.0f;
  const int steps = 2'000'000;
  for (int i = 0; i <= steps; ++i) {
    const float x = -87.0f * static_cast<float>(i) / static_cast<float>(steps);
    const double ref = std::exp(static_cast<double>(x));
    const double got = detail::exp_nonpositive(x);
    const double rel = std::fabs(got - ref) / ref;
    if (rel > worst) { worst = rel; worst_x = x; }
  }
  for (int k = -125; k <= 0; ++k) {  // around multiples of ln 2, where the reduction switches n
    const float c = static_cast<float>(k) * 0.69314718f;
    for (float x : {std::nextafter(c, -100.0f), c, std::nextafter(c, 1.0f)}) {
      if (x > 0.0f || x < -87.0f) continue;
      const double ref = std::exp(static_cast<double>(x));
      const double rel = std::fabs(detail::exp_nonpositive(x) - ref) / ref;
      if (rel > worst) { worst = rel; worst_x = x; }
    }
  }
  INFO("worst relative error " << worst << " at x = " << worst_x);
  CHECK(worst < 2.0 * 1.1920929e-7);  // 2 ulp (ulp = 2^-23 relative)
  CHECK(detail::exp_nonpositive(0.0f) == 1.0f);
  CHECK(detail::exp_nonpositive(-0.0f) == 1.0f);
  CHECK(detail::exp_nonpositive(5.0f) == 1.0f);  // clamped: callers pass x <= 0
  CHECK(detail::exp_nonpositive(-87.5f) == 0.0f);
  CHECK(detail::exp_nonpositive(-kInf) == 0.0f);
}

TEST_CASE("softmax rejects a temperature whose reciprocal overflows", "[sampling]") {
  std::vector<float> probs;
  const std::vector<float> logits = {0.0f, 1.0f};
  CHECK_THROWS_AS(softmax(logits, probs, 1e-39f), Error);
}

TEST_CASE("coupled_sample: exactly p (chi-square), the coupling bound, keyed by (seed, position) alone", "[sampling][coupled]") {
  // p over 12 tokens with a zero; q a different distribution with TV(p, q) = 0.3.
  const std::vector<float> p = {0.30f, 0.20f, 0.15f, 0.10f, 0.08f, 0.06f, 0.05f, 0.03f, 0.02f, 0.01f, 0.0f, 0.0f};
  std::vector<float> q = p;
  q[0] = 0.0f;  // move 0.30 of mass from token 0 to tokens 10 and 11
  q[10] = 0.2f;
  q[11] = 0.1f;
  double tv = 0.0;
  for (std::size_t i = 0; i < p.size(); ++i) tv += 0.5 * std::fabs(static_cast<double>(p[i]) - q[i]);
  REQUIRE(tv == Approx(0.3).margin(1e-6));
  constexpr int kN = 40000;
  std::vector<int> counts(p.size(), 0);
  int same = 0;
  for (int i = 0; i < kN; ++i) {
    const std::uint64_t seed = 7 + static_cast<std::uint64_t>(i % 97), pos = static_cast<std::uint64_t>(i);
    const Token a = coupled_sample(p, seed, pos);
    REQUIRE(p[static_cast<std::size_t>(a)] > 0.0f);  // never a zero-probability token
    REQUIRE(coupled_sample(p, seed, pos) == a);       // a pure function of the key
    ++counts[static_cast<std::size_t>(a)];
    same += coupled_sample(q, seed, pos) == a;
  }
  // Chi-square over the 10 positive cells (9 degrees of freedom): critical value at p = 1e-4 is 33.7.
  double chi2 = 0.0;
  for (std::size_t i = 0; i < 10; ++i) {
    const double e = p[i] * kN;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  INFO("chi2 " << chi2);
  CHECK(chi2 < 33.7);
  // The two draws agree with probability >= (1 - TV) / (1 + TV) = 0.538; the sampling error of the rate is
  // below 0.0025, so 4 sigma below the bound still fails a sampler that draws p and q independently
  // (agreement sum p q = 0.1414 + ... < 0.2).
  const double rate = static_cast<double>(same) / kN;
  INFO("agreement " << rate);
  CHECK(rate > (1.0 - tv) / (1.0 + tv) - 0.01);
  CHECK(rate <= 1.0 - tv + 0.01);  // and at most the maximal coupling's 1 - TV
  // A different seed or position gives independent draws.
  int differ = 0;
  for (int i = 0; i < 200; ++i)
    differ += coupled_sample(p, 1, static_cast<std::uint64_t>(i)) != coupled_sample(p, 2, static_cast<std::uint64_t>(i));
  CHECK(differ > 100);
  const std::vector<float> bad = {0.5f, -0.1f};
  CHECK_THROWS_AS(coupled_sample(bad, 1, 1), Error);
  CHECK_THROWS_AS(coupled_sample(std::vector<float>{}, 1, 1), Error);
}

TEST_CASE("coupled_sample equals the exponential race computed in full on large vocabularies", "[sampling][coupled]") {
  // coupled_sample skips the logarithm of tokens that provably cannot win; the result must be the full race's.
  for (std::size_t vocab : {std::size_t{4096}, std::size_t{32000}}) {
    std::vector<float> p(vocab);
    std::uint64_t z = 12345;
    for (std::size_t pos = 0; pos < 300; ++pos) {
      for (std::size_t i = 0; i < vocab; ++i) {  // peaked (Zipf-like) with random exponents and some zeros
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        const double r = static_cast<double>(z >> 11) * 0x1.0p-53;
        p[i] = r < 0.05 ? 0.0f : static_cast<float>(std::pow(r, 8.0 + static_cast<double>(pos % 5) * 4.0));
      }
      const std::uint64_t seed = 3 + pos % 7;
      REQUIRE(coupled_sample(p, seed, pos) == static_cast<Token>(full_race(p, seed, pos)[0].second));
    }
  }
}

TEST_CASE("coupled_sample_top: the race's winner (= coupled_sample) and its runners-up in order", "[sampling][coupled]") {
  std::vector<float> p(3000);
  std::uint64_t z = 99;
  for (std::size_t pos = 0; pos < 200; ++pos) {
    for (auto& x : p) {
      z = z * 6364136223846793005ull + 1442695040888963407ull;
      const double r = static_cast<double>(z >> 11) * 0x1.0p-53;
      x = r < 0.1 ? 0.0f : static_cast<float>(std::pow(r, 6.0));
    }
    const std::uint64_t seed = 11 + pos % 3;
    const auto all = full_race(p, seed, pos);
    for (std::size_t k : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
      std::vector<Token> runners;
      const Token w = coupled_sample_top(p, seed, pos, k, runners);
      REQUIRE(w == static_cast<Token>(all[0].second));
      REQUIRE(w == coupled_sample(p, seed, pos));
      REQUIRE(runners.size() == k);
      for (std::size_t i = 0; i < k; ++i) REQUIRE(runners[i] == static_cast<Token>(all[i + 1].second));
    }
  }
}
