#pragma once
// Implementation of picospec/rejection.hpp. Include the public header instead.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "picospec/detail/math_topk.hpp"

namespace picospec {
namespace detail {

inline bool finite_nonneg(float v) noexcept { return v >= 0.0f && v <= std::numeric_limits<float>::max(); }

/// max(0, r) without a data-dependent branch (residual signs are coin flips, so a branch mispredicts half the
/// time). Exact for finite r: r + |r| is 2r or 0, and halving is exact.
inline double pos_part(double r) noexcept { return (r + std::abs(r)) * 0.5; }

}  // namespace detail

// ----------------------------------------------------------------------------------------------- cloud half

inline bool accept_draft(float p_d, float q_d, double u) {
  if (!detail::finite_nonneg(p_d) || !detail::finite_nonneg(q_d))
    throw Error("accept_draft: probabilities must be finite and >= 0");
  if (!(u >= 0.0 && u <= 1.0)) throw Error("accept_draft: uniform draw outside [0, 1)");
  if (p_d <= 0.0f) return false;
  if (p_d >= q_d) return true;
  return u < static_cast<double>(p_d) / static_cast<double>(q_d);
}

inline AcceptResult accept_chunk(std::span<const Token> drafts, std::span<const float> q_of_draft,
                                 std::span<const DenseView> p_rows, std::uint64_t seed, std::uint64_t first_position,
                                 std::uint64_t epoch) {
  if (q_of_draft.size() != drafts.size() || p_rows.size() < drafts.size())
    throw Error("accept_chunk: drafts, q scalars and p rows differ in length");
  AcceptResult r;
  for (std::size_t i = 0; i < drafts.size(); ++i) {
    const Token d = drafts[i];
    if (d < 0 || static_cast<std::size_t>(d) >= p_rows[i].size())
      throw Error("accept_chunk: draft token " + std::to_string(d) + " out of range");
    const double u = uniform(seed, Purpose::accept, first_position + i, epoch, 0);
    if (!accept_draft(p_rows[i][static_cast<std::size_t>(d)], q_of_draft[i], u)) {
      r.rejected = true;
      return r;
    }
    ++r.accepted;
  }
  return r;
}

inline Token residual_dense(DenseView p, DenseView q, double u) {
  detail::check_u(u);
  if (p.size() != q.size() || p.empty()) throw Error("residual_dense: p and q differ in size or are empty");
  double z = 0.0;
  int invalid = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    invalid |= static_cast<int>(!detail::finite_nonneg(p[i])) | static_cast<int>(!detail::finite_nonneg(q[i]));
    z += detail::pos_part(static_cast<double>(p[i]) - static_cast<double>(q[i]));
  }
  if (invalid) throw Error("residual_dense: probabilities must be finite and >= 0");
  if (!(z > 0.0)) return sample_from(p, u);  // p == q (up to rounding): no exact rejection possible
  return static_cast<Token>(detail::inverse_cdf(p.size(), z, u, [&](std::size_t i) {
    return detail::pos_part(static_cast<double>(p[i]) - static_cast<double>(q[i]));
  }));
}

