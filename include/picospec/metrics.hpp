#pragma once
// Metrics of one generation (EdgeSession::generate) and their JSON form. Definitions: docs/pipeline.md.
//
// Times are wall-clock milliseconds measured on the edge unless the field says "cloud". Cloud-side figures
// (cloud_verify_ms, cloud_idle_pct) are -1 when unknown (null in to_json()): the edge cannot see them; a program
// that runs the CloudServer in the same process fills them from CloudServer::stats() (the benchmark does).
// `backend` is EdgeOptions::label_backend (null in to_json() when no label was given).
//
// Thread-safety: a plain value type.

#include <cstdint>
#include <string>
#include <vector>

namespace picospec {

struct Metrics {
  // Labels.
  std::string mode;        ///< pipeline mode ("picospec", ...)
  std::string rejection;   ///< rejection mode used ("candidates", "greedy", ...)
  std::string backend;     ///< e.g. "synthetic" (every synthetic run is labelled so)
  std::string profile;     ///< latency profile / model pair name
  std::string link;        ///< link description
  std::uint32_t gamma = 0, depth = 0;

  // Volume and speed.
  std::uint64_t tokens = 0;            ///< committed (output) tokens
  double wall_ms = 0.0;                ///< generate() start to return
  double tokens_per_s = 0.0;           ///< tokens / wall time
  double ttft_ms = 0.0;                ///< start to the first committed token (-1 if none)
  double tpot_ms = 0.0;                ///< time per output token after the first: (wall - ttft) / (tokens - 1)

  // Speculation.
  std::uint64_t rounds = 0;            ///< verdicts of chunks that held draft tokens
  std::uint64_t drafted = 0;           ///< draft tokens produced (including discarded ones)
  std::uint64_t sent_drafts = 0;       ///< draft tokens sent up
  std::uint64_t accepted = 0;          ///< draft tokens accepted
  std::uint64_t corrections = 0;       ///< corrections committed (one per rejection)
  double mean_accepted_length = 0.0;   ///< vLLM definition: 1 + accepted / rounds
  double acceptance_rate = 0.0;        ///< accepted / tested draft tokens
  std::vector<std::uint64_t> position_tested;    ///< per position in a chunk (draft index), tests run
  std::vector<std::uint64_t> position_accepted;  ///< per position in a chunk, accepts
  std::uint64_t rollbacks = 0;         ///< edge rollbacks (one per rejection)
  std::uint64_t stale_dropped = 0;     ///< frames of an old epoch dropped by the edge
  std::uint64_t more_candidates = 0;   ///< MoreCandidates requests (candidates mode)
  std::uint64_t wasted_drafts = 0;     ///< drafted tokens thrown away by rollbacks
  std::uint64_t cloud_filled = 0;      ///< tokens the cloud committed with no draft (GenerateParams::cloud_fill)
  // Branches (no flush on a miss; GenerateParams::branch_heads).
  std::uint64_t branch_lines = 0;      ///< branches planned (one per alternative head per draft in flight)
  std::uint64_t branch_drafted = 0;    ///< tokens drafted on branches
  std::uint64_t branch_hits = 0;       ///< rejections whose correction matched a branch that held drafts
  std::uint64_t branch_used = 0;       ///< branch drafts sent after a hit (also counted in drafted / sent_drafts)
  double branch_ms = 0.0;              ///< edge time in branch steps (included in draft_ms)
  double branch_idle_ms = 0.0;         ///< of which in branch-only steps taken while waiting for the cloud
  std::uint64_t gamma_choices = 0;     ///< adaptive draft length: chunk lengths chosen by the model
  std::uint64_t gamma_chosen_sum = 0;  ///< their sum (mean = gamma_chosen_sum / gamma_choices)

  // Time split.
  double draft_ms = 0.0;               ///< edge time inside the drafter + sampling
  double edge_idle_pct = 0.0;          ///< share of wall time the drafting thread waited for the cloud
  double cloud_verify_ms = -1.0;       ///< cloud time in Verifier calls (-1 unknown)
  double cloud_idle_pct = -1.0;        ///< share of wall time the cloud spent on nothing for this session (-1 unknown)

  // Wire (from the edge transport's counters, deltas over the generation).
  std::uint64_t bytes_up = 0, bytes_down = 0, frames_up = 0, frames_down = 0;

  /// One JSON object (keys as the field names above; position acceptance as arrays).
  [[nodiscard]] std::string to_json() const;
  /// Fills the derived fields (tokens_per_s, tpot_ms, mean_accepted_length, acceptance_rate) from the raw ones.
  void finalize();
};

}  // namespace picospec
