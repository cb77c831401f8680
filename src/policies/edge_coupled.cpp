// coupled, edge half: the draft is coupled_sample(q, seed, position), the very exponentials the cloud uses for
// p at that position, so it equals the target's draw whenever the two distributions let it (probability at least
// (1 - TV) / (1 + TV)). Only ids go up; the cloud sends the correction, which is the target's own draw.
#include "policies/policy.hpp"

namespace picospec::detail {
namespace {

class EdgeCoupled final : public EdgePolicy {
 public:
  explicit EdgeCoupled(const PolicyConfig& cfg) : cfg_(cfg) {}
  RejectionMode mode() const noexcept override { return RejectionMode::coupled; }
  void draft(std::span<const float> logits, std::uint64_t position, std::uint32_t, SpecToken& out) override {
    logits_to_probs(logits, cfg_.sampling, out.row, ws_);
    // Branch heads: the race's runners-up under the shared exponentials (the likeliest corrections when the
    // draft is rejected), not q's most probable alternatives.
    out.token = cfg_.branch_heads != 0 ? coupled_sample_top(out.row, cfg_.seed, position, cfg_.branch_heads, out.alts)
                                       : coupled_sample(out.row, cfg_.seed, position);
    out.q = out.row[static_cast<std::size_t>(out.token)];
    if (cfg_.want_top_q) out.top_q = max_prob(out.row);
  }
  void add_uplink(SpecToken&, wire::Draft&) override {}
  EdgeDecision on_rejection(const wire::Verdict& v, std::uint64_t, std::uint32_t, SpecToken&) override {
    if (v.kind != wire::VerdictKind::correction_token)
      throw PolicyFailure{wire::ErrorCode::bad_state, "coupled mode expects a correction token"};
    check_token(v.correction, cfg_.vocab);
    return EdgeDecision{true, v.correction, false, 0};
  }

 private:
  PolicyConfig cfg_;
  SamplingWorkspace ws_;
};

}  // namespace

std::unique_ptr<EdgePolicy> make_edge_coupled(const PolicyConfig& cfg) { return std::make_unique<EdgeCoupled>(cfg); }

}  // namespace picospec::detail