inline BlockVerdict block_verify(std::span<const Token> drafts, std::span<const DenseView> p_rows,
                                 std::span<const DenseView> q_rows, std::uint64_t seed, std::uint64_t first_position,
                                 std::uint64_t epoch) {
  const std::size_t g = drafts.size();
  if (g == 0 || p_rows.size() != g || q_rows.size() != g) throw Error("block_verify: need one p and q row per draft");
  const std::size_t v = p_rows[0].size();
  for (std::size_t i = 0; i < g; ++i) {
    if (p_rows[i].size() != v || q_rows[i].size() != v || v == 0) throw Error("block_verify: rows differ in size");
    if (drafts[i] < 0 || static_cast<std::size_t>(drafts[i]) >= v) throw Error("block_verify: draft out of range");
  }
  // S(w, i) = Σ_x max(0, w·p_i(x) − q_i(x)) in double.
  const auto residual_mass = [&](double w, std::size_t i) {
    double z = 0.0;
    for (std::size_t x = 0; x < v; ++x) {
      const float pv = p_rows[i][x], qv = q_rows[i][x];
      if (!detail::finite_nonneg(pv) || !detail::finite_nonneg(qv))
        throw Error("block_verify: probabilities must be finite and >= 0");
      z += detail::pos_part(w * static_cast<double>(pv) - static_cast<double>(qv));
    }
    return z;
  };
  std::vector<double> w(g + 1, 1.0);
  std::uint32_t tau = 0;
  for (std::size_t i = 1; i <= g; ++i) {
    const auto d = static_cast<std::size_t>(drafts[i - 1]);
    const double pd = p_rows[i - 1][d], qd = q_rows[i - 1][d];
    const double ratio = qd > 0.0 ? w[i - 1] * pd / qd : (w[i - 1] * pd > 0.0 ? 1.0 : 0.0);
    w[i] = std::min(1.0, ratio);
    double h;
    if (i < g) {
      const double s = residual_mass(w[i], i);
      const double den = s + (1.0 - w[i]);
      h = den > 0.0 ? s / den : 1.0;  // w_i = 1 and p = q next: nothing to gain by stopping here
    } else {
      h = w[i];
    }
    if (uniform(seed, Purpose::accept, first_position + i - 1, epoch) < h) tau = static_cast<std::uint32_t>(i);
  }
  BlockVerdict r;
  r.accepted = tau;
  if (tau == g) return r;
  r.rejected = true;
  const double u = uniform(seed, Purpose::residual, first_position + tau, epoch);
  const DenseView p = p_rows[tau], q = q_rows[tau];
  const double wt = w[tau];
  const double z = residual_mass(wt, tau);
  if (!(z > 0.0)) {
    r.correction = sample_from(p, u);
    return r;
  }
  r.correction = static_cast<Token>(detail::inverse_cdf(v, z, u, [&](std::size_t x) {
    return detail::pos_part(wt * static_cast<double>(p[x]) - static_cast<double>(q[x]));
  }));
  return r;
}

inline Token residual_sparse_q(DenseView p, const SparseDist& q_hat, double u) {
  detail::check_u(u);
  if (p.empty() || q_hat.vocab_size != p.size() || q_hat.ids.size() != q_hat.probs.size())
    throw Error("residual_sparse_q: q_hat does not match p's vocabulary");
  const std::size_t n = q_hat.ids.size();
  // Validate q_hat: ids strictly ascending and in range, probabilities finite and >= 0.
  for (std::size_t j = 0; j < n; ++j) {
    if (q_hat.ids[j] < 0 || static_cast<std::size_t>(q_hat.ids[j]) >= p.size() ||
        (j > 0 && q_hat.ids[j] <= q_hat.ids[j - 1]) || !detail::finite_nonneg(q_hat.probs[j]))
      throw Error("residual_sparse_q: q_hat ids not ascending/in range or bad probability");
  }
  double z = 0.0;
  int invalid = 0;
  std::size_t j = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    invalid |= static_cast<int>(!detail::finite_nonneg(p[i]));
    double qv = 0.0;
    if (j < n && static_cast<std::size_t>(q_hat.ids[j]) == i) qv = q_hat.probs[j++];
    z += detail::pos_part(static_cast<double>(p[i]) - qv);
  }
  if (invalid) throw Error("residual_sparse_q: p must be finite and >= 0");
  if (!(z > 0.0)) return sample_from(p, u);
  j = 0;
  return static_cast<Token>(detail::inverse_cdf(p.size(), z, u, [&](std::size_t i) {
    double qv = 0.0;
    if (j < n && static_cast<std::size_t>(q_hat.ids[j]) == i) qv = q_hat.probs[j++];
    return detail::pos_part(static_cast<double>(p[i]) - qv);
  }));
}

inline CandidateStream draw_candidates(DenseView p, std::uint32_t m, std::uint64_t seed, std::uint64_t position,
                                       std::uint64_t epoch, std::uint32_t first_index) {
  if (p.empty()) throw Error("draw_candidates: empty distribution");
  CandidateStream s;
  s.first_index = first_index;
  if (m == 0) return s;
  const double total = detail::checked_total(p, "draw_candidates");
  // Sort the m targets, then one sweep of the running sum answers them all; the arithmetic is exactly that of
  // sample_from(p, u_k), so the result equals m independent inverse-CDF draws.
  struct Want {
    double target;
    std::uint32_t k;
  };
  std::vector<Want> want(m);
  for (std::uint32_t k = 0; k < m; ++k)
    want[k] = {uniform(seed, Purpose::candidate_draw, position, epoch, first_index + k) * total, k};
  std::sort(want.begin(), want.end(), [](const Want& a, const Want& b) { return a.target < b.target; });
  s.ids.assign(m, 0);
  s.p.assign(m, 0.0f);
  double cum = 0.0;
  std::size_t w = 0, last = 0;
  for (std::size_t i = 0; i < p.size() && w < m; ++i) {
    if (p[i] > 0.0f) {
      cum += p[i];
      last = i;
      while (w < m && cum > want[w].target) {
        s.ids[want[w].k] = static_cast<Token>(i);
        s.p[want[w].k] = p[i];
        ++w;
      }
    }
  }
  for (; w < m; ++w) {  // rounding tail
    s.ids[want[w].k] = static_cast<Token>(last);
    s.p[want[w].k] = p[last];
  }
  return s;
}

