#pragma once
// Counter-based random numbers keyed by (seed, purpose, position, epoch, index).
//
// Every random draw in picospec is a pure function of its key: there is no generator state, so the
// tokens produced depend only on the seed and the models, never on chunk sizes, pipeline depth, link
// latency or thread timing (see docs/algorithm.md, "RNG keys").
//
// Generator: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
//   counter (4 x u32) = { position lo32, position hi32, epoch lo32, index }
//   key     (2 x u32) = mix64( mix64(seed) + ((purpose << 32) | epoch hi32) )   (mix64 = SplitMix64 finalizer)
// The first two output words form the 64-bit result (word0 high, word1 low).
//
// Thread-safety: every function here is pure (no state); call from any thread. Never blocks, never throws.

#include <array>
#include <cstdint>

namespace picospec {

/// What a random draw is for. Distinct purposes give independent streams at the same position/epoch.
/// Values are part of the reproducibility contract: never renumber, only append.
enum class Purpose : std::uint32_t {
  draft_sample = 1,      ///< edge: draw the draft token d_i ~ q_i (or ~ q̂_i in sparse_draft mode)
  accept = 2,            ///< cloud: acceptance test u < min(1, p/q)
  residual = 3,          ///< cloud: correction from norm(max(0, p - q)) (full, sparse_draft)
  candidate_draw = 4,    ///< cloud: candidate y_k ~ p (index = candidate number)
  candidate_accept = 5,  ///< edge: accept candidate y_k w.p. max(0, 1 - q/p) (index = candidate number)
  target_sample = 6,     ///< cloud-only / target-alone sampling (baselines, reference runs)
  topk_residual = 7,     ///< edge: correction from norm(max(0, P_topK - Q)) (paper's topk mode)
  coupled = 8,           ///< both sides: coupled_sample's exponentials at a position (epoch 0; index unused)
  user = 1000,           ///< first value free for applications
};

namespace detail {

/// SplitMix64 finalizer (a bijective 64-bit mixer).
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// Philox4x32 with 10 rounds: a keyed bijection of 128-bit counters.
constexpr std::array<std::uint32_t, 4> philox4x32_10(std::array<std::uint32_t, 4> c,
                                                     std::array<std::uint32_t, 2> k) noexcept {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += kW0;
      k[1] += kW1;
    }
    const std::uint64_t p0 = std::uint64_t{kM0} * c[0];
    const std::uint64_t p1 = std::uint64_t{kM1} * c[2];
    const auto hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    const auto hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
  }
  return c;
}

}  // namespace detail

/// Raw 64 random bits for the key. Pure; identical on every platform.
[[nodiscard]] constexpr std::uint64_t random_u64(std::uint64_t seed, Purpose purpose, std::uint64_t position,
                                                 std::uint64_t epoch, std::uint32_t index = 0) noexcept {
  const std::uint64_t k64 = detail::mix64(
      detail::mix64(seed) + ((static_cast<std::uint64_t>(purpose) << 32) | (epoch >> 32)));
  const auto out = detail::philox4x32_10(
      {static_cast<std::uint32_t>(position), static_cast<std::uint32_t>(position >> 32),
       static_cast<std::uint32_t>(epoch), index},
      {static_cast<std::uint32_t>(k64), static_cast<std::uint32_t>(k64 >> 32)});
  return (static_cast<std::uint64_t>(out[0]) << 32) | out[1];
}

/// Uniform double in [0, 1) with 53 random bits (multiples of 2^-53; never 1.0). Pure.
[[nodiscard]] constexpr double uniform(std::uint64_t seed, Purpose purpose, std::uint64_t position,
                                       std::uint64_t epoch, std::uint32_t index = 0) noexcept {
  return static_cast<double>(random_u64(seed, purpose, position, epoch, index) >> 11) * 0x1.0p-53;
}

/// A key bundled as a value, for call sites that pass keys around.
struct RngKey {
  std::uint64_t seed = 0;
  Purpose purpose = Purpose::target_sample;
  std::uint64_t position = 0;
  std::uint64_t epoch = 0;
  std::uint32_t index = 0;

  [[nodiscard]] constexpr std::uint64_t bits() const noexcept {
    return random_u64(seed, purpose, position, epoch, index);
  }
  [[nodiscard]] constexpr double uniform() const noexcept {
    return picospec::uniform(seed, purpose, position, epoch, index);
  }
};

}  // namespace picospec
