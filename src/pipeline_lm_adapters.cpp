// LmDrafter / LmVerifier implementation (see include/picospec/lm_adapters.hpp).
#include "picospec/lm_adapters.hpp"

#include <algorithm>

namespace picospec {

// ------------------------------------------------------------------------------------------------ LmDrafter

static ModelInfo info_of(const std::unique_ptr<CausalLM>& lm, const char* who) {
  if (!lm) throw Error(std::string(who) + ": null model");
  return lm->info();
}

LmDrafter::LmDrafter(std::unique_ptr<CausalLM> lm) : Drafter(info_of(lm, "LmDrafter")), lm_(std::move(lm)) {}

void LmDrafter::do_begin(std::span<const Token> prompt) {
  lm_->reset();
  tokens_.assign(prompt.begin(), prompt.end());
  valid_ = false;
}

std::span<const float> LmDrafter::do_next_logits() {
  if (!valid_) {
    std::size_t done = lm_->length();
    if (done == tokens_.size()) {  // rolled back to here: re-evaluate the last token to get its row
      lm_->truncate(done - 1);
      done -= 1;
    }
    lm_->forward(std::span<const Token>(tokens_).subspan(done), rows_, LogitsFor::last);
    const auto last = rows_.row(0);
    logits_.assign(last.begin(), last.end());
    valid_ = true;
  }
  return logits_;
}

void LmDrafter::do_append(Token t) {
  tokens_.push_back(t);
  valid_ = false;
}

void LmDrafter::do_rollback(std::size_t n) {
  tokens_.resize(n);
  if (lm_->length() > n) lm_->truncate(n);
  valid_ = false;
}

std::span<const float> LmDrafter::do_next_logits_with_branches(std::span<const Branch> branches, LogitRows& out) {
  // Main-line tokens not yet in the KV cache (the last one again when the row must be recomputed).
  std::size_t done = lm_->length();
  if (!valid_ && done == tokens_.size()) lm_->truncate(--done);
  const auto pending = std::span<const Token>(tokens_).subspan(done);
  if (lm_->forward_with_branches(pending, rows_, branches, out)) {  // one batched evaluation
    if (!pending.empty()) {
      const auto last = rows_.row(rows_.rows() - 1);
      logits_.assign(last.begin(), last.end());
      valid_ = true;
    }
    return logits_;
  }
  // No batched form: the main row, then each branch forwarded after its base and truncated away again. Bases
  // in descending order, so the cache only shrinks between branches.
  (void)do_next_logits();
  out.resize(branches.size(), info_.vocab_size);
  std::vector<std::size_t> order(branches.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return branches[a].base > branches[b].base; });
  for (const std::size_t i : order) {
    const Branch& br = branches[i];
    if (lm_->length() > br.base) lm_->truncate(br.base);
    // After an earlier call the cache may hold fewer tokens than the base (the main row stays cached).
    if (lm_->length() < br.base)
      lm_->forward(std::span<const Token>(tokens_).subspan(lm_->length(), br.base - lm_->length()), rows_);
    lm_->forward(br.tail, rows_);
    const auto last = rows_.row(rows_.rows() - 1);
    std::copy(last.begin(), last.end(), out.row(i).begin());
    lm_->truncate(br.base);
  }
  return logits_;  // still valid: tokens_ did not change
}

// ----------------------------------------------------------------------------------------------- LmVerifier

LmVerifier::LmVerifier(std::unique_ptr<CausalLM> lm) : Verifier(info_of(lm, "LmVerifier")), lm_(std::move(lm)) {}

void LmVerifier::do_begin(std::span<const Token> prompt) {
  lm_->reset();
  tokens_.assign(prompt.begin(), prompt.end());
  lm_->forward(prompt, rows_, LogitsFor::last);
  const auto last = rows_.row(0);
  pending_.assign(last.begin(), last.end());
  cache_valid_ = false;
}

std::span<const float> LmVerifier::do_pending_logits() const { return pending_; }

void LmVerifier::do_score(std::span<const Token> chunk, LogitRows& out) {
  const auto r0 = out.row(0);
  std::copy(pending_.begin(), pending_.end(), r0.begin());
  if (chunk.empty()) return;
  base_ = tokens_.size();
  lm_->forward(chunk, rows_);
  after_forward(chunk, out);
}

// rows_ holds the forward() rows of `chunk` (already appended to lm_): record them as score() does.
void LmVerifier::after_forward(std::span<const Token> chunk, LogitRows& out) {
  tokens_.insert(tokens_.end(), chunk.begin(), chunk.end());
  for (std::size_t i = 0; i < chunk.size(); ++i) {
    const auto src = rows_.row(i);
    std::copy(src.begin(), src.end(), out.row(i + 1).begin());
  }
  row0_.swap(pending_);
  const auto last = rows_.row(chunk.size() - 1);
  pending_.assign(last.begin(), last.end());
  cache_valid_ = true;
}

const void* LmVerifier::do_batch_key() const noexcept { return lm_->batch_key(); }

void LmVerifier::do_score_batch(std::span<const ScoreItem> items) {
  // Every verifier here shares this one's batch key (its model's); only LmVerifiers are batched here.
  for (const ScoreItem& it : items)
    if (dynamic_cast<LmVerifier*>(it.verifier) == nullptr) return Verifier::do_score_batch(items);
  std::vector<CausalLM::BatchItem> lms;
  lms.reserve(items.size());
  for (const ScoreItem& it : items) {
    auto& v = static_cast<LmVerifier&>(*it.verifier);
    const auto r0 = it.out->row(0);
    std::copy(v.pending_.begin(), v.pending_.end(), r0.begin());
    if (it.chunk.empty()) continue;
    v.base_ = v.tokens_.size();
    lms.push_back({v.lm_.get(), it.chunk, &v.rows_});
  }
  CausalLM::forward_batch(lms);
  for (const ScoreItem& it : items)
    if (!it.chunk.empty()) static_cast<LmVerifier&>(*it.verifier).after_forward(it.chunk, *it.out);
}

void LmVerifier::do_rollback(std::size_t n) {
  tokens_.resize(n);
  lm_->truncate(n);
  if (cache_valid_ && n >= base_ && n <= base_ + rows_.rows()) {
    if (n == base_) {
      pending_ = row0_;
    } else {
      const auto src = rows_.row(n - base_ - 1);
      pending_.assign(src.begin(), src.end());
    }
    return;  // the cached rows still describe every position <= n, so the cache stays valid
  }
  cache_valid_ = false;
  recompute_pending();
}

void LmVerifier::recompute_pending() {
  const std::size_t n = tokens_.size();
  lm_->truncate(n - 1);
  lm_->forward(std::span<const Token>(tokens_).subspan(n - 1), rows_, LogitsFor::last);
  const auto last = rows_.row(0);
  pending_.assign(last.begin(), last.end());
}

}  // namespace picospec
