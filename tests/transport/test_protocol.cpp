// Wire protocol: layout, round trips, size budget, refusals, clear errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "picospec/protocol.hpp"

using namespace picospec;
using namespace picospec::wire;

namespace {

Message msg(Body body, std::uint64_t session = 7, std::uint32_t epoch = 3, std::uint32_t seq = 11) {
  Message m;
  m.header.session_id = session;
  m.header.epoch = epoch;
  m.header.seq = seq;
  m.body = std::move(body);
  return m;
}

std::vector<Message> samples() {
  Hello h;
  h.draft = {32000, 0x1122334455667788ull};
  h.sampling = {0.7f, 40, 0.9f, 0.05f};
  h.rejection = RejectionMode::candidates;
  h.pipeline = PipelineMode::picospec;
  h.codec = "topk_q:32";
  h.topk_k = 10;
  h.candidates_m = 32;
  h.seed = 42;
  h.gamma = 4;
  h.max_new_tokens = 128;
  Draft d;
  d.start_position = 120;
  d.n_fixed = 1;
  d.tokens = {5, 127, 128, 31999};
  d.q_scalars = {1.0f, 0.5f, 0.25f, 0.125f};
  Draft df;
  df.start_position = 9;
  df.tokens = {1, 2};
  df.q_frames = {{1, 2, 3}, {}};
  Verdict v;
  v.start_position = 120;
  v.accepted = 2;
  v.kind = VerdictKind::candidates;
  v.first_candidate_index = 64;
  v.payload = {9, 8, 7, 6, 5};
  Verdict vc;
  vc.accepted = 1;
  vc.kind = VerdictKind::correction_token;
  vc.correction = 77;
  return {
      msg(h),
      msg(Welcome{{32000, 0x1122334455667788ull}, "cloud-1"}),
      msg(Prefill{{1, 15043, 3186, 29991}}),
      msg(d),
      msg(df),
      msg(v),
      msg(vc),
      msg(MoreCandidates{121, 32}),
      msg(Tokens{50, {3, 4, 5}, true}),
      msg(Cancel{"user stop"}),
      msg(Bye{}),
      msg(wire::ErrorMessage{ErrorCode::incompatible_vocab, "vocab 32000 != 32001"}),
  };
}

std::uint32_t le32(const std::vector<std::uint8_t>& b, std::size_t at) {
  return std::uint32_t(b[at]) | std::uint32_t(b[at + 1]) << 8 | std::uint32_t(b[at + 2]) << 16 |
         std::uint32_t(b[at + 3]) << 24;
}

}  // namespace

TEST_CASE("protocol: every message round-trips byte for byte", "[protocol]") {
  for (const Message& m : samples()) {
    const auto bytes = encode(m);
    const Message back = decode(bytes);
    INFO(describe(m));
    CHECK(back.body == m.body);
    CHECK(back.header.session_id == m.header.session_id);
    CHECK(back.header.epoch == m.header.epoch);
    CHECK(back.header.seq == m.header.seq);
    CHECK(back.type() == m.type());
    CHECK(back.header.type == m.type());
    CHECK(back.header.payload_len == bytes.size() - kHeaderSize);
    CHECK(encode(back) == bytes);
    const DecodeResult r = try_decode(bytes);
    CHECK(r.ok());
    CHECK(r.failure == DecodeFailure::none);
  }
}

TEST_CASE("protocol: header layout is little-endian and fixed", "[protocol]") {
  const auto b = encode(msg(Bye{}, 0x0102030405060708ull, 0xA1A2A3A4u, 0xB1B2B3B4u));
  REQUIRE(b.size() == kHeaderSize);
  CHECK(std::memcmp(b.data(), "PSPC", 4) == 0);
  CHECK(b[4] == kVersion);
  CHECK(b[5] == 0);
  CHECK(b[6] == static_cast<std::uint8_t>(MessageType::bye));
  CHECK(b[7] == 0);
  CHECK(b[8] == 0x08);
  CHECK(b[15] == 0x01);
  CHECK(le32(b, 16) == 0xA1A2A3A4u);
  CHECK(le32(b, 20) == 0xB1B2B3B4u);
  CHECK(le32(b, 24) == 0);
}

