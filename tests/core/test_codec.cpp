// Sparse codecs: round trips at real vocabulary sizes, byte formats, size bars, normalization determinism,
// spec parsing, fp16 conversion, candidate stream and draft-scalar encodings.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "picospec/rng.hpp"
#include "picospec/sparse_codec.hpp"

using namespace picospec;

namespace {
// A peaked, LLM-like distribution: softmax of scale * u^4-ish logits.
std::vector<float> llm_row(std::size_t v, std::uint64_t tag) {
  std::vector<double> w(v);
  double s = 0;
  for (std::size_t i = 0; i < v; ++i) {
    const double z = uniform(tag, Purpose::user, i, 0);
    w[i] = std::exp(18.0 * z * z * z * z);
    s += w[i];
  }
  std::vector<float> p(v);
  for (std::size_t i = 0; i < v; ++i) p[i] = static_cast<float>(w[i] / s);
  return p;
}
}  // namespace

TEST_CASE("codec round trips at V = 32000, 128256, 151936", "[codec]") {
  for (const std::uint32_t v : {32000u, 128256u, 151936u}) {
    const auto p = llm_row(v, v);
    SECTION("dense_f32 is lossless (V = " + std::to_string(v) + ")") {
      const auto c = make_codec("dense_f32");
      CHECK_FALSE(c->lossy());
      std::vector<std::uint8_t> buf;
      c->encode(p, buf);
      CHECK(buf.size() == 4ull * v);
      const auto d = c->decode(buf, v, Normalization::raw);
      REQUIRE(d.size() == v);
      for (std::uint32_t i = 0; i < v; ++i) REQUIRE(d.probs[i] == p[i]);
      CHECK(total_variation(p, c->decode(buf, v)) < 1e-6);
    }
    for (const std::uint32_t k : {8u, 32u, 256u}) {
      SECTION("topk_f32 / topk_q K = " + std::to_string(k) + " (V = " + std::to_string(v) + ")") {
        const SparseDist ref = top_k(p, k);
        REQUIRE(ref.size() == k);
        const auto f = make_codec("topk_f32:" + std::to_string(k));
        const auto q = make_codec("topk_q:" + std::to_string(k));
        CHECK(f->lossy());
        std::vector<std::uint8_t> bf, bq;
        f->encode(p, bf);
        q->encode(p, bq);
        CHECK(bf.size() == 8ull * k);
        CHECK(bq.size() < 5ull * k);  // about 2 bytes of id gap + 2 bytes fp16 per entry
        const auto df = f->decode(bf, v, Normalization::raw);
        CHECK(df.ids == ref.ids);
        CHECK(df.probs == ref.probs);  // fp32 values exact
        const auto dq = q->decode(bq, v, Normalization::raw);
        CHECK(dq.ids == ref.ids);
        for (std::size_t i = 0; i < k; ++i) CHECK(std::abs(dq.probs[i] - ref.probs[i]) <= ref.probs[i] * 0x1.0p-11f + 0x1.0p-25f);
        // normalized decode sums to 1; TV = mass outside (+ fp16 rounding for topk_q)
        const auto nf = f->decode(bf, v), nq = q->decode(bq, v);
        double sf = 0;
        for (float x : nf.probs) sf += x;
        CHECK(sf == Approx(1.0).epsilon(1e-5));
        const double outside = mass_outside_top_k(p, k);
        CHECK(total_variation(p, nf) == Approx(outside).margin(1e-5));
        CHECK(std::abs(total_variation(p, nq) - total_variation(p, nf)) < 1e-3);
        INFO("V " << v << " K " << k << ": topk_f32 " << bf.size() << " B, topk_q " << bq.size() << " B, TV "
                  << total_variation(p, nq) << ", outside " << outside);
        CHECK(true);
      }
    }
  }
}

