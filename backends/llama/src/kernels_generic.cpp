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
    std::int32_t sum = 0;
    for (std::size_t i = 0; i < 32; ++i) sum += static_cast<std::int32_t>(q[32 * b + i]) - 128;
    std::memcpy(out + q8_scales_at(n) + 4 * b, &d, 4);
    std::memcpy(out + q8_sums_at(n) + 4 * b, &sum, 4);
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

/// acc[k] = fma(float(s_k), scale[k], acc[k]) with s_k = sum_{e<4} w[4k+e] * q[4k+e]: one activation block of the
/// Q4_0 / Q4_K / Q6_K integer path (kernels.hpp), w the weights as small integers, xq the stored bytes q + 128, acc
/// the block's 8 lanes (lanes 8 (b % 2) + k of the 16).
inline void block_lanes(const int* w, const std::uint8_t* xq, const float* scale, float* acc) noexcept {
  for (std::size_t k = 0; k < 8; ++k) {
    std::int32_t s = 0;
    for (std::size_t e = 0; e < 4; ++e) s += w[4 * k + e] * (static_cast<std::int32_t>(xq[4 * k + e]) - 128);
    acc[k] = std::fma(static_cast<float>(s), scale[k], acc[k]);
  }
}

/// The 6-bit scale and min of sub-block j of a Q4_K block's 12 scale bytes (ggml's get_scale_min_k4).
inline void scale_min_k4(std::size_t j, const std::uint8_t* q, int& sc, int& m) noexcept {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

/// One (weight row, activation row) element of the Q4_0 / Q4_K / Q6_K integer path, in the order of kernels.hpp.
float dot_qk(GgmlType type, const std::uint8_t* row, const std::uint8_t* xr, std::size_t n) noexcept {
  float acc[kLanes] = {};
  int w[32];
  float scale[8];
  const std::uint8_t* dxs = xr + q8_scales_at(n);
  const std::uint8_t* sums = xr + q8_sums_at(n);
  if (type == GgmlType::q4_0) {
    for (std::size_t b = 0; b < n / 32; ++b) {
      const std::uint8_t* blk = row + 18 * b;
      for (std::size_t i = 0; i < 16; ++i) {
        w[i] = (blk[2 + i] & 0xF) - 8;
        w[i + 16] = (blk[2 + i] >> 4) - 8;
      }
      const float db = half_to_float(load_u16(blk)) * load_f32(dxs + 4 * b);
      std::fill_n(scale, 8, db);
      block_lanes(w, xr + 32 * b, scale, acc + 8 * (b % 2));
    }
  } else if (type == GgmlType::q4_k) {
    for (std::size_t s = 0; s < n / 256; ++s) {
      const std::uint8_t* blk = row + 144 * s;
      const float d = half_to_float(load_u16(blk)), dmin = half_to_float(load_u16(blk + 2));
      float mins[8];
      for (std::size_t j = 0; j < 8; ++j) {
        const std::size_t b = 8 * s + j;
        int sc, m;
        scale_min_k4(j, blk + 4, sc, m);
        const std::uint8_t* qs = blk + 16 + 32 * (j / 2);
        for (std::size_t i = 0; i < 32; ++i) w[i] = j % 2 == 0 ? (qs[i] & 0xF) : (qs[i] >> 4);
        const float dx = load_f32(dxs + 4 * b);
        std::fill_n(scale, 8, (d * static_cast<float>(sc)) * dx);
        mins[j] = (dmin * static_cast<float>(m)) * dx;
        block_lanes(w, xr + 32 * b, scale, acc + 8 * (b % 2));
      }
      for (std::size_t j = 0; j < 8; ++j) {
        std::int32_t sum;
        std::memcpy(&sum, sums + 4 * (8 * s + j), 4);
        acc[j] = std::fma(static_cast<float>(sum), -mins[j], acc[j]);
      }
    }
  } else {  // q6_k
    for (std::size_t s = 0; s < n / 256; ++s) {
      const std::uint8_t* blk = row + 210 * s;
      const auto* sc = reinterpret_cast<const std::int8_t*>(blk + 192);
      const float d = half_to_float(load_u16(blk + 208));
      for (std::size_t j = 0; j < 8; ++j) {
        const std::size_t b = 8 * s + j, h = j / 4, g = j % 4;
        const std::uint8_t* ql = blk + 64 * h + 32 * (g % 2);
        const std::uint8_t* qh = blk + 128 + 32 * h;
        for (std::size_t i = 0; i < 32; ++i)
          w[i] = (((ql[i] >> (4 * (g / 2))) & 0xF) | (((qh[i] >> (2 * g)) & 3) << 4)) - 32;
        const float dx = load_f32(dxs + 4 * b);
        const float lo = (d * static_cast<float>(sc[2 * j])) * dx, hi = (d * static_cast<float>(sc[2 * j + 1])) * dx;
        for (std::size_t k = 0; k < 8; ++k) scale[k] = k < 4 ? lo : hi;
        block_lanes(w, xr + 32 * b, scale, acc + 8 * (b % 2));
      }
    }
  }
  return reduce_lanes(acc);
}

void matmul_q8(const Weights& W, std::size_t r0, std::size_t r1, const std::uint8_t* XQ, std::size_t xqstride,
               std::size_t nt, float* Y, std::size_t ystride) {
  const std::size_t n = W.cols, nb = n / 32;
  if (W.type != GgmlType::q8_0) {
    for (std::size_t r = r0; r < r1; ++r)
      for (std::size_t j = 0; j < nt; ++j) Y[j * ystride + r] = dot_qk(W.type, W.data + r * W.row_bytes, XQ + j * xqstride, n);
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
  static const Table t{Isa::generic, 1, &matmul, &dot, &axpy, &quantize_q8, &matmul_q8, "generic"};
  return &t;
}

}  // namespace picospec::llama::kernels
