#pragma once
// Pipeline modes: the baselines and picospec's own pipeline are configurations of one EdgeSession /
// CloudServer pair (docs/pipeline.md), so every comparison runs on the same link in one process.
//
//   cloud-ar   the edge sends the prompt; the cloud generates alone and streams tokens down (rejection
//              `coupled` asks it to sample with coupled_sample: the tokens picospec's coupled mode commits).
//   edge-only  the draft model alone on the edge; no network.
//   vanilla    stop-and-wait speculative decoding: draft γ, send the full draft distributions (dense_f32),
//              wait for the verdict, repeat. Rejection `full` (exact).
//   paper      the PicoSpec paper: pipelined drafting, q(d) scalars up, Top-K of p down on a rejection, the edge
//              samples the correction (rejection `topk`, approximate).
//   picospec   pipelined drafting with exact separate rejection sampling (default; rejection `candidates`, or
//              `sparse_draft` or `coupled` on request; `coupled` lets the cloud fill, GenerateParams::cloud_fill).
// temperature 0 turns every speculative mode into greedy verification (exact).
//
// Thread-safety: pure functions. Nothing blocks.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "picospec/modes.hpp"
#include "picospec/types.hpp"

namespace picospec {

/// What a mode means in practice, resolved for one set of sampling params.
struct ModePlan {
  PipelineMode mode = PipelineMode::picospec;
  RejectionMode rejection = RejectionMode::candidates;
  std::string codec;          ///< per-draft-token codec on the uplink ("" = scalars only / none)
  bool speculative = true;    ///< drafts are verified by the cloud (vanilla, paper, picospec)
  bool pipelined = true;      ///< the edge drafts ahead while chunks are in flight (paper, picospec)
  bool uses_cloud = true;     ///< false only for edge-only
  bool uses_drafter = true;   ///< false only for cloud-ar
};

/// Resolves `mode` for `sampling`. `rejection` overrides the mode's default rejection (picospec accepts
/// candidates, sparse_draft or coupled, vanilla full, paper topk, cloud-ar coupled); greedy sampling always
/// gives greedy.
/// `sparse_codec` is the codec of sparse_draft mode. Throws Error on a combination that makes no sense.
[[nodiscard]] ModePlan plan_mode(PipelineMode mode, const SamplingParams& sampling,
                                 std::optional<RejectionMode> rejection = std::nullopt,
                                 std::string_view sparse_codec = "topk_q:64");

}  // namespace picospec
