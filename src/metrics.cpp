// Metrics JSON (see include/picospec/metrics.hpp).
#include "picospec/metrics.hpp"

#include <nlohmann/json.hpp>

namespace picospec {

void Metrics::finalize() {
  tokens_per_s = wall_ms > 0.0 ? static_cast<double>(tokens) * 1000.0 / wall_ms : 0.0;
  tpot_ms = tokens > 1 && ttft_ms >= 0.0 ? (wall_ms - ttft_ms) / static_cast<double>(tokens - 1) : 0.0;
  mean_accepted_length = rounds > 0 ? 1.0 + static_cast<double>(accepted) / static_cast<double>(rounds) : 0.0;
  std::uint64_t tested = 0;
  for (auto t : position_tested) tested += t;
  acceptance_rate = tested > 0 ? static_cast<double>(accepted) / static_cast<double>(tested) : 0.0;
}

std::string Metrics::to_json() const {
  nlohmann::ordered_json j;
  j["mode"] = mode;
  j["rejection"] = rejection;
  j["backend"] = backend.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(backend);  // null: unlabelled
  j["profile"] = profile;
  j["link"] = link;
  j["gamma"] = gamma;
  j["depth"] = depth;
  j["tokens"] = tokens;
  j["wall_ms"] = wall_ms;
  j["tokens_per_s"] = tokens_per_s;
  j["ttft_ms"] = ttft_ms;
  j["tpot_ms"] = tpot_ms;
  j["rounds"] = rounds;
  j["drafted"] = drafted;
  j["sent_drafts"] = sent_drafts;
  j["accepted"] = accepted;
  j["corrections"] = corrections;
  j["mean_accepted_length"] = mean_accepted_length;
  j["acceptance_rate"] = acceptance_rate;
  j["position_tested"] = position_tested;
  j["position_accepted"] = position_accepted;
  j["rollbacks"] = rollbacks;
  j["stale_dropped"] = stale_dropped;
  j["more_candidates"] = more_candidates;
  j["branch_lines"] = branch_lines;
  j["branch_drafted"] = branch_drafted;
  j["branch_hits"] = branch_hits;
  j["branch_used"] = branch_used;
  j["branch_ms"] = branch_ms;
  j["branch_idle_ms"] = branch_idle_ms;
  j["gamma_choices"] = gamma_choices;
  j["gamma_chosen_sum"] = gamma_chosen_sum;
  j["wasted_drafts"] = wasted_drafts;
  j["cloud_filled"] = cloud_filled;
  j["draft_ms"] = draft_ms;
  j["edge_idle_pct"] = edge_idle_pct;
  // Cloud figures the edge cannot see are null, not -1 (see metrics.hpp).
  j["cloud_verify_ms"] = cloud_verify_ms < 0.0 ? nlohmann::ordered_json() : nlohmann::ordered_json(cloud_verify_ms);
  j["cloud_idle_pct"] = cloud_idle_pct < 0.0 ? nlohmann::ordered_json() : nlohmann::ordered_json(cloud_idle_pct);
  j["bytes_up"] = bytes_up;
  j["bytes_down"] = bytes_down;
  j["frames_up"] = frames_up;
  j["frames_down"] = frames_down;
  return j.dump();
}

}  // namespace picospec
