#pragma once
// Implementation of picospec/sampling.hpp. Include the public header instead.

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "picospec/detail/math_exp.hpp"
#include "picospec/detail/math_topk.hpp"
#include "picospec/rng.hpp"

namespace picospec {
namespace detail {

inline constexpr float kNegInf = -std::numeric_limits<float>::infinity();

/// Validates a logit row (non-empty, no NaN, no +inf, not all -inf) and returns its maximum.
inline float checked_max_logit(std::span<const float> logits) {
  if (logits.empty()) throw Error("sampling: empty logits row");
  // 8 independent lanes so that the compiler vectorizes (a single running max is a latency-bound chain).
  constexpr float kInf = std::numeric_limits<float>::infinity();
  float lane_max[8] = {kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf};
  int lane_bad[8] = {};
  const float* x = logits.data();
  const std::size_t n = logits.size();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (std::size_t j = 0; j < 8; ++j) {
      const float v = x[i + j];
      lane_bad[j] |= static_cast<int>(!(v < kInf));  // NaN or +inf
      lane_max[j] = v > lane_max[j] ? v : lane_max[j];
    }
  }
  float m = kNegInf;
  int invalid = 0;
  for (std::size_t j = 0; j < 8; ++j) {
    invalid |= lane_bad[j];
    m = lane_max[j] > m ? lane_max[j] : m;
  }
  for (; i < n; ++i) {
    invalid |= static_cast<int>(!(x[i] < kInf));
    m = x[i] > m ? x[i] : m;
  }
  if (invalid) {
    for (std::size_t t = 0; t < n; ++t) {
      if (std::isnan(x[t])) throw Error("sampling: NaN logit at token " + std::to_string(t));
      if (std::isinf(x[t]) && x[t] > 0) throw Error("sampling: +inf logit at token " + std::to_string(t));
    }
  }
  if (m == kNegInf) throw Error("sampling: every logit is -inf (nothing can be sampled)");
  return m;
}

inline void check_params(const SamplingParams& sp) {
  if (std::isnan(sp.temperature) || std::isinf(sp.temperature))
    throw Error("sampling: temperature must be finite");
  if (std::isnan(sp.top_p)) throw Error("sampling: top_p is NaN");
  if (std::isnan(sp.min_p)) throw Error("sampling: min_p is NaN");
}

/// Fills ws.entries with the kept set (value = logit) after top-k, top-p and min-p; returns the max logit.
/// Entries are in ranking order when any truncation that needs ranking ran, else in id order.
inline float kept_set(std::span<const float> logits, const SamplingParams& sp, SamplingWorkspace& ws) {
  const float lmax = checked_max_logit(logits);
  const std::size_t n = logits.size();
  auto& sel = ws.entries;
  const bool use_top_k = sp.top_k > 0 && static_cast<std::size_t>(sp.top_k) < n;
  const bool use_top_p = sp.top_p < 1.0f;
  const bool use_min_p = sp.min_p > 0.0f;

  auto weight = [lmax](float v) { return std::exp(static_cast<double>(v) - static_cast<double>(lmax)); };

  if (use_top_k) {
    select_top_k(logits.data(), n, static_cast<std::size_t>(sp.top_k), kNegInf, kNegInf, sel, "sampling");
  } else if (use_top_p) {
    // Grow a ranked prefix until it holds top_p of the total mass (the nucleus is a prefix of the ranking).
    double total = 0.0;
    for (const float v : logits) total += weight(v);
    const double target = static_cast<double>(sp.top_p) * total;
    // Peaked rows (the usual case): the nucleus is inside the top 256, found in about one pass.
    const std::size_t k = std::min<std::size_t>(n, 256);
    select_top_k(logits.data(), n, k, kNegInf, kNegInf, sel, "sampling");
    double cum = 0.0;
    std::size_t keep = 0;
    while (keep < sel.size() && cum < target) cum += weight(sel[keep++].value);
    if (cum >= target || sel.size() < k) {
      sel.resize(std::max<std::size_t>(keep, 1));
    } else {
      // Flat rows: bisect the nucleus size with nth_element on a shrinking range. Invariant: sel[0, lo) holds
      // the lo best entries (mass mass_lo < target), sel[0, hi) the hi best. Expected O(V) work.
      sel.clear();
      for (std::size_t i = 0; i < n; ++i)
        if (logits[i] > kNegInf) sel.push_back({logits[i], static_cast<Token>(i)});
      const auto rank = [](const auto& a, const auto& b) { return ranks_before(a, b); };
      std::size_t lo = 0, hi = sel.size();
      double mass_lo = 0.0;
      while (hi - lo > 64) {
        const std::size_t mid = lo + (hi - lo) / 2;
        std::nth_element(sel.begin() + static_cast<std::ptrdiff_t>(lo), sel.begin() + static_cast<std::ptrdiff_t>(mid),
                         sel.begin() + static_cast<std::ptrdiff_t>(hi), rank);
        double m = 0.0;
        for (std::size_t i = lo; i < mid; ++i) m += weight(sel[i].value);
        if (mass_lo + m >= target) {
          hi = mid;
        } else {
          lo = mid;
          mass_lo += m;
        }
      }
      std::sort(sel.begin() + static_cast<std::ptrdiff_t>(lo), sel.begin() + static_cast<std::ptrdiff_t>(hi), rank);
      cum = mass_lo;
      keep = lo;
      while (keep < hi && cum < target) cum += weight(sel[keep++].value);
      sel.resize(std::max<std::size_t>(keep, 1));
    }
  } else {
    sel.clear();
    for (std::size_t i = 0; i < n; ++i)
      if (logits[i] > kNegInf) sel.push_back({logits[i], static_cast<Token>(i)});
  }

  if (use_top_p && use_top_k) {  // sel is the ranked top-k set; softmax over it at temperature 1
    double z = 0.0;
    for (const auto& x : sel) z += weight(x.value);
    const double target = static_cast<double>(sp.top_p) * z;
    double cum = 0.0;
    std::size_t keep = 0;
    while (keep < sel.size()) {
      cum += weight(sel[keep].value);
      ++keep;
      if (cum >= target) break;
    }
    sel.resize(std::max<std::size_t>(keep, 1));
  }
  if (use_min_p) {  // p / p_max >= min_p  <=>  l - lmax >= log(min_p) (as llama.cpp); lmax is always kept
    const double cut = std::log(static_cast<double>(sp.min_p));
    std::size_t w = 0;
    for (const auto& x : sel)
      if (static_cast<double>(x.value) - static_cast<double>(lmax) >= cut || x.value == lmax) sel[w++] = x;
    sel.resize(w);
  }
  return lmax;
}

/// Inverse CDF over weights w(i), i = 0..n-1 (all >= 0, total z > 0 finite): first i with running sum > u*z;
/// rounding falls on the last positive weight.
template <class W>
inline std::size_t inverse_cdf(std::size_t n, double z, double u, W&& w) {
  const double target = u * z;
  double cum = 0.0;
  std::size_t last = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double x = w(i);
    cum += x;                    // x >= 0: a zero weight cannot make cum cross the target
    last = x > 0.0 ? i : last;
    if (cum > target) return i;
  }
  return last;
}

