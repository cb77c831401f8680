// LlamaModel on small random GGUF models written by the test: batch invariance (bit-exact), thread-count
// invariance, KV rollback, context length, weight formats, tied output, GQA/partial RoPE shapes.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>

#include "picospec/llama/gguf.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"
#include "model_util.hpp"

using namespace picospec;
using namespace picospec::llama;
using namespace picospec::llama::test;

namespace {

/// Every logits value of `r`, row after row.
std::vector<float> flat(const LogitRows& r) { return {r.data(), r.data() + r.rows() * r.vocab()}; }

}  // namespace

TEST_CASE("logits are bit-identical for every chunking and thread count", "[model][invariance]") {
  // A wrong implementation this catches: Eigen GEMM over the chunk (blocking depends on the number of tokens), a
  // reduction split across threads, or attention that sums keys in a chunk-dependent order.
  for (GgmlType type : {GgmlType::f32, GgmlType::q8_0}) {
    RandomLlamaSpec s;
    s.dim = 96;  // 96 % 16 != 0 exercises the kernel's scalar tail
    s.n_heads = 6;
    s.n_kv_heads = 2;
    s.ffn_dim = 160;
    s.n_layers = 2;
    s.vocab_size = 300;
    s.type = type;
    const auto w = weights_for(s);
    const auto tokens = random_tokens(23, s.vocab_size, 7);
    const auto ref = run_chunked(w, tokens, 1, 1);
    for (std::size_t chunk : {2u, 3u, 4u, 5u, 7u, 23u})
      for (std::size_t threads : {1u, 2u, 3u}) {
        INFO("type " << static_cast<int>(type) << " chunk " << chunk << " threads " << threads);
        CHECK(bit_equal(run_chunked(w, tokens, chunk, threads), ref));
      }
  }
}

TEST_CASE("large projections split over threads stay bit-identical", "[model][invariance]") {
  // Big enough that matmul and attention actually go parallel (the pool's work threshold).
  RandomLlamaSpec s;
  s.dim = 256;
  s.n_heads = 8;
  s.n_kv_heads = 4;
  s.ffn_dim = 512;
  s.n_layers = 1;
  s.vocab_size = 1000;
  const auto w = weights_for(s);
  const auto tokens = random_tokens(12, s.vocab_size, 3);
  const auto ref = run_chunked(w, tokens, 1, 1);
  CHECK(bit_equal(run_chunked(w, tokens, 5, 2), ref));
  CHECK(bit_equal(run_chunked(w, tokens, 12, 4), ref));
}

TEST_CASE("truncate rolls the KV cache back exactly", "[model]") {
  RandomLlamaSpec s;
  const auto w = weights_for(s);
  const auto a = random_tokens(10, s.vocab_size, 1);
  const auto b = random_tokens(6, s.vocab_size, 2);
  LlamaModel m(w, {.threads = 2});
  LogitRows r1, r2, junk;
  m.forward(a, r1);
  m.forward(b, r2);  // the continuation we will reproduce
  const std::vector<float> want(r2.data(), r2.data() + r2.rows() * r2.vocab());
  m.truncate(a.size());
  m.forward(random_tokens(5, s.vocab_size, 9), junk);  // a rejected speculative branch
  m.truncate(a.size());
  m.forward(b, r2);
  CHECK(std::memcmp(want.data(), r2.data(), want.size() * sizeof(float)) == 0);
  CHECK(m.length() == a.size() + b.size());
  m.reset();
  CHECK(m.length() == 0);
}

TEST_CASE("context length and vocabulary are enforced", "[model]") {
  RandomLlamaSpec s;
  s.context_length = 16;
  const auto w = weights_for(s);
  LlamaModel m(w, {.threads = 1});
  CHECK(m.info().context_length == 16);
  CHECK(m.info().batch_invariant);
  CHECK(m.info().bos == 1);
  CHECK(m.info().eos == 2);
  CHECK(m.info().tokenizer_fingerprint != 0);
  LogitRows rows;
  m.forward(random_tokens(16, s.vocab_size, 1), rows);
  const Token one[1] = {3};
  CHECK_THROWS_WITH(m.forward(one, rows), Catch::Contains("context length 16"));
  m.truncate(4);
  const Token bad[1] = {static_cast<Token>(s.vocab_size)};
  CHECK_THROWS_AS(m.forward(bad, rows), Error);
  LlamaModel small(w, {.threads = 1, .context_length = 8});
  CHECK(small.info().context_length == 8);
}

