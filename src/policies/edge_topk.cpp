// topk, edge half (the paper's mode, approximate): the draft is drawn from q and q(d) goes up; on a rejection
// the cloud sends the Top-K of p (raw values) and the edge draws from norm(max(0, P_topK - Q)).
#include "picospec/rejection.hpp"
#include "picospec/sparse_codec.hpp"
#include "policies/policy.hpp"

namespace picospec::detail {
namespace {

class EdgeTopk final : public EdgePolicy {
 public:
  explicit EdgeTopk(const PolicyConfig& cfg)
      : cfg_(cfg), codec_(make_codec("topk_f32:" + std::to_string(cfg.topk_k))) {}
  RejectionMode mode() const noexcept override { return RejectionMode::topk; }
  void draft(std::span<const float> logits, std::uint64_t position, std::uint32_t epoch, SpecToken& out) override {
    logits_to_probs(logits, cfg_.sampling, out.row, ws_);  // the row is kept until the verdict
    out.token = sample_from(out.row, uniform(cfg_.seed, Purpose::draft_sample, position, epoch));
    out.q = out.row[static_cast<std::size_t>(out.token)];
    if (cfg_.branch_heads != 0) top_alternatives(out.row, out.token, cfg_.branch_heads, out.alts);
    if (cfg_.want_top_q) out.top_q = max_prob(out.row);
  }
  void add_uplink(SpecToken& s, wire::Draft& d) override { d.q_scalars.push_back(s.q); }
  void add_fixed_uplink(wire::Draft& d) override { d.q_scalars.push_back(1.0f); }
  EdgeDecision on_rejection(const wire::Verdict& v, std::uint64_t position, std::uint32_t epoch,
                            SpecToken& rejected) override {
    if (v.kind != wire::VerdictKind::topk)
      throw PolicyFailure{wire::ErrorCode::bad_state, "Top-K mode expects a Top-K verdict"};
    if (rejected.row.size() != cfg_.vocab)
      throw PolicyFailure{wire::ErrorCode::bad_state, "no draft distribution kept for the rejected token"};
    const SparseDist p_topk = codec_->decode(v.payload, cfg_.vocab, Normalization::raw);
    const Token c = residual_topk(p_topk, rejected.row,
                                  uniform(cfg_.seed, Purpose::topk_residual, position, epoch), cfg_.topk_fallback);
    return EdgeDecision{true, c, true, 0};
  }

 private:
  PolicyConfig cfg_;
  std::unique_ptr<SparseCodec> codec_;
  SamplingWorkspace ws_;
};

}  // namespace

std::unique_ptr<EdgePolicy> make_edge_topk(const PolicyConfig& cfg) { return std::make_unique<EdgeTopk>(cfg); }

}  // namespace picospec::detail