/// Sum of a probability row in double; throws Error("<where>: ...") for a negative or NaN entry, or a total that
/// is not positive and finite.
inline double checked_total(std::span<const float> probs, const char* where) {
  double total = 0.0;
  int invalid = 0;
  for (const float p : probs) {
    invalid |= static_cast<int>(!(p >= 0.0f));
    total += p;
  }
  if (invalid) throw Error(std::string(where) + ": negative or NaN probability");
  if (!(total > 0.0) || std::isinf(total))
    throw Error(std::string(where) + ": total probability is not positive and finite");
  return total;
}

inline void check_u(double u) {
  if (!(u >= 0.0 && u < 1.0)) throw Error("sampling: uniform draw outside [0, 1)");
}

}  // namespace detail

inline Token argmax(std::span<const float> values) {
  if (values.empty()) throw Error("argmax: empty row");
  // Pass 1: the largest non-NaN value, in 8 lanes (vectorizable; NaN never wins a '>' comparison).
  // Pass 2: its first index (ties -> lowest id), stopping there.
  constexpr float kLow = -std::numeric_limits<float>::infinity();
  const float* x = values.data();
  const std::size_t n = values.size();
  float lane[8] = {kLow, kLow, kLow, kLow, kLow, kLow, kLow, kLow};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (std::size_t j = 0; j < 8; ++j) lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
  float m = kLow;
  for (const float v : lane) m = v > m ? v : m;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (std::size_t t = 0; t < n; ++t)
    if (x[t] == m) return static_cast<Token>(t);
  throw Error("argmax: every value is NaN");  // only NaN (m stayed -inf and no entry equals it)
}

