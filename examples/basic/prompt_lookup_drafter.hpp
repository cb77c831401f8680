#pragma once
// PromptLookupDrafter: a Drafter with no model at all. It proposes the token that followed the most recent earlier
// occurrence of the context's last `ngram` tokens (prompt-lookup decoding), as a one-hot logits row. This is the
// whole cost of a custom drafter: four small hooks. Because the EdgeSession does the sampling and the cloud does the
// acceptance test, output stays exactly the target's (greedy: token for token; sampled: in distribution).
//
// Thread-safety: one thread at a time (like every Drafter). Ownership: holds a copy of the context.

#include <algorithm>
#include <limits>
#include <vector>

#include "picospec/drafter.hpp"

namespace picospec::examples {

class PromptLookupDrafter final : public Drafter {
 public:
  /// `info` must describe the target's vocabulary (size, tokenizer fingerprint, EOS) so the cloud accepts us.
  explicit PromptLookupDrafter(ModelInfo info, std::size_t ngram = 2) : Drafter(adjust(std::move(info))), ngram_(ngram) {
    row_.assign(info_.vocab_size, -std::numeric_limits<float>::infinity());
  }

 protected:
  void do_begin(std::span<const Token> prompt) override { ctx_.assign(prompt.begin(), prompt.end()); }
  void do_append(Token t) override { ctx_.push_back(t); }
  void do_rollback(std::size_t n) override { ctx_.resize(n); }

  std::span<const float> do_next_logits() override {
    if (last_ != kNoToken) row_[static_cast<std::size_t>(last_)] = -std::numeric_limits<float>::infinity();
    last_ = propose();
    row_[static_cast<std::size_t>(last_)] = 0.0f;
    return row_;
  }

 private:
  static ModelInfo adjust(ModelInfo info) {
    info.name = "prompt-lookup";
    info.batch_invariant = true;  // no arithmetic at all
    return info;
  }

  // The token after the latest earlier match of the last `ngram_` tokens; else repeat the last token.
  Token propose() const {
    const std::size_t n = std::min(ngram_, ctx_.size());
    if (n > 0 && ctx_.size() > n) {
      const auto tail = ctx_.end() - static_cast<std::ptrdiff_t>(n);
      for (std::size_t start = ctx_.size() - n; start-- > 0;) {
        if (std::equal(tail, ctx_.end(), ctx_.begin() + static_cast<std::ptrdiff_t>(start)))
          return ctx_[start + n];
      }
    }
    return ctx_.back();
  }

  std::size_t ngram_;
  std::vector<Token> ctx_;
  std::vector<float> row_;
  Token last_ = kNoToken;
};

}  // namespace picospec::examples
