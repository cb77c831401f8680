#pragma once
// CausalLM: the small interface a model runtime implements so picospec can draft or verify with it.

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include "picospec/types.hpp"

namespace picospec {

/// Logits rows produced by one forward call: rows() x vocab(), row-major, contiguous.
class LogitRows {
 public:
  LogitRows() = default;
  void resize(std::size_t rows, std::size_t vocab) { rows_ = rows; vocab_ = vocab; data_.resize(rows * vocab); }
  [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
  [[nodiscard]] std::size_t vocab() const noexcept { return vocab_; }
  [[nodiscard]] std::span<const float> row(std::size_t i) const { return {data_.data() + i * vocab_, vocab_}; }
  [[nodiscard]] std::span<float> row(std::size_t i) { return {data_.data() + i * vocab_, vocab_}; }
  [[nodiscard]] float* data() noexcept { return data_.data(); }
  [[nodiscard]] const float* data() const noexcept { return data_.data(); }

 private:
  std::size_t rows_ = 0, vocab_ = 0;
  std::vector<float> data_;
};

/// Which logits rows CausalLM::forward() produces.
enum class LogitsFor {
  all,   ///< one row per token (verifying a chunk)
  last,  ///< one row, the last token's (a prefill, a draft step): the model may skip the output head elsewhere
};

/// A causal language model with a KV cache.
///
/// The model holds a context of length() tokens. forward() appends tokens to the context and returns one
/// logits row per appended token: row i is the next-token logits after context + tokens[0..i].
/// truncate(n) rolls the context (KV cache) back to its first n tokens.
///
/// Thread-safety: one thread at a time per instance. Ownership: the model owns its KV cache; weights may be
/// shared between instances (shared_ptr<const ...>) by the backend.
///
/// Public non-virtual methods validate and then call the protected do_* hooks.
class CausalLM {
 public:
  virtual ~CausalLM() = default;

  [[nodiscard]] const ModelInfo& info() const noexcept { return info_; }
  [[nodiscard]] std::size_t length() const noexcept { return length_; }

  /// Appends `tokens` to the context and fills `out` with tokens.size() logits rows (LogitsFor::all), or with
  /// the last token's row alone (LogitsFor::last; out.rows() == 1, bit-identical to that row of an `all` call).
  /// Throws picospec::Error for out-of-vocabulary ids or when the context length would be exceeded.
  void forward(std::span<const Token> tokens, LogitRows& out, LogitsFor rows = LogitsFor::all) {
    if (tokens.empty()) { out.resize(0, info_.vocab_size); return; }
    detail::check_token_ids(tokens, info_.vocab_size, "CausalLM::forward");
    if (info_.context_length != 0 && length_ + tokens.size() > info_.context_length)
      throw Error("CausalLM::forward: context length " + std::to_string(info_.context_length) +
                  " exceeded (" + std::to_string(length_) + " + " + std::to_string(tokens.size()) + ")");
    if (rows == LogitsFor::last) {
      out.resize(1, info_.vocab_size);
      do_forward_last(tokens, out);
    } else {
      out.resize(tokens.size(), info_.vocab_size);
      do_forward(tokens, out);
    }
    length_ += tokens.size();
  }

  /// Rolls the context back to its first `n` tokens (n <= length()).
  void truncate(std::size_t n) {
    if (n > length_)
      throw Error("CausalLM::truncate: " + std::to_string(n) + " > length " + std::to_string(length_));
    do_truncate(n);
    length_ = n;
  }

  /// Clears the context.
  void reset() { truncate(0); }

 protected:
  explicit CausalLM(ModelInfo info) : info_(std::move(info)) {}
  /// Evaluate `tokens` at positions length() .. length()+n-1 and write n rows into `out` (already sized).
  virtual void do_forward(std::span<const Token> tokens, LogitRows& out) = 0;
  /// Same, but write only the last token's row into `out` (already sized to one row). The default runs
  /// do_forward() into a scratch buffer and copies that row; a backend overrides it to skip the other rows' head.
  virtual void do_forward_last(std::span<const Token> tokens, LogitRows& out) {
    LogitRows all;
    all.resize(tokens.size(), info_.vocab_size);
    do_forward(tokens, all);
    const auto last = all.row(tokens.size() - 1);
    std::copy(last.begin(), last.end(), out.row(0).begin());
  }
  /// Drop KV entries at positions >= n.
  virtual void do_truncate(std::size_t n) = 0;

  ModelInfo info_;

 private:
  std::size_t length_ = 0;
};

}  // namespace picospec
