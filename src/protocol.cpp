// Wire protocol codec (docs/protocol.md is the normative layout).
#include "picospec/protocol.hpp"
#include "picospec/detail/varint.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <type_traits>

namespace picospec::wire {

static_assert(std::endian::native == std::endian::little || std::endian::native == std::endian::big);
static_assert(static_cast<int>(RejectionMode::greedy) == 0 && static_cast<int>(RejectionMode::full) == 1 &&
                  static_cast<int>(RejectionMode::topk) == 2 && static_cast<int>(RejectionMode::candidates) == 3 &&
                  static_cast<int>(RejectionMode::sparse_draft) == 4 && static_cast<int>(RejectionMode::coupled) == 5,
              "the wire numbering of RejectionMode is fixed");

namespace {

constexpr std::size_t kMaxShortString = 255;   // codec spec, server name (u8 length)
constexpr std::size_t kMaxLongString = 1024;   // cancel reason, error message (u16 length)
constexpr std::size_t kMaxChunkTokens = 65535;  // u16 counts

// ---------------------------------------------------------------------------------------------------------
// Writer: appends little-endian fields to a byte vector.
class Writer {
 public:
  explicit Writer(std::vector<std::uint8_t>& out) : out_(out) {}
  template <class T>
  void put(T v) {
    static_assert(std::is_integral_v<T>);
    using U = std::make_unsigned_t<T>;
    auto u = static_cast<U>(v);
    for (std::size_t i = 0; i < sizeof(T); ++i) out_.push_back(static_cast<std::uint8_t>((u >> (8 * i)) & 0xFFu));
  }
  void put_f32(float f) { put(std::bit_cast<std::uint32_t>(f)); }
  void put_varint(std::uint32_t v) { detail::put_varint(out_, v); }
  void put_bytes(std::span<const std::uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void put_bytes(std::string_view s) { out_.insert(out_.end(), s.begin(), s.end()); }
  void put_token(Token t, const char* what) {
    if (t < 0) throw picospec::Error(std::string("wire::encode: negative token id in ") + what);
    put_varint(static_cast<std::uint32_t>(t));
  }
  std::size_t size() const { return out_.size(); }
  std::vector<std::uint8_t>& buf() { return out_; }

 private:
  std::vector<std::uint8_t>& out_;
};

// ---------------------------------------------------------------------------------------------------------
// Reader: bounds-checked little-endian reads; every failure throws DecodeError with the field name.
struct Failure {
  DecodeFailure kind;
  std::string reason;
};

class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> b) : b_(b) {}
  std::size_t left() const noexcept { return b_.size() - pos_; }
  template <class T>
  T get(const char* what) {
    static_assert(std::is_integral_v<T>);
    need(sizeof(T), what);
    using U = std::make_unsigned_t<T>;
    U u = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) u = static_cast<U>(u | (static_cast<U>(b_[pos_ + i]) << (8 * i)));
    pos_ += sizeof(T);
    return static_cast<T>(u);
  }
  float get_f32(const char* what) { return std::bit_cast<float>(get<std::uint32_t>(what)); }
  std::uint32_t get_varint(const char* what) {
    std::uint32_t v = 0;
    switch (detail::read_varint32(b_.data(), b_.size(), pos_, v)) {
      case detail::VarintStatus::ok: return v;
      case detail::VarintStatus::truncated: need(1, what); break;  // throws the protocol's truncation failure
      case detail::VarintStatus::non_canonical: fail(what, "non-canonical varint");
      case detail::VarintStatus::above_32_bits: fail(what, "varint above 32 bits");
      case detail::VarintStatus::too_long: break;
    }
    fail(what, "varint longer than 5 bytes");
  }
  Token get_token(const char* what) {
    const std::uint32_t v = get_varint(what);
    if (v > static_cast<std::uint32_t>(std::numeric_limits<Token>::max())) fail(what, "token id above 2^31-1");
    return static_cast<Token>(v);
  }
  std::string get_string(std::size_t len, std::size_t max, const char* what) {
    if (len > max) fail(what, "string length " + std::to_string(len) + " above limit " + std::to_string(max));
    need(len, what);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), len);
    pos_ += len;
    return s;
  }
  std::vector<std::uint8_t> get_bytes(std::size_t len, const char* what) {
    need(len, what);
    std::vector<std::uint8_t> v(b_.begin() + static_cast<std::ptrdiff_t>(pos_),
                                b_.begin() + static_cast<std::ptrdiff_t>(pos_ + len));
    pos_ += len;
    return v;
  }
  std::vector<std::uint8_t> rest() { return get_bytes(left(), "payload"); }
  void need(std::size_t n, const char* what) const {
    if (n > left())
      fail(what, "truncated: needs " + std::to_string(n) + " byte(s), " + std::to_string(left()) + " left");
  }
  void expect_end(const char* msg) const {
    if (left() != 0) fail(msg, std::to_string(left()) + " trailing byte(s)");
  }
  [[noreturn]] static void fail(const char* what, const std::string& why,
                                DecodeFailure kind = DecodeFailure::malformed) {
    throw Failure{kind, std::string(what) + ": " + why};
  }

 private:
  std::span<const std::uint8_t> b_;
  std::size_t pos_ = 0;
};

