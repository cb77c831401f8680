// The integer Q8_0 path (kernels.hpp, docs/llama.md "Two paths for quantized weights"): activations quantized to 8-bit blocks of 32,
// exact integer block products, blocks combined in one fixed float order.
// - kernels: every variant (generic, avx2, avx512 with and without VNNI) quantizes to the same bytes and gives the
//   same bits; each element is independent of the tokens, row range and alignment of the call; the result equals a
//   float64 product of the weights with the *rounded* activations within float accumulation error, and the float64
//   product with the true activations within the rounding bound derived below; edge cases (zero blocks, -128
//   weights, huge and tiny magnitudes, inf/NaN);
// - models: the integer path is batch-invariant (chunks 1..9, threads 1/2/4, forward_batch), bit-identical on
//   every kernel variant, tracks the exact float path within a stated tolerance, and PICOSPEC_LLAMA_Q8 /
//   LlamaParams::q8_activations select the path.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <vector>

#include "picospec/llama/ggml_types.hpp"
#include "picospec/llama/gguf.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"
#include "kernel_util.hpp"
#include "model_util.hpp"

using namespace picospec;
using namespace picospec::llama;
using namespace picospec::llama::test;

namespace {

QuantMatrix q8_matrix(std::size_t rows, std::size_t cols, std::uint64_t seed, float scale = 1.0f) {
  std::uniform_real_distribution<float> u(-scale, scale);
  return quant_matrix(GgmlType::q8_0, rows, cols, seed, [&](std::mt19937_64& rng, std::size_t) { return u(rng); });
}

}  // namespace

TEST_CASE("q8 kernels: every variant, same bytes and bits; invariant to tokens, rows, alignment; within the bound",
          "[kernels][q8][invariance]") {
  const std::size_t rows = 13;
  for (std::size_t cols : {32u, 96u, 512u, 544u}) {  // 1, 3, 16, 17 blocks: odd counts use lanes 0-7 at the end
    const QuantMatrix m = q8_matrix(rows, cols, cols * 7 + 1);
    const std::size_t nt = 11, xstride = cols + 5;  // odd stride: every alignment of the activation rows
    const auto X = normal_x(nt * xstride + 1, cols);
    const float* x = X.data() + 1;
    const auto [q_ref, y_ref] = check_int_path_variants(m, x, xstride, nt);
    check_int_path_bounds(m, x, xstride, nt, q_ref, y_ref, false);  // against float64
  }
}

