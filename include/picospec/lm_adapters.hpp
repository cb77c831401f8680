#pragma once
// LmDrafter / LmVerifier: adapt any CausalLM (causal_lm.hpp) to the Drafter / Verifier interfaces.
//
// KV rollback goes through CausalLM::truncate. LmDrafter evaluates appended tokens lazily, in one batched
// forward() when next_logits() is asked for. LmVerifier keeps the rows of its last score() so that a rollback
// into the scored chunk restores the pending row without another model call; a rollback further back costs one
// forward() of a single token.
//
// Exactness across chunkings needs a batch-invariant model (ModelInfo::batch_invariant); the adapters do not
// change that property.
//
// Thread-safety: like the interfaces, one thread at a time per instance. Ownership: each adapter owns its model.

#include <memory>
#include <span>
#include <vector>

#include "picospec/causal_lm.hpp"
#include "picospec/drafter.hpp"
#include "picospec/verifier.hpp"

namespace picospec {

class LmDrafter final : public Drafter {
 public:
  /// Throws Error if `lm` is null.
  explicit LmDrafter(std::unique_ptr<CausalLM> lm);
  [[nodiscard]] const CausalLM& model() const noexcept { return *lm_; }

 protected:
  void do_begin(std::span<const Token> prompt) override;
  std::span<const float> do_next_logits() override;
  void do_append(Token t) override;
  void do_rollback(std::size_t n) override;
  /// One CausalLM::forward_with_branches call (the pending main tokens and every branch) when the model has a
  /// batched form; otherwise the main row first, then each branch forwarded after truncating to its base and
  /// truncated again (exact for a batch-invariant model; the main context is re-extended lazily).
  std::span<const float> do_next_logits_with_branches(std::span<const Branch> branches, LogitRows& out) override;

 private:
  std::unique_ptr<CausalLM> lm_;
  std::vector<Token> tokens_;   // the whole context
  std::vector<float> logits_;   // cached next-token logits (valid_ tells)
  LogitRows rows_;
  bool valid_ = false;
};

class LmVerifier final : public Verifier {
 public:
  /// Throws Error if `lm` is null.
  explicit LmVerifier(std::unique_ptr<CausalLM> lm);
  [[nodiscard]] const CausalLM& model() const noexcept { return *lm_; }

 protected:
  void do_begin(std::span<const Token> prompt) override;
  std::span<const float> do_pending_logits() const override;
  void do_score(std::span<const Token> chunk, LogitRows& out) override;
  void do_rollback(std::size_t n) override;
  const void* do_batch_key() const noexcept override;
  void do_score_batch(std::span<const ScoreItem> items) override;

 private:
  void recompute_pending();
  void after_forward(std::span<const Token> chunk, LogitRows& out);

  std::unique_ptr<CausalLM> lm_;
  std::vector<Token> tokens_;
  std::vector<float> pending_;
  // Rows of the last score(): row0_ = pending row before it, rows_ = forward() output; base_ = context
  // length before it. cache_valid_ is false once the context moved outside [base_, base_ + rows_.rows()].
  std::vector<float> row0_;
  LogitRows rows_;
  std::size_t base_ = 0;
  bool cache_valid_ = false;
};

}  // namespace picospec
