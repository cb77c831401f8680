#pragma once
// One policy per rejection mode (internal to picospec::runtime; docs/pipeline.md "Rejection policies").
//
// Each mode is one EDGE half (how a draft token is drawn, what goes up with it, what to do with a rejection
// verdict) and one CLOUD half (the acceptance test, the rejection verdict, more candidates), in
// src/policies/edge_<mode>.cpp and src/policies/cloud_<mode>.cpp. The EdgeSession and the CloudServer pick
// the pair once per generation (make_edge_policy / make_cloud_policy) and never switch on the mode again. A
// new mode is one file per side plus a line in each factory.
//
// Neither half owns a thread, a transport or a model: they map (logits, keyed random numbers, messages) to
// (tokens, messages), so tests drive them directly (tests/pipeline/test_policies.cpp).
// Thread-safety: one thread at a time per instance. Nothing blocks. Hot paths reuse the instance's buffers.

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <span>
#include <string>
#include <vector>

#include "picospec/causal_lm.hpp"
#include "picospec/modes.hpp"
#include "picospec/protocol.hpp"
#include "picospec/sampling.hpp"
#include "picospec/types.hpp"

namespace picospec::detail {

/// A violation of the session protocol by the peer, with the wire error code to answer with (cloud) or the
/// reason to throw (edge).
struct PolicyFailure {
  wire::ErrorCode code = wire::ErrorCode::bad_state;
  std::string message;
};

/// Everything a policy needs to know about the generation; fixed for its lifetime.
struct PolicyConfig {
  SamplingParams sampling;
  std::uint64_t seed = 0;
  std::uint32_t vocab = 0;
  std::string codec;                 ///< per-draft-token uplink codec (full, sparse_draft)
  std::uint32_t topk_k = 10;         ///< topk
  std::uint32_t candidates_m = 32;   ///< candidates
  TopkFallback topk_fallback = TopkFallback::renormalized_p;
  std::uint32_t branch_heads = 0;    ///< edge: alternatives kept per draft (heads of pre-drafted branches)
  bool want_top_q = false;           ///< edge: fill SpecToken::top_q (confidence stop)
  bool block_verify = false;         ///< cloud: verify chunks jointly (full, sparse_draft)
};

// ---------------------------------------------------------------------------------------------------- edge

/// One drafted (speculative) token and what the cloud may need about it.
struct SpecToken {
  Token token = kNoToken;
  float q = 0.0f;                   ///< q(d) as sampled
  std::vector<float> row;           ///< the q row, kept by modes that decide corrections on the edge
  std::vector<std::uint8_t> frame;  ///< encoded q (full / sparse_draft uplink)
  std::vector<Token> alts;          ///< the likeliest other tokens under q (branch heads), most likely first
  float top_q = 1.0f;               ///< the largest probability of the row it was drawn from (confidence stop)
};

/// Largest entry of a probability row.
inline float max_prob(std::span<const float> row) {
  float m = 0.0f;
  for (float x : row) m = x > m ? x : m;
  return m;
}

/// The `k` most probable tokens of `row` other than `exclude` (ties -> lower id), most probable first, into
/// `out` (entries at or below -1e30, i.e. masked logits, are skipped). O(V·k): k is a handful. Works on
/// probabilities or logits.
inline void top_alternatives(std::span<const float> row, Token exclude, std::uint32_t k, std::vector<Token>& out) {
  out.clear();
  for (std::uint32_t j = 0; j < k; ++j) {
    Token best = kNoToken;
    float best_v = 0.0f;
    for (std::size_t x = 0; x < row.size(); ++x) {
      const auto t = static_cast<Token>(x);
      if (t == exclude || !(row[x] > best_v || best == kNoToken) || !(row[x] > -1e30f)) continue;
      bool taken = false;
      for (Token u : out) taken = taken || u == t;
      if (taken) continue;
      best = t;
      best_v = row[x];
    }
    if (best == kNoToken) return;
    out.push_back(best);
  }
}
/// Same over a sparse distribution (ids ascending).
inline void top_alternatives(const SparseDist& d, Token exclude, std::uint32_t k, std::vector<Token>& out) {
  out.clear();
  for (std::uint32_t j = 0; j < k; ++j) {
    Token best = kNoToken;
    float best_v = 0.0f;
    for (std::size_t i = 0; i < d.ids.size(); ++i) {
      if (d.ids[i] == exclude || !(d.probs[i] > best_v)) continue;
      bool taken = false;
      for (Token u : out) taken = taken || u == d.ids[i];
      if (taken) continue;
      best = d.ids[i];
      best_v = d.probs[i];
    }
    if (best == kNoToken) return;
    out.push_back(best);
  }
}

/// What the edge does after a rejection verdict (or a follow-up verdict).
struct EdgeDecision {
  bool decided = false;       ///< true: `correction` is the token at the rejected position
  Token correction = kNoToken;
  bool send_fixed = false;    ///< the edge decided it: send it up at once as a one-token Draft with n_fixed 1
  std::uint32_t more_from = 0;  ///< !decided: ask for more candidates starting at this index
};

class EdgePolicy {
 public:
  virtual ~EdgePolicy() = default;
  [[nodiscard]] virtual RejectionMode mode() const noexcept = 0;

  /// Draws the draft token at absolute `position` under `epoch` from the drafter's `logits` (key
  /// (draft_sample, position, epoch)). `out` comes with a recycled row buffer in out.row.
  virtual void draft(std::span<const float> logits, std::uint64_t position, std::uint32_t epoch, SpecToken& out) = 0;