TEST_CASE("q8 kernels: zero blocks, -128 weights, huge and tiny magnitudes, inf and NaN", "[kernels][q8]") {
  const std::size_t cols = 96, rows = 3;
  QuantMatrix m = q8_matrix(rows, cols, 3);
  // Row 1, block 0: every weight -128 (a legal byte, never produced by ggml's quantizer): |w| = 128 as unsigned.
  for (std::size_t i = 0; i < 32; ++i) m.bytes[m.rb + 2 + i] = 0x80;
  dequantize_row(GgmlType::q8_0, m.bytes.data() + m.rb, m.deq.data() + cols, cols);
  auto check_case = [&](const char* what, std::vector<float> x, bool expect_nan) {
    INFO(what);
    std::vector<std::vector<float>> outs;
    for (const K::Table* kt : kernel_variants()) {
      const auto q = quantize_rows(*kt, x.data(), cols, 1, cols);
      std::vector<float> y(rows);
      kt->matmul_q8(m.weights(), 0, rows, q.data(), 0, 1, y.data(), rows);
      outs.push_back(y);
      for (std::size_t r = 0; r < rows; ++r) {
        INFO("variant " << kt->q8_dot << " row " << r << " y " << y[r]);
        if (expect_nan) {
          CHECK(std::isnan(y[r]));
          continue;
        }
        REQUIRE(std::isfinite(y[r]));
        double y_true = 0, bound = 0, mag = 0;
        for (std::size_t i = 0; i < cols; ++i) {
          const double w = m.deq[r * cols + i], d = q8_scale_of(GgmlType::q8_0, q.data(), cols, i);
          y_true += w * x[i];
          bound += std::abs(w) * d / 2;
          mag += std::abs(w * x[i]);
        }
        CHECK(std::abs(y[r] - y_true) <= bound + 1e-6 * mag + 1e-37);
      }
    }
    for (const auto& y : outs) CHECK(std::memcmp(y.data(), outs[0].data(), rows * sizeof(float)) == 0);
  };
  auto x = normal_x(cols, 9);
  std::fill_n(x.begin() + 32, 32, 0.0f);  // block 1 all zero: scale 0, no division by zero
  check_case("a zero block", x, false);
  check_case("all zero", std::vector<float>(cols, 0.0f), false);
  auto big = normal_x(cols, 10, 1e30f);
  check_case("magnitudes near 1e30", big, false);
  auto tiny = normal_x(cols, 11, 1e-38f);  // subnormal scales: q clamped to +-127, still finite
  check_case("magnitudes near 1e-38", tiny, false);
  auto with_inf = normal_x(cols, 12);
  with_inf[40] = std::numeric_limits<float>::infinity();
  check_case("an infinity", with_inf, true);
  auto with_nan = normal_x(cols, 13);
  with_nan[70] = std::numeric_limits<float>::quiet_NaN();
  check_case("a NaN", with_nan, true);
  // Zero scale exactly: the zero block's stored scale is 0 and its quantized values are 0 (stored as 0 + 128).
  const auto q = quantize_rows(*K::table(K::Isa::generic), x.data(), cols, 1, cols);
  CHECK(q8_scale_of(GgmlType::q8_0, q.data(), cols, 32) == 0.0f);  // block 1
  for (std::size_t i = 32; i < 64; ++i) CHECK(q[i] == 128);
  // Row 1 against a block of ones: exactly -128 * 32 * d_w * d_x in that block (integers are exact).
  std::vector<float> ones(cols, 0.0f);
  std::fill_n(ones.begin(), 32, 1.0f);
  for (const K::Table* kt : kernel_variants()) {
    const auto q1 = quantize_rows(*kt, ones.data(), cols, 1, cols);
    std::vector<float> y(rows);
    kt->matmul_q8(m.weights(), 1, 2, q1.data(), 0, 1, y.data(), rows);
    const float dw = half_to_float(static_cast<std::uint16_t>(m.bytes[m.rb] | (m.bytes[m.rb + 1] << 8)));
    const float dx = 1.0f / 127.0f;  // max |x| = 1: q = 127 for every element of block 0, 0 elsewhere
    // Each of the 8 lanes: fma(4 * (-128) * 127, d, 0); the pairwise sum of 8 equal values is exact doublings.
    const float lane = -65024.0f * (dw * dx);
    INFO("variant " << kt->q8_dot);
    CHECK(y[1] == 8.0f * lane);
  }
}

TEST_CASE("q8 model: integer path bit-identical over chunk sizes 1..9 and threads 1/2/4; avx2 = avx512",
          "[model][q8][invariance]") {
  // (The generic variant's attention and F32 products use separate multiplies and adds, so its logits differ from
  // the FMA variants' in the last bits: there each variant is checked against itself. Its matmul_q8 gives the same
  // bits as the others: the kernel test above.)
  RandomLlamaSpec s;
  s.type = GgmlType::q8_0;
  s.dim = 96;  // 3 blocks: the odd last block
  s.n_heads = 6;
  s.n_kv_heads = 2;
  s.ffn_dim = 160;  // 5 blocks
  s.context_length = 128;
  const auto w = weights_for(s);
  const auto tokens = random_tokens(75, s.vocab_size, 3);  // past the first KV cache growth (64)
  std::vector<float> ref, simd_ref;
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    EnvGuard env("PICOSPEC_LLAMA_ISA", isa);
    if (K::table(isa == std::string("generic") ? K::Isa::generic
                 : isa == std::string("avx2")  ? K::Isa::avx2
                                               : K::Isa::avx512) == nullptr) {
      WARN("SKIPPED " << isa << ": this CPU cannot run it");
      continue;
    }
    ref = run_chunked(w, tokens, 1, 1, true);
    INFO("isa " << isa);
    if (std::string(isa) != "generic") {
      if (simd_ref.empty()) simd_ref = ref;
      CHECK(bit_equal(ref, simd_ref));
    }
    for (std::size_t chunk = 2; chunk <= 9; ++chunk)
      for (std::size_t threads : {1u, 2u, 4u}) {
        if (std::string(isa) != "avx512" && threads != 2) continue;  // the slower variants: one thread count
        INFO("chunk " << chunk << " threads " << threads);
        CHECK(bit_equal(run_chunked(w, tokens, chunk, threads, true), ref));
      }
    CHECK(bit_equal(run_chunked(w, tokens, 75, 4, true), ref));
  }
  // The float path is batch-invariant too, and differs from the integer path (it is really another path).
  ref = run_chunked(w, tokens, 1, 1, true);
  const auto fl = run_chunked(w, tokens, 1, 1, false);
  CHECK(bit_equal(run_chunked(w, tokens, 7, 2, false), fl));
  CHECK_FALSE(bit_equal(fl, ref));
}

