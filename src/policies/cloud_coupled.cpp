// coupled, cloud half: the target's token at a position is coupled_sample(p, seed, position) whatever was drafted;
// a draft is accepted iff it is that token, and on a rejection that token is the correction. So the committed
// tokens are the target's coupled draws (exact: each is distributed as p given the prefix, because the prefix
// depends on the exponentials of earlier positions only), and the cloud may also commit tokens with no draft at
// all (CloudOptions / GenerateParams::cloud_fill) without changing any.
#include "policies/policy.hpp"

namespace picospec::detail {
namespace {

class CloudCoupled final : public CloudPolicy {
 public:
  explicit CloudCoupled(const PolicyConfig& cfg) : cfg_(cfg) {}
  RejectionMode mode() const noexcept override { return RejectionMode::coupled; }
  void check_draft(const wire::Draft& d) const override {
    if (!d.q_scalars.empty() || !d.q_frames.empty())
      throw PolicyFailure{wire::ErrorCode::invalid_params, "coupled mode takes token ids only"};
  }
  bool test(const wire::Draft& d, std::size_t i, std::span<const float> logits, std::uint64_t position,
            std::uint32_t) override {
    logits_to_probs(logits, cfg_.sampling, probs_, ws_);
    correction_ = coupled_sample(probs_, cfg_.seed, position);
    return correction_ == d.tokens[i];
  }
  CloudRejection reject(wire::Verdict& v, std::uint64_t, std::uint32_t) override {
    v.kind = wire::VerdictKind::correction_token;
    v.correction = correction_;
    return CloudRejection{true};
  }

 private:
  PolicyConfig cfg_;
  std::vector<float> probs_;
  SamplingWorkspace ws_;
  Token correction_ = kNoToken;
};

}  // namespace

std::unique_ptr<CloudPolicy> make_cloud_coupled(const PolicyConfig& cfg) { return std::make_unique<CloudCoupled>(cfg); }

}  // namespace picospec::detail
