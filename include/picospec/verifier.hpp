#pragma once
// Verifier: the cloud-side plug-in interface (the large model that checks draft tokens).
//
// A Verifier holds a context of length() tokens and always knows the target logits at the next position
// (the "pending row"). score(chunk) appends the chunk and returns chunk.size() + 1 rows:
//   row 0 = logits at the position of chunk[0] (the pending row before the call),
//   row i = logits after chunk[0..i-1]            (row chunk.size() is the new pending row).
// So the first token of every chunk is tested with a distribution that is already available: there is no
// separate bonus token, and a fully accepted chunk leaves the next position pending (docs/pipeline.md).
// rollback(n) cuts the context to n tokens and restores the pending row for position n (recomputing it only
// when the backend cannot restore it from what it kept).
//
// Thread-safety: one thread at a time per instance (a CloudServer session is served by one worker at a time).
// Blocking: begin()/score()/rollback() may take a model evaluation. Ownership: the verifier owns its KV cache.
//
// Public non-virtual methods validate arguments and keep length() consistent, then call the do_* hooks.

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "picospec/causal_lm.hpp"
#include "picospec/types.hpp"

namespace picospec {

class Verifier {
 public:
  virtual ~Verifier() = default;
  Verifier(const Verifier&) = delete;
  Verifier& operator=(const Verifier&) = delete;

  [[nodiscard]] const ModelInfo& info() const noexcept { return info_; }
  [[nodiscard]] std::size_t length() const noexcept { return length_; }

  /// Prefill: the context becomes `prompt` (non-empty) and the pending row is computed.
  void begin(std::span<const Token> prompt) {
    check_tokens(prompt, "Verifier::begin");
    if (prompt.empty()) throw Error("Verifier::begin: empty prompt");
    check_room(0, prompt.size(), "Verifier::begin");
    do_begin(prompt);
    length_ = prompt.size();
    begun_ = true;
  }

  /// Logits at position length() (valid until the next non-const call).
  [[nodiscard]] std::span<const float> pending_logits() const {
    if (!begun_) throw Error("Verifier::pending_logits: begin() not called");
    return do_pending_logits();
  }

  /// Appends `chunk` (may be empty: then `out` holds just the pending row) and fills `out` with
  /// chunk.size() + 1 rows as described above.
  void score(std::span<const Token> chunk, LogitRows& out) {
    if (!begun_) throw Error("Verifier::score: begin() not called");
    check_tokens(chunk, "Verifier::score");
    check_room(length_, chunk.size(), "Verifier::score");
    out.resize(chunk.size() + 1, info_.vocab_size);
    do_score(chunk, out);
    length_ += chunk.size();
  }

  /// Why score(chunk) would throw now (not begun, bad ids, context length), or "" when it would not.
  [[nodiscard]] std::string score_problem(std::span<const Token> chunk) const {
    if (!begun_) return "Verifier::score: begin() not called";
    try {
      check_tokens(chunk, "Verifier::score");
      check_room(length_, chunk.size(), "Verifier::score");
    } catch (const Error& e) {
      return e.what();
    }
    return {};
  }

  /// One session's chunk in a multi-session evaluation (score_batch).
  struct ScoreItem {
    Verifier* verifier = nullptr;
    std::span<const Token> chunk;
    LogitRows* out = nullptr;
  };

  /// Instances returning the same non-null key can be scored together in one backend call (same weights, same
  /// device); nullptr (the default) = no batched form.
  [[nodiscard]] const void* batch_key() const noexcept { return do_batch_key(); }

  /// Exactly `item.verifier->score(item.chunk, *item.out)` for every item (distinct verifiers), with the items
  /// whose verifiers share a non-null batch_key() evaluated as one backend call (a CloudServer batches the chunks
  /// of different sessions that are ready at the same time). Every item is validated first (score_problem), so
  /// on an Error no verifier has changed.
  static void score_batch(std::span<const ScoreItem> items) {
    for (std::size_t i = 0; i < items.size(); ++i) {
      const ScoreItem& it = items[i];
      if (it.verifier == nullptr || it.out == nullptr) throw Error("Verifier::score_batch: null verifier or output");
      for (std::size_t j = 0; j < i; ++j)
        if (items[j].verifier == it.verifier) throw Error("Verifier::score_batch: a verifier appears twice");
      if (auto why = it.verifier->score_problem(it.chunk); !why.empty()) throw Error(why);
    }
    detail::for_each_batch_group(
        items, [](const ScoreItem& it) { return it.verifier->batch_key(); }, [](const ScoreItem&) { return false; },
        [](std::span<const ScoreItem> group) {
          for (const ScoreItem& g : group) g.out->resize(g.chunk.size() + 1, g.verifier->info_.vocab_size);
          if (group.size() > 1)
            group.front().verifier->do_score_batch(group);
          else
            group.front().verifier->do_score(group.front().chunk, *group.front().out);
          for (const ScoreItem& g : group) g.verifier->length_ += g.chunk.size();
        });
  }

  /// Rolls the context back to its first `n` tokens (1 <= n <= length()); the pending row becomes the logits
  /// at position n.
  void rollback(std::size_t n) {
    if (!begun_) throw Error("Verifier::rollback: begin() not called");
    if (n > length_ || n == 0)
      throw Error("Verifier::rollback: " + std::to_string(n) + " not in [1, " + std::to_string(length_) + "]");
    if (n == length_) return;
    do_rollback(n);
    length_ = n;
  }

 protected:
  explicit Verifier(ModelInfo info) : info_(std::move(info)) {}

  virtual void do_begin(std::span<const Token> prompt) = 0;
  virtual std::span<const float> do_pending_logits() const = 0;
  /// `out` is already sized to chunk.size() + 1 rows.
  virtual void do_score(std::span<const Token> chunk, LogitRows& out) = 0;
  virtual void do_rollback(std::size_t n) = 0;
  /// See batch_key(); a backend with a batched form overrides both.
  virtual const void* do_batch_key() const noexcept { return nullptr; }
  /// Called on one of `items`' verifiers with >= 2 validated items whose verifiers share its batch_key() (same
  /// dynamic type); outputs already sized. Must do exactly what do_score() on each would.
  virtual void do_score_batch(std::span<const ScoreItem> items) {
    for (const ScoreItem& it : items) it.verifier->do_score(it.chunk, *it.out);
  }

  ModelInfo info_;

 private:
  void check_tokens(std::span<const Token> tokens, const char* where) const {
    detail::check_token_ids(tokens, info_.vocab_size, where);
  }
  void check_room(std::size_t have, std::size_t add, const char* where) const {
    if (info_.context_length != 0 && have + add > info_.context_length)
      throw Error(std::string(where) + ": context length " + std::to_string(info_.context_length) + " exceeded (" +
                  std::to_string(have) + " + " + std::to_string(add) + ")");
  }

  std::size_t length_ = 0;
  bool begun_ = false;
};

}  // namespace picospec