TEST_CASE("byte formats are as documented", "[codec]") {
  std::vector<float> p(140, 0.0f);
  p[1] = 0.5f;
  p[3] = 0.25f;
  p[139] = 0.25f;
  REQUIRE(p.size() == 140);
  std::vector<std::uint8_t> b;
  make_codec("topk_f32:4")->encode(p, b);
  CHECK(b == std::vector<std::uint8_t>{1, 0, 0, 0, 0x00, 0x00, 0x00, 0x3f,      // id 1, 0.5f
                                       3, 0, 0, 0, 0x00, 0x00, 0x80, 0x3e,      // id 3, 0.25f
                                       139, 0, 0, 0, 0x00, 0x00, 0x80, 0x3e});  // id 139, 0.25f
  b.clear();
  make_codec("topk_q:4")->encode(p, b);
  // n = 3; ids: 1, gap-1 = 1, gap-1 = 135 = 0x87 0x01; fp16 0.5 = 0x3800, 0.25 = 0x3400
  CHECK(b == std::vector<std::uint8_t>{3, 1, 1, 0x87, 0x01, 0x00, 0x38, 0x00, 0x34, 0x00, 0x34});
  b.clear();
  make_codec("topk_q:4:0.6")->encode(p, b);  // top-p 0.6: 0.5 then 0.25 (id 3 beats id 139 on the tie)
  CHECK(b == std::vector<std::uint8_t>{2, 1, 1, 0x00, 0x38, 0x00, 0x34});
  const auto d = make_codec("topk_q:4:0.6")->decode(b, 140);
  CHECK(d.ids == std::vector<Token>{1, 3});
  CHECK(d.probs[0] == Approx(2.0 / 3.0));
}

TEST_CASE("normalization is deterministic and matches a sequential double sum", "[codec]") {
  const auto p = llm_row(5000, 3);
  const auto c = make_codec("topk_q:64");
  std::vector<std::uint8_t> b;
  c->encode(p, b);
  const auto raw = c->decode(b, 5000, Normalization::raw);
  const auto n1 = c->decode(b, 5000), n2 = c->decode(b, 5000);
  double s = 0;
  for (float x : raw.probs) s += x;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    CHECK(n1.probs[i] == static_cast<float>(static_cast<double>(raw.probs[i]) / s));
    CHECK(std::memcmp(&n1.probs[i], &n2.probs[i], sizeof(float)) == 0);
  }
  CHECK(c->round_trip(p).probs == n1.probs);
  CHECK(c->encoded_size(p) == b.size());
}

TEST_CASE("fp16 conversion: exact round trip of every positive finite half, round-to-nearest-even", "[codec]") {
  for (std::uint32_t h = 1; h < 0x7c00; ++h) {
    const float f = detail::half_to_float(static_cast<std::uint16_t>(h));
    REQUIRE(detail::positive_to_half(f) == h);
  }
  CHECK(detail::positive_to_half(1.0f) == 0x3c00);
  CHECK(detail::positive_to_half(65504.0f) == 0x7bff);
  CHECK(detail::positive_to_half(0x1.0p-24f) == 0x0001);
  CHECK(detail::positive_to_half(1e-12f) == 0x0001);          // never rounds a kept token to 0
  CHECK(detail::positive_to_half(1.0f + 0x1.0p-11f) == 0x3c00);  // tie -> even
  CHECK(detail::positive_to_half(1.0f + 0x1.8p-11f) == 0x3c01);
  CHECK_THROWS_AS(detail::positive_to_half(70000.0f), Error);
}

TEST_CASE("make_codec parses specs and rejects bad ones", "[codec]") {
  CHECK(make_codec("dense_f32")->name() == "dense_f32");
  CHECK(make_codec("topk_f32:32")->name() == "topk_f32:32");
  CHECK(make_codec("topk_q:8:0.95")->name() == "topk_q:8:0.95");
  for (const char* bad : {"", "dense", "dense_f32:3", "topk_q", "topk_q:", "topk_q:0", "topk_q:-3", "topk_q:3x",
                          "topk_q:99999999999", "topk_q:16777217", "topk_q:8:0", "topk_q:8:1.5", "topk_q:8:nanx",
                          "topk_q:8:0.5:1", "topk_f32:8:"})
    CHECK_THROWS_AS(make_codec(bad), Error);
}

TEST_CASE("encode rejects bad input; decode rejects vocab 0", "[codec]") {
  const auto c = make_codec("topk_q:4");
  std::vector<std::uint8_t> b;
  CHECK_THROWS_AS(c->encode(std::vector<float>{}, b), Error);
  CHECK_THROWS_AS(c->encode(std::vector<float>{0.0f, 0.0f}, b), Error);
  CHECK_THROWS_AS(c->encode(std::vector<float>{0.5f, std::nanf("")}, b), Error);
  CHECK_THROWS_AS(c->encode(std::vector<float>{0.5f, -0.5f}, b), Error);
  CHECK_THROWS_AS(make_codec("dense_f32")->encode(std::vector<float>{0.5f, INFINITY}, b), Error);
  CHECK_THROWS_AS(c->decode(std::vector<std::uint8_t>{1, 0, 0, 0x3c}, 0), Error);
}

