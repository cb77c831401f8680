// picospec-prompt-lookup: a model-free drafter (prompt-lookup decoding) plugged into picospec, verified by a real
// GGUF target over the loopback transport. Shows that a custom Drafter is four small hooks, and that greedy
// output stays exactly the target's own.
//
//   picospec-prompt-lookup -m target.gguf [-p PROMPT] [-n N] [--gamma G]   (--help lists them)

#include <cstdio>
#include <memory>
#include <string>

#include "basic/prompt_lookup_drafter.hpp"
#include "common/cli.hpp"
#include "picospec/cloud_server.hpp"
#include "picospec/edge_session.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/tokenizer.hpp"
#include "picospec/lm_adapters.hpp"
#include "picospec/loopback/loopback.hpp"

int main(int argc, char** argv) {
  using namespace picospec;
  std::string model;
  std::string prompt_text = "Lily and Ben went to the park. Lily and Ben played on the swings. Then Lily and Ben";
  GenerateParams gp;
  gp.max_tokens = 64;
  gp.sampling.temperature = 0.0f;
  CLI::App app{"picospec-prompt-lookup: a model-free drafter (prompt-lookup decoding) verified by a GGUF target over "
               "loopback; greedy, and checks that the output equals the target's own (exit 3 if not).",
               "picospec-prompt-lookup"};
  examples::Cli cli(app);
  app.add_option("-m,--model", model, "target model (GGUF, llama architecture)")->required();
  app.add_option("-p,--prompt", prompt_text, "prompt (repetitive text gives the drafter something to look up)");
  app.add_option("-n", gp.max_tokens, "tokens to generate")->check(examples::range(1u, 4096u));
  app.add_option("--gamma", gp.gamma, "draft tokens per chunk")->check(examples::range(1u, 64u));
  return cli.run(argc, argv, [&]() -> int {
    examples::Progress progress("loading " + model);
    const auto weights = llama::LlamaWeights::load(model);
    const auto tok = weights->tokenizer();
    if (!tok) throw Error(model + ": no tokenizer in the file");
    auto hub = std::make_unique<loopback::LoopbackHub>();
    auto edge_end = hub->connect();
    CloudServer cloud([&] { return std::make_unique<LmVerifier>(std::make_unique<llama::LlamaModel>(weights)); },
                      std::move(hub));
    cloud.start();
    const ModelInfo target_info = llama::LlamaModel(weights).info();
    EdgeSession edge(std::make_unique<examples::PromptLookupDrafter>(target_info), std::move(edge_end));
    const auto prompt = tok->encode(prompt_text, true);
    progress.update("generating (cloud-ar baseline, then prompt lookup)");

    auto run = [&](PipelineMode mode) {
      gp.mode = mode;
      return edge.generate(prompt, gp);
    };
    const GenerateResult ar = run(PipelineMode::cloud_ar);
    const GenerateResult spec = run(PipelineMode::picospec);
    progress.done();
    std::string text = prompt_text;
    Token prev = prompt.back();
    for (Token t : spec.tokens) {
      text += tok->token_to_text(t, prev);
      prev = t;
    }
    std::printf("%s\n", text.c_str());
    std::printf("prompt-lookup drafter: acceptance %.3f, mean accepted length %.2f, %llu rounds for %llu tokens\n",
                spec.metrics.acceptance_rate, spec.metrics.mean_accepted_length,
                static_cast<unsigned long long>(spec.metrics.rounds), static_cast<unsigned long long>(spec.metrics.tokens));
    const bool same = ar.tokens == spec.tokens;
    std::printf("greedy output identical to the target alone: %s\n", same ? "yes" : "NO");
    cloud.stop();
    return same ? 0 : 3;
  });
}
