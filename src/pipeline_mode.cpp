// Pipeline modes (see include/picospec/pipeline_mode.hpp).
#include "picospec/pipeline_mode.hpp"

namespace picospec {

ModePlan plan_mode(PipelineMode mode, const SamplingParams& sampling, std::optional<RejectionMode> rejection,
                   std::string_view sparse_codec) {
  ModePlan plan;
  plan.mode = mode;
  switch (mode) {
    case PipelineMode::cloud_ar:
      plan.speculative = plan.pipelined = false;
      plan.uses_drafter = false;
      // coupled: the cloud samples each token with coupled_sample (the tokens picospec's coupled mode commits).
      plan.rejection = rejection == RejectionMode::coupled && !sampling.greedy() ? RejectionMode::coupled
                                                                                 : RejectionMode::greedy;
      return plan;
    case PipelineMode::edge_only:
      plan.speculative = plan.pipelined = false;
      plan.uses_cloud = false;
      plan.rejection = RejectionMode::greedy;
      return plan;
    case PipelineMode::vanilla:
      plan.pipelined = false;
      plan.rejection = rejection.value_or(RejectionMode::full);
      if (plan.rejection != RejectionMode::full && plan.rejection != RejectionMode::greedy)
        throw Error("vanilla mode uses rejection 'full'");
      break;
    case PipelineMode::paper:
      plan.rejection = rejection.value_or(RejectionMode::topk);
      if (plan.rejection != RejectionMode::topk && plan.rejection != RejectionMode::greedy)
        throw Error("paper mode uses rejection 'topk'");
      break;
    case PipelineMode::picospec:
      plan.rejection = rejection.value_or(RejectionMode::candidates);
      if (plan.rejection == RejectionMode::full)
        throw Error("picospec mode does not upload dense distributions (use vanilla for 'full')");
      break;
  }
  if (sampling.greedy()) plan.rejection = RejectionMode::greedy;
  if (plan.rejection == RejectionMode::full) plan.codec = "dense_f32";
  if (plan.rejection == RejectionMode::sparse_draft) plan.codec = std::string(sparse_codec);
  return plan;
}

}  // namespace picospec
