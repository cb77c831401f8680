// Counter-based RNG: known answers, uniform statistics, independence of adjacent keys.
// Fixed keys; tolerances are 5 standard errors (or chi-square at p = 1e-6), so a correct generator fails
// with probability well below 1e-5 while the wrong implementations named below fail by orders of magnitude.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "picospec/rng.hpp"

using namespace picospec;

TEST_CASE("Philox4x32-10 matches Random123's published known-answer vectors", "[rng]") {
  using A4 = std::array<std::uint32_t, 4>;
  CHECK(detail::philox4x32_10({0, 0, 0, 0}, {0, 0}) == A4{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  CHECK(detail::philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}) ==
        A4{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  CHECK(detail::philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}) ==
        A4{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

TEST_CASE("uniform is a pure function of its key and lies in [0, 1)", "[rng]") {
  static_assert(uniform(1, Purpose::accept, 2, 3, 4) == uniform(1, Purpose::accept, 2, 3, 4));
  const RngKey k{42, Purpose::residual, 1000, 7, 3};
  CHECK(k.uniform() == uniform(42, Purpose::residual, 1000, 7, 3));
  CHECK(k.bits() == random_u64(42, Purpose::residual, 1000, 7, 3));
  // Every field of the key matters.
  const std::uint64_t base = random_u64(42, Purpose::residual, 1000, 7, 3);
  CHECK(random_u64(43, Purpose::residual, 1000, 7, 3) != base);
  CHECK(random_u64(42, Purpose::accept, 1000, 7, 3) != base);
  CHECK(random_u64(42, Purpose::residual, 1001, 7, 3) != base);
  CHECK(random_u64(42, Purpose::residual, 1000, 8, 3) != base);
  CHECK(random_u64(42, Purpose::residual, 1000, 7, 4) != base);
  CHECK(random_u64(42, Purpose::residual, 1000, 7 + (1ull << 32), 3) != base);     // epoch high bits
  CHECK(random_u64(42, Purpose::residual, 1000 + (1ull << 32), 7, 3) != base);     // position high bits
  for (std::uint64_t p = 0; p < 10000; ++p) {
    const double u = uniform(9, Purpose::draft_sample, p, 0);
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
  }
}

TEST_CASE("1e6 draws: mean, variance, bit balance, bucket chi-square", "[rng][stat]") {
  // Would catch: a generator that drops low bits (bit balance), a biased float conversion (mean/variance),
  // or a weak counter mix that leaves structure along position (buckets).
  constexpr int kN = 1'000'000;
  std::array<std::uint64_t, 64> ones{};
  std::array<std::uint64_t, 64> buckets{};
  double sum = 0.0, sum2 = 0.0;
  for (int i = 0; i < kN; ++i) {
    const std::uint64_t r = random_u64(12345, Purpose::draft_sample, static_cast<std::uint64_t>(i), 1);
    for (int b = 0; b < 64; ++b) ones[static_cast<std::size_t>(b)] += (r >> b) & 1u;
    const double u = static_cast<double>(r >> 11) * 0x1.0p-53;
    sum += u;
    sum2 += u * u;
    ++buckets[static_cast<std::size_t>(u * 64)];
  }
  const double mean = sum / kN, var = sum2 / kN - mean * mean;
  CHECK(std::abs(mean - 0.5) < 5.0 * std::sqrt(1.0 / 12.0 / kN));
  CHECK(std::abs(var - 1.0 / 12.0) < 5.0 * std::sqrt(1.0 / 180.0 / kN));  // Var(U^2-ish) bound: 1/180
  for (int b = 0; b < 64; ++b)
    CHECK(std::abs(static_cast<double>(ones[static_cast<std::size_t>(b)]) / kN - 0.5) < 5.0 * 0.5 / std::sqrt(kN));
  double chi2 = 0.0;
  const double expect = kN / 64.0;
  for (const auto c : buckets) chi2 += (static_cast<double>(c) - expect) * (static_cast<double>(c) - expect) / expect;
  CHECK(chi2 < 123.6);  // chi-square, 63 dof, p = 1e-6
}

namespace {
double correlation(const std::function<double(std::uint64_t)>& a, const std::function<double(std::uint64_t)>& b,
                   int n) {
  double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
  for (int i = 0; i < n; ++i) {
    const double x = a(static_cast<std::uint64_t>(i)), y = b(static_cast<std::uint64_t>(i));
    sa += x; sb += y; saa += x * x; sbb += y * y; sab += x * y;
  }
  const double cov = sab / n - (sa / n) * (sb / n);
  return cov / std::sqrt((saa / n - (sa / n) * (sa / n)) * (sbb / n - (sb / n) * (sb / n)));
}
}  // namespace

TEST_CASE("no correlation between adjacent keys", "[rng][stat]") {
  // Would catch a generator that only hashes part of the key or adds the counter linearly (e.g. u = frac(c * phi)).
  constexpr int kN = 200'000;
  const double tol = 5.0 / std::sqrt(kN);
  auto u = [](std::uint64_t seed, Purpose pu, std::uint64_t pos, std::uint64_t ep, std::uint32_t idx) {
    return uniform(seed, pu, pos, ep, idx);
  };
  SECTION("position p vs p + 1") {
    CHECK(std::abs(correlation([&](std::uint64_t i) { return u(7, Purpose::accept, i, 3, 0); },
                               [&](std::uint64_t i) { return u(7, Purpose::accept, i + 1, 3, 0); }, kN)) < tol);
  }
  SECTION("epoch e vs e + 1") {
    CHECK(std::abs(correlation([&](std::uint64_t i) { return u(7, Purpose::accept, 100, i, 0); },
                               [&](std::uint64_t i) { return u(7, Purpose::accept, 100, i + 1, 0); }, kN)) < tol);
  }
  SECTION("index i vs i + 1") {
    CHECK(std::abs(correlation(
              [&](std::uint64_t i) { return u(7, Purpose::candidate_draw, i >> 8, 0, static_cast<std::uint32_t>(i & 255)); },
              [&](std::uint64_t i) { return u(7, Purpose::candidate_draw, i >> 8, 0, static_cast<std::uint32_t>((i & 255) + 1)); },
              kN)) < tol);
  }
  SECTION("purpose accept vs residual, seed s vs s + 1") {
    CHECK(std::abs(correlation([&](std::uint64_t i) { return u(7, Purpose::accept, i, 0, 0); },
                               [&](std::uint64_t i) { return u(7, Purpose::residual, i, 0, 0); }, kN)) < tol);
    CHECK(std::abs(correlation([&](std::uint64_t i) { return u(i, Purpose::accept, 5, 0, 0); },
                               [&](std::uint64_t i) { return u(i + 1, Purpose::accept, 5, 0, 0); }, kN)) < tol);
  }
}