TEST_CASE("candidate stream: exact, compact (m = 32 <= 256 bytes), repeats cost one byte", "[codec]") {
  for (const std::uint32_t v : {32000u, 128256u, 151936u}) {
    // worst case: 32 distinct ids near the top of the vocabulary
    CandidateStream s;
    s.first_index = 4096;
    for (std::uint32_t k = 0; k < 32; ++k) {
      s.ids.push_back(static_cast<Token>(v - 1 - k));
      s.p.push_back(1.0f / static_cast<float>(k + 3));
    }
    std::vector<std::uint8_t> b;
    encode_candidates(s, b);
    CHECK(b.size() <= 256);
    CHECK(decode_candidates(b, v) == s);
    // realistic: drawn from a peaked p, many repeats
    const auto p = llm_row(v, v + 1);
    const auto drawn = draw_candidates(p, 32, 1, 2, 3, 0);
    std::vector<std::uint8_t> b2;
    encode_candidates(drawn, b2);
    CHECK(b2.size() <= b.size());
    CHECK(decode_candidates(b2, v) == drawn);
    INFO("V " << v << ": worst case " << b.size() << " B, drawn " << b2.size() << " B");
    CHECK(true);
  }
  CandidateStream rep{0, {5, 5, 5}, {0.5f, 0.5f, 0.5f}};
  std::vector<std::uint8_t> b;
  encode_candidates(rep, b);
  CHECK(b == std::vector<std::uint8_t>{0, 3, 11, 0x00, 0x00, 0x00, 0x3f, 0, 0});
  CandidateStream clash{0, {5, 5}, {0.5f, 0.25f}};
  CHECK_THROWS_AS(encode_candidates(clash, b), Error);
  // embedded records: offset variant reads one and leaves the rest
  std::vector<std::uint8_t> two;
  encode_candidates(rep, two);
  encode_candidates(CandidateStream{3, {1}, {0.125f}}, two);
  std::size_t off = 0;
  CHECK(decode_candidates(two, 10, off) == rep);
  CHECK(decode_candidates(two, 10, off) == CandidateStream{3, {1}, {0.125f}});
  CHECK(off == two.size());
  CHECK_THROWS_AS(decode_candidates(two, 10), DecodeError);  // trailing record = trailing bytes
}

TEST_CASE("draft scalars: <= 8 bytes per draft token", "[codec]") {
  std::vector<Token> ids;
  std::vector<float> q;
  for (int i = 0; i < 8; ++i) {
    ids.push_back(151935 - i);
    q.push_back(0.1f * static_cast<float>(i + 1));
  }
  std::vector<std::uint8_t> b;
  encode_draft_scalars(ids, q, b);
  CHECK(b.size() == 1 + 8 * 7);
  const auto d = decode_draft_scalars(b, 151936);
  CHECK(d.ids == ids);
  CHECK(d.q == q);
  CHECK_THROWS_AS(decode_draft_scalars(b, 151930), DecodeError);
  CHECK_THROWS_AS(encode_draft_scalars(ids, std::vector<float>{0.1f}, b), Error);
  CHECK_THROWS_AS(encode_draft_scalars(std::vector<Token>{1}, std::vector<float>{0.0f}, b), Error);
}

TEST_CASE("total_variation and mass_outside_top_k", "[codec]") {
  const std::vector<float> p{0.5f, 0.25f, 0.125f, 0.125f};
  CHECK(total_variation(p, SparseDist{4, {0, 1, 2, 3}, {0.5f, 0.25f, 0.125f, 0.125f}}) == 0.0);
  CHECK(total_variation(p, SparseDist{4, {0}, {1.0f}}) == Approx(0.5));
  CHECK(mass_outside_top_k(p, 2) == Approx(0.25));
  CHECK_THROWS_AS(total_variation(p, SparseDist{4, {3, 0}, {0.5f, 0.5f}}), Error);
  CHECK_THROWS_AS(total_variation(p, SparseDist{5, {0}, {1.0f}}), Error);
}