TEST_CASE("protocol: encode appends to a reused buffer", "[protocol]") {
  std::vector<std::uint8_t> buf = {0xEE};
  encode(msg(Bye{}), buf);
  encode(msg(MoreCandidates{1, 2}), buf);
  REQUIRE(buf.size() == 1 + kHeaderSize + kHeaderSize + 8);
  CHECK(buf[0] == 0xEE);
  CHECK(decode(std::span(buf).subspan(1, kHeaderSize)).type() == MessageType::bye);
  CHECK(decode(std::span(buf).subspan(1 + kHeaderSize)).type() == MessageType::more_candidates);
}

TEST_CASE("protocol: candidates-mode uplink costs at most 8 bytes per token", "[protocol]") {
  // Worst case ids (5-byte varints would break the budget: vocabularies stay below 2^28, i.e. <= 4 bytes).
  for (Token big : {Token{31999}, Token{151935}, Token{(1 << 28) - 1}}) {
    Draft d;
    d.start_position = 1000;
    d.tokens.assign(16, big);
    d.q_scalars.assign(16, 0.3f);
    const auto b = encode(msg(d));
    const std::size_t fixed = kHeaderSize + 4 + 1 + 1 + 2;  // header + start, n_fixed, flags, count
    CHECK((b.size() - fixed) <= 8 * d.tokens.size());
  }
  Draft small;  // typical: 32k vocabulary, gamma 4: ids take 1, 2, 3, 3 bytes (varint) + 4 bytes of q each
  small.tokens = {100, 2000, 30000, 31999};
  small.q_scalars = {0.1f, 0.2f, 0.3f, 0.4f};
  CHECK(encode(msg(small)).size() == kHeaderSize + 8 + 1 + 2 + 3 + 3 + 16);
}

TEST_CASE("protocol: malformed frames give clear errors", "[protocol]") {
  const auto good = encode(msg(Tokens{1, {1, 2, 3}, false}));
  auto expect_fail = [](std::vector<std::uint8_t> b, DecodeFailure f, const char* needle) {
    const DecodeResult r = try_decode(b);
    INFO(r.reason);
    CHECK_FALSE(r.ok());
    CHECK(r.failure == f);
    CHECK(r.reason.find(needle) != std::string::npos);
    CHECK_THROWS_AS(decode(b), DecodeError);
  };
  expect_fail({}, DecodeFailure::too_short, "shorter");
  expect_fail({good.begin(), good.begin() + 10}, DecodeFailure::too_short, "shorter");
  auto b = good;
  b[0] = 'X';
  expect_fail(b, DecodeFailure::bad_magic, "magic");
  b = good;
  b[4] = 2;
  expect_fail(b, DecodeFailure::bad_version, "version 2");
  CHECK(error_code_for(DecodeFailure::bad_version) == ErrorCode::unsupported_version);
  b = good;
  b[6] = 200;
  expect_fail(b, DecodeFailure::unknown_type, "type 200");
  b = good;
  b.push_back(0);
  expect_fail(b, DecodeFailure::length_mismatch, "payload_len");
  b = good;
  b.pop_back();
  expect_fail(b, DecodeFailure::length_mismatch, "payload_len");
  // Payload consistent with the header but internally wrong: the count claims more ids than present.
  b = good;
  b[kHeaderSize + 5] = 9;  // Tokens.count low byte
  expect_fail(b, DecodeFailure::malformed, "Tokens.tokens");
  b = good;
  b[kHeaderSize + 4] = 2;  // done flag must be 0/1
  expect_fail(b, DecodeFailure::malformed, "Tokens.done");
  // Oversized frame vs a configured limit.
  DecodeLimits lim;
  lim.max_frame_bytes = 64;
  Prefill p;
  p.tokens.assign(100, 1);
  const auto big = encode(msg(p));
  const DecodeResult r = try_decode(big, lim);
  CHECK(r.failure == DecodeFailure::too_large);
  CHECK(try_decode(big).ok());
  DecodeLimits lp;
  lp.max_prompt_tokens = 10;
  CHECK(try_decode(big, lp).failure == DecodeFailure::too_large);
}

