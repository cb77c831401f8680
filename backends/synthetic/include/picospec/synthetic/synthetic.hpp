#pragma once
// picospec::synthetic — a seeded procedural target/draft model pair with a latency profile.
//
// SYNTHETIC: these models are not language models. They exist so tests and what-if benchmarks can run the
// pipeline with a known draft/target agreement and a chosen speed, on any machine. Every output that uses them
// should say "synthetic".
//
// Target: the logits at position t are a pure function of (world seed, the last `context_order` tokens):
//   logit(x) = -s * ln(u(h, x)),  u(h, x) in (0, 1) a 24-bit hash of (h, x),  h = hash(seed, last tokens).
// Sorted, the u's are about r / V, so p(x) ~ rank^-s: a Zipf law with a fresh random ranking per context.
// `zipf_s` tunes the entropy (larger = peakier). No V x V table: one row costs O(V) hashes and logs.
// Draft: q = (1 - λ) p + λ w, where w is an independent, peakier Zipf row (another salt, exponent 2s + 0.5), and λ = min(1, (1 - α) / TV(p, w))
// is chosen per context, so that Σ_x min(p, q) = 1 - λ TV(p, w) = α exactly at temperature 1 without truncation
// (when TV(p, w) >= 1 - α; otherwise λ = 1 and the agreement is higher). Other sampling transforms change the
// agreement; measure_alpha() reports it for any SamplingParams.
// Batch-invariant by construction (rows depend only on the context), declared in ModelInfo.
//
// Latency: forward(n tokens) lasts time_scale * (a + b n) milliseconds. The row computation runs inside that
// budget: the model sleeps until the deadline rather than for a fixed time (a forward whose computation alone
// takes longer simply returns late).
//
// Device: models given the same `Device` share one emulated accelerator: their forward() calls run one at a time
// (as on one GPU), and CausalLM::forward_batch() evaluates several of them (same latency) as ONE call lasting
// time_scale * (a + b * N), N = the tokens of all sequences together: the fixed cost `a` (reading the weights) is
// paid once per batch, the per-token cost `b` per token. That is how a memory-bound accelerator batches sequences;
// the a and b of each profile come from the paper's AR and verify times (see profile()).
//
// Thread-safety: one thread at a time per model instance; distinct instances are independent (a shared Device
// serializes their forwards).

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "picospec/causal_lm.hpp"
#include "picospec/drafter.hpp"
#include "picospec/types.hpp"
#include "picospec/verifier.hpp"

namespace picospec::synthetic {

/// T(n tokens) = a_ms + b_ms * n.
struct Latency {
  double a_ms = 0.0;
  double b_ms = 0.0;
  [[nodiscard]] double forward_ms(std::size_t n) const noexcept { return a_ms + b_ms * static_cast<double>(n); }
};

enum class Role : std::uint8_t { target, draft };

/// One emulated accelerator shared by models (see the header comment). Create with std::make_shared.
struct Device {
  std::mutex mu;  ///< held for the whole of each forward (or batched forward) on this device
};

struct ModelParams {
  Role role = Role::target;
  std::uint32_t vocab_size = 1024;
  std::uint64_t world_seed = 1;    ///< shared by the target and its draft
  double zipf_s = 1.1;             ///< Zipf exponent of every row (> 0)
  double alpha = 0.8;              ///< draft only: Σ min(p, q) at temperature 1, in (0, 1]
  int context_order = 2;           ///< how many trailing tokens choose the row (1..4)
  Latency latency;                 ///< per forward() call
  double time_scale = 1.0;         ///< multiplies every latency (0 = no sleeping)
  Token eos = kNoToken;            ///< reported in ModelInfo (the rows do not favour it)
  std::vector<Token> eog;          ///< more end-of-generation tokens, reported in ModelInfo::eog
  std::uint32_t context_length = 0;  ///< 0 = unbounded
  std::string name;                ///< ModelInfo::name ("" = "synthetic-target" / "synthetic-draft")
  std::shared_ptr<Device> device;  ///< null = a device of its own (forwards overlap with other models' freely)
};

/// The procedural causal LM (target or draft role). Throws Error on bad params.
class SyntheticLM final : public CausalLM {
 public:
  explicit SyntheticLM(ModelParams params);
  [[nodiscard]] const ModelParams& params() const noexcept { return params_; }

