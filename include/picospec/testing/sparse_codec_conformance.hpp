#pragma once
// SparseCodec conformance suite: reusable checks that every SparseCodec must pass (the contract of
// sparse_codec.hpp).
//
// Installed with the library; needs Catch2 v2 (<catch2/catch.hpp>) in the including program, nothing else.
// Usage (inside a Catch2 TEST_CASE):  picospec::testing::check_sparse_codec_conformance(codec);
// The checks run on seeded distributions (uniform, peaked, one-hot, with zeros; vocabularies 2 to 5000) and on
// seeded random bytes:
//  * encode appends (never touches what `out` held), is deterministic, agrees with encoded_size(); it throws
//    Error for empty rows, NaN, +inf, negative entries and rows with no positive entry;
//  * decode(encode(p)) is a valid sparse distribution over p's support (ids strictly ascending and < V, values
//    positive and finite, normalized to 1 within 1e-5), equal to round_trip(p); a lossless codec returns every
//    positive entry with value p_i exactly (raw) and p_i / sum within 1e-6 relative (normalized); a lossy one
//    keeps at least one most probable token;
//  * decode treats bytes as untrusted: a trailing byte or an id >= vocab_size throws DecodeError, vocab_size 0
//    throws Error, and every prefix of a valid frame and 3000 random byte strings either throw DecodeError or
//    decode to a valid distribution (never another exception; run it under ASan to catch overreads);
//  * encode and decode give identical results from two threads at once.

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "picospec/sparse_codec.hpp"

