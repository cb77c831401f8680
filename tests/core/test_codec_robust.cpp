// Decode robustness: >= 1e5 mutated / truncated / extended / random frames per codec family. Every decode must
// either succeed with a well-formed result (ids ascending and < vocab, probabilities positive and finite) or throw
// picospec::DecodeError -- never another exception, never UB (this suite runs under ASan+UBSan).
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "picospec/rng.hpp"
#include "picospec/sparse_codec.hpp"

using namespace picospec;

namespace {

using Bytes = std::vector<std::uint8_t>;

struct Mutator {
  std::uint64_t n = 0;
  std::uint64_t next() { return random_u64(99, Purpose::user, n++, 7); }
  std::size_t below(std::size_t m) { return m == 0 ? 0 : static_cast<std::size_t>(next() % m); }

  Bytes mutate(const Bytes& in) {
    Bytes b = in;
    switch (below(7)) {
      case 0:  // flip 1-3 bits
        for (std::size_t i = 0, k = 1 + below(3); i < k && !b.empty(); ++i)
          b[below(b.size())] ^= static_cast<std::uint8_t>(1u << below(8));
        break;
      case 1:  // overwrite a byte with an extreme value
        if (!b.empty()) b[below(b.size())] = static_cast<std::uint8_t>(std::array<int, 5>{0, 0x7f, 0x80, 0xff, 0x01}[below(5)]);
        break;
      case 2:  // truncate
        b.resize(below(b.size() + 1));
        break;
      case 3:  // append garbage
        for (std::size_t i = 0, k = 1 + below(9); i < k; ++i) b.push_back(static_cast<std::uint8_t>(next()));
        break;
      case 4:  // fully random frame of similar length
        b.resize(below(in.size() + 16));
        for (auto& x : b) x = static_cast<std::uint8_t>(next());
        break;
      case 5:  // huge varint / count at the front
        if (!b.empty()) {
          b[0] = 0xff;
          if (b.size() > 1) b[1] = static_cast<std::uint8_t>(0x80 | next());
        }
        break;
      default:  // swap two bytes
        if (b.size() >= 2) std::swap(b[below(b.size())], b[below(b.size())]);
        break;
    }
    return b;
  }
};

// Plain checks, one REQUIRE per frame (Catch assertions per element would dominate the run time).
void check_dist(const SparseDist& d, std::uint32_t v) {
  bool good = d.vocab_size == v && d.ids.size() == d.probs.size() && !d.ids.empty();
  for (std::size_t i = 0; good && i < d.size(); ++i) {
    good = d.ids[i] >= 0 && static_cast<std::uint32_t>(d.ids[i]) < v && (i == 0 || d.ids[i] > d.ids[i - 1]) &&
           std::isfinite(d.probs[i]) && d.probs[i] >= 0.0f;
  }
  REQUIRE(good);
}

struct Tally {
  long ok = 0, rejected = 0;
};

// Runs `decode` on n mutated frames derived from `seeds`; any exception other than DecodeError fails the test.
Tally hammer(const std::vector<Bytes>& seeds, int n, const std::function<void(const Bytes&)>& decode) {
  Mutator m;
  Tally t;
  for (int i = 0; i < n; ++i) {
    Bytes b = m.mutate(seeds[static_cast<std::size_t>(i) % seeds.size()]);
    if (i % 3 == 0) b = m.mutate(b);  // some frames get two mutations
    try {
      decode(b);
      ++t.ok;
    } catch (const DecodeError&) {
      ++t.rejected;
    }
  }
  return t;
}

std::vector<float> row(std::size_t v, std::uint64_t tag) {
  std::vector<float> p(v);
  double s = 0;
  for (std::size_t i = 0; i < v; ++i) {
    const double z = uniform(tag, Purpose::user, i, 1);
    p[i] = static_cast<float>(std::exp(12 * z * z * z));
    s += p[i];
  }
  for (auto& x : p) x = static_cast<float>(x / s);
  return p;
}

constexpr int kFrames = 100'000;

}  // namespace

TEST_CASE("sparse codecs survive 1e5 mutated frames each", "[codec][robust]") {
  for (const char* spec : {"dense_f32", "topk_f32:32", "topk_q:32", "topk_q:256:0.9"}) {
    const auto c = make_codec(spec);
    const std::uint32_t v = std::string(spec) == "dense_f32" ? 48 : 151936;
    std::vector<Bytes> seeds;
    for (std::uint64_t tag = 0; tag < 8; ++tag) {
      Bytes b;
      c->encode(row(v, tag), b);
      seeds.push_back(b);
    }
    const Tally t = hammer(seeds, kFrames, [&](const Bytes& b) {
      for (auto norm : {Normalization::normalize, Normalization::raw}) check_dist(c->decode(b, v, norm), v);
    });
    INFO(spec << ": decoded " << t.ok << ", rejected " << t.rejected);
    CHECK(t.ok + t.rejected == kFrames);
    CHECK(t.rejected > kFrames / 4);  // the mutator does produce invalid frames
    // a smaller vocabulary than the encoder's must be caught too
    for (const auto& s : seeds) CHECK_THROWS_AS(c->decode(s, 2), DecodeError);
  }
}

