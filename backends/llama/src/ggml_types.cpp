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
  return t == GgmlType::f32 || t == GgmlType::f16 || t == GgmlType::bf16 || t == GgmlType::q8_0;
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
}  // namespace

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
    default: throw Error("dequantize_row: tensor type " + ggml_type_name(static_cast<std::uint32_t>(t)) +
                         " is not supported for computation (supported: f32, f16, bf16, q8_0)");
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
    default: throw Error("quantize_row: unsupported tensor type " + ggml_type_name(static_cast<std::uint32_t>(t)));
  }
}

}  // namespace picospec::llama
