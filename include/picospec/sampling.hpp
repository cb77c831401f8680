#pragma once
// Logits -> probabilities (sampling transforms) and drawing a token from a distribution.
//
// Order of the transforms (fixed; the same as llama.cpp's default sampler chain
// top_k -> top_p -> min_p -> temp -> dist, with the penalty/typical/xtc stages left out):
//
//   1. top-k   keep the k largest logits                           (top_k <= 0 or >= V: off)
//   2. top-p   softmax of the kept logits at temperature 1, keep the smallest prefix, in order of
//              decreasing probability, whose mass reaches top_p     (top_p >= 1: off; at least 1 token)
//   3. min-p   keep tokens with p >= min_p * p_max (same temperature-1 softmax)  (min_p <= 0: off)
//   4. temperature: softmax(logit / T) over the kept set; every other token gets probability 0.
//
// Why this order: temperature never changes the ranking, so running the truncations first makes the kept set
// independent of T (a "stable" nucleus) and matches what llama.cpp users already get from a GGUF model.
// Ranking ties are broken by the lower token id (deterministic). temperature <= 0 means greedy: a one-hot
// distribution on argmax (ties -> lowest id); the truncations are then irrelevant.
//
// Numerics: max-subtracted softmax, sums in double, one fixed sequential order (bit-identical results for
// identical inputs on every IEEE-754 machine built without fast-math). -inf logits are allowed (masked tokens);
// NaN or +inf logits, an empty row, or a row that is all -inf throw picospec::Error.
//
// Thread-safety: free functions are pure apart from their output arguments; a SamplingWorkspace must not be
// shared between threads. Nothing here blocks.

#include <cstdint>
#include <span>
#include <vector>

#include "picospec/types.hpp"

namespace picospec {

/// Reusable scratch buffers so that the hot path does not allocate once warmed up.
/// Not thread-safe: one workspace per thread.
struct SamplingWorkspace {
  struct Entry {
    float value;
    Token id;
  };
  std::vector<Entry> entries;  ///< kept candidates (value = logit)
  std::vector<double> scratch;
};

/// Index of the largest value; ties -> lowest index. NaN entries are ignored.
/// Throws Error if `values` is empty or holds no non-NaN value.
[[nodiscard]] Token argmax(std::span<const float> values);

/// Applies the transforms above to `logits` and writes a dense distribution of the same size to `probs`
/// (resized; zeros outside the kept set; sums to 1 up to float rounding). Throws Error on bad logits or
/// bad params (NaN top_p/min_p/temperature).
void logits_to_probs(std::span<const float> logits, const SamplingParams& params, std::vector<float>& probs);
/// Same, reusing `ws` (no allocation once `ws` and `probs` have grown to the vocabulary size).
void logits_to_probs(std::span<const float> logits, const SamplingParams& params, std::vector<float>& probs,
                     SamplingWorkspace& ws);

/// Same transforms, sparse output: only the kept tokens (ids ascending), probabilities normalized.
[[nodiscard]] SparseDist logits_to_sparse(std::span<const float> logits, const SamplingParams& params,
                                          SamplingWorkspace& ws);

/// Plain softmax (max-subtracted) of `logits` / `temperature` into `probs` (temperature > 0).
/// Uses detail::exp_nonpositive (float, < 2 ulp, vectorized, the same bits on every build without FMA
/// contraction) and a double-precision normalizer; logits_to_probs takes this path when nothing is truncated.
void softmax(std::span<const float> logits, std::vector<float>& probs, float temperature = 1.0f);

/// Inverse-CDF draw from a dense (possibly unnormalized) distribution: the first token whose running sum
/// (in double, in id order) exceeds u * total. Deterministic given u in [0, 1); never returns a token of
/// probability 0 (rounding is absorbed by the last positive token). Throws Error if the total is not
/// positive and finite or an entry is negative/NaN.
[[nodiscard]] Token sample_from(std::span<const float> probs, double u);

/// Inverse-CDF draw from a sparse distribution (in ascending id order; same rules as the dense overload).
[[nodiscard]] Token sample_from(const SparseDist& dist, double u);

/// Coupled draw (the exponential race, equivalent to the Gumbel-max trick): the token v with probs[v] > 0 that
/// maximizes probs[v] / E_v, where E_v = -ln(u_v) are independent Exp(1) variables keyed by (seed, position)
/// alone (Purpose::coupled; u_v is the v-th output of a SplitMix64 stream started at that key's Philox value).
/// The result is exactly distributed as probs (normalized). Two distributions p and q drawn with the same key
/// give the same token with probability at least (1 - TV) / (1 + TV), TV their total variation distance: the
/// basis of RejectionMode::coupled. Deterministic; ties -> lowest id. Throws Error like sample_from.
[[nodiscard]] Token coupled_sample(std::span<const float> probs, std::uint64_t seed, std::uint64_t position);

/// coupled_sample's winner and, into `runners_up` (resized to at most k), the next k tokens of the same race in
/// order (score p/E, ties -> lower id). With the coupled rejection, when the draft (q's winner) is rejected the
/// correction is p's winner under the very same exponentials, which is most often one of q's runners-up: the
/// natural heads of pre-drafted branches. Same pruning as coupled_sample, against the (k+1)-th score.
[[nodiscard]] Token coupled_sample_top(std::span<const float> probs, std::uint64_t seed, std::uint64_t position,
                                       std::size_t k, std::vector<Token>& runners_up);

}  // namespace picospec

#include "picospec/detail/math_sampling.hpp"
