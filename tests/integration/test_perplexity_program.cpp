// picospec-perplexity (examples/llama) checked from outside: the program is run as a process and its --json
// figures are compared with a perplexity computed here, independently, from LlamaModel logits by the documented
// method (windows of n_ctx tokens from the BOS-prefixed text, first token replaced by BOS, the second half scored).
// The reference evaluates each window one token at a time on one thread (batch and thread invariance make the
// logits bit-identical to the program's one-shot, multi-threaded forward) and takes the log-softmax another way
// (log sum_k exp(l_k - l_target)), so agreement to 1e-9 relative checks the method, not a shared code path.
//
// Built twice: perplexity_program (a seeded random GGUF model, always runs) and perplexity_program_shared
// (../shared/models/stories260K.gguf; skipped visibly when ../shared is absent).
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"
#include "picospec/llama/tokenizer.hpp"
#ifdef PICOSPEC_PERPLEXITY_SHARED
#include "support/shared.hpp"
#endif

using namespace picospec;
namespace fs = std::filesystem;

namespace {

const fs::path kWork = PICOSPEC_PERPLEXITY_WORK_DIR;

// A story-like text long enough for a few windows of 64 tokens with either model's tokenizer.
const char* kText =
    "Once upon a time, there was a little girl named Lily. She loved to play in the garden with her dog, Max. "
    "One day, Lily saw a big red ball under a tree. She ran to the ball and picked it up. \"Look, Max!\" she said. "
    "\"Let's play catch!\" Max barked and wagged his tail. Lily threw the ball and Max ran after it. He brought it "
    "back to her, and they played all afternoon. When the sun went down, Lily's mom called her inside for dinner. "
    "Lily was tired but happy. She gave Max a big hug and said, \"Thank you for playing with me.\" Then she went "
    "inside, ate her soup, and went to bed. She dreamed about the red ball and the sunny garden.\n"
    "The next morning, Lily woke up early. It was raining outside, so she could not play in the garden. She felt "
    "sad. Her mom said, \"Why don't you build a fort with the blankets?\" Lily smiled and got all the blankets and "
    "pillows in the house. She built a big fort in the living room, and Max came inside too. They read books and "
    "ate cookies until the rain stopped.\n";

struct Run {
  int status = -1;
  std::string out;
  std::string err;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Runs picospec-perplexity with `args`; stdout and stderr captured separately.
Run run_program(const std::string& args) {
  fs::create_directories(kWork);
  const fs::path err = kWork / "stderr.txt";
  const std::string cmd = quote(PICOSPEC_PERPLEXITY_EXE) + " " + args + " 2>" + quote(err.string());
  Run r;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.err = slurp(err);
  return r;
}

fs::path write_text(const std::string& name, const std::string& text) {
  fs::create_directories(kWork);
  const fs::path p = kWork / name;
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

struct Reference {
  double ppl = 0, ppl_err = 0;
  std::size_t scored = 0, chunks = 0;
};

/// The documented method, computed independently (see the header comment).
Reference reference_perplexity(const std::shared_ptr<const llama::LlamaWeights>& w, const std::string& text,
                               std::size_t n_ctx, std::size_t max_chunks) {
  const auto tok = w->tokenizer();
  const std::vector<Token> tokens = tok->encode(text, true);
  Reference ref;
  ref.chunks = std::min(max_chunks, tokens.size() / n_ctx);
  llama::LlamaModel model(w, {.threads = 1});
  std::vector<double> nlls;
  LogitRows row;
  for (std::size_t c = 0; c < ref.chunks; ++c) {
    std::vector<Token> window(tokens.begin() + static_cast<std::ptrdiff_t>(c * n_ctx),
                              tokens.begin() + static_cast<std::ptrdiff_t>((c + 1) * n_ctx));
    window.front() = tok->bos();
    model.reset();
    for (std::size_t j = 0; j + 1 < n_ctx; ++j) {
      model.forward(std::span<const Token>(&window[j], 1), row);
      if (j < n_ctx / 2) continue;
      const auto l = row.row(0);
      const double lt = l[window[j + 1]];
      double s = 0;
      for (float v : l) s += std::exp(static_cast<double>(v) - lt);
      nlls.push_back(std::log(s));
    }
  }
  ref.scored = nlls.size();
  double sum = 0, sum2 = 0;
  for (double v : nlls) {
    sum += v;
    sum2 += v * v;
  }
  const double mean = sum / static_cast<double>(nlls.size());
  ref.ppl = std::exp(mean);
  const double var = sum2 / static_cast<double>(nlls.size()) - mean * mean;
  ref.ppl_err = ref.ppl * std::sqrt(var / static_cast<double>(nlls.size() - 1));
  return ref;
}

void check_against_reference(const fs::path& model_file, std::size_t n_ctx_flag, std::size_t chunks_flag,
                             std::size_t expect_n_ctx, const std::string& extra = "") {
  const auto w = llama::LlamaWeights::load(model_file.string());
  const fs::path text = write_text("story.txt", kText);
  std::string args = "-m " + quote(model_file.string()) + " -f " + quote(text.string()) + " -t 2 --json";
  if (n_ctx_flag != 0) args += " -c " + std::to_string(n_ctx_flag);
  if (chunks_flag != 0) args += " --chunks " + std::to_string(chunks_flag);
  args += extra;
  const Run r = run_program(args);
  INFO("stderr: " << r.err);
  REQUIRE(r.status == 0);
  const auto j = nlohmann::json::parse(r.out);
  const Reference ref = reference_perplexity(w, kText, expect_n_ctx, chunks_flag == 0 ? SIZE_MAX : chunks_flag);
  REQUIRE(ref.chunks >= 1);
  CHECK(j.at("n_ctx").get<std::size_t>() == expect_n_ctx);
  CHECK(j.at("chunks").get<std::size_t>() == ref.chunks);
  CHECK(j.at("tokens_scored").get<std::size_t>() == ref.scored);
  CHECK(ref.scored == ref.chunks * (expect_n_ctx - 1 - expect_n_ctx / 2));
  const double ppl = j.at("ppl").get<double>();
  CHECK(std::abs(ppl - ref.ppl) <= 1e-9 * ref.ppl);
  CHECK(std::abs(j.at("ppl_err").get<double>() - ref.ppl_err) <= 1e-6 * ref.ppl_err);
  // A model that has learned anything beats the uniform distribution; a random one is near it. Either way a
  // perplexity is in (1, vocab].
  CHECK(ppl > 1.0);
  CHECK(ppl <= static_cast<double>(w->hparams().vocab_size) * 1.5);
  // stderr: the running PPL per chunk ("[1]...,") and the final estimate line.
  CHECK(r.err.find("[1]") != std::string::npos);
  std::string last_chunk = "[";  // built step by step: g++ 12 warns falsely (-Wrestrict) on "[" + s + "]"
  last_chunk += std::to_string(ref.chunks);
  last_chunk += ']';
  CHECK(r.err.find(last_chunk) != std::string::npos);
  CHECK(r.err.find("Final estimate: PPL = ") != std::string::npos);
}

fs::path model_under_test() {
#ifdef PICOSPEC_PERPLEXITY_SHARED
  return test::shared_model("stories260K.gguf");
#else
  llama::RandomLlamaSpec spec;
  spec.seed = 11;
  spec.context_length = 96;
  const fs::path p = kWork / "random.gguf";
  fs::create_directories(kWork);
  llama::random_llama_gguf(spec).write_file(p.string());
  return p;
#endif
}

}  // namespace

TEST_CASE("picospec-perplexity equals exp(mean nll) computed independently from the model's logits",
          "[integration][perplexity]") {
  const fs::path model = model_under_test();
  SECTION("-c 64, every chunk the text holds") { check_against_reference(model, 64, 0, 64); }
  SECTION("-c 32 --chunks 3") { check_against_reference(model, 32, 3, 32); }
  SECTION("-c 64 -b 7: windows evaluated in batches of 7") { check_against_reference(model, 64, 0, 64, " -b 7"); }
#ifndef PICOSPEC_PERPLEXITY_SHARED
  // The random model's context (96) is short enough for the default window to fit the text.
  SECTION("default -c: the model's context length") { check_against_reference(model, 0, 0, 96); }
#endif
}

TEST_CASE("picospec-perplexity fails with one clear line", "[integration][perplexity]") {
  const fs::path model = model_under_test();
  const fs::path text = write_text("story.txt", kText);
  auto one_line = [](const std::string& s) { return !s.empty() && s.find('\n') == s.size() - 1; };
  SECTION("missing text file") {
    const Run r = run_program("-m " + quote(model.string()) + " -f " + quote((kWork / "absent.txt").string()));
    CHECK(r.status == 1);
    CHECK(one_line(r.err));
    CHECK(r.err.find("absent.txt") != std::string::npos);
  }
  SECTION("missing model file") {
    const Run r = run_program("-m " + quote((kWork / "absent.gguf").string()) + " -f " + quote(text.string()));
    CHECK(r.status == 1);
    CHECK(one_line(r.err));
    CHECK(r.err.find("absent.gguf") != std::string::npos);
  }
  SECTION("text shorter than one window") {
    const fs::path short_text = write_text("short.txt", "Once upon a time.");
    const Run r = run_program("-m " + quote(model.string()) + " -f " + quote(short_text.string()) + " -c 64");
    CHECK(r.status == 1);
    CHECK(one_line(r.err));
    CHECK(r.err.find("fewer than one window of 64") != std::string::npos);
    CHECK(r.out.empty());
  }
  SECTION("-c larger than the model's context") {
    const Run r = run_program("-m " + quote(model.string()) + " -f " + quote(text.string()) + " -c 100000");
    CHECK(r.status == 1);
    CHECK(one_line(r.err));
    CHECK(r.err.find("exceeds the model's context length") != std::string::npos);
  }
  SECTION("usage errors exit 2") {
    for (const char* bad : {" -c 2", " -c x", " --chunks 0", " -t -1", " -b 0", " --bogus"}) {
      const Run r = run_program("-m " + quote(model.string()) + " -f " + quote(text.string()) + bad);
      INFO(bad);
      CHECK(r.status == 2);
      CHECK(one_line(r.err));
    }
    const Run r = run_program("-f " + quote(text.string()));  // no -m
    CHECK(r.status == 2);
    CHECK(one_line(r.err));
  }
}
