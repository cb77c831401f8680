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
