// Analytic pipeline model (see include/picospec/analytic.hpp).
#include "picospec/analytic.hpp"

#include <algorithm>
#include <cmath>

namespace picospec {

AnalyticResult predict(PipelineMode mode, const AnalyticInputs& in) {
  if (!(in.alpha >= 0.0 && in.alpha <= 1.0)) throw Error("analytic: alpha must be in [0, 1]");
  if (in.gamma == 0 || in.depth == 0 || in.tokens == 0 || in.prompt_len == 0)
    throw Error("analytic: gamma, depth, tokens and prompt_len must be >= 1");
  const auto Ld = [&](double n) { return in.draft_a_ms + in.draft_b_ms * n; };
  const auto Lt0 = [&](double n) { return in.target_a_ms + in.target_b_ms * n; };
  const auto tx = [](double bytes, double mbit) { return mbit > 0.0 ? bytes * 8.0 / (mbit * 1000.0) : 0.0; };
  const double R = in.rtt_ms, N = in.tokens, P = in.prompt_len, g = in.gamma;
  const double D = Ld(1) + in.edge_overhead_ms;
  // Cloud forward + its per-chunk CPU overhead (the overhead follows every verification, not the prefill).
  const auto Lt = [&](double n) { return Lt0(n) + in.cloud_overhead_ms; };
  AnalyticResult r;
  switch (mode) {
    case PipelineMode::cloud_ar:
      r.ttft_ms = 2 * R + Lt0(P) + in.cloud_overhead_ms;
      r.wall_ms = r.ttft_ms + (N - 1) * Lt(1);
      break;
    case PipelineMode::edge_only:
      r.ttft_ms = Ld(P) + in.edge_overhead_ms;
      r.wall_ms = r.ttft_ms + (N - 1) * D;
      break;
    default: {
      const double a = in.alpha;
      const double hit = std::pow(a, g);
      // Tokens a verification of m drafts yields: E_N(m) = (1 - α^m) / (1 - α).
      const auto e_n = [&](double m) { return a < 1.0 ? (1.0 - std::pow(a, m)) / (1.0 - a) : m; };
      const double en = e_n(g);
      double per_round = en;
      const double up = tx(in.up_bytes_per_chunk, in.up_mbit);
      const double down = tx(in.down_bytes_per_verdict, in.down_mbit);
      const double draft_chunk = g * D;
      double round;
      if (mode == PipelineMode::vanilla) {
        // The pre-verify (Lt(1)) overlaps the next chunk's drafting and upload.
        round = std::max(draft_chunk + up + R, Lt(1)) + Lt(g) + down;
      } else {
        const double l_async = std::max({draft_chunk, Lt(g), (R + Lt(g) + up + down) / in.depth});
        // After a miss everything in flight is void: the edge redrafts `redraft` tokens before a full chunk is
        // up again (γ, or fewer when a pre-drafted branch matched the correction and went up at once).
        const auto l_sync = [&](double redraft) {
          if (in.edge_decides_correction)  // the correction travels up alone and is scored while the edge drafts
            return std::max(redraft * D + up, Lt(1)) + Lt(g) + R + down;
          return std::max(redraft * D + up + R, Lt(1)) + Lt(g) + down;  // the cloud pre-verifies after the verdict
        };
        const double h = std::clamp(in.branch_hit_rate, 0.0, 1.0);
        const double k = std::clamp(in.branch_drafts_per_hit, 0.0, g);
        const double miss = h * l_sync(g - k) + (1.0 - h) * l_sync(g);
        round = hit * l_async + (1.0 - hit) * miss;
        if (in.cloud_fill && !in.edge_decides_correction) {
          // A round after a miss: k fill passes during the wait W, then the chunk's first k drafts are compared
          // with the fill tokens (all equal with probability α^k; else the chunk is void and no pass runs) and
          // the rest is verified in one pass with the last fill token. Stationary mix as above: a round follows
          // a hit with probability α^γ whatever the state. Pacing depends on the wall time per token, which the
          // model itself gives: a short fixed-point iteration.
          const double wait = draft_chunk + up + R, F = Lt(1);
          double per_token = round / en;  // start from the model without fill
          for (int it = 0; it < 8; ++it) {
            double kf = 0.0;
            if (!in.fill_paced) kf = std::ceil(wait / F);
            else if (wait - F + per_token >= 0.0) kf = std::floor((wait - F + per_token) / F) + 1.0;
            kf = std::clamp(kf, 0.0, g);
            const double match = std::pow(a, kf);
            const double t_miss = std::max(wait, kf * F) + match * (kf < g ? Lt(g - kf + 1.0) : 0.0) + down;
            const double y_miss = kf + match * e_n(g - kf);
            const double t = hit * l_async + (1.0 - hit) * t_miss;
            const double y = hit * en + (1.0 - hit) * y_miss;
            round = t;
            per_round = y;
            per_token = t / y;
          }
        }
      }
      // First verdict: handshake (R), then the first chunk and the cloud prefill in parallel.
      const double first = 2 * R + std::max(Ld(P) + in.edge_overhead_ms + (g - 1) * D + up, Lt0(P)) + Lt(g);
      r.tokens_per_round = per_round;
      r.round_ms = round;
      r.ttft_ms = first;
      r.wall_ms = first + std::max(0.0, N / per_round - 1.0) * round;
      break;
    }
  }
  r.tokens_per_s = r.wall_ms > 0.0 ? N * 1000.0 / r.wall_ms : 0.0;
  return r;
}

std::uint32_t best_gamma(PipelineMode mode, AnalyticInputs in, std::uint32_t gamma_max) {
  if (gamma_max == 0) throw Error("best_gamma: gamma_max must be >= 1");
  std::uint32_t best = 1;
  double best_rate = -1.0;
  for (std::uint32_t g = 1; g <= gamma_max; ++g) {
    in.gamma = g;
    const AnalyticResult r = predict(mode, in);
    const double rate = r.round_ms > 0.0 ? r.tokens_per_round / r.round_ms : 0.0;
    if (rate > best_rate * (1.0 + 1e-9)) {
      best_rate = rate;
      best = g;
    }
  }
  return best;
}

}  // namespace picospec