template <class... F>
struct Overload : F... {
  using F::operator()...;
};
template <class... F>
Overload(F...) -> Overload<F...>;

// ---------------------------------------------------------------------------------------------------------
// Payload encoders.
void check_count(std::size_t n, std::size_t max, const char* what) {
  if (n > max)
    throw picospec::Error(std::string("wire::encode: ") + what + " count " + std::to_string(n) + " above " +
                          std::to_string(max));
}

void put_str8(Writer& w, const std::string& s, const char* what) {
  check_count(s.size(), kMaxShortString, what);
  w.put(static_cast<std::uint8_t>(s.size()));
  w.put_bytes(std::string_view(s));
}

void put_str16(Writer& w, std::string_view s, const char* what, bool truncate) {
  if (s.size() > kMaxLongString) {
    if (!truncate) check_count(s.size(), kMaxLongString, what);
    s = s.substr(0, kMaxLongString);
  }
  w.put(static_cast<std::uint16_t>(s.size()));
  w.put_bytes(s);
}

void encode_body(Writer& w, const Hello& m) {
  w.put(m.protocol_version);
  w.put(m.draft.vocab_size);
  w.put(m.draft.tokenizer_hash);
  w.put_f32(m.sampling.temperature);
  w.put(m.sampling.top_k);
  w.put_f32(m.sampling.top_p);
  w.put_f32(m.sampling.min_p);
  w.put(static_cast<std::uint8_t>(m.rejection));
  w.put(static_cast<std::uint8_t>(m.pipeline));
  w.put(m.topk_k);
  w.put(m.candidates_m);
  w.put(m.seed);
  w.put(m.gamma);
  w.put(m.max_new_tokens);
  put_str8(w, m.codec, "Hello.codec");
}
void encode_body(Writer& w, const Welcome& m) {
  w.put(m.target.vocab_size);
  w.put(m.target.tokenizer_hash);
  put_str8(w, m.server_name, "Welcome.server_name");
}
void encode_body(Writer& w, const Prefill& m) {
  check_count(m.tokens.size(), std::numeric_limits<std::uint32_t>::max(), "Prefill.tokens");
  w.put(static_cast<std::uint32_t>(m.tokens.size()));
  for (Token t : m.tokens) w.put_token(t, "Prefill.tokens");
}
void encode_body(Writer& w, const Draft& m) {
  const std::size_t n = m.tokens.size();
  check_count(n, kMaxChunkTokens, "Draft.tokens");
  if (m.n_fixed > 1 || m.n_fixed > n) throw picospec::Error("wire::encode: Draft.n_fixed must be 0 or 1 and <= tokens");
  if (!m.q_scalars.empty() && m.q_scalars.size() != n)
    throw picospec::Error("wire::encode: Draft.q_scalars must be empty or one per token");
  if (!m.q_frames.empty() && m.q_frames.size() != n)
    throw picospec::Error("wire::encode: Draft.q_frames must be empty or one per token");
  w.put(m.start_position);
  w.put(m.n_fixed);
  const std::uint8_t dflags = static_cast<std::uint8_t>((m.q_scalars.empty() ? 0u : 1u) | (m.q_frames.empty() ? 0u : 2u));
  w.put(dflags);
  w.put(static_cast<std::uint16_t>(n));
  for (Token t : m.tokens) w.put_token(t, "Draft.tokens");
  for (float q : m.q_scalars) w.put_f32(q);
  for (const auto& f : m.q_frames) {
    check_count(f.size(), std::numeric_limits<std::uint32_t>::max(), "Draft.q_frames bytes");
    w.put_varint(static_cast<std::uint32_t>(f.size()));
    w.put_bytes(f);
  }
}
void encode_body(Writer& w, const Verdict& m) {
  if (m.correction < kNoToken) throw picospec::Error("wire::encode: Verdict.correction below -1");
  w.put(m.start_position);
  w.put(m.accepted);
  w.put(static_cast<std::uint8_t>(m.kind));
  w.put(m.correction);
  w.put(m.first_candidate_index);
  w.put_bytes(m.payload);
}
void encode_body(Writer& w, const MoreCandidates& m) {
  w.put(m.position);
  w.put(m.next_index);
}
void encode_body(Writer& w, const Tokens& m) {
  check_count(m.tokens.size(), kMaxChunkTokens, "Tokens.tokens");
  w.put(m.start_position);
  w.put(static_cast<std::uint8_t>(m.done ? 1 : 0));
  w.put(static_cast<std::uint16_t>(m.tokens.size()));
  for (Token t : m.tokens) w.put_token(t, "Tokens.tokens");
}
void encode_body(Writer& w, const Cancel& m) { put_str16(w, m.reason, "Cancel.reason", false); }
void encode_body(Writer&, const Bye&) {}
void encode_body(Writer& w, const ErrorMessage& m) {
  w.put(static_cast<std::uint16_t>(m.code));
  put_str16(w, m.message, "Error.message", true);
}

