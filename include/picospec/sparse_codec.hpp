#pragma once
// Sparse distribution codecs (what goes on the wire instead of a full probability row) and the compact
// encodings of the candidate stream and of the per-draft uplink scalars. Byte formats: docs/algorithm.md.
//
// Codecs (make_codec spec strings):
//   "dense_f32"          all V probabilities as little-endian fp32 (vanilla SD baseline), 4V bytes. Lossless.
//   "topk_f32:K"         the paper's format: (u32 id, f32 prob) x n, n <= K, ids ascending, 8n bytes. Lossy.
//   "topk_q:K"           varint n, ids ascending delta+LEB128 varint coded, probs as IEEE fp16. Lossy.
//   "topk_q:K:P"         same, additionally truncated at top-p mass P (0 < P <= 1): stops once the kept
//                        mass reaches P * total. Useful for sparse_draft (TSLT-style "sparsify then sample").
//   ("topk_f32:K:P" accepts the same top-p option.)
//
// Decoding treats bytes as untrusted: any malformed input (truncated, trailing bytes, counts above the codec's
// K or the vocabulary, ids >= vocab_size, ids not strictly ascending, NaN/inf/negative/zero probabilities, over-
// long varints) throws picospec::DecodeError; never UB, never unbounded allocation.
//
// Normalization (exactness of sparse_draft mode depends on it): with Normalization::normalize the decoded values
// v_i are divided by their sum, computed as a plain sequential double sum in ascending id order, and rounded
// to float: the same bytes give bit-identical floats on every IEEE-754 machine (no threading, no fast-math).
// Normalization::raw returns the values as sent (the topk mode residual needs raw P_topK values).
//
// Thread-safety: codecs are immutable after construction; encode/decode are const and may be called
// concurrently from any number of threads. Nothing blocks.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "picospec/rejection.hpp"
#include "picospec/types.hpp"

namespace picospec {

enum class Normalization : std::uint8_t {
  normalize,  ///< divide by the (sequential, double) sum of the decoded values
  raw,        ///< values exactly as encoded
};

/// A sparse distribution codec. Public non-virtual methods validate, protected hooks do the work.
class SparseCodec {
 public:
  virtual ~SparseCodec() = default;
  SparseCodec() = default;
  SparseCodec(const SparseCodec&) = delete;
  SparseCodec& operator=(const SparseCodec&) = delete;

  /// The spec this codec was made from, canonical form (e.g. "topk_q:32").
  [[nodiscard]] std::string_view name() const noexcept { return do_name(); }
  /// True if decode(encode(p)) can differ from p (truncation or quantization).
  [[nodiscard]] bool lossy() const noexcept { return do_lossy(); }

  /// Appends the encoding of the dense distribution `probs` to `out`. Only positive, finite entries are
  /// candidates for sparse codecs. Throws Error if probs is empty, holds NaN/inf/negative values, or has
  /// no positive entry.
  void encode(DenseView probs, std::vector<std::uint8_t>& out) const;

  /// Decodes one complete frame (the whole span, nothing more) for a vocabulary of `vocab_size` tokens.
  /// Throws DecodeError on malformed bytes, Error on vocab_size == 0.
  [[nodiscard]] SparseDist decode(std::span<const std::uint8_t> bytes, std::uint32_t vocab_size,
                                  Normalization norm = Normalization::normalize) const;

  /// decode(encode(probs)) normalized: the exact q̂ both sides hold in sparse_draft mode.
  [[nodiscard]] SparseDist round_trip(DenseView probs) const;

  /// Size in bytes of encode(probs) (encodes into a scratch buffer).
  [[nodiscard]] std::size_t encoded_size(DenseView probs) const;

