#pragma once
// Implementation detail: one-pass top-K selection over a dense float row. Include a public header instead.
//
// The row is scanned in blocks of 32; a block is skipped when no entry beats the current threshold (the K-th
// best value so far), a test the compiler vectorizes. Entries that beat it go through a size-K heap, which on
// typical (unsorted) rows happens O(K log(V/K)) times, so the whole selection costs about one pass over the row.
// Worst case (ascending input): O(V log K).

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "picospec/types.hpp"

namespace picospec::detail {

struct ValueId {
  float value;
  Token id;
};

/// Ranking: larger value first, ties -> lower id first. Total order on non-NaN values.
template <class E>
inline bool ranks_before(const E& a, const E& b) noexcept {
  return a.value > b.value || (a.value == b.value && a.id < b.id);
}

/// Selects the (up to) k best entries of x[0..n) with value > `floor`, into `out` sorted best-first.
/// Every entry must satisfy x >= lowest_ok (so NaN is always rejected) and selected entries must be finite;
/// otherwise throws Error with `what` in the message. lowest_ok must be 0 or -inf.
/// E is any aggregate {float value; Token id;}.
template <class E>
inline void select_top_k(const float* x, std::size_t n, std::size_t k, float floor, float lowest_ok,
                         std::vector<E>& out, const char* what) {
  out.clear();
  if (k == 0 || n == 0) return;
  if (n > static_cast<std::size_t>(std::numeric_limits<Token>::max())) throw Error(std::string(what) + ": row too long");
  out.reserve(std::min(k, n));
  float t = floor;  // entries must be > t to be considered
  auto bad = [&](std::size_t i) {
    throw Error(std::string(what) + ": invalid value at index " + std::to_string(i) +
                (std::isnan(x[i]) ? " (NaN)" : " (out of range)"));
  };
  const auto worse_first = [](const E& a, const E& b) noexcept { return ranks_before(a, b); };
  auto consider = [&](std::size_t i) {
    const float v = x[i];
    if (!(v >= lowest_ok)) bad(i);
    if (!(v > t)) return;
    if (std::isinf(v)) bad(i);
    const E e{v, static_cast<Token>(i)};
    if (out.size() < k) {
      out.push_back(e);
      std::push_heap(out.begin(), out.end(), worse_first);  // heap top = worst kept entry
      if (out.size() == k) t = out.front().value;
    } else {
      // Scanning in ascending id order, so an equal value never beats a kept entry: strict > is exact.
      std::pop_heap(out.begin(), out.end(), worse_first);
      out.back() = e;
      std::push_heap(out.begin(), out.end(), worse_first);
      t = out.front().value;
    }
  };
  // Fast reject of a block: no entry is > t or NaN (one compare each), and, when negatives are invalid, no entry
  // has its sign bit set (an OR of the raw bits; -0.0f merely takes the slow path, where it is valid).
  const bool check_sign = lowest_ok == 0.0f;
  constexpr std::size_t kBlock = 32;
  std::size_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    const float* b = x + i;
    int hit = 0;
    std::uint32_t bits = 0;
    for (std::size_t j = 0; j < kBlock; ++j) {
      hit |= static_cast<int>(!(b[j] <= t));
      bits |= std::bit_cast<std::uint32_t>(b[j]);
    }
    if (hit == 0 && !(check_sign && (bits >> 31))) continue;
    for (std::size_t j = 0; j < kBlock; ++j) consider(i + j);
  }
  for (; i < n; ++i) consider(i);
  std::sort_heap(out.begin(), out.end(), worse_first);  // ascending under ranks_before = best first
}

}  // namespace picospec::detail