// ---------------------------------------------------------------------------------------------------------
// Payload decoders.
Hello decode_hello(Reader& r) {
  Hello m;
  m.protocol_version = r.get<std::uint16_t>("Hello.protocol_version");
  m.draft.vocab_size = r.get<std::uint32_t>("Hello.vocab_size");
  m.draft.tokenizer_hash = r.get<std::uint64_t>("Hello.tokenizer_hash");
  m.sampling.temperature = r.get_f32("Hello.temperature");
  m.sampling.top_k = r.get<std::int32_t>("Hello.top_k");
  m.sampling.top_p = r.get_f32("Hello.top_p");
  m.sampling.min_p = r.get_f32("Hello.min_p");
  const auto rej = r.get<std::uint8_t>("Hello.rejection");
  if (rej >= kRejectionModeCount) Reader::fail("Hello.rejection", "unknown mode " + std::to_string(rej));
  m.rejection = static_cast<RejectionMode>(rej);
  const auto pipe = r.get<std::uint8_t>("Hello.pipeline");
  if (pipe >= kPipelineModeCount) Reader::fail("Hello.pipeline", "unknown mode " + std::to_string(pipe));
  m.pipeline = static_cast<PipelineMode>(pipe);
  m.topk_k = r.get<std::uint32_t>("Hello.topk_k");
  m.candidates_m = r.get<std::uint32_t>("Hello.candidates_m");
  m.seed = r.get<std::uint64_t>("Hello.seed");
  m.gamma = r.get<std::uint32_t>("Hello.gamma");
  m.max_new_tokens = r.get<std::uint32_t>("Hello.max_new_tokens");
  m.codec = r.get_string(r.get<std::uint8_t>("Hello.codec length"), kMaxShortString, "Hello.codec");
  r.expect_end("Hello");
  return m;
}
Welcome decode_welcome(Reader& r) {
  Welcome m;
  m.target.vocab_size = r.get<std::uint32_t>("Welcome.vocab_size");
  m.target.tokenizer_hash = r.get<std::uint64_t>("Welcome.tokenizer_hash");
  m.server_name = r.get_string(r.get<std::uint8_t>("Welcome.server_name length"), kMaxShortString,
                               "Welcome.server_name");
  r.expect_end("Welcome");
  return m;
}
void get_tokens(Reader& r, std::size_t n, std::vector<Token>& out, const char* what) {
  // Every id takes at least one byte: refuse counts the payload cannot hold before allocating.
  if (n > r.left()) Reader::fail(what, "count " + std::to_string(n) + " exceeds the bytes left");
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(r.get_token(what));
}
Prefill decode_prefill(Reader& r, const DecodeLimits& lim) {
  Prefill m;
  const auto n = r.get<std::uint32_t>("Prefill.count");
  if (n > lim.max_prompt_tokens)
    Reader::fail("Prefill.count", std::to_string(n) + " above limit " + std::to_string(lim.max_prompt_tokens),
                 DecodeFailure::too_large);
  get_tokens(r, n, m.tokens, "Prefill.tokens");
  r.expect_end("Prefill");
  return m;
}
Draft decode_draft(Reader& r, const DecodeLimits& lim) {
  Draft m;
  m.start_position = r.get<std::uint32_t>("Draft.start_position");
  m.n_fixed = r.get<std::uint8_t>("Draft.n_fixed");
  const auto dflags = r.get<std::uint8_t>("Draft.flags");
  if (dflags & ~3u) Reader::fail("Draft.flags", "unknown bits set");
  const std::size_t n = r.get<std::uint16_t>("Draft.count");
  if (m.n_fixed > 1 || m.n_fixed > n) Reader::fail("Draft.n_fixed", "must be 0 or 1 and <= count");
  get_tokens(r, n, m.tokens, "Draft.tokens");
  if (dflags & 1u) {
    r.need(4 * n, "Draft.q_scalars");
    m.q_scalars.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      const float q = r.get_f32("Draft.q_scalars");
      if (!std::isfinite(q) || q < 0.0f) Reader::fail("Draft.q_scalars", "not a finite non-negative value");
      m.q_scalars.push_back(q);
    }
  }
  if (dflags & 2u) {
    if (n > r.left()) Reader::fail("Draft.q_frames", "count exceeds the bytes left");
    m.q_frames.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t len = r.get_varint("Draft.q_frames length");
      if (len > lim.max_q_frame_bytes)
        Reader::fail("Draft.q_frames", "frame of " + std::to_string(len) + " bytes above limit", DecodeFailure::too_large);
      m.q_frames.push_back(r.get_bytes(len, "Draft.q_frames"));
    }
  }
  r.expect_end("Draft");
  return m;
}
Verdict decode_verdict(Reader& r) {
  Verdict m;
  m.start_position = r.get<std::uint32_t>("Verdict.start_position");
  m.accepted = r.get<std::uint16_t>("Verdict.accepted");
  const auto kind = r.get<std::uint8_t>("Verdict.kind");
  if (kind > static_cast<std::uint8_t>(VerdictKind::topk)) Reader::fail("Verdict.kind", "unknown kind " + std::to_string(kind));
  m.kind = static_cast<VerdictKind>(kind);
  m.correction = r.get<std::int32_t>("Verdict.correction");
  if (m.correction < kNoToken) Reader::fail("Verdict.correction", "negative token id");
  if (m.kind == VerdictKind::correction_token && m.correction < 0)
    Reader::fail("Verdict.correction", "kind correction_token without a token");
  m.first_candidate_index = r.get<std::uint32_t>("Verdict.first_candidate_index");
  m.payload = r.rest();
  return m;
}
MoreCandidates decode_more(Reader& r) {
  MoreCandidates m;
  m.position = r.get<std::uint32_t>("MoreCandidates.position");
  m.next_index = r.get<std::uint32_t>("MoreCandidates.next_index");
  r.expect_end("MoreCandidates");
  return m;
}
Tokens decode_tokens(Reader& r) {
  Tokens m;
  m.start_position = r.get<std::uint32_t>("Tokens.start_position");
  const auto done = r.get<std::uint8_t>("Tokens.done");
  if (done > 1) Reader::fail("Tokens.done", "must be 0 or 1");
  m.done = done == 1;
  const std::size_t n = r.get<std::uint16_t>("Tokens.count");
  get_tokens(r, n, m.tokens, "Tokens.tokens");
  r.expect_end("Tokens");
  return m;
}
Cancel decode_cancel(Reader& r) {
  Cancel m;
  m.reason = r.get_string(r.get<std::uint16_t>("Cancel.reason length"), kMaxLongString, "Cancel.reason");
  r.expect_end("Cancel");
  return m;
}
ErrorMessage decode_error(Reader& r) {
  ErrorMessage m;
  m.code = static_cast<ErrorCode>(r.get<std::uint16_t>("Error.code"));
  m.message = r.get_string(r.get<std::uint16_t>("Error.message length"), kMaxLongString, "Error.message");
  r.expect_end("Error");
  return m;
}

