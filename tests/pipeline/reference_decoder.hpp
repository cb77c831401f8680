#pragma once
// A sequential, single-threaded reference of the keyed speculative algorithm (docs/pipeline.md, "RNG keys"):
// one position at a time, no chunks, no pipeline, no network. Because every random draw is keyed by
// (seed, purpose, position, epoch), the pipelined EdgeSession/CloudServer must commit exactly these tokens,
// whatever γ, depth, link or transport. Written independently of src/ so that it checks them.

#include <cmath>
#include <vector>

#include "picospec/rejection.hpp"
#include "picospec/rng.hpp"
#include "picospec/sampling.hpp"
#include "picospec/sparse_codec.hpp"
#include "picospec/synthetic/synthetic.hpp"

namespace picospec::test {

struct ReferenceParams {
  RejectionMode rejection = RejectionMode::candidates;
  SamplingParams sampling{};
  std::uint64_t seed = 0;
  std::uint32_t max_tokens = 32;
  std::uint32_t candidates_m = 32;
  std::uint32_t topk_k = 10;
  std::string sparse_codec = "topk_q:64";
  bool wrong_commit_draft = false;  ///< deliberately wrong sampler: commit every draft (samples q, not p)
};

/// The coupled draw at `position` (RejectionMode::coupled), written from its definition: the kept token that
/// maximizes p_v / E_v, E_v = -ln(u_v), u_v = ((s_v >> 11) + 1) 2^-53 and s_v the v-th output (from 1) of
/// SplitMix64 started at the Philox value of (seed, Purpose::coupled, position, 0).
inline Token reference_coupled(const std::vector<float>& p, std::uint64_t seed, std::uint64_t position) {
  const std::uint64_t start = random_u64(seed, Purpose::coupled, position, 0);
  Token best = kNoToken;
  double best_score = 0.0;
  std::uint64_t state = start;
  for (std::size_t v = 0; v < p.size(); ++v) {
    state += 0x9E3779B97F4A7C15ull;  // SplitMix64: advance, then finalize
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    if (p[v] <= 0.0f) continue;
    const double e = -std::log(static_cast<double>((z >> 11) + 1) * 0x1.0p-53);
    const double score = e > 0.0 ? p[v] / e : HUGE_VAL;
    if (best == kNoToken || score > best_score) {
      best = static_cast<Token>(v);
      best_score = score;
    }
  }
  return best;
}

inline std::vector<Token> reference_generate(const synthetic::PairParams& pair, std::vector<Token> context,
                                             const ReferenceParams& rp) {
  const auto target = synthetic::make_target_lm(pair);
  const auto draft = synthetic::make_draft_lm(pair);
  const std::size_t v = pair.profile.vocab_size;
  std::vector<float> lp(v), lq(v), p, q;
  SamplingWorkspace ws;
  const auto dense = make_codec("dense_f32");
  const auto sparse = make_codec(rp.sparse_codec);
  const auto topk = make_codec("topk_f32:" + std::to_string(rp.topk_k));
  std::vector<Token> out;
  std::uint64_t epoch = 0;
  const bool greedy = rp.sampling.greedy() || rp.rejection == RejectionMode::greedy;
  while (out.size() < rp.max_tokens) {
    const std::uint64_t t = context.size();
    target->logits_for(context, lp);
    draft->logits_for(context, lq);
    Token commit;
    if (greedy) {
      const Token d = argmax(lq), best = argmax(lp);
      commit = best;
      if (d != best) ++epoch;
    } else if (rp.rejection == RejectionMode::coupled) {
      // Whatever is drafted, the committed token is the target's coupled draw (the draft only decides how
      // often the cloud's test passes): exactly target-alone coupled sampling.
      logits_to_probs(lp, rp.sampling, p, ws);
      commit = reference_coupled(p, rp.seed, t);
    } else {
      logits_to_probs(lp, rp.sampling, p, ws);
      logits_to_probs(lq, rp.sampling, q, ws);
      const double u = uniform(rp.seed, Purpose::draft_sample, t, epoch);
      Token d;
      float qd;
      SparseDist q_hat;
      std::vector<std::uint8_t> bytes;
      if (rp.rejection == RejectionMode::sparse_draft) {
        sparse->encode(q, bytes);
        q_hat = sparse->decode(bytes, static_cast<std::uint32_t>(v), Normalization::normalize);
        d = sample_from(q_hat, u);
        qd = q_hat.prob(d);
      } else {
        d = sample_from(q, u);
        qd = q[static_cast<std::size_t>(d)];
        if (rp.rejection == RejectionMode::full) {
          dense->encode(q, bytes);
          q_hat = dense->decode(bytes, static_cast<std::uint32_t>(v), Normalization::raw);
        }
      }
      if (rp.wrong_commit_draft || accept_draft(p[static_cast<std::size_t>(d)], qd,
                                                uniform(rp.seed, Purpose::accept, t, epoch))) {
        commit = d;
      } else {
        switch (rp.rejection) {
          case RejectionMode::full:
          case RejectionMode::sparse_draft:
            commit = residual_sparse_q(p, q_hat, uniform(rp.seed, Purpose::residual, t, epoch));
            break;
          case RejectionMode::topk: {
            bytes.clear();
            topk->encode(p, bytes);
            const SparseDist pk = topk->decode(bytes, static_cast<std::uint32_t>(v), Normalization::raw);
            commit = residual_topk(pk, q, uniform(rp.seed, Purpose::topk_residual, t, epoch));
            break;
          }
          default: {
            std::uint32_t first = 0;
            for (;;) {
              const auto stream = draw_candidates(p, rp.candidates_m, rp.seed, t, epoch, first);
              if (auto c = pick_candidate(stream, q, rp.seed, t, epoch)) {
                commit = *c;
                break;
              }
              first += rp.candidates_m;
            }
          }
        }
        ++epoch;
      }
    }
    out.push_back(commit);
    context.push_back(commit);
  }
  return out;
}

/// Target-alone sampling with the cloud-ar keys (seed, target_sample, position, 0), or with the coupled draw.
inline std::vector<Token> reference_target_alone(const synthetic::PairParams& pair, std::vector<Token> context,
                                                 const SamplingParams& sampling, std::uint64_t seed,
                                                 std::uint32_t n, bool coupled = false) {
  const auto target = synthetic::make_target_lm(pair);
  std::vector<float> lp(pair.profile.vocab_size), p;
  SamplingWorkspace ws;
  std::vector<Token> out;
  while (out.size() < n) {
    target->logits_for(context, lp);
    Token t;
    if (sampling.greedy()) {
      t = argmax(lp);
    } else {
      logits_to_probs(lp, sampling, p, ws);
      t = coupled ? reference_coupled(p, seed, context.size())
                  : sample_from(p, uniform(seed, Purpose::target_sample, context.size(), 0));
    }
    out.push_back(t);
    context.push_back(t);
  }
  return out;
}

}  // namespace picospec::test
