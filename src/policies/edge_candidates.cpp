// candidates, edge half (picospec's default, exact): the draft is drawn from q and only q(d) goes up; on a
// rejection the cloud sends m i.i.d. samples of p and the edge accepts candidate y_k with probability
// max(0, 1 - q(y_k)/p(y_k)) (keyed), asking for more when all are refused. The edge decides the correction and
// sends it up at once as a fixed token.
#include "picospec/rejection.hpp"
#include "picospec/sparse_codec.hpp"
#include "policies/policy.hpp"

namespace picospec::detail {
namespace {

class EdgeCandidates final : public EdgePolicy {
 public:
  explicit EdgeCandidates(const PolicyConfig& cfg) : cfg_(cfg) {}
  RejectionMode mode() const noexcept override { return RejectionMode::candidates; }
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
    if (v.kind != wire::VerdictKind::candidates)
      throw PolicyFailure{wire::ErrorCode::bad_state, "candidates mode expects a candidate stream"};
    if (rejected.row.size() != cfg_.vocab)
      throw PolicyFailure{wire::ErrorCode::bad_state, "no draft distribution kept for the rejected token"};
    row_ = std::move(rejected.row);
    rejected.row = {};
    position_ = position;
    epoch_ = epoch;
    return pick(v);
  }
  EdgeDecision on_follow_up(const wire::Verdict& v) override {
    if (v.kind != wire::VerdictKind::candidates || row_.size() != cfg_.vocab)
      throw PolicyFailure{wire::ErrorCode::bad_state, "expected more candidates"};
    return pick(v);
  }
  std::vector<float> release_row() override { return std::move(row_); }

 private:
  EdgeDecision pick(const wire::Verdict& v) {
    const CandidateStream stream = decode_candidates(v.payload, cfg_.vocab);
    if (stream.first_index != v.first_candidate_index || stream.size() == 0)
      throw PolicyFailure{wire::ErrorCode::bad_state, "candidate stream index mismatch"};
    if (auto t = pick_candidate(stream, row_, cfg_.seed, position_, epoch_)) return EdgeDecision{true, *t, true, 0};
    return EdgeDecision{false, kNoToken, false, stream.first_index + static_cast<std::uint32_t>(stream.size())};
  }

  PolicyConfig cfg_;
  SamplingWorkspace ws_;
  std::vector<float> row_;  // q at the pending rejection
  std::uint64_t position_ = 0;
  std::uint32_t epoch_ = 0;
};

}  // namespace

std::unique_ptr<EdgePolicy> make_edge_candidates(const PolicyConfig& cfg) {
  return std::make_unique<EdgeCandidates>(cfg);
}

}  // namespace picospec::detail