Header decode_header_impl(std::span<const std::uint8_t> frame, const DecodeLimits& lim) {
  if (frame.size() < kHeaderSize)
    Reader::fail("header", "frame of " + std::to_string(frame.size()) + " bytes is shorter than the " +
                               std::to_string(kHeaderSize) + "-byte header", DecodeFailure::too_short);
  if (frame.size() > lim.max_frame_bytes)
    Reader::fail("frame", std::to_string(frame.size()) + " bytes above limit " + std::to_string(lim.max_frame_bytes),
                 DecodeFailure::too_large);
  Reader r(frame);
  const auto magic = r.get<std::uint32_t>("magic");
  if (magic != kMagic) Reader::fail("header", "bad magic (not a picospec frame)", DecodeFailure::bad_magic);
  Header h;
  h.version = r.get<std::uint16_t>("version");
  if (h.version != kVersion)
    Reader::fail("header", "unsupported protocol version " + std::to_string(h.version) + " (this build speaks " +
                               std::to_string(kVersion) + ")", DecodeFailure::bad_version);
  const auto type = r.get<std::uint8_t>("type");
  if (type < static_cast<std::uint8_t>(MessageType::hello) || type > static_cast<std::uint8_t>(MessageType::error))
    Reader::fail("header", "unknown message type " + std::to_string(type), DecodeFailure::unknown_type);
  h.type = static_cast<MessageType>(type);
  h.flags = r.get<std::uint8_t>("flags");
  h.session_id = r.get<std::uint64_t>("session_id");
  h.epoch = r.get<std::uint32_t>("epoch");
  h.seq = r.get<std::uint32_t>("seq");
  h.payload_len = r.get<std::uint32_t>("payload_len");
  if (h.payload_len != frame.size() - kHeaderSize)
    Reader::fail("header", "payload_len " + std::to_string(h.payload_len) + " but " +
                               std::to_string(frame.size() - kHeaderSize) + " byte(s) follow the header",
                 DecodeFailure::length_mismatch);
  return h;
}

