#pragma once
// Drafter conformance suite: reusable checks that every Drafter implementation must pass.
//
// Installed with the library; needs Catch2 v2 (<catch2/catch.hpp>) in the including program, nothing else.
// Usage (inside a Catch2 TEST_CASE):  picospec::testing::check_drafter_conformance(factory, prompt);
// `factory` returns fresh, independent drafters of the same model. Rows must match exactly when the model
// declares batch_invariant, else within `tol` (absolute, on logits).
// What it would catch: a drafter that caches stale logits after append/rollback, evaluates a token twice,
// forgets to truncate its KV cache, or depends on how tokens were batched.

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <vector>

#include "picospec/drafter.hpp"

namespace picospec::testing {

using DrafterFactory = std::function<std::unique_ptr<Drafter>()>;

inline void require_rows_match(std::span<const float> a, std::span<const float> b, bool exact, float tol) {
  REQUIRE(a.size() == b.size());
  std::size_t bad = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const bool same = exact ? (a[i] == b[i] || (std::isinf(a[i]) && a[i] == b[i]))
                            : (a[i] == b[i] || std::fabs(a[i] - b[i]) <= tol);
    if (!same) ++bad;
  }
  REQUIRE(bad == 0);
}

inline std::vector<float> copy_row(std::span<const float> r) { return {r.begin(), r.end()}; }