TEST_CASE("protocol: encode refuses messages the wire cannot carry", "[protocol]") {
  Draft d;
  d.tokens = {1, 2};
  d.q_scalars = {0.5f};
  CHECK_THROWS_AS(encode(msg(d)), picospec::Error);
  d.q_scalars.clear();
  d.n_fixed = 2;
  CHECK_THROWS_AS(encode(msg(d)), picospec::Error);
  d.n_fixed = 0;
  d.tokens = {-3};
  CHECK_THROWS_AS(encode(msg(d)), picospec::Error);
  Hello h;
  h.codec.assign(300, 'x');
  std::vector<std::uint8_t> buf = {1, 2, 3};
  CHECK_THROWS_AS(encode(msg(h), buf), picospec::Error);
  CHECK(buf == std::vector<std::uint8_t>{1, 2, 3});  // unchanged on failure
  // Error messages are truncated rather than refused (an error path must not throw).
  const auto e = decode(encode(msg(wire::ErrorMessage{ErrorCode::internal, std::string(5000, 'e')})));
  CHECK(std::get<wire::ErrorMessage>(e.body).message.size() == 1024);
}

TEST_CASE("protocol: decode rejects non-finite q scalars and non-canonical varints", "[protocol]") {
  Draft d;
  d.tokens = {1};
  d.q_scalars = {0.5f};
  auto b = encode(msg(d));
  const float nan = std::nanf("");
  std::memcpy(&b[b.size() - 4], &nan, 4);
  CHECK(try_decode(b).reason.find("q_scalars") != std::string::npos);
  // Token id 1 encoded as 0x81 0x00 (two bytes) is refused: one byte string, one message.
  Tokens t{0, {1}, false};
  auto tb = encode(msg(t));
  tb.back() = 0x81;
  tb.push_back(0x00);
  tb[24] = static_cast<std::uint8_t>(tb.size() - kHeaderSize);
  CHECK(try_decode(tb).reason.find("non-canonical") != std::string::npos);
}

TEST_CASE("protocol: describe names the message and its key fields", "[protocol]") {
  const auto s = samples();
  CHECK(describe(s[0]).rfind("Hello{s=7 e=3 seq=11", 0) == 0);
  CHECK(describe(s[0]).find("codec=\"topk_q:32\"") != std::string::npos);
  CHECK(describe(s[3]).find("pos=120 n=4 fixed=1 q=4") != std::string::npos);
  CHECK(describe(s[11]).find("incompatible_vocab") != std::string::npos);
}

TEST_CASE("protocol: compatibility check refuses mismatched pairs with a reason", "[protocol]") {
  ModelInfo target;
  target.vocab_size = 32000;
  target.tokenizer_fingerprint = 0xABCD;
  Hello h;
  h.draft = {32000, 0xABCD};
  h.gamma = 4;
  h.candidates_m = 32;
  CHECK_FALSE(check_compatible(h, target).has_value());
  Hello bad = h;
  bad.draft.vocab_size = 32001;
  auto e = compatibility_error(bad, target);
  REQUIRE(e);
  CHECK(e->code == ErrorCode::incompatible_vocab);
  CHECK(e->message.find("32001") != std::string::npos);
  bad = h;
  bad.draft.tokenizer_hash = 0x1234;
  CHECK(compatibility_error(bad, target)->code == ErrorCode::incompatible_tokenizer);
  bad.draft.tokenizer_hash = 0;  // unknown on one side: not checked
  CHECK_FALSE(compatibility_error(bad, target));
  bad = h;
  bad.protocol_version = 9;
  CHECK(compatibility_error(bad, target)->code == ErrorCode::unsupported_version);
  bad = h;
  bad.gamma = 0;
  CHECK(compatibility_error(bad, target)->code == ErrorCode::invalid_params);
  bad = h;
  bad.candidates_m = 0;
  CHECK(check_compatible(bad, target)->find("candidates_m") != std::string::npos);
  bad = h;
  bad.rejection = RejectionMode::topk;
  bad.topk_k = 0;
  CHECK(compatibility_error(bad, target)->code == ErrorCode::invalid_params);
  bad = h;
  bad.sampling.temperature = std::nanf("");
  CHECK(compatibility_error(bad, target)->code == ErrorCode::invalid_params);
  bad = h;
  bad.pipeline = PipelineMode::cloud_ar;
  bad.gamma = 0;  // no drafting in cloud_ar: gamma irrelevant
  CHECK_FALSE(compatibility_error(bad, target));
}
