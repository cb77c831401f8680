// Replays the fuzz targets (fuzz/fuzz_*.cpp, the same functions scripts/fuzz.sh runs under libFuzzer) over every
// kept crash in fuzz/regressions/<target>/ and over a fixed set of seeded random inputs. A target that crashes,
// trips a sanitizer (the ASan stage of scripts/test.sh), throws anything but picospec::Error or fails one of its
// invariants (abort) fails this test.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

#include "fuzz_target.hpp"

int fuzz_protocol(const std::uint8_t* data, std::size_t size);
int fuzz_codecs(const std::uint8_t* data, std::size_t size);
#ifdef PICOSPEC_FUZZ_GGUF
int fuzz_gguf(const std::uint8_t* data, std::size_t size);
#endif

namespace {

using Target = int (*)(const std::uint8_t*, std::size_t);

std::size_t replay_kept(const std::string& name, Target target) {
  const std::filesystem::path dir = std::filesystem::path(PICOSPEC_FUZZ_DIR) / "regressions" / name;
  std::size_t n = 0;
  if (!std::filesystem::is_directory(dir)) return 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file() || entry.path().filename().string().front() == '.') continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    INFO(entry.path().string());
    CHECK(target(bytes.data(), bytes.size()) == 0);
    ++n;
  }
  return n;
}

void replay_random(Target target, std::uint64_t seed, int count, std::size_t max_len) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint8_t> b;
  CHECK(target(nullptr, 0) == 0);
  for (int i = 0; i < count; ++i) {
    b.resize(rng() % (max_len + 1));
    for (auto& x : b) x = static_cast<std::uint8_t>(rng());
    CHECK(target(b.data(), b.size()) == 0);
  }
}

}  // namespace

TEST_CASE("fuzz regressions: protocol decoder", "[fuzz][protocol]") {
  const auto kept = replay_kept("protocol", fuzz_protocol);
  INFO(kept << " kept inputs");
  replay_random(fuzz_protocol, 1, 3000, 96);
  // A valid header with every message type byte and random payloads: reaches each body decoder.
  std::mt19937_64 rng(2);
  for (int type = 0; type < 16; ++type)
    for (int i = 0; i < 200; ++i) {
      std::vector<std::uint8_t> f(28 + rng() % 64);
      for (auto& x : f) x = static_cast<std::uint8_t>(rng());
      f[0] = 'P';
      f[1] = 'S';
      f[2] = 'P';
      f[3] = 'C';
      f[4] = 1;  // version 1
      f[5] = 0;
      f[6] = static_cast<std::uint8_t>(type);
      const auto len = static_cast<std::uint32_t>(f.size() - 28);  // payload_len consistent with the size
      for (int k = 0; k < 4; ++k) f[24 + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(len >> (8 * k));
      CHECK(fuzz_protocol(f.data(), f.size()) == 0);
    }
}

TEST_CASE("fuzz regressions: codecs, candidate stream, draft scalars", "[fuzz][codecs]") {
  const auto kept = replay_kept("codecs", fuzz_codecs);
  INFO(kept << " kept inputs");
  replay_random(fuzz_codecs, 3, 20000, 200);
}

#ifdef PICOSPEC_FUZZ_GGUF
TEST_CASE("fuzz regressions: GGUF reader", "[fuzz][gguf]") {
  const auto kept = replay_kept("gguf", fuzz_gguf);
  INFO(kept << " kept inputs");
  std::vector<std::uint8_t> b{'G', 'G', 'U', 'F', 3, 0, 0, 0};
  std::mt19937_64 rng(4);
  for (int i = 0; i < 3000; ++i) {
    b.resize(8 + rng() % 120);
    for (std::size_t k = 8; k < b.size(); ++k) b[k] = static_cast<std::uint8_t>(rng() % 4 == 0 ? rng() : 0);
    CHECK(fuzz_gguf(b.data(), b.size()) == 0);
  }
}
#endif
