// Generic (baseline ISA) kernels: portable C++, separate multiply and add (see kernels.hpp for the order).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels.hpp"

namespace picospec::llama::kernels {
namespace {

constexpr std::size_t kLanes = 16;
constexpr std::size_t kMaxTokens = 5;

/// 8 lanes: s4[k] = a[k] + a[k+4], (s4[0] + s4[2]) + (s4[1] + s4[3]).
inline float reduce_lanes8(const float* a) noexcept {
  float s4[4];
  for (std::size_t k = 0; k < 4; ++k) s4[k] = a[k] + a[k + 4];
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

/// 16 lanes (kernels.hpp): s8[k] = a[k] + a[k+8], then the 8-lane order.
inline float reduce_lanes(const float* a) noexcept {
  float s8[8];
  for (std::size_t k = 0; k < 8; ++k) s8[k] = a[k] + a[k + 8];
  return reduce_lanes8(s8);
}

template <std::size_t NT>
void dot_block(const float* __restrict w, const float* __restrict x, std::size_t xstride, std::size_t n,
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

void dot_multi(const float* w, const float* x, std::size_t xstride, std::size_t nt, std::size_t n,
               float* out) noexcept {
  switch (nt) {
    case 1: dot_block<1>(w, x, xstride, n, out); break;
    case 2: dot_block<2>(w, x, xstride, n, out); break;
    case 3: dot_block<3>(w, x, xstride, n, out); break;
    case 4: dot_block<4>(w, x, xstride, n, out); break;
    default: dot_block<5>(w, x, xstride, n, out); break;
  }
}

void matmul(const Weights& W, std::size_t r0, std::size_t r1, const float* X, std::size_t xstride, std::size_t nt,
            float* Y, std::size_t ystride) {
  thread_local std::vector<float> buf;  // grows once per thread to the widest row
  if (W.type != GgmlType::f32 && buf.size() < W.cols) buf.resize(W.cols);
  float out[kMaxTokens];
  for (std::size_t r = r0; r < r1; ++r) {
    const std::uint8_t* row = W.data + r * W.row_bytes;
    const float* wr;
    if (W.type == GgmlType::f32) {
      wr = reinterpret_cast<const float*>(row);
    } else {
      dequantize_row(W.type, row, buf.data(), W.cols);
      wr = buf.data();
    }
    for (std::size_t j0 = 0; j0 < nt; j0 += kMaxTokens) {
      const std::size_t nb = std::min(kMaxTokens, nt - j0);
      dot_multi(wr, X + j0 * xstride, xstride, nb, W.cols, out);
      for (std::size_t j = 0; j < nb; ++j) Y[(j0 + j) * ystride + r] = out[j];
    }
  }
}

float dot(const float* a, const float* b, std::size_t n) {
  float r;
  dot_block<1>(a, b, 0, n, &r);
  return r;
}

void axpy(float a, const float* x, float* y, std::size_t n) {
  for (std::size_t e = 0; e < n; ++e) y[e] += a * x[e];
}

// ---- The integer Q8_0 path (the order of kernels.hpp, written out one scalar operation at a time) ----

/// One group of m activations (a block of 32 or a super-block of 256) to 8-bit values (kernels.hpp): q[i] gets
/// round_half_even(x_i / d) clamped to +-127 (0 when d is 0 or not finite); returns d = max |x_i| / 127, NaN when
/// the group holds an inf or NaN (max compared as the bit patterns of |x|, so those are seen).
float quantize_group(const float* x, std::size_t m, std::int8_t* q) noexcept {
  std::uint32_t amax_bits = 0;
  for (std::size_t i = 0; i < m; ++i) {
    std::uint32_t u;
    std::memcpy(&u, x + i, 4);
    amax_bits = std::max(amax_bits, u & 0x7fffffffu);
  }
  float amax;
  std::memcpy(&amax, &amax_bits, 4);
  const bool finite = amax_bits < 0x7f800000u;
  const float d = finite ? amax / 127.0f : std::numeric_limits<float>::quiet_NaN();
  for (std::size_t i = 0; i < m; ++i) {
    float v = 0.0f;
    if (finite && d != 0.0f) v = std::clamp(std::nearbyint(x[i] / d), -127.0f, 127.0f);
    q[i] = static_cast<std::int8_t>(v);
  }
  return d;
}

void quantize_q8(const float* x, std::size_t n, std::uint8_t* out) {
  for (std::size_t b = 0; b < n / 32; ++b) {
    std::int8_t q[32];
    const float d = quantize_group(x + 32 * b, 32, q);
    for (std::size_t i = 0; i < 32; ++i) out[32 * b + i] = static_cast<std::uint8_t>(q[i] + 128);  // q + 128
    for (std::size_t k = 0; k < 8; ++k) std::memcpy(out + n + 4 * (8 * b + k), &d, 4);  // any alignment
  }
}

void quantize_q8k(const float* x, std::size_t n, std::uint8_t* out) {
  for (std::size_t s = 0; s < n / 256; ++s) {
    std::uint8_t* blk = out + q8_k_at(n) + q8k_block_bytes * s;
    std::int8_t q[256];
    const float d = quantize_group(x + 256 * s, 256, q);
    std::int16_t sums[16] = {};
    for (std::size_t i = 0; i < 256; ++i) sums[i / 16] = static_cast<std::int16_t>(sums[i / 16] + q[i]);
    std::memcpy(blk, q, 256);
    std::memcpy(blk + 256, sums, 32);
    std::memcpy(blk + 288, &d, 4);
  }
}

inline float load_f32(const std::uint8_t* p) noexcept {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}
inline std::uint16_t load_u16(const std::uint8_t* p) noexcept {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

/// A Q4_0 row against activation blocks of 32, in the order of kernels.hpp (16 lanes, as Q8_0).
float dot_q4_0(const std::uint8_t* row, const std::uint8_t* xr, std::size_t n) noexcept {
  float acc[kLanes] = {};
  for (std::size_t b = 0; b < n / 32; ++b) {
    const std::uint8_t* blk = row + 18 * b;
    const float db = half_to_float(load_u16(blk)) * load_f32(xr + n + 32 * b);
    for (std::size_t k = 0; k < 8; ++k) {
      std::int32_t s = 0;
      for (std::size_t e = 0; e < 4; ++e) {
        const std::size_t i = 4 * k + e;
        const int w = (i < 16 ? (blk[2 + i] & 0xF) : (blk[2 + i - 16] >> 4)) - 8;
        s += w * (static_cast<std::int32_t>(xr[32 * b + i]) - 128);
      }
      float& lane = acc[8 * (b % 2) + k];
      lane = std::fma(static_cast<float>(s), db, lane);
    }
  }
  return reduce_lanes(acc);
}

/// A Q4_K, Q5_K or Q6_K row against activation super-blocks of 256 (quantize_q8k), in the order of kernels.hpp.
float dot_k(GgmlType type, const std::uint8_t* row, const std::uint8_t* xr, std::size_t n) noexcept {
  float acc[8] = {};
  for (std::size_t s = 0; s < n / 256; ++s) {
    const std::uint8_t* xb = xr + q8_k_at(n) + q8k_block_bytes * s;
    const auto* q = reinterpret_cast<const std::int8_t*>(xb);
    std::int16_t bsum[16];
    std::memcpy(bsum, xb + 256, 32);
    const float D = load_f32(xb + 288);
    std::int32_t I[8] = {};
    if (type == GgmlType::q4_k || type == GgmlType::q5_k) {
      const bool five = type == GgmlType::q5_k;  // Q5_K: Q4_K's layout with 32 bytes of fifth bits before the nibbles
      const std::uint8_t* blk = row + (five ? 176 : 144) * s;
      unsigned char sc[8], m[8];
      for (int j = 0; j < 8; ++j) k_scale_min(j, blk + 4, sc[j], m[j]);
      for (std::size_t j = 0; j < 8; ++j) {
        const std::uint8_t* qs = blk + (five ? 48 : 16) + 32 * (j / 2);
        for (std::size_t k = 0; k < 8; ++k) {
          std::int32_t p = 0;
          for (std::size_t e = 0; e < 4; ++e) {
            const std::size_t i = 4 * k + e;
            int u = j % 2 == 0 ? (qs[i] & 0xF) : (qs[i] >> 4);
            if (five) u |= ((blk[16 + i] >> j) & 1) << 4;
            p += u * q[32 * j + i];
          }
          I[k] += sc[j] * p;
        }
      }
      std::int32_t M = 0;
      for (std::size_t i = 0; i < 16; ++i) M += m[i / 2] * bsum[i];
      const float d = half_to_float(load_u16(blk)), dmin = half_to_float(load_u16(blk + 2));
      for (std::size_t k = 0; k < 8; ++k) acc[k] = std::fma(static_cast<float>(I[k]), d * D, acc[k]);
      acc[0] = std::fma(static_cast<float>(M), -(dmin * D), acc[0]);
    } else {  // q6_k
      const std::uint8_t* blk = row + 210 * s;
      const auto* sc = reinterpret_cast<const std::int8_t*>(blk + 192);
      for (std::size_t j = 0; j < 8; ++j) {
        const std::size_t h = j / 4, g = j % 4;
        const std::uint8_t* ql = blk + 64 * h + 32 * (g % 2);
        const std::uint8_t* qh = blk + 128 + 32 * h;
        for (std::size_t k = 0; k < 8; ++k) {
          std::int32_t p = 0;
          for (std::size_t e = 0; e < 4; ++e) {
            const std::size_t i = 4 * k + e;
            const int u = ((ql[i] >> (4 * (g / 2))) & 0xF) | (((qh[i] >> (2 * g)) & 3) << 4);
            p += u * q[32 * j + i];
          }
          I[k] += sc[2 * j + k / 4] * p;
        }
      }
      std::int32_t S = 0;
      for (std::size_t i = 0; i < 16; ++i) S += sc[i] * bsum[i];
      I[0] -= 32 * S;
      const float d = half_to_float(load_u16(blk + 208));
      for (std::size_t k = 0; k < 8; ++k) acc[k] = std::fma(static_cast<float>(I[k]), d * D, acc[k]);
    }
  }
  return reduce_lanes8(acc);
}

void matmul_q8(const Weights& W, std::size_t r0, std::size_t r1, const std::uint8_t* XQ, std::size_t xqstride,
               std::size_t nt, float* Y, std::size_t ystride) {
  const std::size_t n = W.cols, nb = n / 32;
  if (W.type != GgmlType::q8_0) {
    for (std::size_t r = r0; r < r1; ++r)
      for (std::size_t j = 0; j < nt; ++j) {
        const std::uint8_t* row = W.data + r * W.row_bytes;
        const std::uint8_t* xr = XQ + j * xqstride;
        Y[j * ystride + r] = W.type == GgmlType::q4_0 ? dot_q4_0(row, xr, n) : dot_k(W.type, row, xr, n);
      }
    return;
  }
  for (std::size_t r = r0; r < r1; ++r) {
    const std::uint8_t* row = W.data + r * W.row_bytes;
    for (std::size_t j = 0; j < nt; ++j) {
      const std::uint8_t* xr = XQ + j * xqstride;
      const std::uint8_t* xq = xr;  // q + 128
      float acc[kLanes] = {};
      for (std::size_t b = 0; b < nb; ++b) {
        const std::uint8_t* blk = row + 34 * b;
        std::uint16_t h;
        std::memcpy(&h, blk, 2);
        const auto* wq = reinterpret_cast<const std::int8_t*>(blk + 2);
        float dx;
        std::memcpy(&dx, xr + n + 32 * b, 4);  // the rows may sit at any alignment
        const float db = half_to_float(h) * dx;
        for (std::size_t k = 0; k < 8; ++k) {
          std::int32_t s = 0;
          for (std::size_t e = 0; e < 4; ++e)
            s += static_cast<std::int32_t>(wq[4 * k + e]) * (static_cast<std::int32_t>(xq[32 * b + 4 * k + e]) - 128);
          float& lane = acc[8 * (b % 2) + k];
          lane = std::fma(static_cast<float>(s), db, lane);
        }
      }
      Y[j * ystride + r] = reduce_lanes(acc);
    }
  }
}

}  // namespace

const Table* generic_table() noexcept {
  static const Table t{Isa::generic, 1, &matmul, &dot, &axpy, &quantize_q8, &quantize_q8k, &matmul_q8, "generic"};
  return &t;
}

}  // namespace picospec::llama::kernels
