// The kernel variants (backends/llama/src/kernels*.cpp) and the thread pool, tested directly:
// - every variant this CPU runs matches a float64 dot product (a tolerance stated below) for F32/F16/BF16/Q8_0 and
//   the 4- to 6-bit types (Q4_0, Q4_K, Q6_K computed from the blocks; Q5_K widened row by row);
// - each output element is bit-identical whatever the number of tokens in the call, the row range and the
//   buffers' alignment (the batch-invariance contract), and native types equal their F32 dequantization;
// - the FMA variants follow exactly the documented order (an independent scalar emulation with std::fma), so the
//   AVX2 and AVX-512 variants agree bit for bit;
// - the pool covers [0, n) exactly once in ranges of sizes differing by at most one, for 1..16 threads, and
//   rethrows a worker's exception.
#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "../../backends/llama/src/kernels.hpp"
#include "../../backends/llama/src/thread_pool.hpp"
#include "picospec/llama/ggml_types.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"
#include "picospec/llama/gguf.hpp"
#include "kernel_util.hpp"

using namespace picospec;
using namespace picospec::llama;
using namespace picospec::llama::test;

namespace {

std::vector<const K::Table*> available() { return kernel_variants(false); }

QuantMatrix random_matrix(GgmlType type, std::size_t rows, std::size_t cols, std::uint64_t seed) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  return quant_matrix(type, rows, cols, seed, [&](std::mt19937_64& rng, std::size_t) { return u(rng); });
}

std::vector<float> random_x(std::size_t n, std::uint64_t seed) { return normal_x(n, seed); }

/// The documented order of kernels.hpp with fused multiply-adds, written independently of the kernels.
float emulate_fma_order(const float* w, const float* x, std::size_t n) {
  float a[16] = {};
  const std::size_t n16 = n - n % 16;
  for (std::size_t i = 0; i < n16; i += 16)
    for (std::size_t k = 0; k < 16; ++k) a[k] = std::fma(w[i + k], x[i + k], a[k]);
  float s8[8], s4[4];
  for (std::size_t k = 0; k < 8; ++k) s8[k] = a[k] + a[k + 8];
  for (std::size_t k = 0; k < 4; ++k) s4[k] = s8[k] + s8[k + 4];
  const float s = (s4[0] + s4[2]) + (s4[1] + s4[3]);
  float tail = 0.0f;
  for (std::size_t i = n16; i < n; ++i) tail = std::fma(w[i], x[i], tail);
  return s + tail;
}

}  // namespace

TEST_CASE("kernels: every variant matches float64 and is invariant to tokens, row ranges and alignment",
          "[kernels][invariance]") {
  const std::size_t rows = 13;  // not a multiple of any row tile
  for (const K::Table* kt : available())
    for (GgmlType type : {GgmlType::f32, GgmlType::f16, GgmlType::bf16, GgmlType::q8_0, GgmlType::q4_0,
                          GgmlType::q4_k, GgmlType::q5_k, GgmlType::q6_k})
      for (std::size_t cols : {32u, 96u, 100u, 512u, 768u}) {
        if (cols % ggml_type_traits(static_cast<std::uint32_t>(type))->block_elems != 0) continue;
        INFO("isa " << K::isa_name(kt->isa) << " type " << ggml_type_name(static_cast<std::uint32_t>(type))
                    << " cols " << cols);
        const QuantMatrix m = random_matrix(type, rows, cols, cols * 31 + static_cast<std::uint32_t>(type));
        const std::size_t nt = 13, xstride = cols + 3;  // odd stride: rows of X at every alignment
        const auto X = random_x(nt * xstride + 1, 5);
        const float* x = X.data() + 1;  // misaligned on purpose
        std::vector<float> all(nt * rows), one(nt * rows), split(nt * rows), viaf32(nt * rows);
        kt->matmul(m.weights(), 0, rows, x, xstride, nt, all.data(), rows);
        for (std::size_t j = 0; j < nt; ++j) kt->matmul(m.weights(), 0, rows, x + j * xstride, 0, 1, one.data() + j * rows, rows);
        for (std::size_t r0 = 0, step = 1; r0 < rows; r0 += step, step = step % 5 + 2)
          kt->matmul(m.weights(), r0, std::min(rows, r0 + step), x, xstride, nt, split.data(), rows);
        kt->matmul(m.f32(), 0, rows, x, xstride, nt, viaf32.data(), rows);
        CHECK(bits_equal(all.data(), one.data(), all.size()));
        CHECK(bits_equal(all.data(), split.data(), all.size()));
        CHECK(bits_equal(all.data(), viaf32.data(), all.size()));
        double worst = 0;
        for (std::size_t j = 0; j < nt; ++j)
          for (std::size_t r = 0; r < rows; ++r) {
            double ref = 0, mag = 0;
            for (std::size_t i = 0; i < cols; ++i) {
              ref += static_cast<double>(m.deq[r * cols + i]) * x[j * xstride + i];
              mag += std::abs(static_cast<double>(m.deq[r * cols + i]) * x[j * xstride + i]);
            }
            // float32 accumulation error bound: a few ulps of the magnitude sum per level of the reduction
            worst = std::max(worst, std::abs(all[j * rows + r] - ref) / (mag * 1e-6 + 1e-30));
            if (kt->isa != K::Isa::generic) {
              const float em = emulate_fma_order(m.deq.data() + r * cols, x + j * xstride, cols);
              CHECK(std::memcmp(&em, &all[j * rows + r], sizeof(float)) == 0);
            }
          }
        CHECK(worst < 1.0);  // |y - y64| < 1e-6 * sum |w x|
        // dot() is the same order as a one-row matmul
        const float d = kt->dot(m.deq.data(), x, cols);
        float r0;
        kt->matmul(m.f32(), 0, 1, x, 0, 1, &r0, 1);
        CHECK(std::memcmp(&d, &r0, sizeof(float)) == 0);
      }
}

