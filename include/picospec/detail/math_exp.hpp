#pragma once
// A deterministic, vectorizable exp for softmax. Include picospec/sampling.hpp instead.
//
// std::exp is a scalar libm call (the dominant cost of a 152k-entry softmax, ~5 ns per entry here) and its last
// bit may differ between libm versions. exp_nonpositive() is plain IEEE float arithmetic in a fixed order:
// Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for e^r (the classic Cephes expf
// coefficients), and 2^n built from the exponent bits. GCC vectorizes loops over it (SSE2 and up), and every
// build computes the same bits provided the compiler does not contract a*b+c into an FMA (no -ffast-math,
// no -ffp-contract=fast with FMA hardware). Relative error < 2 ulp over [-87, 0] (tests/core/test_sampling.cpp).

#include <bit>
#include <cstddef>
#include <cstdint>

namespace picospec::detail {

/// e^x for x <= 0 (softmax arguments after subtracting the maximum). Returns 0 below -87 (where e^x is
/// below FLT_MIN, so no denormals) and 1 for x >= 0. NaN is not expected (callers validate logits first).
inline float exp_nonpositive(float x) noexcept {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;      // few mantissa bits: n * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;   // ln 2 - kLn2Hi
  constexpr std::uint32_t kMinBits = 0xC2AE0000u;  // bit pattern of -87.0f
  // The clamps are integer bit operations, not float compares: with GCC's default -ftrapping-math a float
  // select keeps the loop from being vectorized. For sign-set floats, a larger magnitude is a larger pattern.
  const std::uint32_t ux = std::bit_cast<std::uint32_t>(x);
  const std::uint32_t neg = static_cast<std::uint32_t>(static_cast<std::int32_t>(ux) >> 31);
  const std::uint32_t nonpos = (ux & neg) | (0x80000000u & ~neg);  // x > 0 -> -0
  const std::uint32_t under = static_cast<std::uint32_t>(static_cast<std::int32_t>(kMinBits - nonpos) >> 31);
  const std::uint32_t clamped = (nonpos & ~under) | (kMinBits & under);  // x < -87 -> -87 (result masked to 0)
  const float xc = std::bit_cast<float>(clamped);
  const int n = static_cast<int>(xc * kLog2e - 0.5f);  // xc <= 0: truncation toward zero rounds to nearest
  const float nf = static_cast<float>(n);
  const float r = (xc - nf * kLn2Hi) - nf * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = (p * (r * r) + r) + 1.0f;
  const float y = er * std::bit_cast<float>(static_cast<std::uint32_t>(n + 127) << 23);  // n in [-126, 0]
  return std::bit_cast<float>(std::bit_cast<std::uint32_t>(y) & ~under);
}

/// probs[i] = e^{(logits[i] - lmax) / T} / Z over the whole row (inv_t = 1/T), with Z summed in double in 8 fixed
/// lanes. One vectorized exp pass, one sum pass, one scale pass. `lmax` must be the row's finite maximum.
inline void dense_softmax(const float* logits, std::size_t n, float lmax, float inv_t, float* probs) noexcept {
  for (std::size_t i = 0; i < n; ++i) probs[i] = exp_nonpositive((logits[i] - lmax) * inv_t);
  double lane[8] = {};
  const std::size_t n8 = n - n % 8;
  for (std::size_t i = 0; i < n8; i += 8)
    for (std::size_t j = 0; j < 8; ++j) lane[j] += static_cast<double>(probs[i + j]);
  double z = 0.0;
  for (std::size_t i = n8; i < n; ++i) z += static_cast<double>(probs[i]);
  for (const double l : lane) z += l;
  const float inv_z = static_cast<float>(1.0 / z);  // z >= 1: the maximum contributes e^0
  for (std::size_t k = 0; k < n; ++k) probs[k] *= inv_z;
}

}  // namespace picospec::detail
