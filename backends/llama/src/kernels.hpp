#pragma once
// Fixed-order dot-product kernels (internal to picospec::llama).
//
// Batch invariance rests on these: dot(w, x) is computed with kLanes independent partial sums, lane k taking the
// elements i with i % kLanes == k in increasing i, then a fixed pairwise reduction of the lanes, then the scalar
// tail (n % kLanes elements, in order). The order depends on n alone, never on how many tokens are processed
// together, which threads run them, or the buffers' alignment. dot_multi() computes several such dots against
// one weight row at once (the row is read from memory once per chunk), each with exactly the same operations as
// dot(). The library is compiled with -ffp-contract=off so no path fuses multiply-adds differently.

#include <cstddef>

namespace picospec::llama::kernels {

inline constexpr std::size_t kLanes = 16;
inline constexpr std::size_t kMaxTokens = 5;

namespace detail {
inline float reduce_lanes(const float* a) noexcept {
  float s8[8], s4[4];
  for (std::size_t k = 0; k < 8; ++k) s8[k] = a[k] + a[k + 8];
  for (std::size_t k = 0; k < 4; ++k) s4[k] = s8[k] + s8[k + 4];
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

template <std::size_t NT>
inline void dot_block(const float* __restrict w, const float* __restrict x, std::size_t xstride, std::size_t n,
                      float* __restrict out) noexcept {
  float acc[NT][kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (std::size_t j = 0; j < NT; ++j) {
      const float* xj = x + j * xstride + i;
      for (std::size_t k = 0; k < kLanes; ++k) acc[j][k] += w[i + k] * xj[k];
    }
  }
  for (std::size_t j = 0; j < NT; ++j) {
    float tail = 0.0f;
    const float* xj = x + j * xstride;
    for (std::size_t t = i; t < n; ++t) tail += w[t] * xj[t];
    out[j] = reduce_lanes(acc[j]) + tail;
  }
}
}  // namespace detail

/// out[j] = dot(w, x + j * xstride) for j < nt (1 <= nt <= kMaxTokens), each over n elements.
inline void dot_multi(const float* w, const float* x, std::size_t xstride, std::size_t nt, std::size_t n,
                      float* out) noexcept {
  switch (nt) {
    case 1: detail::dot_block<1>(w, x, xstride, n, out); break;
    case 2: detail::dot_block<2>(w, x, xstride, n, out); break;
    case 3: detail::dot_block<3>(w, x, xstride, n, out); break;
    case 4: detail::dot_block<4>(w, x, xstride, n, out); break;
    default: detail::dot_block<5>(w, x, xstride, n, out); break;
  }
}

/// dot(a, b) over n elements, same operation order as dot_multi.
inline float dot(const float* a, const float* b, std::size_t n) noexcept {
  float r;
  detail::dot_block<1>(a, b, 0, n, &r);
  return r;
}

}  // namespace picospec::llama::kernels