Message decode_impl(std::span<const std::uint8_t> frame, const DecodeLimits& lim) {
  Message msg;
  msg.header = decode_header_impl(frame, lim);
  Reader r(frame.subspan(kHeaderSize));
  switch (msg.header.type) {
    case MessageType::hello: msg.body = decode_hello(r); break;
    case MessageType::welcome: msg.body = decode_welcome(r); break;
    case MessageType::prefill: msg.body = decode_prefill(r, lim); break;
    case MessageType::draft: msg.body = decode_draft(r, lim); break;
    case MessageType::verdict: msg.body = decode_verdict(r); break;
    case MessageType::more_candidates: msg.body = decode_more(r); break;
    case MessageType::tokens: msg.body = decode_tokens(r); break;
    case MessageType::cancel: msg.body = decode_cancel(r); break;
    case MessageType::bye: r.expect_end("Bye"); msg.body = Bye{}; break;
    case MessageType::error: msg.body = decode_error(r); break;
  }
  return msg;
}

constexpr MessageType kTypeOfIndex[] = {MessageType::hello,   MessageType::welcome,         MessageType::prefill,
                                        MessageType::draft,   MessageType::verdict,         MessageType::more_candidates,
                                        MessageType::tokens,  MessageType::cancel,          MessageType::bye,
                                        MessageType::error};
