// AVX2 + FMA + F16C kernels. The 16 lanes of kernels.hpp live in two 8-float registers (lanes 0-7 and 8-15) and
// are reduced in the same order as the AVX-512 variant, so both give bit-identical results. Compiled with those
// -m flags (backends/llama/CMakeLists.txt) and selected at load only when the CPU has them.
#include "kernels.hpp"

#include <type_traits>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

namespace picospec::llama::kernels {
namespace {

struct V {
  __m256 lo, hi;
};
inline V vzero() noexcept { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline V vload(const float* p) noexcept { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
inline void vstore(float* p, V a) noexcept {
  _mm256_storeu_ps(p, a.lo);
  _mm256_storeu_ps(p + 8, a.hi);
}
inline V vbroadcast(float f) noexcept { return {_mm256_set1_ps(f), _mm256_set1_ps(f)}; }
inline V vfma(V a, V b, V c) noexcept { return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)}; }
inline V vmul(V a, V b) noexcept { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
inline float vhsum(V a) noexcept {
  const __m256 s8 = _mm256_add_ps(a.lo, a.hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}
inline void vhsum4(V a, V b, V c, V d, float* out4) noexcept {
  out4[0] = vhsum(a);
  out4[1] = vhsum(b);
  out4[2] = vhsum(c);
  out4[3] = vhsum(d);
}
inline V vload_f16(const void* p) noexcept {
  const auto* q = static_cast<const __m128i*>(p);
  return {_mm256_cvtph_ps(_mm_loadu_si128(q)), _mm256_cvtph_ps(_mm_loadu_si128(q + 1))};
}
inline V vload_bf16(const void* p) noexcept {
  const auto* q = static_cast<const __m128i*>(p);
  const __m256i a = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(q)), 16);
  const __m256i b = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(q + 1)), 16);
  return {_mm256_castsi256_ps(a), _mm256_castsi256_ps(b)};
}
inline V vload_q8(const void* q) noexcept {
  const auto* b = static_cast<const std::uint8_t*>(q);
  return {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b)))),
          _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 8))))};
}
inline float half_scalar(std::uint16_t h) noexcept { return _cvtsh_ss(h); }
inline V vsub(V a, V b) noexcept { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
inline __m256i vu8(const std::uint8_t* p, int shift) noexcept {  // 8 bytes, each >> shift, as 8 int32 lanes
  const __m256i u = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  return _mm256_srl_epi32(u, _mm_cvtsi32_si128(shift));
}
inline __m256 vnib8(const std::uint8_t* p, int shift) noexcept {
  return _mm256_cvtepi32_ps(_mm256_and_si256(vu8(p, shift), _mm256_set1_epi32(15)));
}
inline V vnib(const std::uint8_t* p, int shift) noexcept { return {vnib8(p, shift), vnib8(p + 8, shift)}; }
inline __m256 vq6_8(const std::uint8_t* ql, int ls, const std::uint8_t* qh, int hs) noexcept {
  const __m256i lo = _mm256_and_si256(vu8(ql, ls), _mm256_set1_epi32(15));
  const __m256i hi = _mm256_slli_epi32(_mm256_and_si256(vu8(qh, hs), _mm256_set1_epi32(3)), 4);
  return _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_or_si256(lo, hi), _mm256_set1_epi32(32)));
}
inline V vq6(const std::uint8_t* ql, int ls, const std::uint8_t* qh, int hs) noexcept {
  return {vq6_8(ql, ls, qh, hs), vq6_8(ql + 8, ls, qh + 8, hs)};
}

constexpr int kRowsMain = 2, kTokMain = 3, kRowsSmall = 1;
constexpr std::size_t kTokSmall = 6;

}  // namespace

#include "kernels_simd.inc"
#include "kernels_qk.inc"

namespace {

// ---- The integer Q8_0 path (kernels.hpp): lanes 0-7 (even blocks) in one register, 8-15 (odd) in another ----

void q8_quantize(const float* x, std::size_t n, std::uint8_t* out) {
  float* scales = reinterpret_cast<float*>(out + n);
  for (std::size_t b = 0; b < n / 32; ++b) {
    const float* xb = x + 32 * b;
    const float d = qk_scale(qk_amax_bits(xb, 4));
    const bool zero = !(d > 0.0f);  // zero or NaN: every q_i is 0
    const __m256i q = zero ? _mm256_setzero_si256() : qk_quantize32(xb, _mm256_set1_ps(d));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * b), _mm256_xor_si256(q, _mm256_set1_epi8(-128)));
    _mm256_storeu_ps(scales + 8 * b, _mm256_set1_ps(d));
  }
}

template <int R, int T>
void q8tile(const std::uint8_t* w, std::size_t row_bytes, std::size_t n, const std::uint8_t* xq,
            std::size_t xqstride, float* out, std::size_t ostride) noexcept {
  __m256 acc[R][T][2];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t][0] = acc[r][t][1] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  auto block = [&](std::size_t b, auto half) {
    constexpr int H = decltype(half)::value;
    __m256i wv[R], wa[R];
    __m256 dw[R];
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* blk = w + static_cast<std::size_t>(r) * row_bytes + 34 * b;
      wv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
      wa[r] = _mm256_abs_epi8(wv[r]);  // |w| as unsigned bytes (|-128| = 128 exactly)
      dw[r] = _mm256_set1_ps(half_scalar(ld16(blk)));
    }
    for (int t = 0; t < T; ++t) {
      const std::uint8_t* xr = xq + static_cast<std::size_t>(t) * xqstride;
      const __m256i xv = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + 32 * b)),
                                          _mm256_set1_epi8(-128));  // back to q
      const __m256 dx = _mm256_loadu_ps(reinterpret_cast<const float*>(xr + n) + 8 * b);
      for (int r = 0; r < R; ++r) {
        // |w| * (x with w's sign): pairs of products never saturate int16 (2 * 128 * 127 < 32767)
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(wa[r], _mm256_sign_epi8(xv, wv[r])), ones);
        acc[r][t][H] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dw[r], dx), acc[r][t][H]);
      }
    }
  };
  const std::size_t nb = n / 32;
  std::size_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    block(b, std::integral_constant<int, 0>{});
    block(b + 1, std::integral_constant<int, 1>{});
  }
  if (b < nb) block(b, std::integral_constant<int, 0>{});
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t)
      out[static_cast<std::size_t>(t) * ostride + static_cast<std::size_t>(r)] = vhsum(V{acc[r][t][0], acc[r][t][1]});
}

constexpr int kQ8Rows = 2, kQ8Tok = 3;
constexpr int kQ8TokOne = 6;
constexpr std::size_t kQ8TokSmall = 6;

}  // namespace

#include "kernels_q8.inc"

const Table* avx2_table() noexcept {
  static const Table t{Isa::avx2, kRowsMain, &simd_matmul, &simd_dot, &simd_axpy, &q8_quantize, &q8k_quantize, &int_matmul, "avx2"};
  return &t;
}

}  // namespace picospec::llama::kernels

#else

namespace picospec::llama::kernels {
const Table* avx2_table() noexcept { return nullptr; }
}  // namespace picospec::llama::kernels

#endif
