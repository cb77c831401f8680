#pragma once
// LLaMA-architecture model on GGUF weights, implementing picospec::CausalLM.
//
//   auto model = picospec::llama::LlamaModel::load("stories260K.gguf", {.threads = 2});
//   picospec::LogitRows rows;
//   model->forward(tokens, rows);   // one logits row per token
//   model->truncate(n);             // roll the KV cache back
//
// Batch invariance: the logits at a position are bit-identical whether the tokens were evaluated one at a time or
// in chunks of any size, and whatever the thread count (info().batch_invariant == true). Every output element is
// computed by the same fixed-order reduction whatever the chunk, and threads split rows, never a reduction.
//
// Thread-safety: a LlamaModel is used by one thread at a time (CausalLM contract); it runs its own small pool of
// worker threads inside forward() (joined by the destructor). LlamaWeights are immutable and shared between models
// (shared_ptr<const LlamaWeights>); the GGUF mapping stays alive as long as any model uses it.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "picospec/causal_lm.hpp"
#include "picospec/llama/tokenizer.hpp"

namespace picospec::llama {

class GgufFile;

/// How weights are held in memory.
enum class WeightFormat {
  native,  ///< as stored in the file, memory-mapped (F32 read in place; F16/BF16/Q8_0 rows decoded on the fly)
  f32,     ///< every weight dequantized to F32 at load (more memory, no per-row decoding)
};

/// Hyperparameters read from the `ARCH.*` keys, ARCH = general.architecture: `llama` (LLaMA 1/2/3, Llama 3.1/3.2
/// RoPE frequency factors in rope_freqs.weight), `qwen2` (Q/K/V biases, NEOX rotation) or `qwen3` (per-head RMSNorm
/// of Q and K, NEOX rotation, head size from ARCH.attention.key_length).
struct LlamaHParams {
  std::string arch = "llama";        ///< general.architecture
  std::uint32_t vocab_size = 0;
  std::uint32_t dim = 0;             ///< ARCH.embedding_length
  std::uint32_t n_layers = 0;        ///< ARCH.block_count
  std::uint32_t ffn_dim = 0;         ///< ARCH.feed_forward_length
  std::uint32_t n_heads = 0;         ///< ARCH.attention.head_count
  std::uint32_t n_kv_heads = 0;      ///< ARCH.attention.head_count_kv (default: n_heads)
  std::uint32_t head_dim = 0;        ///< ARCH.attention.key_length (default: dim / n_heads)
  std::uint32_t rope_dim = 0;        ///< ARCH.rope.dimension_count (default: head_dim)
  float rope_base = 10000.0f;        ///< ARCH.rope.freq_base (default 10000)
  float rms_eps = 1e-5f;             ///< ARCH.attention.layer_norm_rms_epsilon
  std::uint32_t context_length = 0;  ///< ARCH.context_length
  bool tied_output = false;          ///< no output.weight: the head reuses token_embd
  bool rope_neox = false;            ///< rotate pairs (i, i + rope_dim/2) (qwen2, qwen3) instead of (2i, 2i+1)
  bool rope_freq_factors = false;    ///< rope_freqs.weight divides each frequency (Llama 3.1/3.2 scaling)
  float rope_freq_scale = 1.0f;      ///< 1 / ARCH.rope.scaling.factor for ARCH.rope.scaling.type "linear", else 1
  bool qkv_bias = false;             ///< blk.N.attn_{q,k,v}.bias present (qwen2)
  bool qk_norm = false;              ///< blk.N.attn_{q,k}_norm.weight: RMSNorm of every Q/K head before RoPE (qwen3)
};

/// Model weights loaded from a GGUF file (validated: keys, tensor presence, shapes, types).
class LlamaWeights {
 public:
  /// Opens, maps and validates `path`. Throws picospec::Error / DecodeError naming the file and key or tensor.
  static std::shared_ptr<const LlamaWeights> load(const std::string& path, WeightFormat format = WeightFormat::native);
  /// Same from an already-parsed file (takes ownership).
  static std::shared_ptr<const LlamaWeights> from_gguf(GgufFile file, WeightFormat format = WeightFormat::native);

  ~LlamaWeights();
  LlamaWeights(const LlamaWeights&) = delete;
  LlamaWeights& operator=(const LlamaWeights&) = delete;