inline void check_drafter_conformance(const DrafterFactory& factory, std::vector<Token> prompt, float tol = 1e-4f) {
  auto d = factory();
  REQUIRE(d);
  const ModelInfo info = d->info();
  REQUIRE(info.vocab_size >= 2);
  const bool exact = info.batch_invariant;
  const auto v = static_cast<Token>(info.vocab_size);

  // Misuse is reported, not UB.
  REQUIRE_THROWS_AS(d->next_logits(), Error);
  REQUIRE_THROWS_AS(d->append(0), Error);
  REQUIRE_THROWS_AS(d->begin(std::vector<Token>{}), Error);
  REQUIRE_THROWS_AS(d->begin(std::vector<Token>{v}), Error);
  REQUIRE_THROWS_AS(d->begin(std::vector<Token>{-1}), Error);

  d->begin(prompt);
  REQUIRE(d->length() == prompt.size());
  const auto r0 = copy_row(d->next_logits());
  REQUIRE(r0.size() == info.vocab_size);
  bool any_finite = false;
  for (float x : r0) {
    REQUIRE(!std::isnan(x));
    REQUIRE(x != std::numeric_limits<float>::infinity());
    any_finite = any_finite || std::isfinite(x);
  }
  REQUIRE(any_finite);
  require_rows_match(r0, d->next_logits(), true, 0.0f);  // cached, identical

  REQUIRE_THROWS_AS(d->append(v), Error);
  REQUIRE_THROWS_AS(d->rollback(prompt.size() + 1), Error);
  REQUIRE_THROWS_AS(d->rollback(0), Error);
  REQUIRE(d->length() == prompt.size());

  // Incremental: append 6 tokens one by one, keep each row.
  std::vector<Token> extra;
  std::vector<std::vector<float>> rows{r0};
  for (int i = 0; i < 6; ++i) {
    const Token t = static_cast<Token>((7 * i + 3) % v);
    extra.push_back(t);
    d->append(t);
    REQUIRE(d->length() == prompt.size() + extra.size());
    rows.push_back(copy_row(d->next_logits()));
  }

  // Batched: a fresh drafter begun on the whole context gives the same last row.
  {
    auto fresh = factory();
    std::vector<Token> all = prompt;
    all.insert(all.end(), extra.begin(), extra.end());
    fresh->begin(all);
    require_rows_match(rows.back(), fresh->next_logits(), exact, tol);
  }
  // Lazy batching: append several tokens without asking, then ask once.
  {
    auto lazy = factory();
    lazy->begin(prompt);
    for (Token t : extra) lazy->append(t);
    require_rows_match(rows.back(), lazy->next_logits(), exact, tol);
  }

  // Rollback restores earlier rows.
  d->rollback(prompt.size() + 3);
  REQUIRE(d->length() == prompt.size() + 3);
  require_rows_match(rows[3], d->next_logits(), exact, tol);
  d->rollback(prompt.size());
  require_rows_match(rows[0], d->next_logits(), exact, tol);
  // ... and rollback without asking for logits in between, then diverge.
  d->append(extra[0]);
  d->append(extra[1]);
  d->rollback(prompt.size() + 1);
  const Token other = static_cast<Token>((extra[1] + 1) % v);
  d->append(other);
  {
    auto fresh = factory();
    std::vector<Token> ctx = prompt;
    ctx.push_back(extra[0]);
    ctx.push_back(other);
    fresh->begin(ctx);
    require_rows_match(fresh->next_logits(), d->next_logits(), exact, tol);
  }

  // begin() again starts over.
  d->begin(prompt);
  REQUIRE(d->length() == prompt.size());
  require_rows_match(rows[0], d->next_logits(), exact, tol);

  // Multi-branch drafting: each branch's row equals a fresh drafter's row on base prefix + tail; the main row
  // and the context are unchanged (with the main tokens evaluated lazily or already cached).
  std::vector<Token> all = prompt;
  all.insert(all.end(), extra.begin(), extra.end());
  for (const bool cached : {false, true}) {
    auto b = factory();
    b->begin(prompt);
    for (Token t : extra) b->append(t);
    if (cached) (void)b->next_logits();
    const std::vector<std::vector<Token>> tails = {{static_cast<Token>(1 % v)},
                                                   {static_cast<Token>(2 % v), static_cast<Token>(3 % v)},
                                                   {static_cast<Token>(v - 1)},
                                                   {static_cast<Token>(4 % v), static_cast<Token>(5 % v), 0}};
    const std::vector<std::size_t> bases = {prompt.size(), prompt.size() + 2, all.size(), prompt.size() + 1};
    std::vector<Drafter::Branch> q;
    for (std::size_t i = 0; i < tails.size(); ++i) q.push_back(Drafter::Branch{bases[i], tails[i]});
    LogitRows out;
    const auto main = copy_row(b->next_logits_with_branches(q, out));
    require_rows_match(rows.back(), main, exact, tol);
    REQUIRE(out.rows() == q.size());
    for (std::size_t i = 0; i < q.size(); ++i) {
      auto fresh = factory();
      std::vector<Token> ctx(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(bases[i]));
      ctx.insert(ctx.end(), tails[i].begin(), tails[i].end());
      fresh->begin(ctx);
      require_rows_match(fresh->next_logits(), out.row(i), exact, tol);
    }
    REQUIRE(b->length() == all.size());
    require_rows_match(rows.back(), b->next_logits(), exact, tol);
    {  // again, without appending in between (a backend may have left its cache shorter than the context)
      LogitRows again;
      require_rows_match(rows.back(), b->next_logits_with_branches(q, again), exact, tol);
      for (std::size_t i = 0; i < q.size(); ++i) require_rows_match(out.row(i), again.row(i), exact, tol);
    }
    b->append(other);
    auto fresh = factory();
    std::vector<Token> ctx = all;
    ctx.push_back(other);
    fresh->begin(ctx);
    require_rows_match(fresh->next_logits(), b->next_logits(), exact, tol);
    const std::vector<Token> one{0};
    const Drafter::Branch bad_base[1] = {Drafter::Branch{0, one}};
    REQUIRE_THROWS_AS(b->next_logits_with_branches(bad_base, out), Error);
    const Drafter::Branch too_far[1] = {Drafter::Branch{b->length() + 1, one}};
    REQUIRE_THROWS_AS(b->next_logits_with_branches(too_far, out), Error);
    const Drafter::Branch empty_tail[1] = {Drafter::Branch{prompt.size(), {}}};
    REQUIRE_THROWS_AS(b->next_logits_with_branches(empty_tail, out), Error);
  }
}

}  // namespace picospec::testing
