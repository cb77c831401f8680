// The two policy factories: the only place that maps a RejectionMode to its policies.
#include "policies/policy.hpp"

namespace picospec::detail {

std::unique_ptr<EdgePolicy> make_edge_policy(RejectionMode mode, const PolicyConfig& cfg) {
  switch (mode) {
    case RejectionMode::greedy: return make_edge_greedy(cfg);
    case RejectionMode::full: return make_edge_full(cfg);
    case RejectionMode::sparse_draft: return make_edge_sparse_draft(cfg);
    case RejectionMode::candidates: return make_edge_candidates(cfg);
    case RejectionMode::topk: return make_edge_topk(cfg);
    case RejectionMode::coupled: return make_edge_coupled(cfg);
  }
  throw Error("make_edge_policy: unknown rejection mode");
}

std::unique_ptr<CloudPolicy> make_cloud_policy(RejectionMode mode, const PolicyConfig& cfg) {
  switch (mode) {
    case RejectionMode::greedy: return make_cloud_greedy(cfg);
    case RejectionMode::full: return make_cloud_full(cfg);
    case RejectionMode::sparse_draft: return make_cloud_sparse_draft(cfg);
    case RejectionMode::candidates: return make_cloud_candidates(cfg);
    case RejectionMode::topk: return make_cloud_topk(cfg);
    case RejectionMode::coupled: return make_cloud_coupled(cfg);
  }
  throw PolicyFailure{wire::ErrorCode::unsupported_mode, "unknown rejection mode"};
}

}  // namespace picospec::detail