TEST_CASE("weight formats: native Q8_0/F16/BF16 equal dequantized-at-load F32, bit for bit", "[model]") {
  // Row decoding on the fly must produce the same floats as decoding at load (Q8_0: the exact float path,
  // LlamaParams::q8_activations = false; the integer path is tested in test_q8.cpp).
  for (GgmlType type : {GgmlType::q8_0, GgmlType::f16, GgmlType::bf16}) {
    RandomLlamaSpec s;
    s.type = type;
    s.dim = 64;
    const auto tokens = random_tokens(9, s.vocab_size, 5);
    const auto native = run_chunked(weights_for(s, WeightFormat::native), tokens, 4, 2, false);
    const auto f32 = run_chunked(weights_for(s, WeightFormat::f32), tokens, 3, 1);
    CHECK(bit_equal(native, f32));
  }
}

TEST_CASE("quantized models track the F32 model", "[model]") {
  RandomLlamaSpec s;
  const auto tokens = random_tokens(6, s.vocab_size, 11);
  const auto ref = run_chunked(weights_for(s), tokens, 6, 1);
  for (GgmlType type : {GgmlType::f16, GgmlType::bf16, GgmlType::q8_0}) {
    s.type = type;
    const auto q = run_chunked(weights_for(s), tokens, 6, 1);
    REQUIRE(q.size() == ref.size());
    double max_err = 0, max_abs = 0;
    for (std::size_t i = 0; i < q.size(); ++i) {
      max_err = std::max(max_err, std::fabs(static_cast<double>(q[i]) - ref[i]));
      max_abs = std::max(max_abs, std::fabs(static_cast<double>(ref[i])));
    }
    INFO("type " << static_cast<int>(type) << " max error " << max_err << " of " << max_abs);
    CHECK(max_err < 0.1 * max_abs);
    CHECK(max_err > 0.0);  // it really used the quantized weights
  }
}

TEST_CASE("tied output head, partial RoPE and GGUF v2 load and run", "[model]") {
  RandomLlamaSpec s;
  s.tied_output = true;
  s.rope_dim = 8;  // head_dim 16: only the first 8 dims rotate
  s.gguf_version = 2;
  const auto w = weights_for(s);
  CHECK(w->hparams().tied_output);
  CHECK(w->hparams().rope_dim == 8);
  LlamaModel m(w, {.threads = 1});
  LogitRows rows;
  m.forward(random_tokens(3, s.vocab_size, 1), rows);
  for (std::size_t i = 0; i < rows.rows() * rows.vocab(); ++i) REQUIRE(std::isfinite(rows.data()[i]));
}

TEST_CASE("position matters: RoPE makes the same tokens give different logits at different positions", "[model]") {
  RandomLlamaSpec s;
  const auto w = weights_for(s);
  LlamaModel m(w, {.threads = 1});
  LogitRows a, b;
  const Token t[2] = {5, 5};
  m.forward(t, a);
  CHECK(std::memcmp(a.row(0).data(), a.row(1).data(), a.vocab() * sizeof(float)) != 0);
  (void)b;
}

