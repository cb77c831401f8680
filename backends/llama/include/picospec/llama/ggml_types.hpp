#pragma once
// Tensor element types as GGUF files number them (ggml's type ids), their block layouts, and row conversion
// between those types and float. Pure functions; thread-safe.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace picospec::llama {

/// ggml tensor type ids (the numbers stored in GGUF tensor infos). Only ids whose block layout we know are listed;
/// any other id makes a GGUF file fail to load with a DecodeError naming the tensor.
enum class GgmlType : std::uint32_t {
  f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9,
  q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15,
  i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, bf16 = 30,
};

/// Layout of one type: `block_elems` elements are stored in `block_bytes` bytes.
struct GgmlTypeTraits {
  const char* name;
  std::uint32_t block_elems;
  std::uint32_t block_bytes;
};

/// Traits of type id `id`, or nullopt when the id is unknown.
[[nodiscard]] std::optional<GgmlTypeTraits> ggml_type_traits(std::uint32_t id) noexcept;
/// Name of a type id ("f32", "q8_0", ...; "type#N" when unknown).
[[nodiscard]] std::string ggml_type_name(std::uint32_t id);

/// Whether this backend can compute with tensors of this type (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K).
[[nodiscard]] bool ggml_type_computable(GgmlType t) noexcept;

/// Converts `n` elements of a row stored as `t` into float. `n` must be a multiple of the type's block size.
/// The values are bit-identical to ggml's dequantize_row_* (same float operations in the same order).
/// Throws picospec::Error for types that are not computable.
void dequantize_row(GgmlType t, const void* src, float* dst, std::size_t n);
/// Converts `n` floats into type `t` (the computable types); writes row_bytes(t, n) bytes. Q4_0, Q4_K, Q5_K and
/// Q6_K use plain round-to-nearest per block (ggml's layouts, not llama-quantize's error-minimising search).
void quantize_row(GgmlType t, const float* src, void* dst, std::size_t n);
/// The 6-bit scale and min of sub-block j (0..7) from the 12 scale bytes of a Q4_K / Q5_K block (ggml's layout;
/// what dequantize_row multiplies by d and dmin).
void k_scale_min(int j, const unsigned char* scales, unsigned char& sc, unsigned char& m) noexcept;
/// Bytes of a row of `n` elements of type `t` (n a multiple of the block size).
[[nodiscard]] std::size_t row_bytes(GgmlType t, std::size_t n);

/// IEEE half <-> float (round to nearest even), and bfloat16 <-> float.
[[nodiscard]] float half_to_float(std::uint16_t h) noexcept;
[[nodiscard]] std::uint16_t float_to_half(float f) noexcept;
[[nodiscard]] float bf16_to_float(std::uint16_t h) noexcept;
[[nodiscard]] std::uint16_t float_to_bf16(float f) noexcept;

}  // namespace picospec::llama
