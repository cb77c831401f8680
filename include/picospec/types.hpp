#pragma once
// Basic vocabulary types shared by every part of picospec. Nothing heavy here.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace picospec {

/// A token id. Valid ids are in [0, vocab_size).
using Token = std::int32_t;

/// Sentinel for "no token".
inline constexpr Token kNoToken = -1;

/// Sampling transforms applied to logits before a token is drawn (see sampling.hpp for the order).
/// temperature == 0 means greedy (argmax). top_k <= 0 disables top-k; top_p >= 1 disables top-p;
/// min_p <= 0 disables min-p.
struct SamplingParams {
  float temperature = 1.0f;
  std::int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;

  [[nodiscard]] bool greedy() const noexcept { return temperature <= 0.0f; }
  friend bool operator==(const SamplingParams&, const SamplingParams&) = default;
};

/// A read-only dense probability (or logit) row over the whole vocabulary.
using DenseView = std::span<const float>;

/// A sparse probability distribution: ids strictly ascending, probs[i] belongs to ids[i].
/// Sparse distributions are always joined with others by token id, never by array index.
struct SparseDist {
  std::uint32_t vocab_size = 0;
  std::vector<Token> ids;
  std::vector<float> probs;

  [[nodiscard]] std::size_t size() const noexcept { return ids.size(); }
  /// Probability of `t` (0 when absent). O(log n).
  [[nodiscard]] float prob(Token t) const noexcept;
};

/// Static facts about a model that both sides must agree on.
struct ModelInfo {
  std::string name;                        ///< free-form, for logs
  std::uint32_t vocab_size = 0;
  std::uint32_t context_length = 0;        ///< max tokens in the KV cache; 0 = unbounded
  std::uint64_t tokenizer_fingerprint = 0; ///< hash of the vocabulary; 0 = unknown
  Token bos = kNoToken;
  Token eos = kNoToken;
  /// Every end-of-generation token (EOS, end-of-turn `<|eot_id|>` / `<|im_end|>`, ...): generation stops when any
  /// of them is committed. `eos` counts as one whether or not it is listed here (code that sets only `eos` works).
  std::vector<Token> eog;
  bool batch_invariant = false;            ///< logits at a position do not depend on chunking

  /// Whether `t` ends generation: `t == eos` or `t` is in `eog`. Never true for kNoToken.
  [[nodiscard]] bool is_eog(Token t) const noexcept {
    if (t == kNoToken) return false;
    if (t == eos) return true;
    for (Token e : eog)
      if (e == t) return true;
    return false;
  }
};

/// Error thrown for bad configuration, bad files and incompatible parts (setup-time errors).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Error thrown by bounds-checked decoders of untrusted bytes (frames, files).
class DecodeError : public Error {
 public:
  using Error::Error;
};

/// Checks sampling parameters as the cloud does (temperature finite and >= 0, top_p in (0, 1], min_p in [0, 1))
/// and throws Error naming the field, so a bad value fails before anything is sent. EdgeSession::generate calls it.
inline void validate(const SamplingParams& s) {
  // Written as negated comparisons so NaN fails every range check.
  if (!(s.temperature >= 0.0f && s.temperature <= std::numeric_limits<float>::max()))
    throw Error("sampling: temperature must be finite and >= 0 (got " + std::to_string(s.temperature) + ")");
  if (!(s.top_p > 0.0f && s.top_p <= 1.0f))
    throw Error("sampling: top_p must be in (0, 1] (got " + std::to_string(s.top_p) + ")");
  if (!(s.min_p >= 0.0f && s.min_p < 1.0f))
    throw Error("sampling: min_p must be in [0, 1) (got " + std::to_string(s.min_p) + ")");
}

namespace detail {
/// Throws Error("<where>: token id N outside vocabulary of V") for the first id outside [0, vocab_size).
inline void check_token_ids(std::span<const Token> tokens, std::uint32_t vocab_size, const char* where) {
  for (Token t : tokens)
    if (t < 0 || static_cast<std::uint32_t>(t) >= vocab_size)
      throw Error(std::string(where) + ": token id " + std::to_string(t) + " outside vocabulary of " +
                  std::to_string(vocab_size));
}
}  // namespace detail

inline float SparseDist::prob(Token t) const noexcept {
  std::size_t lo = 0, hi = ids.size();
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (ids[mid] < t) lo = mid + 1; else hi = mid;
  }
  return (lo < ids.size() && ids[lo] == t) ? probs[lo] : 0.0f;
}

}  // namespace picospec