  /// Appends s's uplink payload (q scalar or q frame) to `d` (the token itself is added by the caller). May
  /// move s.frame out.
  virtual void add_uplink(SpecToken& s, wire::Draft& d) = 0;
  /// Payload of the fixed correction token of an edge-decided rejection.
  virtual void add_fixed_uplink(wire::Draft& d) { (void)d; }

  /// A rejection verdict for the draft at `position`, drafted under `epoch`; `rejected` is that draft (its
  /// row is kept by edge-deciding modes). Throws PolicyFailure on a verdict this mode cannot receive.
  virtual EdgeDecision on_rejection(const wire::Verdict& v, std::uint64_t position, std::uint32_t epoch,
                                    SpecToken& rejected) = 0;
  /// A follow-up verdict (more candidates) for the pending rejection.
  virtual EdgeDecision on_follow_up(const wire::Verdict& v) {
    (void)v;
    throw PolicyFailure{wire::ErrorCode::bad_state, "unexpected follow-up verdict"};
  }
  /// Row buffer handed back after a rejection that kept it (recycled by the caller); empty if none.
  [[nodiscard]] virtual std::vector<float> release_row() { return {}; }

 protected:
  static void check_token(Token t, std::uint32_t vocab) {
    if (t < 0 || static_cast<std::uint32_t>(t) >= vocab)
      throw PolicyFailure{wire::ErrorCode::bad_state, "correction outside the vocabulary"};
  }
};

/// Throws picospec::Error for a mode the config cannot serve (bad codec spec, ...).
[[nodiscard]] std::unique_ptr<EdgePolicy> make_edge_policy(RejectionMode mode, const PolicyConfig& cfg);

// --------------------------------------------------------------------------------------------------- cloud

/// The cloud's view of a rejection: the verdict to send and whether the cloud already knows the correction.
struct CloudRejection {
  bool cloud_decided = false;  ///< v.correction holds the correction (greedy, full, sparse_draft)
};

class CloudPolicy {
 public:
  virtual ~CloudPolicy() = default;
  [[nodiscard]] virtual RejectionMode mode() const noexcept = 0;

  /// Checks a Draft's uplink payload (counts). Throws PolicyFailure{invalid_params}.
  virtual void check_draft(const wire::Draft& d) const = 0;

  /// Tests draft i of `d` at absolute `position` under `epoch` against the target `logits` at that position.
  /// On a rejection the policy keeps what reject() needs.
  [[nodiscard]] virtual bool test(const wire::Draft& d, std::size_t i, std::span<const float> logits,
                                  std::uint64_t position, std::uint32_t epoch) = 0;

  /// Block verification (modes that hold both distributions, when asked): verifies drafts first..n-1 of `d`
  /// jointly (rows.row(i) = target logits at draft i) and returns how many were accepted and whether a
  /// rejection follows (its correction is kept for reject()). nullopt: this policy verifies token by token.
  [[nodiscard]] virtual std::optional<std::pair<std::uint32_t, bool>> verify_block(const wire::Draft& d,
                                                                                  std::size_t first,
                                                                                  const LogitRows& rows,
                                                                                  std::uint64_t first_position,
                                                                                  std::uint32_t epoch) {
    (void)d, (void)first, (void)rows, (void)first_position, (void)epoch;
    return std::nullopt;
  }

  /// After test() returned false: fills the rejection part of `v` (kind, correction or payload) for the
  /// position last tested, drafted under `old_epoch`.
  virtual CloudRejection reject(wire::Verdict& v, std::uint64_t position, std::uint32_t old_epoch) = 0;

  /// MoreCandidates for the pending rejection. Throws PolicyFailure{bad_state} in modes without them.
  virtual void more(const wire::MoreCandidates& m, wire::Verdict& v) {
    (void)m;
    (void)v;
    throw PolicyFailure{wire::ErrorCode::bad_state, "unexpected MoreCandidates"};
  }
};

/// Throws PolicyFailure{unsupported_codec} when the mode needs a codec the config lacks or this build lacks.
[[nodiscard]] std::unique_ptr<CloudPolicy> make_cloud_policy(RejectionMode mode, const PolicyConfig& cfg);

// Factories of each mode (one per file).
std::unique_ptr<EdgePolicy> make_edge_greedy(const PolicyConfig& cfg);
std::unique_ptr<EdgePolicy> make_edge_full(const PolicyConfig& cfg);
std::unique_ptr<EdgePolicy> make_edge_sparse_draft(const PolicyConfig& cfg);
std::unique_ptr<EdgePolicy> make_edge_candidates(const PolicyConfig& cfg);
std::unique_ptr<EdgePolicy> make_edge_topk(const PolicyConfig& cfg);
std::unique_ptr<EdgePolicy> make_edge_coupled(const PolicyConfig& cfg);
std::unique_ptr<CloudPolicy> make_cloud_greedy(const PolicyConfig& cfg);
std::unique_ptr<CloudPolicy> make_cloud_full(const PolicyConfig& cfg);
std::unique_ptr<CloudPolicy> make_cloud_sparse_draft(const PolicyConfig& cfg);
std::unique_ptr<CloudPolicy> make_cloud_candidates(const PolicyConfig& cfg);
std::unique_ptr<CloudPolicy> make_cloud_topk(const PolicyConfig& cfg);
std::unique_ptr<CloudPolicy> make_cloud_coupled(const PolicyConfig& cfg);

}  // namespace picospec::detail
