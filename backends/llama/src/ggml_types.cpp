#include "picospec/llama/ggml_types.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "picospec/types.hpp"

namespace picospec::llama {

std::optional<GgmlTypeTraits> ggml_type_traits(std::uint32_t id) noexcept {
  switch (static_cast<GgmlType>(id)) {
    case GgmlType::f32: return GgmlTypeTraits{"f32", 1, 4};
    case GgmlType::f16: return GgmlTypeTraits{"f16", 1, 2};
    case GgmlType::q4_0: return GgmlTypeTraits{"q4_0", 32, 18};
    case GgmlType::q4_1: return GgmlTypeTraits{"q4_1", 32, 20};
    case GgmlType::q5_0: return GgmlTypeTraits{"q5_0", 32, 22};
    case GgmlType::q5_1: return GgmlTypeTraits{"q5_1", 32, 24};
    case GgmlType::q8_0: return GgmlTypeTraits{"q8_0", 32, 34};
    case GgmlType::q8_1: return GgmlTypeTraits{"q8_1", 32, 36};
    case GgmlType::q2_k: return GgmlTypeTraits{"q2_k", 256, 84};
    case GgmlType::q3_k: return GgmlTypeTraits{"q3_k", 256, 110};
    case GgmlType::q4_k: return GgmlTypeTraits{"q4_k", 256, 144};
    case GgmlType::q5_k: return GgmlTypeTraits{"q5_k", 256, 176};
    case GgmlType::q6_k: return GgmlTypeTraits{"q6_k", 256, 210};
    case GgmlType::q8_k: return GgmlTypeTraits{"q8_k", 256, 292};
    case GgmlType::i8: return GgmlTypeTraits{"i8", 1, 1};
    case GgmlType::i16: return GgmlTypeTraits{"i16", 1, 2};
    case GgmlType::i32: return GgmlTypeTraits{"i32", 1, 4};
    case GgmlType::i64: return GgmlTypeTraits{"i64", 1, 8};
    case GgmlType::f64: return GgmlTypeTraits{"f64", 1, 8};
    case GgmlType::bf16: return GgmlTypeTraits{"bf16", 1, 2};
  }
  return std::nullopt;
}

std::string ggml_type_name(std::uint32_t id) {
  if (auto t = ggml_type_traits(id)) return t->name;
  return "type#" + std::to_string(id);
}

bool ggml_type_computable(GgmlType t) noexcept {
  switch (t) {
    case GgmlType::f32:
    case GgmlType::f16:
    case GgmlType::bf16:
    case GgmlType::q8_0:
    case GgmlType::q4_0:
    case GgmlType::q4_k:
    case GgmlType::q5_k:
    case GgmlType::q6_k: return true;
    default: return false;
  }
}

std::size_t row_bytes(GgmlType t, std::size_t n) {
  const auto tr = ggml_type_traits(static_cast<std::uint32_t>(t));
  if (!tr) throw Error("row_bytes: unknown tensor type");
  return n / tr->block_elems * tr->block_bytes;
}

float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  const std::uint32_t man = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal half: value = man * 2^-24, exact in float
      const float v = static_cast<float>(man) * 0x1p-24f;
      return sign ? -v : v;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  }
  return std::bit_cast<float>(bits);
}

std::uint16_t float_to_half(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
  if (ax >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (ax < 0x38800000u) {  // below the smallest normal half: subnormal or zero, round to nearest even
    const float a = std::bit_cast<float>(ax);
    const float scaled = a * 0x1p24f;  // exact
    const float r = std::nearbyint(scaled);  // default rounding mode: nearest even
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(r));
  }
  // normal: rebias exponent, round mantissa to 10 bits (nearest even)
  std::uint32_t m = ax + 0xc8000000u;  // exponent - 112
  m = m + 0x0fffu + ((m >> 13) & 1u);
  return static_cast<std::uint16_t>(sign | (m >> 13));
}

float bf16_to_float(std::uint16_t h) noexcept { return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16); }

std::uint16_t float_to_bf16(float f) noexcept {
  std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>(x >> 16);
}

