#pragma once
// Fixed-order dot-product kernels (internal to picospec::llama), one variant per instruction set, chosen at load.
//
// Batch invariance rests on these. Every output element y = dot(w, x) over n elements is computed as:
//   16 lanes: lane k accumulates the elements i with i % 16 == k, i < n - n % 16, in increasing i;
//   a fixed pairwise reduction of the lanes: s8[k] = a[k] + a[k+8], s4[k] = s8[k] + s8[k+4],
//                                             s = (s4[0] + s4[2]) + (s4[1] + s4[3]);
//   then the scalar tail (the last n % 16 elements, in order) is accumulated separately and added last.
// The order depends on n alone: never on how many tokens are processed together, how the rows of a matrix are
// tiled or split over threads, or the buffers' alignment. A weight row is read once per tile of tokens and each
// (row, token) pair of the tile has its own accumulator.
//
// The variants differ only in the multiply-add of one lane step:
//   generic: acc = acc + w * x (two roundings; the library is compiled with -ffp-contract=off so no path fuses);
//   avx2, avx512: acc = fma(w, x, acc) (one rounding). AVX2 keeps the 16 lanes in two 8-float registers and
//   reduces them in the order above, so the avx2 and avx512 variants give bit-identical results.
// In matmul, weights stored as F16, BF16 or Q8_0 are widened to float first (Q8_0: float(q) * d, exactly
// dequantize_row's value), so a natively computed quantized model equals the same model dequantized to F32 at load,
// bit for bit (for Q8_0 that is the exact float path; the model's default for Q8_0 is matmul_q8 below).
//
// The integer Q8_0 path (matmul_q8, the default for Q8_0 weights; LlamaParams::q8_activations) instead quantizes
// each activation row once per call (quantize_q8) and multiplies integers. Its order, identical in every variant:
//   activation block b (32 values x_i): a = max |x_i| (compared as the bit patterns of |x|, so NaN/inf are seen);
//     a not finite: d_x = NaN, q_i = 0;  otherwise d_x = a / 127 (float division), q_i = 0 when d_x == 0, else
//     q_i = clamp(round_half_even(x_i / d_x), -127, 127). Stored: the 32 bytes q_i + 128 (unsigned, 1..255:
//     vpdpbusd takes them as they are), then d_x eight times (8 floats).
//   a weight row's block b (half d_w, 32 int8 w_i) against the token's block b: 8 exact int32 lane sums
//     s_k = sum_{e<4} w_{4k+e} q_{4k+e} (k < 8); scale d_b = float(d_w) * d_x (one rounding);
//     the 16 float lanes: block b goes to lanes 8 (b % 2) + k, and lane = fma(float(s_k), d_b, lane), blocks in
//     increasing b (an odd last block touches lanes 0-7 only);
//   the 16 lanes are reduced in the fixed pairwise order above. Rows must be whole blocks (cols % 32 == 0).
// float(s_k) is exact (|s_k| <= 4 * 128 * 127 < 2^24) and every float operation is a correctly rounded IEEE
// operation (the generic variant calls std::fma), so generic, avx2 and avx512 (with or without VNNI) agree bit for
// bit, and each output element depends on its own row and token only (batch-invariant).
//
// Q4_0 weights use the same activation blocks, lanes and order: a block (half d, nibbles u_i, w_i = u_i - 8)
// gives s_k = sum_{e<4} u q - 8 sum_{e<4} q (exact int32) and lane = fma(float(s_k), float(d) * d_x, lane).
//
// Q4_K, Q5_K and Q6_K weights (super-blocks of 256) use activations quantized per 256 instead (quantize_q8k, as
// llama.cpp's Q8_K): super-block s of a row: a = max |x_i| over its 256 values, D = a / 127 and q_i as above
// (NaN when not finite); stored: the 256 int8 q_i, the 16 int16 sums of each 16 consecutive q_i (bsum_i), D.
// With whole super-blocks the integer work needs no float at all; per super-block and (row, token) element:
//   Q4_K (half d, dmin; 6-bit sc_j, m_j for the 8 sub-blocks of 32; nibbles u): 8 int32 lanes
//     I_k = sum_j sc_j * sum_{e<4} u_{32j+4k+e} q_{32j+4k+e} (exact), and M = sum_i m_{i/2} bsum_i (exact);
//     acc[k] = fma(float(I_k), d * D, acc[k]) for k < 8, then acc[0] = fma(float(M), -(dmin * D), acc[0]);
//   Q5_K: as Q4_K with u = nibble + 16 * (bit j of high-bit byte i) (0..31);
//   Q6_K (half d; int8 sc_i for the 16 sub-blocks of 16; 6-bit u, w = u - 32): 8 int32 lanes
//     I_k = sum_j (sc_{2j + k/4} * sum_{e<4} u_{32j+4k+e} q_{32j+4k+e}) and I_0 -= 32 * sum_i sc_i bsum_i (exact);
//     acc[k] = fma(float(I_k), d * D, acc[k]);
// 8 float lanes, super-blocks in increasing order, reduced as s4[k] = a[k] + a[k+4], (s4[0] + s4[2]) +
// (s4[1] + s4[3]). The integers are exact whatever the order of their additions, so each variant may group them
// as it likes (256- or 512-bit, VNNI or not); the float steps are the same correctly rounded operations in every
// variant, so all give the same bits, and each element depends on its own row and token only.

