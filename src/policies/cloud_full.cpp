// full, cloud half (vanilla SD): q arrives dense and raw; see cloud_q_frames.hpp.
#include "policies/cloud_q_frames.hpp"

namespace picospec::detail {

std::unique_ptr<CloudPolicy> make_cloud_full(const PolicyConfig& cfg) {
  return std::make_unique<CloudQFrames>(cfg, RejectionMode::full, Normalization::raw);
}

}  // namespace picospec::detail