namespace {
inline std::uint16_t load_u16(const unsigned char* p) noexcept {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline void store_u16(unsigned char* p, std::uint16_t v) noexcept { std::memcpy(p, &v, 2); }

// ---- ggml block layouts (ggml-common.h), dequantized with the same float operations in the same order as
// ggml's dequantize_row_* so the values are bit-identical to ggml's.

// Q4_0: 32 elements in 18 bytes: f16 d, 16 bytes of nibbles (low nibbles = elements 0..15, high = 16..31).
void dequant_q4_0(const unsigned char* blk, float* y) noexcept {
  const float d = half_to_float(load_u16(blk));
  const unsigned char* qs = blk + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

// Q4_K: 256 elements in 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of nibbles; eight
// sub-blocks of 32: x = d * scale * q - dmin * min.
void dequant_q4_k(const unsigned char* blk, float* y) noexcept {
  const float d = half_to_float(load_u16(blk));
  const float dmin = half_to_float(load_u16(blk + 2));
  const unsigned char* scales = blk + 4;
  const unsigned char* q = blk + 16;
  int is = 0;
  for (int j = 0; j < 256; j += 64) {
    unsigned char sc, m;
    k_scale_min(is + 0, scales, sc, m);
    const float d1 = d * sc, m1 = dmin * m;
    k_scale_min(is + 1, scales, sc, m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    q += 32;
    is += 2;
  }
}

// Q5_K: 256 elements in 176 bytes: f16 d, f16 dmin, 12 bytes of scales/mins, 32 bytes of fifth bits, 128 bytes of
// nibbles.
void dequant_q5_k(const unsigned char* blk, float* y) noexcept {
  const float d = half_to_float(load_u16(blk));
  const float dmin = half_to_float(load_u16(blk + 2));
  const unsigned char* scales = blk + 4;
  const unsigned char* qh = blk + 16;
  const unsigned char* ql = blk + 48;
  int is = 0;
  unsigned u1 = 1, u2 = 2;
  for (int j = 0; j < 256; j += 64) {
    unsigned char sc, m;
    k_scale_min(is + 0, scales, sc, m);
    const float d1 = d * sc, m1 = dmin * m;
    k_scale_min(is + 1, scales, sc, m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
    ql += 32;
    is += 2;
    u1 <<= 2;
    u2 <<= 2;
  }
}

// Q6_K: 256 elements in 210 bytes: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8 scales (one per
// 16 elements), f16 d: x = d * scale * (q - 32).
void dequant_q6_k(const unsigned char* blk, float* y) noexcept {
  const unsigned char* ql = blk;
  const unsigned char* qh = blk + 128;
  const auto* sc = reinterpret_cast<const std::int8_t*>(blk + 192);
  const float d = half_to_float(load_u16(blk + 208));
  for (int n = 0; n < 256; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = static_cast<int>((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = static_cast<int>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = static_cast<int>((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = static_cast<int>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l + 0] = d * sc[is + 0] * static_cast<float>(q1);
      y[l + 32] = d * sc[is + 2] * static_cast<float>(q2);
      y[l + 64] = d * sc[is + 4] * static_cast<float>(q3);
      y[l + 96] = d * sc[is + 6] * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

// ---- quantization (for tests and random models): simple round-to-nearest, not llama-quantize's error search;
// the layouts are ggml's, so ggml reads the result back exactly as dequant_* above does.

void quant_q4_0(const float* x, unsigned char* blk) noexcept {
  float amax = 0.0f, max = 0.0f;  // ggml's reference: the signed value of largest magnitude maps to -8
  for (int j = 0; j < 32; ++j)
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  const float d = max / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  store_u16(blk, float_to_half(d));
  for (int j = 0; j < 16; ++j) {
    const int q0 = std::min(15, static_cast<int>(x[j] * id + 8.5f));
    const int q1 = std::min(15, static_cast<int>(x[j + 16] * id + 8.5f));
    blk[2 + j] = static_cast<unsigned char>(std::max(0, q0) | (std::max(0, q1) << 4));
  }
}

// Shared by Q4_K (levels 15) and Q5_K (levels 31): per sub-block of 32 an affine map x = s * q - m with m >= 0,
// s and m quantized to 6 bits against the block's d and dmin. q[] receives the levels (0..levels).
void quant_k_affine(const float* x, int levels, unsigned char* blk, unsigned char* q) noexcept {
  float sub_scale[8], sub_min[8];
  for (int j = 0; j < 8; ++j) {
    float mn = 0.0f, mx = 0.0f;
    for (int l = 0; l < 32; ++l) {
      mn = std::min(mn, x[32 * j + l]);
      mx = std::max(mx, x[32 * j + l]);
    }
    sub_scale[j] = (mx - mn) / static_cast<float>(levels);
    sub_min[j] = -mn;
  }
  const float max_scale = *std::max_element(sub_scale, sub_scale + 8);
  const float max_min = *std::max_element(sub_min, sub_min + 8);
  const std::uint16_t dh = float_to_half(max_scale / 63.0f), mh = float_to_half(max_min / 63.0f);
  const float d = half_to_float(dh), dmin = half_to_float(mh);
  unsigned char ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = static_cast<unsigned char>(d > 0.0f ? std::clamp(static_cast<int>(std::lround(sub_scale[j] / d)), 0, 63) : 0);
    lm[j] = static_cast<unsigned char>(dmin > 0.0f ? std::clamp(static_cast<int>(std::lround(sub_min[j] / dmin)), 0, 63) : 0);
  }
  store_u16(blk, dh);
  store_u16(blk + 2, mh);
  unsigned char* scales = blk + 4;
  for (int j = 0; j < 4; ++j) {
    scales[j] = static_cast<unsigned char>(ls[j] | ((ls[j + 4] >> 4) << 6));
    scales[j + 4] = static_cast<unsigned char>(lm[j] | ((lm[j + 4] >> 4) << 6));
    scales[j + 8] = static_cast<unsigned char>((ls[j + 4] & 0xF) | ((lm[j + 4] & 0xF) << 4));
  }
  for (int j = 0; j < 8; ++j) {
    const float s = d * ls[j], m = dmin * lm[j];
    for (int l = 0; l < 32; ++l) {
      const int v = s > 0.0f ? static_cast<int>(std::lround((x[32 * j + l] + m) / s)) : 0;
      q[32 * j + l] = static_cast<unsigned char>(std::clamp(v, 0, levels));
    }
  }
}

void quant_q4_k(const float* x, unsigned char* blk) noexcept {
  unsigned char q[256];
  quant_k_affine(x, 15, blk, q);
  unsigned char* qs = blk + 16;
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) qs[32 * c + l] = static_cast<unsigned char>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
}

void quant_q5_k(const float* x, unsigned char* blk) noexcept {
  unsigned char q[256];
  quant_k_affine(x, 31, blk, q);
  unsigned char* qh = blk + 16;
  unsigned char* ql = blk + 48;
  std::memset(qh, 0, 32);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      const unsigned char lo = q[64 * c + l], hi = q[64 * c + 32 + l];
      ql[32 * c + l] = static_cast<unsigned char>((lo & 0xF) | ((hi & 0xF) << 4));
      qh[l] = static_cast<unsigned char>(qh[l] | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
    }
}

void quant_q6_k(const float* x, unsigned char* blk) noexcept {
  float sub[16];
  float amax_all = 0.0f;
  for (int j = 0; j < 16; ++j) {
    float amax = 0.0f, max = 0.0f;
    for (int l = 0; l < 16; ++l)
      if (std::fabs(x[16 * j + l]) > amax) {
        amax = std::fabs(x[16 * j + l]);
        max = x[16 * j + l];
      }
    sub[j] = max / -32.0f;
    amax_all = std::max(amax_all, std::fabs(sub[j]));
  }
  const std::uint16_t dh = float_to_half(amax_all / 127.0f);
  const float d = half_to_float(dh);
  auto* sc = reinterpret_cast<std::int8_t*>(blk + 192);
  unsigned char q[256];
  for (int j = 0; j < 16; ++j) {
    sc[j] = static_cast<std::int8_t>(d > 0.0f ? std::clamp(static_cast<int>(std::lround(sub[j] / d)), -127, 127) : 0);
    const float s = d * sc[j];
    for (int l = 0; l < 16; ++l) {
      const int v = s != 0.0f ? static_cast<int>(std::lround(x[16 * j + l] / s)) : 0;
      q[16 * j + l] = static_cast<unsigned char>(std::clamp(v, -32, 31) + 32);
    }
  }
  unsigned char* ql = blk;
  unsigned char* qh = blk + 128;
  for (int n = 0; n < 2; ++n)
    for (int l = 0; l < 32; ++l) {
      const unsigned char* qq = q + 128 * n;
      ql[64 * n + l] = static_cast<unsigned char>((qq[l] & 0xF) | ((qq[l + 64] & 0xF) << 4));
      ql[64 * n + l + 32] = static_cast<unsigned char>((qq[l + 32] & 0xF) | ((qq[l + 96] & 0xF) << 4));
      qh[32 * n + l] = static_cast<unsigned char>((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) | ((qq[l + 64] >> 4) << 4) |
                                                  ((qq[l + 96] >> 4) << 6));
    }
  store_u16(blk + 208, dh);
}

template <std::size_t Elems, std::size_t Bytes, class F>
void for_blocks(const unsigned char* s, float* dst, std::size_t n, F f) {
  for (std::size_t b = 0; b < n / Elems; ++b) f(s + b * Bytes, dst + b * Elems);
}
template <std::size_t Elems, std::size_t Bytes, class F>
void for_blocks_q(const float* src, unsigned char* d, std::size_t n, F f) {
  for (std::size_t b = 0; b < n / Elems; ++b) f(src + b * Elems, d + b * Bytes);
}
}  // namespace

void k_scale_min(int j, const unsigned char* q, unsigned char& sc, unsigned char& m) noexcept {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = static_cast<unsigned char>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m = static_cast<unsigned char>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

void dequantize_row(GgmlType t, const void* src, float* dst, std::size_t n) {
  const auto* s = static_cast<const unsigned char*>(src);
  switch (t) {
    case GgmlType::f32: std::memcpy(dst, src, n * sizeof(float)); return;
    case GgmlType::f16:
      for (std::size_t i = 0; i < n; ++i) dst[i] = half_to_float(load_u16(s + 2 * i));
      return;
    case GgmlType::bf16:
      for (std::size_t i = 0; i < n; ++i) dst[i] = bf16_to_float(load_u16(s + 2 * i));
      return;
    case GgmlType::q8_0:
      for (std::size_t b = 0; b < n / 32; ++b) {
        const unsigned char* blk = s + b * 34;
        const float d = half_to_float(load_u16(blk));
        const auto* q = reinterpret_cast<const std::int8_t*>(blk + 2);
        for (int i = 0; i < 32; ++i) dst[b * 32 + i] = d * static_cast<float>(q[i]);
      }
      return;
    case GgmlType::q4_0: for_blocks<32, 18>(s, dst, n, dequant_q4_0); return;
    case GgmlType::q4_k: for_blocks<256, 144>(s, dst, n, dequant_q4_k); return;
    case GgmlType::q5_k: for_blocks<256, 176>(s, dst, n, dequant_q5_k); return;
    case GgmlType::q6_k: for_blocks<256, 210>(s, dst, n, dequant_q6_k); return;
    default: throw Error("dequantize_row: tensor type " + ggml_type_name(static_cast<std::uint32_t>(t)) +
                         " is not supported for computation (supported: f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, "
                         "q6_k)");
  }
}

void quantize_row(GgmlType t, const float* src, void* dst, std::size_t n) {
  auto* d = static_cast<unsigned char*>(dst);
  switch (t) {
    case GgmlType::f32: std::memcpy(dst, src, n * sizeof(float)); return;
    case GgmlType::f16:
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint16_t h = float_to_half(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return;
    case GgmlType::bf16:
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint16_t h = float_to_bf16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      return;
    case GgmlType::q8_0:
      for (std::size_t b = 0; b < n / 32; ++b) {
        float amax = 0.0f;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(src[b * 32 + i]));
        const float scale = amax / 127.0f;
        const float inv = scale != 0.0f ? 1.0f / scale : 0.0f;
        const std::uint16_t h = float_to_half(scale);
        unsigned char* blk = d + b * 34;
        std::memcpy(blk, &h, 2);
        for (int i = 0; i < 32; ++i) {
          const long q = std::lround(src[b * 32 + i] * inv);
          blk[2 + i] = static_cast<unsigned char>(static_cast<std::int8_t>(std::clamp(q, -127L, 127L)));
        }
      }
      return;
    case GgmlType::q4_0: for_blocks_q<32, 18>(src, d, n, quant_q4_0); return;
    case GgmlType::q4_k: for_blocks_q<256, 144>(src, d, n, quant_q4_k); return;
    case GgmlType::q5_k: for_blocks_q<256, 176>(src, d, n, quant_q5_k); return;
    case GgmlType::q6_k: for_blocks_q<256, 210>(src, d, n, quant_q6_k); return;
    default: throw Error("quantize_row: unsupported tensor type " + ggml_type_name(static_cast<std::uint32_t>(t)));
  }
}

}  // namespace picospec::llama