  /// Next-token logits for an explicit context (no latency, no state change). `context` non-empty.
  void logits_for(std::span<const Token> context, std::span<float> out) const;

 protected:
  void do_forward(std::span<const Token> tokens, LogitRows& out) override;
  void do_truncate(std::size_t n) override;
  /// Batched multi-branch evaluation: the appended tokens and every branch in one call lasting
  /// time_scale·(a + b·(tokens.size() + branches.size())), i.e. one new token per sequence, as a backend that
  /// keeps a KV cache per branch and evaluates all sequences of a step in one batched forward would.
  bool do_forward_with_branches(std::span<const Token> tokens, LogitRows& out, std::span<const Branch> branches,
                                LogitRows& branch_out) override;
  /// The device's address when the model has a shared Device, else nullptr.
  const void* do_batch_key() const noexcept override;
  /// One call for all sequences: time_scale * (a + b * total tokens), under the device lock.
  void do_forward_batch(std::span<const BatchItem> items) override;

 private:
  void rows_for(std::span<const Token> tokens, LogitRows& out);

  ModelParams params_;
  std::vector<Token> tokens_;
  mutable std::vector<float> scratch_p_, scratch_w_;
  std::vector<Token> window_;  // a branch's last context_order tokens
};

/// A named pair of latency profiles, as measured in the PicoSpec paper (converted to a + b n).
struct Profile {
  std::string name;
  std::uint32_t vocab_size = 0;
  Latency draft;    ///< edge model; a + b = per-token draft time
  Latency target;   ///< cloud model; a + b = autoregressive time per token, a + 4b = verify time of a 4-token chunk
};

/// "qwen-paper": draft 24 ms/token, verify 87 ms per 4-token chunk, cloud AR 72 ms/token, vocab 151936.
/// "llama-paper": draft 43 ms/token, verify 166 ms per 4-token chunk, cloud AR 146 ms/token, vocab 128256.
/// "tiny": vocab 64, 2 ms draft, 4 ms + 1 ms/token target (for tests). Throws Error for other names.
[[nodiscard]] Profile profile(const std::string& name);
[[nodiscard]] std::vector<std::string> profile_names();

/// Everything needed to build a target/draft pair.
struct PairParams {
  Profile profile = Profile{"none", 1024, {}, {}};
  std::uint64_t world_seed = 1;
  double zipf_s = 1.1;
  double alpha = 0.8;
  int context_order = 2;
  double time_scale = 1.0;
  Token eos = kNoToken;
  /// The target's emulated accelerator: give every verifier of one server the same Device (make_shared) to model
  /// one cloud GPU (forwards serialized, sessions batchable); null = each target model on a device of its own.
  std::shared_ptr<Device> target_device;
  std::vector<Token> eog;  ///< more end-of-generation tokens (ModelInfo::eog of both models)
};

[[nodiscard]] std::unique_ptr<SyntheticLM> make_target_lm(const PairParams& p);
[[nodiscard]] std::unique_ptr<SyntheticLM> make_draft_lm(const PairParams& p);
/// LmDrafter / LmVerifier over the synthetic models.
[[nodiscard]] std::unique_ptr<Drafter> make_drafter(const PairParams& p);
[[nodiscard]] std::unique_ptr<Verifier> make_verifier(const PairParams& p);

/// Measured agreement Σ_x min(p, q) after `sampling`, averaged over `contexts` random contexts (seeded).
/// The models are evaluated without latency.
[[nodiscard]] double measure_alpha(const PairParams& p, const SamplingParams& sampling, int contexts = 64,
                                   std::uint64_t seed = 12345);

}  // namespace picospec::synthetic
