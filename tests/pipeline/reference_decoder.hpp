#pragma once
// A sequential, single-threaded reference of the keyed speculative algorithm (docs/pipeline.md, "RNG keys"):
// one position at a time, no chunks, no pipeline, no network. Because every random draw is keyed by
// (seed, purpose, position, epoch), the pipelined EdgeSession/CloudServer must commit exactly these tokens,
// whatever γ, depth, link or transport. Written independently of src/ so that it checks them.

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

/// Target-alone sampling with the cloud-ar keys (seed, target_sample, position, 0).
inline std::vector<Token> reference_target_alone(const synthetic::PairParams& pair, std::vector<Token> context,
                                                 const SamplingParams& sampling, std::uint64_t seed,
                                                 std::uint32_t n) {
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
      t = sample_from(p, uniform(seed, Purpose::target_sample, context.size(), 0));
    }
    out.push_back(t);
    context.push_back(t);
  }
  return out;
}

}  // namespace picospec::test
