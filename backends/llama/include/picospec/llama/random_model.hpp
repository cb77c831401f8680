#pragma once
// Writes small or large LLaMA / Qwen3 GGUF files with seeded random weights and a synthetic SentencePiece
// vocabulary (or the tokenizer of another GGUF file). For tests (models that exist without ../shared) and benchmarks
// (a bigger model than the shared ones). Pure functions; thread-safe.

#include <cstdint>
#include <string>

#include "picospec/llama/ggml_types.hpp"
#include "picospec/llama/gguf_writer.hpp"

namespace picospec::llama {

class GgufFile;

struct RandomLlamaSpec {
  std::uint32_t vocab_size = 300;  ///< >= 260 (3 control tokens + 256 byte tokens + at least one piece)
  std::uint32_t dim = 64;
  std::uint32_t n_layers = 2;
  std::uint32_t ffn_dim = 96;
  std::uint32_t n_heads = 4;
  std::uint32_t n_kv_heads = 2;
  std::uint32_t rope_dim = 0;  ///< 0 = head_dim
  float rope_base = 10000.0f;
  std::uint32_t context_length = 256;
  GgmlType type = GgmlType::f32;  ///< type of the 2-D weights (norms stay F32)
  bool tied_output = false;
  std::uint64_t seed = 1;
  std::uint32_t gguf_version = 3;
  /// "llama" or "qwen3" (adds the per-head Q/K RMSNorm weights; NEOX rotation is implied by the architecture).
  std::string arch = "llama";
  std::uint32_t head_dim = 0;  ///< 0 = dim / n_heads; else written as `<arch>.attention.key_length` (Qwen3: 128)
  /// llama-quantize's Q4_K_M mix instead of one `type`: Q4_K everywhere except Q6_K for output.weight (token_embd
  /// when tied) and for attn_v / ffn_down on the layers it gives more bits (first and last eighth, every third
  /// between).
  bool q4_k_m = false;
  /// When set, every `tokenizer.*` key is copied from this file instead of the synthetic vocabulary, and
  /// vocab_size must equal its token count (e.g. a vocabulary-only GGUF of a real model).
  const GgufFile* tokenizer_from = nullptr;
};

/// Whether llama-quantize's Q4_K_M gives layer `i` of `n` more bits (Q6_K for attn_v and ffn_down).
[[nodiscard]] bool q4_k_m_more_bits(std::uint32_t i, std::uint32_t n) noexcept;

/// A GgufWriter holding the whole model (metadata, tokenizer, tensors); call bytes() or write_file().
[[nodiscard]] GgufWriter random_llama_gguf(const RandomLlamaSpec& spec);

}  // namespace picospec::llama
