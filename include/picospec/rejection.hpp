#pragma once
// Speculative rejection sampling, every mode of docs/algorithm.md, split into a CLOUD half (acceptance tests,
// what to send down) and an EDGE half (residual / candidates) so the two can run on different machines.
//
// Notation: p = target (cloud) distribution, q = draft (edge) distribution at one position, both dense rows
// over the vocabulary AFTER their side's sampling transforms. Sparse distributions are joined with dense ones
// by token id, never by array index.
//
// Random draws: callers take u from rng.hpp keyed by (seed, purpose, absolute position, epoch, index) with:
//   accept_draft       Purpose::accept            index 0
//   residual_dense /
//   residual_sparse_q  Purpose::residual          index 0
//   draw_candidates    Purpose::candidate_draw    index = first_index + k   (done inside)
//   pick_candidate     Purpose::candidate_accept  index = first_index + k   (done inside)
//   residual_topk      Purpose::topk_residual     index 0
// "position" is the absolute position (number of tokens before it in the whole sequence) of the token decided.
//
// There is never a separate "bonus" token: when a chunk is fully accepted, p at the next position tests the
// next chunk's first draft token (same distribution as sampling a bonus).
//
// Exactness (the committed token at a position is distributed exactly as p): greedy, full, candidates,
// sparse_draft. Approximate: topk (the paper's mode; tokens outside P's top-K get no correction mass).
//
// Thread-safety: all functions are pure apart from their return values; call from any thread. Nothing blocks.
// Errors: inconsistent sizes, ids out of range, NaN/negative probabilities -> picospec::Error.

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "picospec/modes.hpp"
#include "picospec/rng.hpp"
#include "picospec/sampling.hpp"
#include "picospec/types.hpp"

namespace picospec {

/// Candidate stream sent down on a rejection in `candidates` mode: y_k ~ p i.i.d. with their values p(y_k),
/// k = 0..m-1, drawn with RNG index first_index + k.
struct CandidateStream {
  std::uint32_t first_index = 0;
  std::vector<Token> ids;
  std::vector<float> p;  ///< p[k] = p(ids[k]) exactly as the cloud sampled with (fp32), > 0

