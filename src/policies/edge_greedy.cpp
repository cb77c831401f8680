// greedy, edge half: the draft is the drafter's argmax; only ids go up; the cloud sends the correction.
#include <cmath>

#include "policies/policy.hpp"

namespace picospec::detail {
namespace {

class EdgeGreedy final : public EdgePolicy {
 public:
  explicit EdgeGreedy(const PolicyConfig& cfg)
      : vocab_(cfg.vocab), heads_(cfg.branch_heads), want_top_q_(cfg.want_top_q) {}
  RejectionMode mode() const noexcept override { return RejectionMode::greedy; }
  void draft(std::span<const float> logits, std::uint64_t, std::uint32_t, SpecToken& out) override {
    out.token = argmax(logits);
    out.q = 1.0f;
    if (heads_ != 0) top_alternatives(logits, out.token, heads_, out.alts);
    if (want_top_q_) {  // softmax of the argmax: 1 / sum exp(l - l_max)
      const float top = logits[static_cast<std::size_t>(out.token)];
      double z = 0.0;
      for (float l : logits) z += std::exp(static_cast<double>(l) - top);
      out.top_q = static_cast<float>(1.0 / z);
    }
  }
  void add_uplink(SpecToken&, wire::Draft&) override {}
  EdgeDecision on_rejection(const wire::Verdict& v, std::uint64_t, std::uint32_t, SpecToken&) override {
    if (v.kind != wire::VerdictKind::correction_token)
      throw PolicyFailure{wire::ErrorCode::bad_state, "greedy mode expects a correction token"};
    check_token(v.correction, vocab_);
    return EdgeDecision{true, v.correction, false, 0};
  }

 private:
  std::uint32_t vocab_;
  std::uint32_t heads_;
  bool want_top_q_;
};

}  // namespace

std::unique_ptr<EdgePolicy> make_edge_greedy(const PolicyConfig& cfg) { return std::make_unique<EdgeGreedy>(cfg); }

}  // namespace picospec::detail
