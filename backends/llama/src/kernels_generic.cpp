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

inline float reduce_lanes(const float* a) noexcept {
  float s8[8], s4[4];
  for (std::size_t k = 0; k < 8; ++k) s8[k] = a[k] + a[k + 8];
  for (std::size_t k = 0; k < 4; ++k) s4[k] = s8[k] + s8[k + 4];
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
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

void quantize_q8(const float* x, std::size_t n, std::uint8_t* out) {
  std::uint8_t* q = out;  // q + 128
  for (std::size_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    std::uint32_t amax_bits = 0;
    for (std::size_t i = 0; i < 32; ++i) {
      std::uint32_t u;
      std::memcpy(&u, xb + i, 4);
      amax_bits = std::max(amax_bits, u & 0x7fffffffu);
    }
    float amax;
    std::memcpy(&amax, &amax_bits, 4);
    float d;
    if (amax_bits >= 0x7f800000u) {  // inf or NaN in the block: the block's products are NaN
      d = std::numeric_limits<float>::quiet_NaN();
      std::fill_n(q + 32 * b, 32, std::uint8_t{128});
    } else {
      d = amax / 127.0f;
      for (std::size_t i = 0; i < 32; ++i) {
        float v = 0.0f;
        if (d != 0.0f) v = std::clamp(std::nearbyint(xb[i] / d), -127.0f, 127.0f);
        q[32 * b + i] = static_cast<std::uint8_t>(static_cast<int>(v) + 128);
      }
    }
    for (std::size_t k = 0; k < 8; ++k) std::memcpy(out + n + 4 * (8 * b + k), &d, 4);  // any alignment
  }
}

void matmul_q8(const Weights& W, std::size_t r0, std::size_t r1, const std::uint8_t* XQ, std::size_t xqstride,
               std::size_t nt, float* Y, std::size_t ystride) {
  const std::size_t n = W.cols, nb = n / 32;
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
  static const Table t{Isa::generic, 1, &matmul, &dot, &axpy, &quantize_q8, &matmul_q8, "generic"};
  return &t;
}

}  // namespace picospec::llama::kernels