static_assert(std::size(kTypeOfIndex) == std::variant_size_v<Body>);

}  // namespace

MessageType Message::type() const noexcept { return kTypeOfIndex[body.index()]; }

void encode(const Message& msg, std::vector<std::uint8_t>& out) {
  const std::size_t start = out.size();
  Writer w(out);
  try {
    w.put(kMagic);
    w.put(msg.header.version);
    w.put(static_cast<std::uint8_t>(msg.type()));
    w.put(msg.header.flags);
    w.put(msg.header.session_id);
    w.put(msg.header.epoch);
    w.put(msg.header.seq);
    w.put(std::uint32_t{0});  // payload_len, patched below
    std::visit([&](const auto& body) { encode_body(w, body); }, msg.body);
  } catch (...) {
    out.resize(start);  // leave the caller's buffer as it was
    throw;
  }
  const std::size_t payload = out.size() - start - kHeaderSize;
  if (payload > std::numeric_limits<std::uint32_t>::max()) {
    out.resize(start);
    throw picospec::Error("wire::encode: payload above 4 GiB");
  }
  for (std::size_t i = 0; i < 4; ++i)
    out[start + 24 + i] = static_cast<std::uint8_t>((payload >> (8 * i)) & 0xFFu);
}

std::vector<std::uint8_t> encode(const Message& msg) {
  std::vector<std::uint8_t> out;
  encode(msg, out);
  return out;
}

std::vector<std::uint8_t> encode(const Header& header, Body body) {
  return encode(Message{header, std::move(body)});
}

Message decode(std::span<const std::uint8_t> frame, const DecodeLimits& limits) {
  try {
    return decode_impl(frame, limits);
  } catch (const Failure& f) {
    throw DecodeError("picospec frame: " + std::string(to_string(f.kind)) + ": " + f.reason);
  }
}

DecodeResult try_decode(std::span<const std::uint8_t> frame, const DecodeLimits& limits) {
  DecodeResult res;
  try {
    res.message = decode_impl(frame, limits);
  } catch (const Failure& f) {
    res.failure = f.kind;
    res.reason = f.reason;
  }
  return res;
}

Header decode_header(std::span<const std::uint8_t> frame, const DecodeLimits& limits) {
  try {
    return decode_header_impl(frame, limits);
  } catch (const Failure& f) {
    throw DecodeError("picospec frame: " + std::string(to_string(f.kind)) + ": " + f.reason);
  }
}

ErrorCode error_code_for(DecodeFailure f) noexcept {
  switch (f) {
    case DecodeFailure::none: return ErrorCode::none;
    case DecodeFailure::bad_version: return ErrorCode::unsupported_version;
    case DecodeFailure::too_large: return ErrorCode::too_large;
    default: return ErrorCode::malformed;
  }
}

