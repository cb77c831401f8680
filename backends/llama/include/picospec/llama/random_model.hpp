#pragma once
// Writes small or large LLaMA GGUF files with seeded random weights and a synthetic SentencePiece vocabulary.
// For tests (models that exist without ../shared) and benchmarks (a bigger model than the shared ones).
// Pure functions; thread-safe.

#include <cstdint>

#include "picospec/llama/ggml_types.hpp"
#include "picospec/llama/gguf_writer.hpp"

namespace picospec::llama {

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
};

/// A GgufWriter holding the whole model (metadata, tokenizer, tensors); call bytes() or write_file().
[[nodiscard]] GgufWriter random_llama_gguf(const RandomLlamaSpec& spec);

}  // namespace picospec::llama