  [[nodiscard]] const LlamaHParams& hparams() const noexcept;
  [[nodiscard]] const std::string& name() const noexcept;
  [[nodiscard]] WeightFormat format() const noexcept;
  /// The tokenizer stored in the file; nullptr when the file has no tokenizer.ggml.* metadata.
  [[nodiscard]] std::shared_ptr<const Tokenizer> tokenizer() const noexcept;
  /// The parsed file (its metadata, e.g. for detect_chat_format in chat.hpp).
  [[nodiscard]] const GgufFile& file() const noexcept;
  /// Bytes of weight data the model reads per token (for bandwidth estimates).
  [[nodiscard]] std::size_t weight_bytes() const noexcept;
  /// The ModelInfo a LlamaModel on these weights reports (name, vocabulary, the file's context length, tokenizer
  /// fingerprint, BOS/EOS, the end-of-generation tokens, batch_invariant), without building a model: what a custom
  /// Drafter or Verifier that works with this model's tokenizer should report.
  [[nodiscard]] ModelInfo info() const;

  struct Impl;
  [[nodiscard]] const Impl& impl() const noexcept { return *impl_; }

 private:
  explicit LlamaWeights(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct LlamaParams {
  std::size_t threads = 0;            ///< worker threads incl. the caller; 0 = std::thread::hardware_concurrency()
  std::uint32_t context_length = 0;   ///< KV cache size; 0 = the model's llama.context_length (never larger than it)
  WeightFormat weights = WeightFormat::native;  ///< used by load() only
  /// Q8_0, Q4_0, Q4_K, Q5_K and Q6_K weight matrices (docs/llama.md "Two paths for quantized weights"): true =
  /// the integer path (each activation row quantized to 8-bit blocks of 32, or super-blocks of 256 for the
  /// K-quants, exact integer products, as llama.cpp does: the faster one); false = the exact float path (weights
  /// widened to float: logits bit-identical to the model dequantized to F32 at load). Unset (the default): the
  /// environment variable PICOSPEC_LLAMA_Q8 ("int" or "float") if set, else true. Both paths are batch-invariant
  /// and give the same bits on every kernel variant.
  std::optional<bool> q8_activations = std::nullopt;
};

class LlamaModel final : public CausalLM {
 public:
  /// A model over shared weights with its own KV cache and thread pool.
  explicit LlamaModel(std::shared_ptr<const LlamaWeights> weights, LlamaParams params = {});
  /// Loads weights from `path` (params.weights) and builds a model.
  static std::unique_ptr<LlamaModel> load(const std::string& path, LlamaParams params = {});
  ~LlamaModel() override;

  [[nodiscard]] const LlamaWeights& weights() const noexcept { return *weights_; }
  [[nodiscard]] std::shared_ptr<const LlamaWeights> shared_weights() const noexcept { return weights_; }
  [[nodiscard]] std::shared_ptr<const Tokenizer> tokenizer() const noexcept { return weights_->tokenizer(); }
  [[nodiscard]] std::size_t threads() const noexcept;
  /// The kernel variant chosen at load for this CPU: "avx512", "avx2" or "generic" (docs/llama.md).
  [[nodiscard]] const char* kernel_isa() const noexcept;
  /// How quantized weight matrices are multiplied: "int" (LlamaParams::q8_activations) or "float".
  [[nodiscard]] const char* q8_path() const noexcept;

 protected:
  void do_forward(std::span<const Token> tokens, LogitRows& out) override;
  void do_forward_last(std::span<const Token> tokens, LogitRows& out) override;
  void do_truncate(std::size_t n) override;
  /// The shared weights' address: models over the same LlamaWeights are evaluated together by
  /// CausalLM::forward_batch (one pass, each weight read once; per-sequence KV caches; bit-identical rows).
  const void* do_batch_key() const noexcept override;
  void do_forward_batch(std::span<const BatchItem> items) override;
  /// Multi-branch drafting in one pass (shared prefix in the KV cache, each branch's tail in scratch).
  bool do_forward_with_branches(std::span<const Token> tokens, LogitRows& out, std::span<const Branch> branches,
                                LogitRows& branch_out) override;

 private:
  struct State;
  std::shared_ptr<const LlamaWeights> weights_;
  std::unique_ptr<State> st_;
};

}  // namespace picospec::llama
