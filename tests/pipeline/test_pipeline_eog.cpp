// End of generation: a model may end a turn with any of several tokens (EOS, <|eot_id|>, <|im_end|> ...), listed in
// ModelInfo::eog beside ModelInfo::eos. Every mode must stop when one of them is committed, with FinishReason::eos,
// after committing exactly the tokens the target (the draft in edge-only) commits alone up to and including it.
#include <catch2/catch.hpp>

#include <algorithm>

#include "pipeline_fixture.hpp"
#include "reference_decoder.hpp"

using namespace picospec;

namespace {

// Greedy continuation of `lm` alone (no latency), `n` tokens.
std::vector<Token> greedy_alone(const synthetic::SyntheticLM& lm, std::vector<Token> context, std::size_t n,
                                std::uint32_t vocab) {
  std::vector<float> row(vocab);
  std::vector<Token> out;
  while (out.size() < n) {
    lm.logits_for(context, row);
    const Token t = static_cast<Token>(std::max_element(row.begin(), row.end()) - row.begin());
    out.push_back(t);
    context.push_back(t);
  }
  return out;
}

// The first index >= 8 whose token does not occur before it.
std::size_t first_new_after_8(const std::vector<Token>& seq) {
  std::size_t k = 8;
  while (k < seq.size() && std::find(seq.begin(), seq.begin() + static_cast<std::ptrdiff_t>(k), seq[k]) !=
                               seq.begin() + static_cast<std::ptrdiff_t>(k))
    ++k;
  REQUIRE(k < seq.size());
  return k;
}

// `seq` cut after its first token in `eog`; the cut must happen (else the test could not fail).
std::vector<Token> until_eog(const std::vector<Token>& seq, const std::vector<Token>& eog) {
  const auto it = std::find_first_of(seq.begin(), seq.end(), eog.begin(), eog.end());
  REQUIRE(it != seq.end());
  return {seq.begin(), it + 1};
}

}  // namespace

TEST_CASE("generation stops at an end-of-generation token other than EOS in every mode", "[pipeline][eog]") {
  auto pair = test::small_pair(0.7);
  const std::uint32_t vocab = pair.profile.vocab_size;
  const auto prompt = test::test_prompt();
  constexpr std::uint32_t kMax = 40;
  // References without any stop token: the target alone and the draft alone (greedy), and the keyed sampled
  // reference of the speculative algorithm (picospec, seed 21).
  const auto target_seq = greedy_alone(*synthetic::make_target_lm(pair), prompt, kMax, vocab);
  const auto draft_seq = greedy_alone(*synthetic::make_draft_lm(pair), prompt, kMax, vocab);
  test::ReferenceParams rp;
  rp.seed = 21;
  rp.max_tokens = kMax;
  const auto sampled_seq = test::reference_generate(pair, prompt, rp);
  // EOS is a token none of them produces; the EOG set holds one token from the middle of each sequence.
  Token unused = 0;
  while (std::find(target_seq.begin(), target_seq.end(), unused) != target_seq.end() ||
         std::find(draft_seq.begin(), draft_seq.end(), unused) != draft_seq.end() ||
         std::find(sampled_seq.begin(), sampled_seq.end(), unused) != sampled_seq.end())
    ++unused;
  REQUIRE(static_cast<std::uint32_t>(unused) < vocab);
  pair.eos = unused;
  pair.eog = {target_seq[first_new_after_8(target_seq)], draft_seq[first_new_after_8(draft_seq)],
              sampled_seq[first_new_after_8(sampled_seq)]};
  const auto want_target = until_eog(target_seq, pair.eog);
  const auto want_draft = until_eog(draft_seq, pair.eog);
  const auto want_sampled = until_eog(sampled_seq, pair.eog);
  REQUIRE(want_target.size() < kMax);
  REQUIRE(want_target.back() != pair.eos);

  test::Cloud cloud(pair);
  auto edge = cloud.edge(pair);
  REQUIRE(synthetic::make_drafter(pair)->info().is_eog(pair.eog[0]));
  REQUIRE(synthetic::make_verifier(pair)->info().is_eog(pair.eog[1]));

  struct Case {
    const char* name;
    PipelineMode mode;
    std::uint32_t branch_heads;
    std::uint32_t depth;
  };
  const Case cases[] = {{"cloud-ar", PipelineMode::cloud_ar, 0, 1},
                        {"edge-only", PipelineMode::edge_only, 0, 1},
                        {"vanilla", PipelineMode::vanilla, 0, 1},
                        {"paper", PipelineMode::paper, 0, 1},
                        {"picospec", PipelineMode::picospec, 0, 1},
                        {"picospec depth 3", PipelineMode::picospec, 0, 3},
                        {"picospec branches", PipelineMode::picospec, 2, 2},
                        {"picospec cloud fill", PipelineMode::picospec, 0, 2}};
  for (const Case& c : cases) {
    for (std::uint32_t gamma : {1u, 4u}) {
      INFO(c.name << " gamma " << gamma);
      GenerateParams gp;
      gp.mode = c.mode;
      gp.sampling.temperature = 0.0f;
      gp.max_tokens = kMax;
      gp.gamma = gamma;
      gp.depth = c.depth;
      gp.branch_heads = c.branch_heads;
      gp.cloud_fill = std::string(c.name) == "picospec cloud fill";
      const auto r = edge->generate(prompt, gp);
      CHECK(r.finish == FinishReason::eos);
      CHECK(r.tokens == (c.mode == PipelineMode::edge_only ? want_draft : want_target));
    }
  }
  SECTION("sampled picospec stops where the keyed reference first commits an EOG token") {
    GenerateParams gp;
    gp.mode = PipelineMode::picospec;
    gp.seed = 21;
    gp.max_tokens = kMax;
    const auto r = edge->generate(prompt, gp);
    CHECK(r.finish == FinishReason::eos);
    CHECK(r.tokens == want_sampled);
  }
  SECTION("stop_at_eos = false runs past every EOG token") {
    for (const bool fill : {false, true}) {
      GenerateParams gp;
      gp.mode = PipelineMode::picospec;
      gp.sampling.temperature = 0.0f;
      gp.max_tokens = kMax;
      gp.stop_at_eos = false;
      gp.cloud_fill = fill;  // the cloud stops filling at an EOG token; the drafts carry the rest
      const auto r = edge->generate(prompt, gp);
      CHECK(r.finish == FinishReason::max_tokens);
      CHECK(r.tokens == target_seq);
    }
  }
}

TEST_CASE("ModelInfo::is_eog covers eos and the eog list", "[eog]") {
  ModelInfo info;
  CHECK_FALSE(info.is_eog(kNoToken));
  CHECK_FALSE(info.is_eog(0));
  info.eos = 2;
  CHECK(info.is_eog(2));
  CHECK_FALSE(info.is_eog(3));
  info.eog = {7, 9};
  CHECK(info.is_eog(2));
  CHECK(info.is_eog(7));
  CHECK(info.is_eog(9));
  CHECK_FALSE(info.is_eog(8));
  CHECK_FALSE(info.is_eog(kNoToken));
}