TEST_CASE("kernels: axpy is one multiply-add per element on every variant", "[kernels]") {
  for (const K::Table* kt : available()) {
    const auto x = random_x(37, 1);
    auto y = random_x(37, 2);
    auto expect = y;
    kt->axpy(0.37f, x.data(), y.data(), 37);
    for (std::size_t e = 0; e < 37; ++e)
      expect[e] = kt->isa == K::Isa::generic ? expect[e] + 0.37f * x[e] : std::fma(0.37f, x[e], expect[e]);
    CHECK(bits_equal(y.data(), expect.data(), 37));
  }
}

TEST_CASE("kernels: the AVX2 and AVX-512 models give bit-identical logits", "[kernels][model]") {
  if (!K::table(K::Isa::avx2) || !K::table(K::Isa::avx512)) {
    WARN("SKIPPED: this CPU lacks AVX2 or AVX-512");
    return;
  }
  RandomLlamaSpec s;
  s.dim = 96;
  s.n_heads = 6;
  s.n_kv_heads = 2;
  s.ffn_dim = 160;
  s.n_layers = 2;
  s.vocab_size = 300;
  s.type = GgmlType::q8_0;
  const auto w = LlamaWeights::from_gguf(GgufFile::from_bytes(random_llama_gguf(s).bytes(), "random.gguf"));
  std::vector<Token> toks(17);
  for (std::size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<Token>((i * 37 + 5) % s.vocab_size);
  std::vector<std::vector<float>> out;
  for (const char* isa : {"avx2", "avx512"}) {
    ::setenv("PICOSPEC_LLAMA_ISA", isa, 1);
    LlamaModel m(w, {.threads = 2});
    CHECK(std::string(m.kernel_isa()) == isa);
    LogitRows rows;
    m.forward(toks, rows);
    out.emplace_back(rows.data(), rows.data() + rows.rows() * rows.vocab());
  }
  ::unsetenv("PICOSPEC_LLAMA_ISA");
  CHECK(bits_equal(out[0].data(), out[1].data(), out[0].size()));
}

TEST_CASE("kernels: PICOSPEC_LLAMA_ISA names an unknown variant -> clear error", "[kernels]") {
  ::setenv("PICOSPEC_LLAMA_ISA", "sse9", 1);
  CHECK_THROWS_WITH(K::select(), Catch::Contains("unknown"));
  ::setenv("PICOSPEC_LLAMA_ISA", "generic", 1);
  CHECK(K::select().isa == K::Isa::generic);
  ::unsetenv("PICOSPEC_LLAMA_ISA");
}

TEST_CASE("thread pool: even chunks covering [0, n) once, for 1..16 threads; exceptions reach the caller",
          "[pool][concurrency]") {
  using picospec::llama::detail::ThreadPool;
  for (std::size_t threads = 1; threads <= 16; ++threads) {
    ThreadPool pool(threads);
    for (std::size_t n : {0u, 1u, 5u, 16u, 17u, 1000u}) {
      std::vector<std::atomic<int>> hits(n);
      std::atomic<std::size_t> calls{0}, bad_thread{0}, small{0}, large{0};
      const std::size_t parts = std::min(threads, n);
      const std::size_t chunks = parts <= 1 ? 1 : std::min(n, parts * ThreadPool::kChunksPerThread);
      pool.parallel_for(n, [&](std::size_t b, std::size_t e, std::size_t thread) {
        if (thread >= threads) ++bad_thread;
        ++calls;
        if (e - b < n / chunks) ++small;
        if (e - b > n / chunks + 1) ++large;
        for (std::size_t i = b; i < e; ++i) ++hits[i];
      });
      for (std::size_t i = 0; i < n; ++i) REQUIRE(hits[i] == 1);
      CHECK(bad_thread == 0);
      if (n > 0) CHECK(calls == chunks);
      CHECK(small == 0);  // chunk sizes differ by at most one
      CHECK(large == 0);
    }
    CHECK_THROWS_AS(pool.parallel_for(64, [&](std::size_t b, std::size_t) {
      if (b != 0 || threads == 1) throw std::runtime_error("boom");
    }), std::runtime_error);
    // Back-to-back calls: the spin-then-sleep hand-off (fewer when the threads outnumber any machine's cores here).
    const std::size_t calls = threads <= 4 ? 2000 : 50;
    std::atomic<std::size_t> sum{0};
    for (std::size_t call = 0; call < calls; ++call)
      pool.parallel_for(threads * 8, [&](std::size_t b, std::size_t e) { sum += e - b; });
    CHECK(sum == calls * threads * 8);
    // The pool is still usable after an exception, and max_parts = 1 runs on the caller alone.
    const auto caller = std::this_thread::get_id();
    std::atomic<int> elsewhere{0};
    pool.parallel_for(100, [&](std::size_t, std::size_t) { elsewhere += std::this_thread::get_id() != caller; }, 1);
    CHECK(elsewhere == 0);
  }
}
