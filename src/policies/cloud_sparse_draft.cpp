// sparse_draft, cloud half: q̂ arrives through a lossy codec and is normalized exactly as the edge drew from it;
// see cloud_q_frames.hpp.
#include "policies/cloud_q_frames.hpp"

namespace picospec::detail {

std::unique_ptr<CloudPolicy> make_cloud_sparse_draft(const PolicyConfig& cfg) {
  return std::make_unique<CloudQFrames>(cfg, RejectionMode::sparse_draft, Normalization::normalize);
}

}  // namespace picospec::detail
