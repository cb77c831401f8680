// full, edge half (vanilla SD): the draft is drawn from q; the whole q row goes up encoded (dense_f32); the
// cloud draws the correction from the residual.
#include "picospec/rng.hpp"
#include "picospec/sparse_codec.hpp"
#include "policies/policy.hpp"

namespace picospec::detail {
namespace {

class EdgeFull final : public EdgePolicy {
 public:
  explicit EdgeFull(const PolicyConfig& cfg) : cfg_(cfg), codec_(make_codec(cfg.codec)) {}
  RejectionMode mode() const noexcept override { return RejectionMode::full; }
  void draft(std::span<const float> logits, std::uint64_t position, std::uint32_t epoch, SpecToken& out) override {
    logits_to_probs(logits, cfg_.sampling, row_, ws_);  // per-token path: row_ and ws_ are reused
    out.token = sample_from(row_, uniform(cfg_.seed, Purpose::draft_sample, position, epoch));
    out.q = row_[static_cast<std::size_t>(out.token)];
    codec_->encode(row_, out.frame);
    if (cfg_.branch_heads != 0) top_alternatives(row_, out.token, cfg_.branch_heads, out.alts);
    if (cfg_.want_top_q) out.top_q = max_prob(row_);
  }
  void add_uplink(SpecToken& s, wire::Draft& d) override { d.q_frames.push_back(std::move(s.frame)); }
  EdgeDecision on_rejection(const wire::Verdict& v, std::uint64_t, std::uint32_t, SpecToken&) override {
    if (v.kind != wire::VerdictKind::correction_token)
      throw PolicyFailure{wire::ErrorCode::bad_state, "full mode expects a correction token"};
    check_token(v.correction, cfg_.vocab);
    return EdgeDecision{true, v.correction, false, 0};
  }

 private:
  PolicyConfig cfg_;
  std::unique_ptr<SparseCodec> codec_;
  std::vector<float> row_;
  SamplingWorkspace ws_;
};

}  // namespace

std::unique_ptr<EdgePolicy> make_edge_full(const PolicyConfig& cfg) { return std::make_unique<EdgeFull>(cfg); }

}  // namespace picospec::detail