inline void softmax(std::span<const float> logits, std::vector<float>& probs, float temperature) {
  if (!(temperature > 0.0f) || std::isinf(temperature)) throw Error("softmax: temperature must be > 0 and finite");
  const float inv_t = 1.0f / temperature;
  if (std::isinf(inv_t)) throw Error("softmax: temperature too small (1/T overflows float); use 0 for greedy");
  const float lmax = detail::checked_max_logit(logits);
  probs.resize(logits.size());
  detail::dense_softmax(logits.data(), logits.size(), lmax, inv_t, probs.data());
}

inline void logits_to_probs(std::span<const float> logits, const SamplingParams& params, std::vector<float>& probs,
                            SamplingWorkspace& ws) {
  detail::check_params(params);
  if (params.greedy()) {
    detail::checked_max_logit(logits);
    probs.assign(logits.size(), 0.0f);
    probs[static_cast<std::size_t>(argmax(logits))] = 1.0f;
    return;
  }
  const bool truncates = (params.top_k > 0 && static_cast<std::size_t>(params.top_k) < logits.size()) ||
                         params.top_p < 1.0f || params.min_p > 0.0f;
  if (!truncates) {  // the whole vocabulary is kept: one vectorized softmax, no (value, id) list
    softmax(logits, probs, params.temperature);
    return;
  }
  const double lmax = detail::kept_set(logits, params, ws);
  const double inv_t = 1.0 / static_cast<double>(params.temperature);
  auto& w = ws.scratch;
  w.resize(ws.entries.size());
  double z = 0.0;
  for (std::size_t i = 0; i < ws.entries.size(); ++i) {
    w[i] = std::exp((static_cast<double>(ws.entries[i].value) - lmax) * inv_t);
    z += w[i];
  }
  probs.assign(logits.size(), 0.0f);
  for (std::size_t i = 0; i < ws.entries.size(); ++i)
    probs[static_cast<std::size_t>(ws.entries[i].id)] = static_cast<float>(w[i] / z);
}

inline void logits_to_probs(std::span<const float> logits, const SamplingParams& params, std::vector<float>& probs) {
  SamplingWorkspace ws;
  logits_to_probs(logits, params, probs, ws);
}