std::string_view to_string(MessageType t) noexcept {
  switch (t) {
    case MessageType::hello: return "Hello";
    case MessageType::welcome: return "Welcome";
    case MessageType::prefill: return "Prefill";
    case MessageType::draft: return "Draft";
    case MessageType::verdict: return "Verdict";
    case MessageType::more_candidates: return "MoreCandidates";
    case MessageType::tokens: return "Tokens";
    case MessageType::cancel: return "Cancel";
    case MessageType::bye: return "Bye";
    case MessageType::error: return "Error";
  }
  return "unknown";
}

std::string_view to_string(ErrorCode c) noexcept {
  switch (c) {
    case ErrorCode::none: return "none";
    case ErrorCode::malformed: return "malformed";
    case ErrorCode::unsupported_version: return "unsupported_version";
    case ErrorCode::incompatible_vocab: return "incompatible_vocab";
    case ErrorCode::incompatible_tokenizer: return "incompatible_tokenizer";
    case ErrorCode::unsupported_mode: return "unsupported_mode";
    case ErrorCode::unsupported_codec: return "unsupported_codec";
    case ErrorCode::invalid_params: return "invalid_params";
    case ErrorCode::bad_state: return "bad_state";
    case ErrorCode::unknown_session: return "unknown_session";
    case ErrorCode::too_large: return "too_large";
    case ErrorCode::busy: return "busy";
    case ErrorCode::internal: return "internal";
    case ErrorCode::cancelled: return "cancelled";
    case ErrorCode::context_full: return "context_full";
  }
  return "unknown";
}

std::string_view to_string(DecodeFailure f) noexcept {
  switch (f) {
    case DecodeFailure::none: return "none";
    case DecodeFailure::too_short: return "too_short";
    case DecodeFailure::bad_magic: return "bad_magic";
    case DecodeFailure::bad_version: return "bad_version";
    case DecodeFailure::too_large: return "too_large";
    case DecodeFailure::length_mismatch: return "length_mismatch";
    case DecodeFailure::unknown_type: return "unknown_type";
    case DecodeFailure::malformed: return "malformed";
  }
  return "unknown";
}

std::string describe(const Message& msg) {
  std::ostringstream os;
  const Header& h = msg.header;
  os << to_string(msg.type()) << "{s=" << h.session_id << " e=" << h.epoch << " seq=" << h.seq;
  std::visit(Overload{
                 [&](const Hello& m) {
                   os << " v=" << m.protocol_version << " vocab=" << m.draft.vocab_size << " tok=" << std::hex
                      << m.draft.tokenizer_hash << std::dec << " T=" << m.sampling.temperature
                      << " top_k=" << m.sampling.top_k << " top_p=" << m.sampling.top_p
                      << " min_p=" << m.sampling.min_p << " rej=" << to_string(m.rejection)
                      << " pipe=" << to_string(m.pipeline) << " codec=\"" << m.codec << "\" K=" << m.topk_k
                      << " m=" << m.candidates_m << " seed=" << m.seed << " gamma=" << m.gamma
                      << " max_new=" << m.max_new_tokens;
                 },
                 [&](const Welcome& m) {
                   os << " vocab=" << m.target.vocab_size << " tok=" << std::hex << m.target.tokenizer_hash
                      << std::dec << " server=\"" << m.server_name << "\"";
                 },
                 [&](const Prefill& m) { os << " n=" << m.tokens.size(); },
                 [&](const Draft& m) {
                   os << " pos=" << m.start_position << " n=" << m.tokens.size() << " fixed=" << int(m.n_fixed)
                      << " q=" << m.q_scalars.size() << " frames=" << m.q_frames.size() << " ids=[";
                   for (std::size_t i = 0; i < m.tokens.size() && i < 8; ++i) os << (i ? "," : "") << m.tokens[i];
                   os << (m.tokens.size() > 8 ? ",...]" : "]");
                 },
                 [&](const Verdict& m) {
                   static constexpr const char* kinds[] = {"all_accepted", "correction_token", "candidates", "topk"};
                   os << " pos=" << m.start_position << " accepted=" << m.accepted
                      << " kind=" << kinds[static_cast<int>(m.kind) & 3] << " corr=" << m.correction
                      << " first_cand=" << m.first_candidate_index << " payload=" << m.payload.size() << "B";
                 },
                 [&](const MoreCandidates& m) { os << " pos=" << m.position << " next=" << m.next_index; },
                 [&](const Tokens& m) {
                   os << " pos=" << m.start_position << " n=" << m.tokens.size() << " done=" << m.done;
                 },
                 [&](const Cancel& m) { os << " reason=\"" << m.reason << "\""; },
                 [&](const Bye&) {},
                 [&](const ErrorMessage& m) { os << " code=" << to_string(m.code) << " msg=\"" << m.message << "\""; },
             },
             msg.body);
  os << "}";
  return os.str();
}