TEST_CASE("every kernel variant: bit-identical across chunkings and 1/2/4 threads, past KV cache growth",
          "[model][invariance]") {
  // 150 tokens: the KV cache starts at 64 positions and grows twice while these run, in every chunking.
  RandomLlamaSpec s;
  s.dim = 64;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.ffn_dim = 96;
  s.n_layers = 2;
  s.vocab_size = 280;
  s.context_length = 256;
  const auto tokens = random_tokens(150, s.vocab_size, 11);
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    ::setenv("PICOSPEC_LLAMA_ISA", isa, 1);
    std::string why;
    try {
      LlamaModel probe(weights_for(s), {.threads = 1});
      REQUIRE(std::string(probe.kernel_isa()) == isa);
    } catch (const Error& e) {
      why = e.what();
    }
    if (!why.empty()) {
      REQUIRE_THAT(why, Catch::Contains("cannot run"));  // only an ISA this CPU lacks may be skipped
      WARN("SKIPPED " << isa << ": " << why);
      continue;
    }
    for (GgmlType type : {GgmlType::f32, GgmlType::f16, GgmlType::bf16, GgmlType::q8_0}) {
      s.type = type;
      const auto w = weights_for(s);
      const auto ref = run_chunked(w, tokens, 1, 1);
      for (std::size_t chunk : {5u, 64u, 150u})
        for (std::size_t threads : {1u, 2u, 4u}) {
          INFO("isa " << isa << " type " << static_cast<int>(type) << " chunk " << chunk << " threads " << threads);
          CHECK(bit_equal(run_chunked(w, tokens, chunk, threads), ref));
        }
    }
  }
  ::unsetenv("PICOSPEC_LLAMA_ISA");
}

TEST_CASE("forward(LogitsFor::last) gives the last row only, bit-identical, and the same KV cache", "[model]") {
  RandomLlamaSpec s;
  s.dim = 96;
  s.n_heads = 6;
  s.n_kv_heads = 2;
  s.ffn_dim = 160;
  s.n_layers = 3;
  s.vocab_size = 300;
  const auto w = weights_for(s);
  const auto tokens = random_tokens(40, s.vocab_size, 5);
  const std::span<const Token> t(tokens);
  for (std::size_t threads : {1u, 2u}) {
    LlamaModel all(w, {.threads = threads}), last(w, {.threads = threads});
    LogitRows ra, rl;
    all.forward(t.first(33), ra);
    last.forward(t.first(33), rl, LogitsFor::last);
    REQUIRE(rl.rows() == 1);
    REQUIRE(rl.vocab() == s.vocab_size);
    CHECK(std::memcmp(rl.data(), ra.row(32).data(), s.vocab_size * sizeof(float)) == 0);
    CHECK(last.length() == 33);
    // The rows skipped on the last layer still left their K/V: the next tokens see the same context.
    all.forward(t.subspan(33), ra);
    last.forward(t.subspan(33), rl);
    REQUIRE(rl.rows() == 7);
    CHECK(std::memcmp(rl.data(), ra.data(), 7 * s.vocab_size * sizeof(float)) == 0);
    // A single token asked for its last row is the decode row.
    last.truncate(39);
    last.forward(t.subspan(39, 1), rl, LogitsFor::last);
    CHECK(std::memcmp(rl.data(), ra.row(6).data(), s.vocab_size * sizeof(float)) == 0);
  }
}

TEST_CASE("forward_batch: several sequences over shared weights in one pass, bit-identical to one call each",
          "[model][invariance][batch]") {
  // Catches: a KV cache written to the wrong sequence, RoPE at the wrong position, attention reading another
  // sequence's keys, rows of one sequence changed by the others (a kernel whose reduction depends on the rows).
  for (GgmlType type : {GgmlType::f32, GgmlType::q8_0}) {
    RandomLlamaSpec s;
    s.dim = 96;
    s.n_heads = 6;
    s.n_kv_heads = 2;
    s.ffn_dim = 160;
    s.vocab_size = 300;
    s.type = type;
    const auto w = weights_for(s);
    const std::vector<std::vector<Token>> prompts{random_tokens(9, s.vocab_size, 1), random_tokens(3, s.vocab_size, 2),
                                                  random_tokens(70, s.vocab_size, 3)};  // 70: past a KV growth
    const std::vector<std::vector<Token>> chunks{random_tokens(5, s.vocab_size, 4), random_tokens(1, s.vocab_size, 5),
                                                 random_tokens(4, s.vocab_size, 6)};
    const auto next = random_tokens(2, s.vocab_size, 8);
    for (std::size_t threads : {1u, 2u, 4u}) {
      INFO("type " << static_cast<int>(type) << " threads " << threads);
      std::vector<std::unique_ptr<LlamaModel>> batched, alone;
      LogitRows junk;
      for (const auto& p : prompts) {
        batched.push_back(std::make_unique<LlamaModel>(w, LlamaParams{.threads = threads}));
        alone.push_back(std::make_unique<LlamaModel>(w, LlamaParams{.threads = 1}));
        batched.back()->forward(p, junk);
        alone.back()->forward(p, junk);
      }
      REQUIRE(batched[0]->batch_key() == batched[2]->batch_key());
      std::vector<LogitRows> out(prompts.size());
      std::vector<CausalLM::BatchItem> items;
      for (std::size_t i = 0; i < prompts.size(); ++i) items.push_back({batched[i].get(), chunks[i], &out[i]});
      CausalLM::forward_batch(items);
      for (std::size_t i = 0; i < prompts.size(); ++i) {
        LogitRows ref;
        alone[i]->forward(chunks[i], ref);
        CHECK(batched[i]->length() == prompts[i].size() + chunks[i].size());
        CHECK(bit_equal(flat(out[i]),
                        flat(ref)));
        // The KV caches hold each sequence's own keys: the next call continues exactly.
        LogitRows a, b;
        batched[i]->forward(next, a);
        alone[i]->forward(next, b);
        CHECK(bit_equal(flat(a),
                        flat(b)));
      }
    }
  }
}

