#pragma once
// Analytic throughput model of every pipeline mode (ALGORITHM.md §5, refined for picospec's protocol; the
// derivation is in docs/pipeline.md, "Analytic model"). Printed by the pipeline benchmark beside each measured
// figure.
//
// Ingredients: draft forward time Ld(n) = draft_a + draft_b n, target forward time Lt(n) = target_a + target_b n,
// link RTT R and bandwidths, per-token acceptance α (constant), chunk length γ, pipeline depth, prompt length P,
// tokens N. A verification round yields E_N = (1 - α^γ) / (1 - α) tokens (no bonus token: a fully accepted chunk
// yields γ, a rejection at draft i yields i + 1); a round follows a hit with probability α^γ.
//   stop-and-wait (vanilla):   L = γ D + R + Lt(γ) + tx_up + tx_down  per round
//   pipelined, after a hit:    L_async = max(γ D, Lt(γ), (R + Lt(γ) + tx_up + tx_down) / depth)
//   pipelined, after a miss:   L_sync  = γ D + R + Lt(γ) + tx  (the pre-verify of the correction is hidden when
//                              Lt(1) fits in the drafting time; otherwise the excess is added)
//   E[T_round] = α^γ L_async + (1 - α^γ) L_sync
//   cloud fill: the wait after a miss, W = γ D + R + tx_up, holds k one-token passes F = Lt(1); the chunk's first
//              k drafts are checked against them (all equal with probability α^k, else the chunk is void), so a
//              round after a miss takes max(W, k F) + α^k Lt(γ - k + 1) + tx_down and yields k + α^k E_N(γ - k)
//   coalesced passes (schedule model): a cycle runs from the end of a rejecting pass to the end of the next
//              one. Within it the edge drafts chunk c (γ D, after the verdict of chunk c - depth - 1), sends it
//              when fewer than `depth` chunks are in flight and it arrives R/2 + tx_up later; each pass starts
//              when the cloud is free and a chunk has arrived, takes every chunk arrived by then and lasts
//              Lt(n) (the first pass of a cycle also scores the correction); a verdict reaches the edge R/2 +
//              tx_down after its pass. With J the first wrong draft (P(J = j) = α^(j-1) (1 - α)), the cycle
//              ends with the pass holding draft J, or with the pass before when J opens a pass and fill is on
//              (that pass's end decides the token at J's position at once, and it differs from the draft);
//              it yields J tokens. Rate = E[J] / E[cycle], each schedule evaluated once (deterministic given
//              J). Fill passes: in the wait W = R + γ D + tx until the first chunk arrives the cloud runs k
//              one-token passes F = Lt(1) (unpaced ⌈W / F⌉, paced while W − s ≥ F − T at a pass's start s, T the
//              model's own time per token: a fixed-point iteration), committing positions 1..k; a wrong draft
//              J ≤ k ends the cycle at J F, and the first verify pass scores the drafts beyond k.
// with D = Ld(1) + edge overhead, Lt(γ) including the cloud overhead per chunk. cloud-ar: 2R + Lt(P) + (N - 1) Lt(1); edge-only: Ld(P) + (N - 1) D.
//
// Thread-safety: pure functions.

#include <cstdint>

#include "picospec/pipeline_mode.hpp"

namespace picospec {

struct AnalyticInputs {
  double draft_a_ms = 0.0, draft_b_ms = 0.0;    ///< Ld(n) = a + b n
  double target_a_ms = 0.0, target_b_ms = 0.0;  ///< Lt(n) = a + b n
  double rtt_ms = 0.0;
  double up_mbit = 0.0, down_mbit = 0.0;        ///< 0 = unlimited
  double alpha = 0.8;                           ///< per-token acceptance in [0, 1]
  std::uint32_t gamma = 4, depth = 1;
  std::uint32_t tokens = 200, prompt_len = 16;
  double up_bytes_per_chunk = 0.0;              ///< Draft frame size for a γ-token chunk
  double down_bytes_per_verdict = 0.0;          ///< Verdict frame size on a rejection
  bool edge_decides_correction = false;         ///< candidates / topk (correction goes up as a fixed token)
  /// CPU work outside the model forward passes, measured on the machine that runs the pipeline: sampling
  /// transforms / sampling / codecs per draft token on the edge, and per verified chunk on the cloud (per
  /// generated token in cloud-ar). Added to D and to Lt(γ) (Lt(1) for cloud-ar).
  double edge_overhead_ms = 0.0;
  double cloud_overhead_ms = 0.0;
  /// No flush on a miss (GenerateParams::branch_heads): the share of rejections whose correction matched a
  /// pre-drafted branch, and the drafts such a branch held (measured: branch_hits / corrections and
  /// branch_used / branch_hits). A hit shortens that miss's redraft by those drafts (see docs/pipeline.md).
  double branch_hit_rate = 0.0;
  double branch_drafts_per_hit = 0.0;
  /// Cloud fill (GenerateParams::cloud_fill; cloud-decided corrections only): while the edge redrafts after a
  /// miss, the cloud commits tokens with one-token passes Lt(1); `fill_paced` (CloudOptions::fill_paced) starts a
  /// pass only while the wait left is at least Lt(1) less the wall time per committed token.
  bool cloud_fill = false;
  bool fill_paced = true;
  /// Coalesced verification (CloudOptions::coalesce_drafts, picospec pipeline): a target pass takes every chunk
  /// that has arrived, up to `max_coalesced_tokens`. The model is then the pass schedule below ("schedule
  /// model"); without branches only (with branch_hit_rate > 0 the round model above is used).
  bool coalesce = false;
  std::uint32_t max_coalesced_tokens = 64;
};

struct AnalyticResult {
  double wall_ms = 0.0;
  double tokens_per_s = 0.0;
  double ttft_ms = 0.0;
  double tokens_per_round = 0.0;  ///< E_N (0 for non-speculative modes)
  double round_ms = 0.0;          ///< E[T_round] (0 for non-speculative modes)
};

/// The model for `mode` (plan.speculative / plan.pipelined decide the formula). Throws Error on bad inputs.
[[nodiscard]] AnalyticResult predict(PipelineMode mode, const AnalyticInputs& in);

/// Adaptive draft length: the chunk length in [1, gamma_max] that maximizes the steady-state committed tokens
/// per second of a pipelined mode, E_N(γ) / E[T_round(γ)] of predict() with `in` (its gamma is ignored). Ties go
/// to the shorter chunk. Throws Error if gamma_max is 0.
[[nodiscard]] std::uint32_t best_gamma(PipelineMode mode, AnalyticInputs in, std::uint32_t gamma_max);

}  // namespace picospec
