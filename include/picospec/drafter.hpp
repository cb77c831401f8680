#pragma once
// Drafter: the edge-side plug-in interface (the small model that proposes draft tokens).
//
// A Drafter is a stateful language-model cursor. It holds a context of length() tokens and exposes the
// next-token logits at the position right after that context. It never samples: the EdgeSession applies the
// sampling transforms and the keyed random draw, so every drafter gets exact, reproducible semantics for free.
// An n-gram or lookup drafter returns a one-hot row (0 for the proposed token, -inf elsewhere).
//
// Thread-safety: one thread at a time per instance (the EdgeSession's drafting thread owns it).
// Blocking: next_logits() may take as long as one forward pass of the model; nothing else blocks.
// Ownership: the drafter owns its KV cache / state; the returned logits view stays valid until the next
// non-const call.
//
// Public non-virtual methods validate arguments and keep length() consistent, then call the do_* hooks.

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "picospec/causal_lm.hpp"
#include "picospec/types.hpp"

namespace picospec {

class Drafter {
 public:
  virtual ~Drafter() = default;
  Drafter(const Drafter&) = delete;
  Drafter& operator=(const Drafter&) = delete;

  [[nodiscard]] const ModelInfo& info() const noexcept { return info_; }

  /// Number of tokens in the context.
  [[nodiscard]] std::size_t length() const noexcept { return length_; }

  /// Starts a new context made of `prompt` (may be empty only if the drafter supports it; throws otherwise).
  /// Throws picospec::Error for out-of-vocabulary ids or a prompt longer than the context length.
  void begin(std::span<const Token> prompt) {
    check_tokens(prompt, "Drafter::begin");
    if (prompt.empty()) throw Error("Drafter::begin: empty prompt");
    if (info_.context_length != 0 && prompt.size() > info_.context_length)
      throw Error("Drafter::begin: prompt of " + std::to_string(prompt.size()) + " tokens exceeds context length " +
                  std::to_string(info_.context_length));
    do_begin(prompt);
    context_.assign(prompt.begin(), prompt.end());
    length_ = prompt.size();
    begun_ = true;
  }

  /// Logits (vocab_size() floats) for the position length(), i.e. the token that would follow the context.
  /// Computed lazily (at most one model evaluation per appended token) and cached until the context changes.
  [[nodiscard]] std::span<const float> next_logits() {
    if (!begun_) throw Error("Drafter::next_logits: begin() not called");
    auto row = do_next_logits();
    if (row.size() != info_.vocab_size)
      throw Error("Drafter::next_logits: backend returned " + std::to_string(row.size()) + " logits, vocab is " +
                  std::to_string(info_.vocab_size));
    return row;
  }

  /// Appends one token to the context (evaluation may be deferred until next_logits()).
  void append(Token t) {
    if (!begun_) throw Error("Drafter::append: begin() not called");
    const Token one[1] = {t};
    check_tokens(one, "Drafter::append");
    if (info_.context_length != 0 && length_ + 1 > info_.context_length)
      throw Error("Drafter::append: context length " + std::to_string(info_.context_length) + " exceeded");
    do_append(t);
    context_.push_back(t);
    ++length_;
  }

  /// One branch of the context: its first `base` tokens followed by `tail`.
  using Branch = CausalLM::Branch;

  /// Multi-branch drafting: next_logits() and, in the same evaluation where the backend can batch, the
  /// next-token logits after each branch (row i of `out` for branches[i]; 1 <= base <= length(), tail
  /// non-empty). The context is unchanged. LmDrafter batches through CausalLM::forward_with_branches when the
  /// model offers it (one forward for the main token and every branch) and otherwise forwards each branch after
  /// truncating to its base; the default here rolls the context back, appends, reads and restores it (exact for
  /// any deterministic drafter, one evaluation per branch). Throws Error on bad bases, tails or ids.
  [[nodiscard]] std::span<const float> next_logits_with_branches(std::span<const Branch> branches, LogitRows& out) {
    if (!begun_) throw Error("Drafter::next_logits_with_branches: begin() not called");
    for (const Branch& b : branches) {
      if (b.base == 0 || b.base > length_ || b.tail.empty())
        throw Error("Drafter::next_logits_with_branches: base " + std::to_string(b.base) + " outside [1, " +
                    std::to_string(length_) + "] or empty tail");
      check_tokens(b.tail, "Drafter::next_logits_with_branches");
      if (info_.context_length != 0 && b.base + b.tail.size() > info_.context_length)
        throw Error("Drafter::next_logits_with_branches: context length exceeded");
    }
    auto row = do_next_logits_with_branches(branches, out);
    if (row.size() != info_.vocab_size || out.rows() != branches.size() || out.vocab() != info_.vocab_size)
      throw Error("Drafter::next_logits_with_branches: backend returned rows of the wrong shape");
    return row;
  }

  /// Rolls the context back to its first `n` tokens (1 <= n <= length()).
  void rollback(std::size_t n) {
    if (!begun_) throw Error("Drafter::rollback: begin() not called");
    if (n > length_ || n == 0)
      throw Error("Drafter::rollback: " + std::to_string(n) + " not in [1, " + std::to_string(length_) + "]");
    if (n == length_) return;
    do_rollback(n);
    context_.resize(n);
    length_ = n;
  }

 protected:
  explicit Drafter(ModelInfo info) : info_(std::move(info)) {}

  virtual void do_begin(std::span<const Token> prompt) = 0;
  virtual std::span<const float> do_next_logits() = 0;
  virtual void do_append(Token t) = 0;
  virtual void do_rollback(std::size_t n) = 0;
  /// Default multi-branch evaluation (see next_logits_with_branches): per branch, roll back to its base,
  /// append its tail, read the row, roll back and re-append the context.
  virtual std::span<const float> do_next_logits_with_branches(std::span<const Branch> branches, LogitRows& out) {
    out.resize(branches.size(), info_.vocab_size);
    for (std::size_t i = 0; i < branches.size(); ++i) {
      const Branch& b = branches[i];
      if (b.base < length_) do_rollback(b.base);
      for (Token t : b.tail) do_append(t);
      const auto row = do_next_logits();
      std::copy(row.begin(), row.end(), out.row(i).begin());
      do_rollback(b.base);
      for (std::size_t k = b.base; k < length_; ++k) do_append(context_[k]);
    }
    return do_next_logits();
  }
  /// The context's tokens (maintained by the public methods).
  [[nodiscard]] std::span<const Token> context() const noexcept { return context_; }

  ModelInfo info_;

 private:
  void check_tokens(std::span<const Token> tokens, const char* where) const {
    detail::check_token_ids(tokens, info_.vocab_size, where);
  }

  std::vector<Token> context_;
  std::size_t length_ = 0;
  bool begun_ = false;
};

}  // namespace picospec