TEST_CASE("q8 model: forward_batch over the integer path equals one call each; mixed paths are not mixed up",
          "[model][q8][invariance][batch]") {
  RandomLlamaSpec s;
  s.type = GgmlType::q8_0;
  s.dim = 96;
  s.n_heads = 6;
  s.n_kv_heads = 2;
  s.ffn_dim = 160;
  const auto w = weights_for(s);
  const std::vector<std::vector<Token>> prompts{random_tokens(9, s.vocab_size, 1), random_tokens(3, s.vocab_size, 2),
                                                random_tokens(20, s.vocab_size, 3)};
  const std::vector<std::vector<Token>> chunks{random_tokens(5, s.vocab_size, 4), random_tokens(1, s.vocab_size, 5),
                                               random_tokens(4, s.vocab_size, 6)};
  for (bool mixed : {false, true})
    for (std::size_t threads : {1u, 2u, 4u}) {
      INFO("mixed " << mixed << " threads " << threads);
      std::vector<std::unique_ptr<LlamaModel>> batched, alone;
      LogitRows junk;
      for (std::size_t i = 0; i < prompts.size(); ++i) {
        const bool q8 = !(mixed && i == 1);  // the second model on the float path
        batched.push_back(std::make_unique<LlamaModel>(w, LlamaParams{.threads = threads, .q8_activations = q8}));
        alone.push_back(std::make_unique<LlamaModel>(w, LlamaParams{.threads = 1, .q8_activations = q8}));
        batched.back()->forward(prompts[i], junk);
        alone.back()->forward(prompts[i], junk);
      }
      std::vector<LogitRows> out(prompts.size());
      std::vector<CausalLM::BatchItem> items;
      for (std::size_t i = 0; i < prompts.size(); ++i) items.push_back({batched[i].get(), chunks[i], &out[i]});
      CausalLM::forward_batch(items);
      for (std::size_t i = 0; i < prompts.size(); ++i) {
        LogitRows r;
        alone[i]->forward(chunks[i], r);
        CHECK(std::memcmp(out[i].data(), r.data(), r.rows() * r.vocab() * sizeof(float)) == 0);
      }
    }
}

TEST_CASE("q8 model: the integer path tracks the exact float path; the switch and its errors", "[model][q8]") {
  RandomLlamaSpec s;
  s.type = GgmlType::q8_0;
  s.dim = 128;
  s.ffn_dim = 256;
  const auto w = weights_for(s);
  const auto tokens = random_tokens(12, s.vocab_size, 7);
  const auto in = run_chunked(w, tokens, 12, 1, true);
  const auto fl = run_chunked(w, tokens, 12, 1, false);
  REQUIRE(in.size() == fl.size());
  // 8-bit activations (relative rounding error <= 1/254 of each block's max per element) through 2 layers: the
  // logits stay within 2% of the logits' range (measured: about 0.3%), and the argmax of most rows agrees.
  double max_err = 0, max_abs = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    max_err = std::max(max_err, std::fabs(static_cast<double>(in[i]) - fl[i]));
    max_abs = std::max(max_abs, std::fabs(static_cast<double>(fl[i])));
  }
  INFO("max error " << max_err << " of " << max_abs);
  CHECK(max_err < 0.02 * max_abs);
  CHECK(max_err > 0.0);
  // The float path equals the model dequantized to F32 at load; the default is the integer path.
  CHECK(bit_equal(fl, run_chunked(weights_for(s, WeightFormat::f32), tokens, 5, 2, std::nullopt)));
  CHECK(bit_equal(in, run_chunked(w, tokens, 5, 2, std::nullopt)));
  CHECK(std::string(LlamaModel(w, {.threads = 1}).q8_path()) == "int");
  {
    EnvGuard env("PICOSPEC_LLAMA_Q8", "float");
    CHECK(std::string(LlamaModel(w, {.threads = 1}).q8_path()) == "float");
    CHECK(bit_equal(run_chunked(w, tokens, 4, 2, std::nullopt), fl));
    CHECK(std::string(LlamaModel(w, {.threads = 1, .q8_activations = true}).q8_path()) == "int");  // field wins
  }
  {
    EnvGuard env("PICOSPEC_LLAMA_Q8", "int");
    CHECK(bit_equal(run_chunked(w, tokens, 4, 2, std::nullopt), in));
  }
  {
    EnvGuard env("PICOSPEC_LLAMA_Q8", "fast");
    CHECK_THROWS_WITH(LlamaModel(w, {.threads = 1}), Catch::Contains("PICOSPEC_LLAMA_Q8=fast: unknown"));
  }
}
