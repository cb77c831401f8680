#pragma once
// The mode enums, alone: which rejection sampling a generation uses and which pipeline runs it. Small on
// purpose, so that headers which only name a mode (edge_session.hpp, protocol.hpp, pipeline_mode.hpp) do not
// pull in the rejection maths (rejection.hpp).
//
// The numeric values are part of the wire format (protocol.hpp sends each enum as one byte); never renumber.
// Thread-safety: pure functions. Nothing blocks.

#include <cstdint>
#include <string>
#include <string_view>

#include "picospec/types.hpp"

namespace picospec {

/// How the correction at a rejected position is produced (docs/algorithm.md).
enum class RejectionMode : std::uint8_t {
  greedy = 0,        ///< temperature 0: accept iff d == argmax p; correction = argmax p. Exact.
  full = 1,          ///< both distributions dense on one side (vanilla SD, full q on the uplink). Exact.
  topk = 2,          ///< the paper's separate mode: q(d) up, Top-K of p down, edge residual. Approximate.
  candidates = 3,    ///< q(d) up; on rejection m i.i.d. samples of p down, edge resamples. Exact. Default.
  sparse_draft = 4,  ///< edge drafts from codec-rounded q̂ and uploads it; cloud does everything. Exact.
  coupled = 5,       ///< shared randomness: both sides draw with coupled_sample (one key per position); accept iff
                     ///< the draft equals the target's draw, which is also the correction. Ids only on the wire.
                     ///< Exact, and the tokens are the target's own coupled draws: independent of the draft.
};
inline constexpr std::uint8_t kRejectionModeCount = 6;

/// "greedy", "full", "topk", "candidates", "sparse_draft", "coupled".
[[nodiscard]] inline std::string_view to_string(RejectionMode mode) noexcept {
  switch (mode) {
    case RejectionMode::greedy: return "greedy";
    case RejectionMode::full: return "full";
    case RejectionMode::topk: return "topk";
    case RejectionMode::candidates: return "candidates";
    case RejectionMode::sparse_draft: return "sparse_draft";
    case RejectionMode::coupled: return "coupled";
  }
  return "unknown";
}

/// Inverse of to_string; throws Error naming the valid values on anything else.
[[nodiscard]] inline RejectionMode parse_rejection_mode(std::string_view text) {
  for (const auto m : {RejectionMode::greedy, RejectionMode::full, RejectionMode::topk, RejectionMode::candidates,
                       RejectionMode::sparse_draft, RejectionMode::coupled})
    if (to_string(m) == text) return m;
  throw Error("unknown rejection mode '" + std::string(text) +
              "' (expected greedy, full, topk, candidates, sparse_draft or coupled)");
}

/// True for the modes whose output is distributed exactly as the target's (all but topk).
[[nodiscard]] constexpr bool is_exact(RejectionMode mode) noexcept { return mode != RejectionMode::topk; }

/// True for the modes in which the cloud holds both distributions at a rejected position and so draws the
/// correction itself (greedy, full, sparse_draft, coupled); candidates and topk leave it to the edge.
[[nodiscard]] constexpr bool cloud_decides_correction(RejectionMode mode) noexcept {
  return mode == RejectionMode::greedy || mode == RejectionMode::full || mode == RejectionMode::sparse_draft ||
         mode == RejectionMode::coupled;
}

/// True for the modes whose committed tokens are a function of the target and the seed alone (never of the
/// draft): greedy and coupled. In these the cloud may commit tokens of its own while it waits for drafts
/// (GenerateParams::cloud_fill) without changing a single token.
[[nodiscard]] constexpr bool draft_invariant(RejectionMode mode) noexcept {
  return mode == RejectionMode::greedy || mode == RejectionMode::coupled;
}

/// What the edge does in topk mode when max(0, P_topK - Q) is zero everywhere.
enum class TopkFallback : std::uint8_t {
  renormalized_p,  ///< sample from P_topK renormalized (default; the nearest thing to p the edge holds)
  argmax_p,        ///< take the most probable token of P_topK
};

/// The pipeline an EdgeSession / CloudServer pair runs (pipeline_mode.hpp explains each). One enum for the API
/// and the wire (Hello::pipeline).
enum class PipelineMode : std::uint8_t { cloud_ar = 0, edge_only = 1, vanilla = 2, paper = 3, picospec = 4 };
inline constexpr std::uint8_t kPipelineModeCount = 5;

/// "cloud-ar", "edge-only", "vanilla", "paper", "picospec".
[[nodiscard]] inline std::string_view to_string(PipelineMode mode) noexcept {
  switch (mode) {
    case PipelineMode::cloud_ar: return "cloud-ar";
    case PipelineMode::edge_only: return "edge-only";
    case PipelineMode::vanilla: return "vanilla";
    case PipelineMode::paper: return "paper";
    case PipelineMode::picospec: return "picospec";
  }
  return "?";
}

/// Inverse of to_string (also accepts '_' for '-'); throws Error naming the valid values.
[[nodiscard]] inline PipelineMode parse_pipeline_mode(std::string_view text) {
  std::string s(text);
  for (char& c : s)
    if (c == '_') c = '-';
  for (auto m : {PipelineMode::cloud_ar, PipelineMode::edge_only, PipelineMode::vanilla, PipelineMode::paper,
                 PipelineMode::picospec})
    if (s == to_string(m)) return m;
  throw Error("unknown pipeline mode '" + std::string(text) +
              "' (cloud-ar | edge-only | vanilla | paper | picospec)");
}

}  // namespace picospec