TEST_CASE("forward_with_branches: main tokens and branches in one pass, bit-identical to forwarding each alone",
          "[model][invariance][branches]") {
  // Catches: a branch reading the wrong prefix (its base), a branch's tail leaking into the cache, RoPE at the
  // wrong position, the main rows changed by the branches beside them.
  for (GgmlType type : {GgmlType::f32, GgmlType::q8_0}) {
    RandomLlamaSpec s;
    s.dim = 96;
    s.n_heads = 6;
    s.n_kv_heads = 2;
    s.ffn_dim = 160;
    s.vocab_size = 300;
    s.type = type;
    const auto w = weights_for(s);
    const auto prompt = random_tokens(11, s.vocab_size, 1);
    const auto main = random_tokens(3, s.vocab_size, 2);  // appended in the same call as the branches
    const std::vector<std::vector<Token>> tails{random_tokens(1, s.vocab_size, 3), random_tokens(3, s.vocab_size, 4),
                                                random_tokens(2, s.vocab_size, 5)};
    const std::size_t bases[] = {14, 12, 5};  // after the main tokens, inside them, inside the prompt
    for (std::size_t threads : {1u, 2u}) {
      INFO("type " << static_cast<int>(type) << " threads " << threads);
      LlamaModel m(w, {.threads = threads});
      LogitRows junk, out, bout;
      m.forward(prompt, junk);
      std::vector<CausalLM::Branch> br;
      for (std::size_t b = 0; b < tails.size(); ++b) br.push_back({bases[b], tails[b]});
      REQUIRE(m.forward_with_branches(main, out, br, bout));
      CHECK(m.length() == prompt.size() + main.size());
      // Reference: a fresh model, main tokens, then each branch forwarded after its base and truncated away.
      LlamaModel r(w, {.threads = 1});
      std::vector<Token> ctx = prompt;
      ctx.insert(ctx.end(), main.begin(), main.end());
      LogitRows ref_main;
      r.forward(prompt, junk);
      r.forward(main, ref_main);
      CHECK(bit_equal(flat(out),
                      flat(ref_main)));
      for (std::size_t b = 0; b < tails.size(); ++b) {
        LlamaModel rb(w, {.threads = 1});
        LogitRows rows;
        rb.forward(std::span<const Token>(ctx).first(bases[b]), junk);
        rb.forward(tails[b], rows);
        const auto want = rows.row(rows.rows() - 1);
        const auto got = bout.row(b);
        CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
      }
      // The branches left no trace: the next token continues exactly as on the reference.
      const auto next = random_tokens(2, s.vocab_size, 6);
      LogitRows a, b2;
      m.forward(next, a);
      r.forward(next, b2);
      CHECK(bit_equal(flat(a),
                      flat(b2)));
    }
  }
}