#include <cstddef>
#include <cstdint>
#include <string>

#include "picospec/llama/ggml_types.hpp"

namespace picospec::llama::kernels {

enum class Isa { generic, avx2, avx512 };

[[nodiscard]] const char* isa_name(Isa isa) noexcept;

/// A row-major weight matrix as stored: `rows` rows of `cols` elements of `type`, `row_bytes` bytes each.
struct Weights {
  GgmlType type = GgmlType::f32;
  const std::uint8_t* data = nullptr;
  std::size_t rows = 0, cols = 0, row_bytes = 0;
};

/// The kernels of one instruction set.
struct Table {
  Isa isa = Isa::generic;
  /// Rows a matmul range should be a multiple of (threads split rows in multiples of this; any range is correct).
  std::size_t row_tile = 1;
  /// Y[j * ystride + r] = dot(W.row(r), X + j * xstride) for r in [r0, r1), j < nt; W.cols elements each.
  void (*matmul)(const Weights& W, std::size_t r0, std::size_t r1, const float* X, std::size_t xstride,
                 std::size_t nt, float* Y, std::size_t ystride) = nullptr;
  /// dot(a, b) over n elements (same order as matmul).
  float (*dot)(const float* a, const float* b, std::size_t n) = nullptr;
  /// y[e] = y[e] + a * x[e] for e < n (fused on the FMA variants): one step of attention's value sum.
  void (*axpy)(float a, const float* x, float* y, std::size_t n) = nullptr;
  /// One activation row of n floats (n % 32 == 0) to its blocks of 32: the first q8_k_at(n) bytes of a quantized
  /// row (the order above).
  void (*quantize_q8)(const float* x, std::size_t n, std::uint8_t* out) = nullptr;
  /// The same row (n % 256 == 0) to its super-blocks of 256, written at out + q8_k_at(n).
  void (*quantize_q8k)(const float* x, std::size_t n, std::uint8_t* out) = nullptr;
  /// The integer path: Y[j * ystride + r] = row r of W (W.type q8_0, q4_0, q4_k, q5_k or q6_k: has_int_path;
  /// W.cols % 32 == 0, or % 256 for the K-quants) times quantized activation row j (xqstride bytes apart; the part
  /// q8_part(W.type) filled) for r in [r0, r1), j < nt.
  void (*matmul_q8)(const Weights& W, std::size_t r0, std::size_t r1, const std::uint8_t* XQ, std::size_t xqstride,
                    std::size_t nt, float* Y, std::size_t ystride) = nullptr;
  /// The name of matmul_q8's integer dot product ("vnni", "avx512bw", "avx2" or "generic").
  const char* q8_dot = "generic";
};

/// A quantized activation row of n elements (n % 32 == 0): blocks of 32 (n bytes q + 128, then each block's scale
/// 8 times: n / 32 * 8 floats), then, from q8_k_at(n), super-blocks of 256 (q8k_block_bytes each: 256 int8 q, 16
/// int16 sums, float D). Either part is filled on demand (quantize_q8, quantize_q8k).
constexpr std::size_t q8k_block_bytes = 256 + 32 + 4;
constexpr std::size_t q8_k_at(std::size_t n) noexcept { return 2 * n; }
constexpr std::size_t q8_row_bytes(std::size_t n) noexcept { return 2 * n + n / 256 * q8k_block_bytes; }

/// Which part of a quantized row the integer path reads for weights of type t: blocks of 32 or super-blocks of 256.
enum class Q8Part { blocks32, super256 };
constexpr Q8Part q8_part(GgmlType t) noexcept {
  return t == GgmlType::q4_k || t == GgmlType::q5_k || t == GgmlType::q6_k ? Q8Part::super256 : Q8Part::blocks32;
}

/// Whether matmul_q8 takes weights of type t (the integer path): Q8_0, Q4_0, Q4_K, Q5_K, Q6_K.
constexpr bool has_int_path(GgmlType t) noexcept {
  return t == GgmlType::q8_0 || t == GgmlType::q4_0 || t == GgmlType::q4_k || t == GgmlType::q5_k ||
         t == GgmlType::q6_k;
}

/// The variant for `isa`, or nullptr when this CPU (or this build) cannot run it.
[[nodiscard]] const Table* table(Isa isa) noexcept;

/// The best variant this CPU runs, unless the environment variable PICOSPEC_LLAMA_ISA names another one
/// ("generic", "avx2", "avx512"); throws picospec::Error when it names an unknown or unsupported one.
[[nodiscard]] const Table& select();

/// This thread's scratch row of at least n floats (grows, never shrinks; for types widened row by row).
float* scratch_row(std::size_t n);

// Per-ISA tables (defined in kernels_<isa>.cpp; nullptr-returning stubs where the compiler lacks the ISA).
const Table* generic_table() noexcept;
const Table* avx2_table() noexcept;
const Table* avx512_table() noexcept;
/// The AVX-512 variant with the VNNI dot product (nullptr where the CPU lacks avx512vnni), and without it
/// (maddubs/madd); avx512_table() is the first when the CPU has VNNI. For tests: both give the same bits.
const Table* avx512_vnni_table() noexcept;
const Table* avx512_bw_table() noexcept;

}  // namespace picospec::llama::kernels
