// greedy, cloud half: accept iff the draft is the target's argmax; the correction is the argmax.
#include "policies/policy.hpp"

namespace picospec::detail {
namespace {

class CloudGreedy final : public CloudPolicy {
 public:
  RejectionMode mode() const noexcept override { return RejectionMode::greedy; }
  void check_draft(const wire::Draft&) const override {}
  bool test(const wire::Draft& d, std::size_t i, std::span<const float> logits, std::uint64_t,
            std::uint32_t) override {
    correction_ = argmax(logits);
    return correction_ == d.tokens[i];
  }
  CloudRejection reject(wire::Verdict& v, std::uint64_t, std::uint32_t) override {
    v.kind = wire::VerdictKind::correction_token;
    v.correction = correction_;
    return CloudRejection{true};
  }

 private:
  Token correction_ = kNoToken;
};

}  // namespace

std::unique_ptr<CloudPolicy> make_cloud_greedy(const PolicyConfig&) { return std::make_unique<CloudGreedy>(); }

}  // namespace picospec::detail
