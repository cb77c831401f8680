// Randomized robustness: >= 10^4 truncated or mutated copies of a small GGUF model (written by the test itself)
// are parsed and loaded as a model. Each must either load or throw picospec::Error (DecodeError included) —
// never crash, hang, read out of bounds (run under ASan/UBSan) or throw anything else. Models that do load must
// run a forward pass.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>

#include "picospec/llama/gguf.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

enum class Outcome { loaded, rejected };

Outcome try_load(const std::vector<std::uint8_t>& bytes) {
  try {
    auto w = LlamaWeights::from_gguf(GgufFile::from_bytes(bytes, "mutant.gguf"));
    LlamaModel m(w, {.threads = 1, .context_length = 8});
    LogitRows rows;
    const Token toks[2] = {1, static_cast<Token>(m.info().vocab_size - 1)};
    m.forward(toks, rows);
    return Outcome::loaded;
  } catch (const Error&) {
    return Outcome::rejected;
  }
}

}  // namespace

TEST_CASE("10^4 truncated and mutated GGUF files load or fail cleanly", "[gguf][robust]") {
  RandomLlamaSpec spec;
  spec.vocab_size = 260;
  spec.dim = 32;
  spec.ffn_dim = 32;
  spec.n_layers = 1;
  spec.n_heads = 2;
  spec.n_kv_heads = 1;
  spec.type = GgmlType::q8_0;
  const auto good = random_llama_gguf(spec).bytes();
  REQUIRE(try_load(good) == Outcome::loaded);

  // Locate the header end so mutations focus where parsing happens (and some hit the data too).
  const auto header_end = static_cast<std::size_t>(GgufFile::from_bytes(good).data_offset());

  std::mt19937_64 rng(20240611);
  std::size_t loaded = 0, rejected = 0;
  const int kCases = 10000;
  for (int c = 0; c < kCases; ++c) {
    std::vector<std::uint8_t> m = good;
    const int kind = c % 4;
    if (kind == 0) {  // truncation anywhere
      m.resize(std::uniform_int_distribution<std::size_t>(0, good.size() - 1)(rng));
    } else {
      const int n_mut = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < n_mut; ++k) {
        const std::size_t limit = (kind == 3) ? m.size() : header_end;  // mostly header bytes
        const std::size_t pos = std::uniform_int_distribution<std::size_t>(0, limit - 1)(rng);
        if (kind == 1) {
          m[pos] = static_cast<std::uint8_t>(rng());
        } else {  // set a whole 8-byte field to an extreme value (lengths, counts, offsets, dims)
          static const std::uint64_t extremes[] = {0, 1, 0xFFFFFFFFull, 0xFFFFFFFFFFFFFFFFull, 0x8000000000000000ull,
                                                   0x100000000ull, 1ull << 40, 13};
          const std::uint64_t v = extremes[rng() % 8];
          for (std::size_t b = 0; b < 8 && pos + b < m.size(); ++b) m[pos + b] = static_cast<std::uint8_t>(v >> (8 * b));
        }
      }
    }
    if (try_load(m) == Outcome::loaded) ++loaded; else ++rejected;
  }
  WARN("loaded " << loaded << ", rejected " << rejected);
  CHECK(loaded + rejected == static_cast<std::size_t>(kCases));
  CHECK(rejected > static_cast<std::size_t>(kCases) / 2);  // the mutations do hit validation
}
