#pragma once
// CausalLM: the small interface a model runtime implements so picospec can draft or verify with it.

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "picospec/detail/batch_groups.hpp"
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

  /// One sequence of a multi-sequence evaluation (forward_batch): `tokens` appended to `model`'s context, one
  /// logits row per token written into `out`.
  struct BatchItem {
    CausalLM* model = nullptr;
    std::span<const Token> tokens;
    LogitRows* out = nullptr;
  };

  /// Instances that return the same non-null key can be evaluated together by forward_batch() (one backend call:
  /// same weights on the same device). nullptr (the default) = no batched form.
  [[nodiscard]] const void* batch_key() const noexcept { return do_batch_key(); }

  /// Evaluates several sequences, each with its own context (KV cache): the result is exactly that of calling
  /// `item.model->forward(item.tokens, *item.out)` for every item (batch-invariant per sequence), but the items
  /// whose models share a non-null batch_key() run as one backend call. Models must be distinct; every item is
  /// validated (ids, context length) before anything runs, so on an Error no context has changed.
  static void forward_batch(std::span<const BatchItem> items) {
    for (std::size_t i = 0; i < items.size(); ++i) {
      const BatchItem& it = items[i];
      if (it.model == nullptr || it.out == nullptr) throw Error("CausalLM::forward_batch: null model or output");
      for (std::size_t j = 0; j < i; ++j)
        if (items[j].model == it.model) throw Error("CausalLM::forward_batch: a model appears twice");
      it.model->check_append(it.tokens, "CausalLM::forward_batch");
    }
    detail::for_each_batch_group(
        items, [](const BatchItem& it) { return it.model->batch_key(); },
        [](const BatchItem& it) { return it.tokens.empty(); },
        [](std::span<const BatchItem> group) {
          for (const BatchItem& g : group) g.out->resize(g.tokens.size(), g.model->info_.vocab_size);
          if (group.size() > 1) {
            group.front().model->do_forward_batch(group);
            for (const BatchItem& g : group) g.model->length_ += g.tokens.size();
          } else {
            group.front().model->forward(group.front().tokens, *group.front().out);
          }
        });
    for (const BatchItem& it : items)
      if (it.tokens.empty()) it.out->resize(0, it.model->info_.vocab_size);
  }

  /// One continuation for forward_with_branches(): the context's first `base` tokens followed by `tail`.
  struct Branch {
    std::size_t base = 0;
    std::span<const Token> tail;
  };

  /// Optional batched form used for multi-branch drafting. Appends `tokens` to the context exactly like
  /// forward(tokens, out) and, in the same evaluation, writes into `branch_out` (resized to branches.size()
  /// rows) the next-token logits after each continuation (1 <= base <= the new length, tail non-empty); the
  /// branches leave no trace in the context. Returns false and does nothing when the backend has no batched
  /// form (the default); callers then evaluate branches by forwarding and truncating (exact for a
  /// batch-invariant model). Throws Error on bad bases/tails or out-of-vocabulary ids.
  bool forward_with_branches(std::span<const Token> tokens, LogitRows& out, std::span<const Branch> branches,
                             LogitRows& branch_out) {
    detail::check_token_ids(tokens, info_.vocab_size, "CausalLM::forward_with_branches");
    for (const Branch& b : branches) {
      if (b.base == 0 || b.base > length_ + tokens.size() || b.tail.empty())
        throw Error("CausalLM::forward_with_branches: branch base " + std::to_string(b.base) +
                    " outside [1, " + std::to_string(length_ + tokens.size()) + "] or empty tail");
      detail::check_token_ids(b.tail, info_.vocab_size, "CausalLM::forward_with_branches");
    }
    if (info_.context_length != 0 && length_ + tokens.size() > info_.context_length)
      throw Error("CausalLM::forward_with_branches: context length exceeded");
    out.resize(tokens.size(), info_.vocab_size);
    branch_out.resize(branches.size(), info_.vocab_size);
    if (!do_forward_with_branches(tokens, out, branches, branch_out)) return false;
    length_ += tokens.size();
    return true;
  }

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
  /// See batch_key(). A backend with a batched multi-sequence form returns a key shared by the instances it can
  /// evaluate together (e.g. the address of their shared weights) and overrides do_forward_batch().
  virtual const void* do_batch_key() const noexcept { return nullptr; }
  /// Called on one of `items`' models with >= 2 validated, non-empty items whose models share this model's
  /// batch_key(); outputs already sized. Must append every item's tokens to its own context, exactly as
  /// do_forward() on each would. Models are accessed through the BatchItem pointers (same dynamic type).
  virtual void do_forward_batch(std::span<const BatchItem> items) {
    for (const BatchItem& it : items) it.model->do_forward(it.tokens, *it.out);
  }
  /// Optional (see forward_with_branches): return false to say "not supported" (nothing may change then).
  virtual bool do_forward_with_branches(std::span<const Token> tokens, LogitRows& out,
                                        std::span<const Branch> branches, LogitRows& branch_out) {
    (void)tokens;
    (void)out;
    (void)branches;
    (void)branch_out;
    return false;
  }

  ModelInfo info_;

 private:
  void check_append(std::span<const Token> tokens, const char* where) const {
    detail::check_token_ids(tokens, info_.vocab_size, where);
    if (info_.context_length != 0 && length_ + tokens.size() > info_.context_length)
      throw Error(std::string(where) + ": context length " + std::to_string(info_.context_length) +
                  " exceeded (" + std::to_string(length_) + " + " + std::to_string(tokens.size()) + ")");
  }

  std::size_t length_ = 0;
};

}  // namespace picospec