std::optional<ErrorMessage> compatibility_error(const Hello& hello, const ModelInfo& target) {
  auto refuse = [](ErrorCode c, std::string why) { return std::optional<ErrorMessage>(ErrorMessage{c, std::move(why)}); };
  if (hello.protocol_version != kVersion)
    return refuse(ErrorCode::unsupported_version, "protocol version " + std::to_string(hello.protocol_version) +
                                                      " not supported (server speaks " + std::to_string(kVersion) + ")");
  if (hello.draft.vocab_size != target.vocab_size)
    return refuse(ErrorCode::incompatible_vocab, "draft vocabulary size " + std::to_string(hello.draft.vocab_size) +
                                                     " != target vocabulary size " + std::to_string(target.vocab_size));
  if (hello.draft.tokenizer_hash != 0 && target.tokenizer_fingerprint != 0 &&
      hello.draft.tokenizer_hash != target.tokenizer_fingerprint) {
    std::ostringstream os;
    os << "tokenizer fingerprint mismatch: draft " << std::hex << hello.draft.tokenizer_hash << " vs target "
       << target.tokenizer_fingerprint;
    return refuse(ErrorCode::incompatible_tokenizer, os.str());
  }
  if (static_cast<std::uint8_t>(hello.rejection) >= kRejectionModeCount)
    return refuse(ErrorCode::unsupported_mode, "unknown rejection mode");
  if (static_cast<std::uint8_t>(hello.pipeline) >= kPipelineModeCount)
    return refuse(ErrorCode::unsupported_mode, "unknown pipeline mode");
  const SamplingParams& s = hello.sampling;
  if (!std::isfinite(s.temperature) || s.temperature < 0.0f)
    return refuse(ErrorCode::invalid_params, "temperature must be finite and >= 0");
  if (!std::isfinite(s.top_p) || s.top_p <= 0.0f || s.top_p > 1.0f)
    return refuse(ErrorCode::invalid_params, "top_p must be in (0, 1]");
  if (!std::isfinite(s.min_p) || s.min_p < 0.0f || s.min_p >= 1.0f)
    return refuse(ErrorCode::invalid_params, "min_p must be in [0, 1)");
  const bool drafting = hello.pipeline != PipelineMode::cloud_ar && hello.pipeline != PipelineMode::edge_only;
  if (drafting && (hello.gamma == 0 || hello.gamma > kMaxChunkTokens))
    return refuse(ErrorCode::invalid_params, "gamma must be in 1..65535");
  if (drafting && hello.rejection == RejectionMode::topk && hello.topk_k == 0)
    return refuse(ErrorCode::invalid_params, "topk mode needs topk_k > 0");
  if (drafting && hello.rejection == RejectionMode::candidates && hello.candidates_m == 0)
    return refuse(ErrorCode::invalid_params, "candidates mode needs candidates_m > 0");
  return std::nullopt;
}

std::optional<std::string> check_compatible(const Hello& hello, const ModelInfo& target) {
  if (auto e = compatibility_error(hello, target)) return std::move(e->message);
  return std::nullopt;
}

}  // namespace picospec::wire