TEST_CASE("candidate stream decoder survives 1e5 mutated frames", "[codec][robust]") {
  std::vector<Bytes> seeds;
  const std::uint32_t v = 151936;
  for (std::uint64_t tag = 0; tag < 8; ++tag) {
    Bytes b;
    encode_candidates(draw_candidates(row(v, tag), 32, tag, 1, 2, static_cast<std::uint32_t>(tag * 32)), b);
    seeds.push_back(b);
  }
  const std::vector<float> q_flat(v, 1.0f / v);
  const Tally t = hammer(seeds, kFrames, [&](const Bytes& b) {
    const CandidateStream s = decode_candidates(b, v);
    bool good = s.ids.size() == s.p.size() && s.ids.size() <= kMaxCandidatesPerFrame;
    for (std::size_t k = 0; good && k < s.size(); ++k)
      good = s.ids[k] >= 0 && static_cast<std::uint32_t>(s.ids[k]) < v && std::isfinite(s.p[k]) && s.p[k] > 0.0f;
    REQUIRE(good);
    // what decodes is usable by the edge without further checks
    (void)pick_candidate(s, q_flat, 1, 2, 3);
  });
  INFO("decoded " << t.ok << ", rejected " << t.rejected);
  CHECK(t.ok + t.rejected == kFrames);
  CHECK(t.rejected > kFrames / 4);
}

TEST_CASE("draft scalar decoder survives 1e5 mutated frames", "[codec][robust]") {
  std::vector<Bytes> seeds;
  for (std::uint64_t tag = 0; tag < 8; ++tag) {
    std::vector<Token> ids;
    std::vector<float> q;
    for (std::uint64_t i = 0; i < 4 + tag; ++i) {
      ids.push_back(static_cast<Token>(random_u64(tag, Purpose::user, i, 3) % 151936));
      q.push_back(static_cast<float>(uniform(tag, Purpose::user, i, 4)) + 1e-3f);
    }
    Bytes b;
    encode_draft_scalars(ids, q, b);
    seeds.push_back(b);
  }
  const Tally t = hammer(seeds, kFrames, [&](const Bytes& b) {
    const DraftScalars d = decode_draft_scalars(b, 151936);
    bool good = d.ids.size() == d.q.size();
    for (std::size_t i = 0; good && i < d.ids.size(); ++i)
      good = d.ids[i] >= 0 && d.ids[i] < 151936 && std::isfinite(d.q[i]) && d.q[i] > 0.0f;
    REQUIRE(good);
  });
  INFO("decoded " << t.ok << ", rejected " << t.rejected);
  CHECK(t.ok + t.rejected == kFrames);
  CHECK(t.rejected > kFrames / 4);
}

TEST_CASE("hand-made malformed frames give clear DecodeErrors", "[codec][robust]") {
  const auto q = make_codec("topk_q:4");
  auto msg = [&](const Bytes& b) -> std::string {
    try {
      (void)q->decode(b, 1000);
    } catch (const DecodeError& e) {
      return e.what();
    }
    return "no error";
  };
  CHECK(msg({}).find("truncated") != std::string::npos);
  CHECK(msg({5, 1, 1, 1, 1, 1, 0, 0x3c, 0, 0x3c, 0, 0x3c, 0, 0x3c, 0, 0x3c}).find("above K") != std::string::npos);
  CHECK(msg({1, 0xe8, 0x07, 0x00, 0x3c}).find("out of range") != std::string::npos);       // id 1000
  CHECK(msg({1, 0x80, 0x00, 0x00, 0x3c}).find("non-canonical") != std::string::npos);
  CHECK(msg({1, 5, 0x00, 0x7c}).find("fp16") != std::string::npos);                         // +inf
  CHECK(msg({1, 5, 0x00, 0xbc}).find("fp16") != std::string::npos);                         // negative
  CHECK(msg({1, 5, 0x00, 0x00}).find("fp16") != std::string::npos);                         // zero
  CHECK(msg({1, 5, 0x00, 0x3c, 0x00}).find("trailing") != std::string::npos);
  CHECK(msg({0xff, 0xff, 0xff, 0xff, 0xff, 0x01}).find("varint") != std::string::npos);
  const auto f = make_codec("topk_f32:4");
  CHECK_THROWS_AS(f->decode(Bytes{2, 0, 0, 0, 0, 0, 0x80, 0x3f, 1, 0, 0, 0, 0, 0, 0x80, 0x3f}, 10), DecodeError);  // descending
  CHECK_THROWS_AS(f->decode(Bytes{2, 0, 0, 0, 0, 0, 0xc0, 0x7f}, 10), DecodeError);  // NaN
  CHECK_THROWS_AS(f->decode(Bytes{2, 0, 0, 0, 0, 0, 0x80, 0x3f, 2, 0, 0, 0, 0, 0, 0x80, 0x3f}, 10), DecodeError);  // dup
  CHECK_THROWS_AS(decode_candidates(Bytes{0, 2, 0}, 10), DecodeError);            // repeat before any id
  CHECK_THROWS_AS(decode_candidates(Bytes{0, 0xff, 0xff, 0x03}, 10), DecodeError); // count above bytes left
  CHECK_THROWS_AS(decode_candidates(Bytes{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 3, 0, 0, 0x80, 0x3f}, 10), DecodeError);  // index overflow
  CHECK_THROWS_AS(decode_draft_scalars(Bytes{0xff, 0x7f}, 10), DecodeError);
}