 protected:
  [[nodiscard]] virtual std::string_view do_name() const noexcept = 0;
  [[nodiscard]] virtual bool do_lossy() const noexcept = 0;
  /// `probs` already validated non-empty; must append to out, and throw Error on bad entries it meets.
  virtual void do_encode(DenseView probs, std::vector<std::uint8_t>& out) const = 0;
  /// Must decode values as sent into `dist` (vocab_size preset) or throw DecodeError.
  virtual void do_decode(std::span<const std::uint8_t> bytes, SparseDist& dist) const = 0;
};

/// Makes a codec from a spec string (see the top of this file). Throws Error on an unknown name, a missing,
/// zero or non-numeric K, K > 2^24, a top-p outside (0, 1], or trailing junk.
[[nodiscard]] std::unique_ptr<SparseCodec> make_codec(std::string_view spec);

/// Total-variation distance 0.5 * sum_x |p(x) - q(x)| between a dense p and a sparse q (zero outside its ids),
/// joined by id. In double.
[[nodiscard]] double total_variation(DenseView p, const SparseDist& q);

/// Probability mass of p outside the K most probable tokens (the topk mode's error bound).
[[nodiscard]] double mass_outside_top_k(DenseView p, std::uint32_t k);

// ---------------------------------------------------------------------------------------------------------
// Candidate stream (candidates-mode downlink), exact and compact.
// Format: varint first_index, varint n, then n entries; each entry is a varint tag:
//   tag odd  -> new id = tag >> 1, followed by its fp32 p (LE)
//   tag even -> repeat of the (tag >> 1)-th distinct id of this frame (same p)
// m = 32 with V <= 2^20 is at most 1 + 5 + 32 * 7 = 230 bytes; repeats cost 1 byte.
// ---------------------------------------------------------------------------------------------------------

/// Upper bound on candidates in one frame accepted by decode_candidates.
inline constexpr std::uint32_t kMaxCandidatesPerFrame = 65536;

/// Appends the encoding of `stream` to `out`. Throws Error if sizes differ, an id is negative, a p is not
/// positive and finite, the same id appears with different p values, or there are more than
/// kMaxCandidatesPerFrame candidates.
void encode_candidates(const CandidateStream& stream, std::vector<std::uint8_t>& out);

/// Decodes one complete candidate frame. Throws DecodeError on malformed bytes or ids >= vocab_size.
[[nodiscard]] CandidateStream decode_candidates(std::span<const std::uint8_t> bytes, std::uint32_t vocab_size);
/// Reads one candidate record starting at `offset` and advances `offset` past it (for embedding the record in a
/// larger frame; bytes after it are left alone). Same checks and errors.
[[nodiscard]] CandidateStream decode_candidates(std::span<const std::uint8_t> bytes, std::uint32_t vocab_size,
                                                std::size_t& offset);

// ---------------------------------------------------------------------------------------------------------
// Draft scalars (uplink of candidates/topk modes): per draft token its id and q(d) as fp32.
// Format: varint n, then n x (varint id, fp32 q LE): <= 3 + 4 = 7 bytes per token for V <= 2^21.
// ---------------------------------------------------------------------------------------------------------

struct DraftScalars {
  std::vector<Token> ids;
  std::vector<float> q;  ///< q_i(ids[i]) exactly as the edge sampled with, > 0
  friend bool operator==(const DraftScalars&, const DraftScalars&) = default;
};

/// Upper bound on draft tokens in one frame accepted by decode_draft_scalars.
inline constexpr std::uint32_t kMaxDraftsPerFrame = 4096;

/// Appends the encoding. Throws Error on size mismatch, negative ids, q not positive and finite, or more than
/// kMaxDraftsPerFrame tokens.
void encode_draft_scalars(std::span<const Token> ids, std::span<const float> q, std::vector<std::uint8_t>& out);

/// Decodes one complete frame. Throws DecodeError on malformed bytes or ids >= vocab_size.
[[nodiscard]] DraftScalars decode_draft_scalars(std::span<const std::uint8_t> bytes, std::uint32_t vocab_size);
/// Reads one draft-scalar record starting at `offset` and advances `offset` past it. Same checks and errors.
[[nodiscard]] DraftScalars decode_draft_scalars(std::span<const std::uint8_t> bytes, std::uint32_t vocab_size,
                                                std::size_t& offset);

}  // namespace picospec

#include "picospec/detail/math_codec.hpp"
