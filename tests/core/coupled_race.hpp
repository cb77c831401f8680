#pragma once
// The exponential race of coupled_sample computed in full from its definition, for tests: every token with p > 0
// as (p / E, id), best first (ties -> lower id); E = -ln u, u from SplitMix64 started at the Philox key.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "picospec/rng.hpp"

namespace picospec::test {

inline std::vector<std::pair<double, std::size_t>> full_race(const std::vector<float>& p, std::uint64_t seed,
                                                             std::uint64_t pos) {
  const std::uint64_t base = random_u64(seed, Purpose::coupled, pos, 0);
  std::vector<std::pair<double, std::size_t>> all;
  for (std::size_t v = 0; v < p.size(); ++v) {
    if (!(p[v] > 0.0f)) continue;
    std::uint64_t s = base + (v + 1) * 0x9E3779B97F4A7C15ull;
    s = (s ^ (s >> 30)) * 0xBF58476D1CE4E5B9ull;
    s = (s ^ (s >> 27)) * 0x94D049BB133111EBull;
    s ^= s >> 31;
    const double e = -std::log(static_cast<double>((s >> 11) + 1) * 0x1.0p-53);
    all.emplace_back(e > 0.0 ? p[v] / e : HUGE_VAL, v);
  }
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return all;
}

}  // namespace picospec::test
