#pragma once
// Verifier conformance suite: reusable checks that every Verifier implementation must pass.
//
// Installed with the library; needs Catch2 v2 (<catch2/catch.hpp>) in the including program, nothing else.
// Usage (inside a Catch2 TEST_CASE):  picospec::testing::check_verifier_conformance(factory, prompt);
// `factory` returns fresh, independent verifiers of the same model. Rows must match exactly when the model
// declares batch_invariant, else within `tol`.
// What it would catch: an off-by-one between score() rows and positions (the pending-row convention), a
// rollback that leaves the wrong pending row, a KV cache that is not truncated, chunk-size dependence.

#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <vector>

#include "picospec/testing/drafter_conformance.hpp"  // require_rows_match, copy_row
#include "picospec/verifier.hpp"

namespace picospec::testing {

using VerifierFactory = std::function<std::unique_ptr<Verifier>()>;

inline std::vector<float> reference_row(const VerifierFactory& factory, const std::vector<Token>& ctx) {
  auto v = factory();
  v->begin(ctx);
  return copy_row(v->pending_logits());
}

inline void check_verifier_conformance(const VerifierFactory& factory, std::vector<Token> prompt,
                                       float tol = 1e-4f) {
  auto ver = factory();
  REQUIRE(ver);
  const ModelInfo info = ver->info();
  const bool exact = info.batch_invariant;
  const auto vs = static_cast<Token>(info.vocab_size);
  LogitRows rows;

  REQUIRE_THROWS_AS(ver->pending_logits(), Error);
  REQUIRE_THROWS_AS(ver->score(std::vector<Token>{0}, rows), Error);
  REQUIRE_THROWS_AS(ver->begin(std::vector<Token>{}), Error);
  REQUIRE_THROWS_AS(ver->begin(std::vector<Token>{vs}), Error);

  ver->begin(prompt);
  REQUIRE(ver->length() == prompt.size());
  const auto pend0 = copy_row(ver->pending_logits());
  REQUIRE(pend0.size() == info.vocab_size);

  // score(empty) = just the pending row.
  ver->score(std::vector<Token>{}, rows);
  REQUIRE(rows.rows() == 1);
  require_rows_match(rows.row(0), pend0, true, 0.0f);

  REQUIRE_THROWS_AS(ver->score(std::vector<Token>{1, vs}, rows), Error);
  REQUIRE(ver->length() == prompt.size());
  REQUIRE_THROWS_AS(ver->rollback(prompt.size() + 1), Error);
  REQUIRE_THROWS_AS(ver->rollback(0), Error);

  // Score a 4-token chunk: rows follow the pending-row convention.
  const std::vector<Token> chunk{static_cast<Token>(5 % vs), static_cast<Token>(11 % vs),
                                 static_cast<Token>(2 % vs), static_cast<Token>(17 % vs)};
  ver->score(chunk, rows);
  REQUIRE(rows.rows() == chunk.size() + 1);
  REQUIRE(ver->length() == prompt.size() + chunk.size());
  require_rows_match(rows.row(0), pend0, exact, tol);
  std::vector<std::vector<float>> expect{pend0};
  for (std::size_t i = 1; i <= chunk.size(); ++i) {
    std::vector<Token> ctx = prompt;
    ctx.insert(ctx.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(i));
    expect.push_back(reference_row(factory, ctx));
    require_rows_match(rows.row(i), expect.back(), exact, tol);
  }
  require_rows_match(ver->pending_logits(), expect.back(), exact, tol);

  // Rollback into the chunk, then further back, then forward again in a different chunking.
  ver->rollback(prompt.size() + 2);
  REQUIRE(ver->length() == prompt.size() + 2);
  require_rows_match(ver->pending_logits(), expect[2], exact, tol);
  ver->rollback(prompt.size());
  require_rows_match(ver->pending_logits(), expect[0], exact, tol);
  ver->score(std::span<const Token>(chunk).first(1), rows);
  require_rows_match(rows.row(1), expect[1], exact, tol);
  ver->score(std::span<const Token>(chunk).subspan(1), rows);
  REQUIRE(rows.rows() == 4);
  for (std::size_t i = 0; i < 4; ++i) require_rows_match(rows.row(i), expect[i + 1], exact, tol);

  // Rollback past the last scored chunk (the backend must recompute).
  ver->rollback(prompt.size() + 1);
  ver->rollback(prompt.size() - (prompt.size() > 1 ? 1 : 0));
  {
    std::vector<Token> ctx(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(ver->length()));
    require_rows_match(ver->pending_logits(), reference_row(factory, ctx), exact, tol);
  }
  // Diverge after a rollback: a correction then a new chunk.
  ver->rollback(ver->length());
  {
    const std::size_t base = ver->length();
    const std::vector<Token> alt{static_cast<Token>(9 % vs), static_cast<Token>(4 % vs)};
    ver->score(alt, rows);
    std::vector<Token> ctx(prompt.begin(), prompt.begin() + static_cast<std::ptrdiff_t>(base));
    ctx.push_back(alt[0]);
    require_rows_match(rows.row(1), reference_row(factory, ctx), exact, tol);
    ctx.push_back(alt[1]);
    require_rows_match(rows.row(2), reference_row(factory, ctx), exact, tol);
  }

  // begin() again starts over.
  ver->begin(prompt);
  require_rows_match(ver->pending_logits(), pend0, exact, tol);
}

}  // namespace picospec::testing
