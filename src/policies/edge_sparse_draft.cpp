// sparse_draft, edge half: q is rounded through the uplink codec (q̂ = decode(encode(q))) and the draft is drawn
// from q̂, so the cloud, which receives exactly q̂, holds both distributions and decides everything.
#include "picospec/rng.hpp"
#include "picospec/sparse_codec.hpp"
#include "policies/policy.hpp"

namespace picospec::detail {
namespace {

class EdgeSparseDraft final : public EdgePolicy {
 public:
  explicit EdgeSparseDraft(const PolicyConfig& cfg) : cfg_(cfg), codec_(make_codec(cfg.codec)) {}
  RejectionMode mode() const noexcept override { return RejectionMode::sparse_draft; }
  void draft(std::span<const float> logits, std::uint64_t position, std::uint32_t epoch, SpecToken& out) override {
    logits_to_probs(logits, cfg_.sampling, row_, ws_);
    codec_->encode(row_, out.frame);
    const SparseDist q_hat = codec_->decode(out.frame, cfg_.vocab, Normalization::normalize);
    out.token = sample_from(q_hat, uniform(cfg_.seed, Purpose::draft_sample, position, epoch));
    out.q = q_hat.prob(out.token);
    if (cfg_.branch_heads != 0) top_alternatives(q_hat, out.token, cfg_.branch_heads, out.alts);
    if (cfg_.want_top_q) out.top_q = max_prob(q_hat.probs);
  }
  void add_uplink(SpecToken& s, wire::Draft& d) override { d.q_frames.push_back(std::move(s.frame)); }
  EdgeDecision on_rejection(const wire::Verdict& v, std::uint64_t, std::uint32_t, SpecToken&) override {
    if (v.kind != wire::VerdictKind::correction_token)
      throw PolicyFailure{wire::ErrorCode::bad_state, "sparse_draft mode expects a correction token"};
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

std::unique_ptr<EdgePolicy> make_edge_sparse_draft(const PolicyConfig& cfg) {
  return std::make_unique<EdgeSparseDraft>(cfg);
}

}  // namespace picospec::detail
