// Analytic pipeline model (see include/picospec/analytic.hpp).
#include "picospec/analytic.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>
#include <vector>

namespace picospec {

namespace {

// The schedule model of coalesced verification (analytic.hpp): E[J] and E[cycle time] over the first wrong draft
// J of one cycle, each J's cycle read off one deterministic pass schedule (the schedule with no wrong draft, cut
// at J). `D`: edge time per draft; `Lt(n)`: a pass over n tokens, cloud overhead included.
template <class LtFn>
std::pair<double, double> coalesced_cycle(const AnalyticInputs& in, double D, LtFn Lt, double up, double down,
                                          std::size_t fill_passes) {
  const double a = std::clamp(in.alpha, 0.0, 1.0), R = in.rtt_ms, g = in.gamma;
  const std::size_t depth = in.depth;
  const std::size_t per_pass = std::max<std::size_t>(1, in.max_coalesced_tokens / std::max<std::uint32_t>(1, in.gamma));
  // Drafts up to the point where a wrong one has happened with probability 1 - 1e-9 (a chunk cap for α near 1).
  std::size_t chunks = 4096;
  if (a < 1.0 && a > 0.0) {
    const double tokens = std::log(1e-9) / std::log(a);
    chunks = static_cast<std::size_t>(std::clamp(std::ceil(tokens / g) + 2.0, 4.0, 4096.0));
  } else if (a == 0.0) {
    chunks = 4;
  }
  // Times from the end of the rejecting pass (cloud clock = edge clock; the edge hears of it at R/2 + down).
  std::vector<double> arrive(chunks + 1, 0.0), verdict(chunks + 1, -1.0), pass_end(chunks + 1, 0.0);
  std::vector<std::size_t> pass_first(chunks + 1, 0);  // first chunk of the pass that verified chunk c
  std::vector<double> pass_end_before(chunks + 1, -1.0);  // end of the pass before that one (-1: none)
  double edge_free = R / 2 + down, cloud_free = 0.0, last_end = -1.0;
  std::size_t next = 1, drafted = 0;
  // Fill passes: the first `fill_passes` passes of the cycle score the last committed token alone and commit
  // positions 1..k at F, 2F, ..., kF (F = Lt(1)); drafts for those positions are compared, not scored; the
  // first verify pass scores the last fill token with the drafts beyond it and has no pass before it that
  // decided its first draft's position.
  const double F = Lt(1.0);
  const std::size_t k = fill_passes;
  cloud_free = static_cast<double>(k) * F;
  const auto beyond_fill = [&](std::size_t c) {  // tokens of chunk c after position k
    const double first = static_cast<double>((c - 1) * in.gamma + 1);
    return std::clamp(static_cast<double>(c) * g - std::max(first - 1.0, static_cast<double>(k)), 0.0, g);
  };
  bool first_pass = true;
  const auto run_pass = [&] {
    while (next <= drafted && beyond_fill(next) == 0.0) {  // wholly behind the fill tokens: consumed
      verdict[next] = static_cast<double>(next * in.gamma) * F + R / 2 + down;
      ++next;
    }
    if (next > drafted) return;
    const double start = std::max(cloud_free, arrive[next]);
    std::size_t last = next;
    while (last + 1 <= drafted && arrive[last + 1] <= start && last + 1 - next + 1 <= per_pass) ++last;
    double n = first_pass ? 1.0 : 0.0;  // the correction, or the last fill token
    for (std::size_t c = next; c <= last; ++c) n += beyond_fill(c);
    const double end = start + Lt(n);
    for (std::size_t c = next; c <= last; ++c) {
      verdict[c] = end + R / 2 + down;
      pass_end[c] = end;
      pass_first[c] = next;
      pass_end_before[c] = first_pass ? -1.0 : last_end;
    }
    first_pass = false;
    last_end = end;
    cloud_free = end;
    next = last + 1;
  };
  for (std::size_t c = 1; c <= chunks; ++c) {
    double start = edge_free;
    if (c > depth + 1) {  // at most `depth` chunks in flight plus the one being drafted
      while (verdict[c - depth - 1] < 0.0) run_pass();
      start = std::max(start, verdict[c - depth - 1]);
    }
    const double drafted_at = start + g * D;
    edge_free = drafted_at;
    double send = drafted_at;
    if (c > depth) {
      while (verdict[c - depth] < 0.0) run_pass();
      send = std::max(send, verdict[c - depth]);
    }
    arrive[c] = send + R / 2 + up;
    drafted = c;
  }
  while (next <= chunks) run_pass();
  double e_t = 0.0, e_n = 0.0, p_left = 1.0;
  for (std::size_t c = 1; c <= chunks; ++c) {
    for (std::size_t i = 0; i < in.gamma; ++i) {
      const double j = static_cast<double>((c - 1) * in.gamma + i + 1);
      const double pj = p_left * (1.0 - a);
      p_left *= a;
      double end = pass_end[c];
      if (j <= static_cast<double>(k)) end = j * F;  // the fill token at its position differs from the draft
      else if (in.cloud_fill && !in.edge_decides_correction && i == 0 && pass_first[c] == c && pass_end_before[c] >= 0.0) end = pass_end_before[c];
      e_t += pj * end;
      e_n += pj * j;
    }
  }
  // Never wrong within the horizon (α near 1): the rest of the probability ends with the whole schedule.
  e_t += p_left * pass_end[chunks];
  e_n += p_left * static_cast<double>(chunks) * g;
  return {e_n, e_t};
}

// Cloud fill's passes in a wait of W ms for the edge's next chunk, one-token passes of F ms each: unpaced, until
// the chunk arrives (⌈W / F⌉); paced, as the cloud does (fill_due in cloud_server.cpp), a pass starts at s only
// while W − s ≥ F − T, with T the wall time per committed token.
double fill_pass_count(double W, double F, double T, bool paced) {
  if (!paced) return std::ceil(std::max(0.0, W) / F);
  return W - F + T >= 0.0 ? std::floor((W - F + T) / F) + 1.0 : 0.0;
}

}  // namespace

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
        if (in.coalesce && in.branch_hit_rate <= 0.0) {
          const auto lt = [&](double n) { return Lt(n); };
          auto [tokens, ms] = coalesced_cycle(in, D, lt, up, down, 0);
          if (in.cloud_fill && !in.edge_decides_correction) {
            // Fill passes in the wait W until the first chunk arrives: unpaced while nothing has arrived,
            // paced while W − s ≥ F − T at a pass's start s (T: wall time per committed token, the model's own
            // output, so a short fixed-point iteration).
            // No pass starts once the chunk has arrived, hence at most the unpaced count.
            const double W = R + g * D + up + down, F = Lt(1);
            for (int it = 0; it < 6; ++it) {
              const double T = tokens > 0.0 ? ms / tokens : 0.0;
              const double kf = std::min(fill_pass_count(W, F, T, false), fill_pass_count(W, F, T, in.fill_paced));
              std::tie(tokens, ms) = coalesced_cycle(in, D, lt, up, down, static_cast<std::size_t>(kf));
            }
          }
          per_round = tokens;
          round = ms;
        } else if (in.cloud_fill && !in.edge_decides_correction) {
          // A round after a miss: k fill passes during the wait W, then the chunk's first k drafts are compared
          // with the fill tokens (all equal with probability α^k; else the chunk is void and no pass runs) and
          // the rest is verified in one pass with the last fill token. Stationary mix as above: a round follows
          // a hit with probability α^γ whatever the state. Pacing depends on the wall time per token, which the
          // model itself gives: a short fixed-point iteration.
          const double wait = draft_chunk + up + R, F = Lt(1);
          double per_token = round / en;  // start from the model without fill
          for (int it = 0; it < 8; ++it) {
            const double kf = std::clamp(fill_pass_count(wait, F, per_token, in.fill_paced), 0.0, g);
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
