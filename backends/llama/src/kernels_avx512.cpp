// AVX-512 (F, VL, BW, DQ) + FMA + F16C kernels. Compiled with those -m flags (backends/llama/CMakeLists.txt) and
// selected at load only when the CPU has them (kernels_dispatch.cpp).
#include "kernels.hpp"

#include <type_traits>

#if defined(__AVX512F__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

namespace picospec::llama::kernels {
namespace {

struct V {
  __m512 v;
};
inline V vzero() noexcept { return {_mm512_setzero_ps()}; }
inline V vload(const float* p) noexcept { return {_mm512_loadu_ps(p)}; }
inline void vstore(float* p, V a) noexcept { _mm512_storeu_ps(p, a.v); }
inline V vbroadcast(float f) noexcept { return {_mm512_set1_ps(f)}; }
inline V vfma(V a, V b, V c) noexcept { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline V vmul(V a, V b) noexcept { return {_mm512_mul_ps(a.v, b.v)}; }
inline float vhsum(V a) noexcept {
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(a.v),
                                  _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a.v), 1)));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));  // [s4[0]+s4[2], s4[1]+s4[3], ...]
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}
// vhsum of four vectors at once: each level adds the same lane pairs as vhsum, four vectors per instruction.
inline void vhsum4(V a, V b, V c, V d, float* out4) noexcept {
  // s8 (lanes k + k+8): quarters [q0+q2, q1+q3] of a and b side by side, then c and d
  const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a.v, b.v, 0x44), _mm512_shuffle_f32x4(a.v, b.v, 0xEE));
  const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c.v, d.v, 0x44), _mm512_shuffle_f32x4(c.v, d.v, 0xEE));
  // s4 (k + k+4): one quarter per vector: [a.s4, b.s4, c.s4, d.s4]
  const __m512 s4 = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD));
  // (s4[0] + s4[2]), (s4[1] + s4[3]) in lanes 0, 1 of each quarter; then their sum in lane 0
  const __m512 s2 = _mm512_add_ps(s4, _mm512_permute_ps(s4, _MM_SHUFFLE(1, 0, 3, 2)));
  const __m512 s1 = _mm512_add_ps(s2, _mm512_permute_ps(s2, _MM_SHUFFLE(2, 3, 0, 1)));
  const __m512i idx = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0);
  _mm_storeu_ps(out4, _mm512_castps512_ps128(_mm512_permutexvar_ps(idx, s1)));
}
inline V vload_f16(const void* p) noexcept {
  return {_mm512_cvtph_ps(_mm256_loadu_si256(static_cast<const __m256i*>(p)))};
}
inline V vload_bf16(const void* p) noexcept {
  const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
  return {_mm512_castsi512_ps(_mm512_slli_epi32(u, 16))};
}
inline V vload_q8(const void* q) noexcept {
  return {_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(static_cast<const __m128i*>(q))))};
}
inline float half_scalar(std::uint16_t h) noexcept { return _cvtsh_ss(h); }
inline V vsub(V a, V b) noexcept { return {_mm512_sub_ps(a.v, b.v)}; }
inline __m512i vu8(const std::uint8_t* p, int shift) noexcept {  // 16 bytes, each >> shift, as 16 int32 lanes
  const __m512i u = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm512_srl_epi32(u, _mm_cvtsi32_si128(shift));
}
inline V vnib(const std::uint8_t* p, int shift) noexcept {
  return {_mm512_cvtepi32_ps(_mm512_and_si512(vu8(p, shift), _mm512_set1_epi32(15)))};
}
inline V vq6(const std::uint8_t* ql, int ls, const std::uint8_t* qh, int hs) noexcept {
  const __m512i lo = _mm512_and_si512(vu8(ql, ls), _mm512_set1_epi32(15));
  const __m512i hi = _mm512_slli_epi32(_mm512_and_si512(vu8(qh, hs), _mm512_set1_epi32(3)), 4);
  return {_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_or_si512(lo, hi), _mm512_set1_epi32(32)))};
}

constexpr int kRowsMain = 4, kTokMain = 6, kRowsSmall = 1;
constexpr std::size_t kTokSmall = 6;

}  // namespace

#include "kernels_simd.inc"

#define PICOSPEC_Q8_VNNI 0
#include "kernels_q8_avx512.inc"
#undef PICOSPEC_Q8_VNNI

const Table* avx512_bw_table() noexcept {
  static const Table t{Isa::avx512, kRowsMain, &simd_matmul, &simd_dot, &simd_axpy, &q8_quantize, &q8k_quantize,
                       &int_matmul, "avx512bw"};
  return &t;
}

const Table* avx512_table() noexcept {
  if (const Table* v = avx512_vnni_table()) return v;
  return avx512_bw_table();
}

}  // namespace picospec::llama::kernels

#else

namespace picospec::llama::kernels {
const Table* avx512_table() noexcept { return nullptr; }
const Table* avx512_bw_table() noexcept { return nullptr; }
}  // namespace picospec::llama::kernels

#endif