namespace picospec::testing {

namespace detail {

/// Valid sparse distribution over `vocab` (ids strictly ascending and in range, values positive and finite).
inline bool valid_sparse(const SparseDist& d, std::uint32_t vocab) {
  if (d.vocab_size != vocab || d.ids.empty() || d.ids.size() != d.probs.size()) return false;
  for (std::size_t i = 0; i < d.ids.size(); ++i) {
    if (d.ids[i] < 0 || static_cast<std::uint32_t>(d.ids[i]) >= vocab) return false;
    if (i > 0 && d.ids[i] <= d.ids[i - 1]) return false;
    if (!(d.probs[i] > 0.0f) || !std::isfinite(d.probs[i])) return false;
  }
  return true;
}

/// Decodes untrusted bytes: either DecodeError or a valid distribution. Returns false on anything else.
inline bool decodes_safely(const SparseCodec& codec, std::span<const std::uint8_t> bytes, std::uint32_t vocab) {
  try {
    return valid_sparse(codec.decode(bytes, vocab, Normalization::raw), vocab);
  } catch (const DecodeError&) {
    return true;
  } catch (...) {
    return false;
  }
}

/// Seeded test rows: uniform, peaked (softmax of scaled Gaussian logits), one-hot, and rows with zeros.
inline std::vector<std::vector<float>> codec_test_rows(std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  auto unit = [&] { return static_cast<double>(gen() >> 11) * 0x1.0p-53; };  // portable, unlike std distributions
  auto gauss = [&] { return std::sqrt(-2.0 * std::log(1.0 - unit())) * std::cos(6.283185307179586 * unit()); };
  std::vector<std::vector<float>> rows;
  for (std::uint32_t vocab : {2u, 7u, 300u, 5000u}) {
    rows.emplace_back(vocab, 1.0f / static_cast<float>(vocab));  // uniform
    for (double scale : {1.0, 4.0}) {                            // peaked
      std::vector<double> l(vocab);
      double mx = -1e300, sum = 0.0;
      for (auto& x : l) mx = std::max(mx, x = scale * gauss());
      for (auto& x : l) sum += (x = std::exp(x - mx));
      std::vector<float> p(vocab);
      for (std::size_t i = 0; i < vocab; ++i) p[i] = static_cast<float>(l[i] / sum);
      rows.push_back(p);
    }
    std::vector<float> one(vocab, 0.0f);  // one-hot at the last id
    one[vocab - 1] = 1.0f;
    rows.push_back(one);
    std::vector<float> holes(vocab, 0.0f);  // a third of the ids zero, unnormalized
    for (std::size_t i = 0; i < vocab; ++i)
      if (i % 3 != 1) holes[i] = static_cast<float>(0.5 + unit());
    holes[vocab - 1] = 3.0f;
    rows.push_back(holes);
  }
  return rows;
}

}  // namespace detail

inline void check_sparse_codec_conformance(const SparseCodec& codec, std::uint64_t seed = 1) {
  REQUIRE(!codec.name().empty());
  std::vector<std::uint8_t> out;

  // Bad rows are refused with Error.
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_AS(codec.encode(std::vector<float>{}, out), Error);
  REQUIRE_THROWS_AS(codec.encode(std::vector<float>{0.5f, nan, 0.5f}, out), Error);
  REQUIRE_THROWS_AS(codec.encode(std::vector<float>{0.5f, inf, 0.5f}, out), Error);
  REQUIRE_THROWS_AS(codec.encode(std::vector<float>{0.5f, -0.25f, 0.75f}, out), Error);
  REQUIRE_THROWS_AS(codec.encode(std::vector<float>{0.0f, 0.0f, 0.0f}, out), Error);
  REQUIRE_THROWS_AS((void)codec.decode(std::vector<std::uint8_t>{0, 0, 0, 0}, 0), Error);

  for (const auto& p : detail::codec_test_rows(seed)) {
    const auto vocab = static_cast<std::uint32_t>(p.size());
    INFO(codec.name() << ", vocabulary " << vocab);
    std::vector<std::uint8_t> bytes{0xAB, 0xCD};  // encode appends
    codec.encode(p, bytes);
    REQUIRE(bytes.size() > 2);
    REQUIRE(bytes[0] == 0xAB);
    REQUIRE(bytes[1] == 0xCD);
    bytes.erase(bytes.begin(), bytes.begin() + 2);
    REQUIRE(codec.encoded_size(p) == bytes.size());
    std::vector<std::uint8_t> again;
    codec.encode(p, again);
    REQUIRE(again == bytes);  // deterministic

    const SparseDist raw = codec.decode(bytes, vocab, Normalization::raw);
    const SparseDist d = codec.decode(bytes, vocab);
    REQUIRE(detail::valid_sparse(raw, vocab));
    REQUIRE(detail::valid_sparse(d, vocab));
    REQUIRE(d.ids == raw.ids);
    double total = 0.0, p_total = 0.0, p_max = 0.0;
    for (float x : d.probs) total += x;
    for (float x : p) p_total += x, p_max = std::max(p_max, static_cast<double>(x));
    REQUIRE(std::fabs(total - 1.0) <= 1e-5);
    for (Token id : d.ids) REQUIRE(p[static_cast<std::size_t>(id)] > 0.0f);  // within p's support
    const SparseDist rt = codec.round_trip(p);
    REQUIRE(rt.ids == d.ids);
    REQUIRE(rt.probs == d.probs);
    if (!codec.lossy()) {
      std::size_t positive = 0;
      for (float x : p) positive += x > 0.0f;
      REQUIRE(d.ids.size() == positive);
      for (std::size_t i = 0; i < d.ids.size(); ++i) {
        const double want = p[static_cast<std::size_t>(d.ids[i])];
        REQUIRE(raw.probs[i] == static_cast<float>(want));
        REQUIRE(std::fabs(d.probs[i] - want / p_total) <= 1e-6 * (want / p_total));
      }
    } else {
      bool kept_a_max = false;
      for (Token id : d.ids) kept_a_max = kept_a_max || p[static_cast<std::size_t>(id)] == p_max;
      REQUIRE(kept_a_max);
    }

    // Untrusted bytes.
    std::vector<std::uint8_t> longer = bytes;
    longer.push_back(0);
    REQUIRE_THROWS_AS((void)codec.decode(longer, vocab), DecodeError);
    const auto max_id = static_cast<std::uint32_t>(d.ids.back());
    if (max_id >= 1) REQUIRE_THROWS_AS((void)codec.decode(bytes, max_id), DecodeError);
    const std::size_t step = std::max<std::size_t>(1, bytes.size() / 64);
    for (std::size_t n = 0; n < bytes.size(); n += step) {
      INFO("prefix of " << n << " bytes");
      REQUIRE(detail::decodes_safely(codec, std::span<const std::uint8_t>(bytes).first(n), vocab));
    }
  }

  // Random bytes never crash the decoder and never yield an invalid distribution.
  std::mt19937_64 gen(seed ^ 0x9e3779b97f4a7c15ull);
  std::size_t unsafe = 0;
  for (int i = 0; i < 3000; ++i) {
    std::vector<std::uint8_t> junk(gen() % 65);
    for (auto& b : junk) b = static_cast<std::uint8_t>(gen() >> 56);
    const std::uint32_t vocab = 1 + static_cast<std::uint32_t>(gen() % 300);
    unsafe += !detail::decodes_safely(codec, junk, vocab);
  }
  REQUIRE(unsafe == 0);

  // Concurrent use of one codec (immutable, const methods): both threads get the single-threaded answer.
  const auto rows = detail::codec_test_rows(seed + 1);
  std::vector<std::vector<std::uint8_t>> expect;
  for (const auto& p : rows) {
    expect.emplace_back();
    codec.encode(p, expect.back());
  }
  std::atomic<int> mismatches{0};
  auto worker = [&] {
    for (int rep = 0; rep < 20; ++rep)
      for (std::size_t i = 0; i < rows.size(); ++i) {
        std::vector<std::uint8_t> b;
        try {
          codec.encode(rows[i], b);
          const SparseDist d = codec.decode(b, static_cast<std::uint32_t>(rows[i].size()));
          if (b != expect[i] || !detail::valid_sparse(d, static_cast<std::uint32_t>(rows[i].size()))) ++mismatches;
        } catch (...) {
          ++mismatches;
        }
      }
  };
  std::thread a(worker), b(worker);
  a.join();
  b.join();
  REQUIRE(mismatches == 0);
}

}  // namespace picospec::testing
