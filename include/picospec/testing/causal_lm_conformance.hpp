#pragma once
// CausalLM conformance suite: reusable checks that every model runtime implementing CausalLM must pass.
//
// Installed with the library; needs Catch2 v2 (<catch2/catch.hpp>) in the including program, nothing else.
// Usage (inside a Catch2 TEST_CASE):  picospec::testing::check_causal_lm_conformance(factory, prompt);
// `factory` returns fresh, independent models (same weights, empty context). `prompt` holds at least 2 valid ids;
// the model must have room for prompt.size() + 6 tokens. Rows must match exactly when info().batch_invariant,
// else within `tol` (absolute, on logits).
// What it would catch: row i not being the logits after token i (off by one), a KV cache that truncate() does not
// really roll back, rows that depend on how the tokens were batched, NaN or +inf logits, a forward() that changes
// the context when it throws.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <vector>

#include "picospec/causal_lm.hpp"
#include "picospec/testing/drafter_conformance.hpp"  // require_rows_match, copy_row

namespace picospec::testing {

using CausalLMFactory = std::function<std::unique_ptr<CausalLM>()>;

/// Rows of a fresh model fed `ctx` one token at a time (the reference every chunking must reproduce).
inline std::vector<std::vector<float>> one_by_one_rows(const CausalLMFactory& factory, const std::vector<Token>& ctx) {
  auto m = factory();
  LogitRows rows;
  std::vector<std::vector<float>> out;
  for (Token t : ctx) {
    m->forward(std::vector<Token>{t}, rows);
    REQUIRE(rows.rows() == 1);
    out.push_back(copy_row(rows.row(0)));
  }
  return out;
}

inline void check_causal_lm_conformance(const CausalLMFactory& factory, std::vector<Token> prompt,
                                        float tol = 1e-4f) {
  REQUIRE(prompt.size() >= 2);
  auto m = factory();
  REQUIRE(m);
  const ModelInfo info = m->info();
  REQUIRE(info.vocab_size >= 2);
  REQUIRE((info.context_length == 0 || info.context_length >= prompt.size() + 6));
  const bool exact = info.batch_invariant;
  const auto v = static_cast<Token>(info.vocab_size);
  LogitRows rows;

  // A fresh model is empty; forward(empty) is a no-op that yields no rows.
  REQUIRE(m->length() == 0);
  m->forward(std::vector<Token>{}, rows);
  REQUIRE(rows.rows() == 0);
  REQUIRE(m->length() == 0);

  // Misuse is reported, not UB, and leaves the context alone.
  REQUIRE_THROWS_AS(m->forward(std::vector<Token>{0, v}, rows), Error);
  REQUIRE_THROWS_AS(m->forward(std::vector<Token>{-1}, rows), Error);
  REQUIRE(m->length() == 0);
  REQUIRE_THROWS_AS(m->truncate(1), Error);
  if (info.context_length != 0 && info.context_length < (std::size_t{1} << 24)) {
    REQUIRE_THROWS_AS(m->forward(std::vector<Token>(info.context_length + 1, 0), rows), Error);
    REQUIRE(m->length() == 0);
  }

  // The whole prompt in one chunk: one row per token, vocab wide, no NaN, no +inf, something finite.
  m->forward(prompt, rows);
  REQUIRE(m->length() == prompt.size());
  REQUIRE(rows.rows() == prompt.size());
  REQUIRE(rows.vocab() == info.vocab_size);
  for (std::size_t i = 0; i < rows.rows(); ++i) {
    bool any_finite = false;
    for (float x : rows.row(i)) {
      REQUIRE(!std::isnan(x));
      REQUIRE(x != std::numeric_limits<float>::infinity());
      any_finite = any_finite || std::isfinite(x);
    }
    REQUIRE(any_finite);
  }

  // Row i is the next-token logits after prompt[0..i]: the same as feeding the tokens one at a time.
  std::vector<Token> ctx = prompt;
  std::vector<Token> extra;
  for (int i = 0; i < 6; ++i) extra.push_back(static_cast<Token>((5 * i + 2) % v));
  ctx.insert(ctx.end(), extra.begin(), extra.end());
  const auto ref = one_by_one_rows(factory, ctx);
  for (std::size_t i = 0; i < prompt.size(); ++i) require_rows_match(rows.row(i), ref[i], exact, tol);

  // Continue in uneven chunks (2 + 4).
  m->forward(std::span<const Token>(extra).first(2), rows);
  REQUIRE(rows.rows() == 2);
  for (std::size_t i = 0; i < 2; ++i) require_rows_match(rows.row(i), ref[prompt.size() + i], exact, tol);
  m->forward(std::span<const Token>(extra).subspan(2), rows);
  REQUIRE(rows.rows() == 4);
  REQUIRE(m->length() == ctx.size());
  for (std::size_t i = 0; i < 4; ++i) require_rows_match(rows.row(i), ref[prompt.size() + 2 + i], exact, tol);

  // truncate() past the end throws and changes nothing.
  REQUIRE_THROWS_AS(m->truncate(ctx.size() + 1), Error);
  REQUIRE(m->length() == ctx.size());

  // Truncate into the chunk and re-evaluate: the same rows (the KV cache really rolled back).
  m->truncate(prompt.size() + 1);
  REQUIRE(m->length() == prompt.size() + 1);
  m->forward(std::span<const Token>(extra).subspan(1), rows);
  REQUIRE(rows.rows() == 5);
  for (std::size_t i = 0; i < 5; ++i) require_rows_match(rows.row(i), ref[prompt.size() + 1 + i], exact, tol);

  // Truncate and diverge: rows follow the new context, not the old cache.
  m->truncate(prompt.size() - 1);
  std::vector<Token> alt(prompt.begin(), prompt.end() - 1);
  const std::vector<Token> tail{static_cast<Token>((prompt.back() + 1) % v), static_cast<Token>(3 % v)};
  alt.insert(alt.end(), tail.begin(), tail.end());
  m->forward(tail, rows);
  REQUIRE(m->length() == alt.size());
  const auto alt_ref = one_by_one_rows(factory, alt);
  require_rows_match(rows.row(0), alt_ref[alt.size() - 2], exact, tol);
  require_rows_match(rows.row(1), alt_ref[alt.size() - 1], exact, tol);

  // reset() starts over.
  m->reset();
  REQUIRE(m->length() == 0);
  m->forward(prompt, rows);
  for (std::size_t i = 0; i < prompt.size(); ++i) require_rows_match(rows.row(i), ref[i], exact, tol);
}

}  // namespace picospec::testing