inline SparseDist logits_to_sparse(std::span<const float> logits, const SamplingParams& params,
                                   SamplingWorkspace& ws) {
  detail::check_params(params);
  SparseDist out;
  out.vocab_size = static_cast<std::uint32_t>(logits.size());
  if (params.greedy()) {
    detail::checked_max_logit(logits);
    out.ids.push_back(argmax(logits));
    out.probs.push_back(1.0f);
    return out;
  }
  const double lmax = detail::kept_set(logits, params, ws);
  std::sort(ws.entries.begin(), ws.entries.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  const double inv_t = 1.0 / static_cast<double>(params.temperature);
  auto& w = ws.scratch;
  w.resize(ws.entries.size());
  double z = 0.0;
  for (std::size_t i = 0; i < ws.entries.size(); ++i) {
    w[i] = std::exp((static_cast<double>(ws.entries[i].value) - lmax) * inv_t);
    z += w[i];
  }
  out.ids.resize(ws.entries.size());
  out.probs.resize(ws.entries.size());
  for (std::size_t i = 0; i < ws.entries.size(); ++i) {
    out.ids[i] = ws.entries[i].id;
    out.probs[i] = static_cast<float>(w[i] / z);
  }
  return out;
}

inline Token sample_from(std::span<const float> probs, double u) {
  detail::check_u(u);
  if (probs.empty()) throw Error("sample_from: empty distribution");
  const double total = detail::checked_total(probs, "sample_from");
  return static_cast<Token>(detail::inverse_cdf(probs.size(), total, u, [&](std::size_t i) { return probs[i]; }));
}

inline Token sample_from(const SparseDist& dist, double u) {
  detail::check_u(u);
  if (dist.ids.empty() || dist.ids.size() != dist.probs.size())
    throw Error("sample_from: empty or inconsistent sparse distribution");
  const double total = detail::checked_total(dist.probs, "sample_from");
  return dist.ids[detail::inverse_cdf(dist.probs.size(), total, u, [&](std::size_t i) { return dist.probs[i]; })];
}

inline Token coupled_sample(std::span<const float> probs, std::uint64_t seed, std::uint64_t position) {
  if (probs.empty()) throw Error("coupled_sample: empty distribution");
  (void)detail::checked_total(probs, "coupled_sample");
  const std::uint64_t base = random_u64(seed, Purpose::coupled, position, 0);
  std::size_t best = 0;
  double best_score = -1.0;
  for (std::size_t v = 0; v < probs.size(); ++v) {
    if (!(probs[v] > 0.0f)) continue;
    const std::uint64_t bits = detail::mix64(base + (v + 1) * 0x9E3779B97F4A7C15ull);  // SplitMix64, output v
    const std::uint64_t m = (bits >> 11) + 1;                                              // u = m 2^-53 in (0, 1]
    const double p = probs[v];
    // -ln(u) >= 1 - u, so p / E <= p / (1 - u): when that bound is already below the best score (with a margin
    // far above the rounding of both sides) the token cannot win and its logarithm is skipped. Same result as
    // computing every E, for a fraction of the cost (most tokens are improbable).
    const double one_minus_u = static_cast<double>((std::uint64_t{1} << 53) - m) * 0x1.0p-53;  // exact
    if (best_score > 0.0 && p < best_score * one_minus_u * (1.0 - 1e-9)) continue;
    const double e = -std::log(static_cast<double>(m) * 0x1.0p-53);                      // Exp(1)
    const double score = e > 0.0 ? p / e : std::numeric_limits<double>::infinity();
    if (score > best_score) {
      best_score = score;
      best = v;
    }
  }
  return static_cast<Token>(best);
}

inline Token coupled_sample_top(std::span<const float> probs, std::uint64_t seed, std::uint64_t position,
                                std::size_t k, std::vector<Token>& runners_up) {
  if (probs.empty()) throw Error("coupled_sample_top: empty distribution");
  (void)detail::checked_total(probs, "coupled_sample_top");
  const std::uint64_t base = random_u64(seed, Purpose::coupled, position, 0);
  // The k + 1 best (score, id), best first, kept by insertion (k is a handful); per-thread scratch, so a draft
  // step allocates nothing once warm.
  thread_local std::vector<std::pair<double, std::size_t>> best;
  best.clear();
  best.reserve(k + 2);
  for (std::size_t v = 0; v < probs.size(); ++v) {
    if (!(probs[v] > 0.0f)) continue;
    const std::uint64_t bits = detail::mix64(base + (v + 1) * 0x9E3779B97F4A7C15ull);
    const std::uint64_t m = (bits >> 11) + 1;
    const double p = probs[v];
    // The bound of coupled_sample, against the last of the k + 1 kept: that token cannot enter them.
    const double one_minus_u = static_cast<double>((std::uint64_t{1} << 53) - m) * 0x1.0p-53;
    if (best.size() == k + 1 && p < best.back().first * one_minus_u * (1.0 - 1e-9)) continue;
    const double e = -std::log(static_cast<double>(m) * 0x1.0p-53);
    const double score = e > 0.0 ? p / e : std::numeric_limits<double>::infinity();
    if (best.size() == k + 1 && !(score > best.back().first)) continue;
    auto pos = best.end();
    while (pos != best.begin() && score > std::prev(pos)->first) --pos;  // equal scores: the earlier id first
    best.insert(pos, {score, v});
    if (best.size() > k + 1) best.pop_back();
  }
  runners_up.clear();
  for (std::size_t i = 1; i < best.size(); ++i) runners_up.push_back(static_cast<Token>(best[i].second));
  return static_cast<Token>(best.front().second);
}

}  // namespace picospec