  [[nodiscard]] std::size_t size() const noexcept { return ids.size(); }
  friend bool operator==(const CandidateStream&, const CandidateStream&) = default;
};

// ---------------------------------------------------------------------------------------------------------
// CLOUD half
// ---------------------------------------------------------------------------------------------------------

/// Acceptance test of a drafted token d: accept iff u < min(1, p_d / q_d).
/// Edge cases (exact): p_d >= q_d -> accept (whatever u); p_d == 0 -> reject; q_d == 0 with p_d > 0 ->
/// accept (ratio +inf; such a draft had probability 0 of being drawn). Throws Error on NaN/negative/inf.
[[nodiscard]] bool accept_draft(float p_d, float q_d, double u);

/// Result of accept_chunk: `accepted` leading drafts passed; if `rejected`, draft number `accepted`
/// (0-based within the chunk) failed and a correction is due at position first_position + accepted.
struct AcceptResult {
  std::uint32_t accepted = 0;
  bool rejected = false;
  friend bool operator==(const AcceptResult&, const AcceptResult&) = default;
};

/// Runs accept_draft over a chunk: drafts[i] at absolute position first_position + i, with draft scalar
/// q_of_draft[i] = q_i(drafts[i]) and target row p_rows[i]; u from (seed, accept, position, epoch, 0).
/// Stops at the first rejection. Throws Error on size mismatches or ids out of range.
[[nodiscard]] AcceptResult accept_chunk(std::span<const Token> drafts, std::span<const float> q_of_draft,
                                        std::span<const DenseView> p_rows, std::uint64_t seed,
                                        std::uint64_t first_position, std::uint64_t epoch);

/// Result of block_verify: `accepted` leading drafts are kept; if `rejected`, `correction` is the token at
/// position first_position + accepted.
struct BlockVerdict {
  std::uint32_t accepted = 0;
  bool rejected = false;
  Token correction = kNoToken;
  friend bool operator==(const BlockVerdict&, const BlockVerdict&) = default;
};

/// Block verification (Sun et al., 2024, "Block Verification Accelerates Speculative Decoding"): verifies a whole
/// draft jointly; exact (the committed tokens are distributed as p) and, for one draft block, optimal in the
/// expected number of accepted tokens (never fewer than accept_chunk in expectation). Needs both full rows at
/// every draft position: p_rows[i] / q_rows[i] are p and q at the position of drafts[i] (after the sampling
/// transforms). With w_0 = 1 and w_i = min(1, w_{i-1}·p_i(d_i)/q_i(d_i)), position i < γ is kept with probability
/// h_i = S_i / (S_i + 1 − w_i), S_i = Σ_x max(0, w_i·p_{i+1}(x) − q_{i+1}(x)), and h_γ = w_γ; the accepted length
/// τ is the largest i whose coin (u = uniform(seed, accept, first_position + i − 1, epoch)) is below h_i, and a
/// rejection draws the correction from norm(max(0, w_τ·p_τ − q_τ)) (u = uniform(seed, residual, first_position +
/// τ, epoch); p_τ if that is all zero). A full accept draws nothing (the next p tests the next chunk, as
/// everywhere in picospec). Throws Error on size mismatches, ids out of range, bad probabilities.
[[nodiscard]] BlockVerdict block_verify(std::span<const Token> drafts, std::span<const DenseView> p_rows,
                                        std::span<const DenseView> q_rows, std::uint64_t seed,
                                        std::uint64_t first_position, std::uint64_t epoch);

/// full mode: correction ~ norm(max(0, p - q)) (differences in double, inverse CDF in id order).
/// If the residual is zero everywhere (p <= q, i.e. p == q up to rounding; an exact rejection is then
/// impossible) it samples from p with the same u. Throws Error if p.size() != q.size().
[[nodiscard]] Token residual_dense(DenseView p, DenseView q, double u);

/// sparse_draft mode: correction ~ norm(max(0, p - q̂)), q̂ zero outside its ids (joined by id).
/// Same fallback as residual_dense. Throws Error if q_hat.vocab_size != p.size() or an id is out of range.
[[nodiscard]] Token residual_sparse_q(DenseView p, const SparseDist& q_hat, double u);

/// candidates mode: m i.i.d. draws y_k ~ p (inverse CDF with u = uniform(seed, candidate_draw, position,
/// epoch, first_index + k)) and their values p(y_k). Identical to m calls of sample_from(p, u_k).
[[nodiscard]] CandidateStream draw_candidates(DenseView p, std::uint32_t m, std::uint64_t seed,
                                              std::uint64_t position, std::uint64_t epoch,
                                              std::uint32_t first_index = 0);

/// topk mode (downlink): the K most probable tokens of p (ties -> lower id), ids ascending, RAW values of p
/// (not renormalized). Zero-probability tokens are never included, so the result may hold fewer than K.
[[nodiscard]] SparseDist top_k(DenseView p, std::uint32_t k);

/// greedy mode: accept iff d == argmax p (ties -> lowest id). Works on logits or probabilities.
[[nodiscard]] inline bool greedy_accept(DenseView p, Token d) { return argmax(p) == d; }
/// greedy mode: the correction (argmax p).
[[nodiscard]] inline Token greedy_correction(DenseView p) { return argmax(p); }

// ---------------------------------------------------------------------------------------------------------
// EDGE half
// ---------------------------------------------------------------------------------------------------------

/// Result of pick_candidate_at: the accepted token and which candidate (0-based in the stream) it was.
struct CandidatePick {
  Token token = kNoToken;
  std::uint32_t k = 0;
};

/// candidates mode: walks the stream in order and accepts y_k with probability max(0, 1 - q(y_k)/p(y_k)),
/// u = uniform(seed, candidate_accept, position, epoch, first_index + k). nullopt means every candidate was
/// refused: ask the cloud for more (first_index + size() onward). Throws Error on ids out of range, p <= 0.
[[nodiscard]] std::optional<Token> pick_candidate(const CandidateStream& stream, DenseView q, std::uint64_t seed,
                                                  std::uint64_t position, std::uint64_t epoch);
/// Same, also reporting the candidate's index in the stream.
[[nodiscard]] std::optional<CandidatePick> pick_candidate_at(const CandidateStream& stream, DenseView q,
                                                             std::uint64_t seed, std::uint64_t position,
                                                             std::uint64_t epoch);

/// topk mode (edge): correction ~ norm(max(0, P_topK - Q)) over P's ids, P_topK with RAW values as sent
/// (decode the frame with Normalization::raw). When that residual is all zero, `fb` decides (see TopkFallback).
/// Throws Error if p_topk is empty, p_topk.vocab_size != q.size() or an id is out of range.
[[nodiscard]] Token residual_topk(const SparseDist& p_topk, DenseView q, double u,
                                  TopkFallback fb = TopkFallback::renormalized_p);

}  // namespace picospec

#include "picospec/detail/math_rejection.hpp"
