// candidates, cloud half: on a rejection, m i.i.d. samples of p at the rejected position (keyed
// (candidate_draw, position, epoch, k)) go down; more on request, continuing the same keyed stream.
#include "picospec/sparse_codec.hpp"
#include "policies/cloud_scalars.hpp"

namespace picospec::detail {
namespace {

class CloudCandidates final : public CloudScalars {
 public:
  using CloudScalars::CloudScalars;
  RejectionMode mode() const noexcept override { return RejectionMode::candidates; }
  CloudRejection reject(wire::Verdict& v, std::uint64_t position, std::uint32_t old_epoch) override {
    rej_probs_.swap(probs_);
    position_ = position;
    epoch_ = old_epoch;
    send(v, 0);
    return CloudRejection{false};
  }
  void more(const wire::MoreCandidates& m, wire::Verdict& v) override {
    if (m.position != position_ || m.next_index != next_ || rej_probs_.empty())
      throw PolicyFailure{wire::ErrorCode::bad_state, "unexpected MoreCandidates"};
    v.start_position = static_cast<std::uint32_t>(position_);
    v.accepted = 0;
    send(v, m.next_index);
  }

 private:
  void send(wire::Verdict& v, std::uint32_t first) {
    const auto stream = draw_candidates(rej_probs_, cfg_.candidates_m, cfg_.seed, position_, epoch_, first);
    encode_candidates(stream, v.payload);
    v.kind = wire::VerdictKind::candidates;
    v.first_candidate_index = first;
    next_ = first + cfg_.candidates_m;
  }

  std::vector<float> rej_probs_;
  std::uint64_t position_ = 0;
  std::uint32_t epoch_ = 0;
  std::uint32_t next_ = 0;
};

}  // namespace

std::unique_ptr<CloudPolicy> make_cloud_candidates(const PolicyConfig& cfg) {
  return std::make_unique<CloudCandidates>(cfg);
}

}  // namespace picospec::detail