inline SparseDist top_k(DenseView p, std::uint32_t k) {
  std::vector<detail::ValueId> sel;
  detail::select_top_k(p.data(), p.size(), k, 0.0f, 0.0f, sel, "top_k");
  std::sort(sel.begin(), sel.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  SparseDist d;
  d.vocab_size = static_cast<std::uint32_t>(p.size());
  d.ids.resize(sel.size());
  d.probs.resize(sel.size());
  for (std::size_t i = 0; i < sel.size(); ++i) {
    d.ids[i] = sel[i].id;
    d.probs[i] = sel[i].value;
  }
  return d;
}

// ------------------------------------------------------------------------------------------------ edge half

inline std::optional<CandidatePick> pick_candidate_at(const CandidateStream& stream, DenseView q, std::uint64_t seed,
                                                      std::uint64_t position, std::uint64_t epoch) {
  if (stream.ids.size() != stream.p.size()) throw Error("pick_candidate: ids and p differ in length");
  for (std::size_t k = 0; k < stream.ids.size(); ++k) {
    const Token y = stream.ids[k];
    if (y < 0 || static_cast<std::size_t>(y) >= q.size())
      throw Error("pick_candidate: candidate token " + std::to_string(y) + " out of range");
    const float py = stream.p[k];
    const float qy = q[static_cast<std::size_t>(y)];
    if (!(py > 0.0f) || !detail::finite_nonneg(py)) throw Error("pick_candidate: candidate p must be > 0 and finite");
    if (!detail::finite_nonneg(qy)) throw Error("pick_candidate: q must be finite and >= 0");
    const double accept = 1.0 - static_cast<double>(qy) / static_cast<double>(py);
    if (!(accept > 0.0)) continue;
    const auto idx = static_cast<std::uint32_t>(stream.first_index + k);
    if (uniform(seed, Purpose::candidate_accept, position, epoch, idx) < accept)
      return CandidatePick{y, static_cast<std::uint32_t>(k)};
  }
  return std::nullopt;
}

inline std::optional<Token> pick_candidate(const CandidateStream& stream, DenseView q, std::uint64_t seed,
                                           std::uint64_t position, std::uint64_t epoch) {
  const auto r = pick_candidate_at(stream, q, seed, position, epoch);
  if (!r) return std::nullopt;
  return r->token;
}

inline Token residual_topk(const SparseDist& p_topk, DenseView q, double u, TopkFallback fb) {
  detail::check_u(u);
  const std::size_t n = p_topk.ids.size();
  if (n == 0 || n != p_topk.probs.size() || p_topk.vocab_size != q.size())
    throw Error("residual_topk: empty P_topK or vocabulary mismatch");
  double z = 0.0;
  for (std::size_t j = 0; j < n; ++j) {
    const Token id = p_topk.ids[j];
    if (id < 0 || static_cast<std::size_t>(id) >= q.size()) throw Error("residual_topk: token id out of range");
    const float pv = p_topk.probs[j], qv = q[static_cast<std::size_t>(id)];
    if (!detail::finite_nonneg(pv) || !detail::finite_nonneg(qv))
      throw Error("residual_topk: probabilities must be finite and >= 0");
    z += std::max(0.0, static_cast<double>(pv) - static_cast<double>(qv));
  }
  if (z > 0.0) {
    return p_topk.ids[detail::inverse_cdf(n, z, u, [&](std::size_t j) {
      return std::max(0.0, static_cast<double>(p_topk.probs[j]) -
                               static_cast<double>(q[static_cast<std::size_t>(p_topk.ids[j])]));
    })];
  }
  if (fb == TopkFallback::argmax_p) return p_topk.ids[static_cast<std::size_t>(argmax(p_topk.probs))];
  return sample_from(p_topk, u);
}

}  // namespace picospec
