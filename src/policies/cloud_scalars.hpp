#pragma once
// Shared acceptance test of the two modes that upload only q(d) (candidates, topk): u < min(1, p(d)/q(d)).
// On a rejection p at the rejected position stays in probs_ for the mode's verdict.
#include "picospec/rejection.hpp"
#include "picospec/rng.hpp"
#include "policies/policy.hpp"

namespace picospec::detail {

class CloudScalars : public CloudPolicy {
 public:
  explicit CloudScalars(const PolicyConfig& cfg) : cfg_(cfg) {}
  void check_draft(const wire::Draft& d) const override {
    if (d.tokens.size() > d.n_fixed && d.q_scalars.size() != d.tokens.size())
      throw PolicyFailure{wire::ErrorCode::invalid_params, "Draft needs one q scalar per token"};
  }
  bool test(const wire::Draft& d, std::size_t i, std::span<const float> logits, std::uint64_t position,
            std::uint32_t epoch) override {
    logits_to_probs(logits, cfg_.sampling, probs_, ws_);
    return accept_draft(probs_[static_cast<std::size_t>(d.tokens[i])], d.q_scalars[i],
                        uniform(cfg_.seed, Purpose::accept, position, epoch));
  }

 protected:
  PolicyConfig cfg_;
  std::vector<float> probs_;
  SamplingWorkspace ws_;
};

}  // namespace picospec::detail
