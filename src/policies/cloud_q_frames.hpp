#pragma once
// Shared cloud half of the two modes that upload q per draft token (full: dense_f32 raw; sparse_draft: a lossy
// codec, normalized): the cloud holds p and q̂, tests u < min(1, p(d)/q̂(d)) and draws the correction from
// norm(max(0, p - q̂)) with the keyed residual draw.
#include "picospec/rejection.hpp"
#include "picospec/rng.hpp"
#include "picospec/sparse_codec.hpp"
#include "policies/policy.hpp"

namespace picospec::detail {

class CloudQFrames : public CloudPolicy {
 public:
  CloudQFrames(const PolicyConfig& cfg, RejectionMode mode, Normalization norm) : cfg_(cfg), mode_(mode), norm_(norm) {
    if (cfg.codec.empty()) throw PolicyFailure{wire::ErrorCode::unsupported_codec, "this rejection mode needs a codec"};
    try {
      codec_ = make_codec(cfg.codec);
    } catch (const std::exception& e) {
      throw PolicyFailure{wire::ErrorCode::unsupported_codec, e.what()};
    }
  }
  RejectionMode mode() const noexcept override { return mode_; }
  void check_draft(const wire::Draft& d) const override {
    if (d.tokens.size() > d.n_fixed && d.q_frames.size() != d.tokens.size())
      throw PolicyFailure{wire::ErrorCode::invalid_params, "Draft needs one q frame per token"};
  }
  bool test(const wire::Draft& d, std::size_t i, std::span<const float> logits, std::uint64_t position,
            std::uint32_t epoch) override {
    const Token tok = d.tokens[i];
    logits_to_probs(logits, cfg_.sampling, probs_, ws_);
    q_hat_ = codec_->decode(d.q_frames[i], cfg_.vocab, norm_);
    const bool ok = accept_draft(probs_[static_cast<std::size_t>(tok)], q_hat_.prob(tok),
                                 uniform(cfg_.seed, Purpose::accept, position, epoch));
    if (!ok) correction_ = residual_sparse_q(probs_, q_hat_, uniform(cfg_.seed, Purpose::residual, position, epoch));
    return ok;
  }
  CloudRejection reject(wire::Verdict& v, std::uint64_t, std::uint32_t) override {
    v.kind = wire::VerdictKind::correction_token;
    v.correction = correction_;
    return CloudRejection{true};
  }

 private:
  PolicyConfig cfg_;
  RejectionMode mode_;
  Normalization norm_;
  std::unique_ptr<SparseCodec> codec_;
  std::vector<float> probs_;
  SparseDist q_hat_;
  SamplingWorkspace ws_;
  Token correction_ = kNoToken;
};

}  // namespace picospec::detail
