#pragma once
// The picospec wire protocol: versioned binary messages exchanged between the edge and the cloud.
//
// Every frame = a fixed 28-byte little-endian header + a message-specific payload (docs/protocol.md gives the
// layout byte by byte). Frames are untrusted: decode() checks every length and index and either returns a
// message or reports a clear reason (DecodeError / DecodeResult); it never reads out of bounds.
//
// Thread-safety: all functions are pure (no shared state) and may be called from any thread.
// Ownership: decoded messages own their data (they do not point into the input bytes).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "picospec/modes.hpp"
#include "picospec/types.hpp"

namespace picospec::wire {

/// Bytes 'P','S','P','C' on the wire (read as a little-endian u32).
inline constexpr std::uint32_t kMagic = 0x43505350u;
/// Protocol version spoken by this build. Peers with a different version refuse each other (Hello -> Error).
inline constexpr std::uint16_t kVersion = 1;
/// Size of the fixed header.
inline constexpr std::size_t kHeaderSize = 28;
/// Default upper bound on a whole frame (header + payload).
inline constexpr std::size_t kDefaultMaxFrameBytes = std::size_t{1} << 20;

/// Message type byte. Values are part of the wire format; never renumber.
enum class MessageType : std::uint8_t {
  hello = 1,
  welcome = 2,
  prefill = 3,
  draft = 4,
  verdict = 5,
  more_candidates = 6,
  tokens = 7,
  cancel = 8,
  bye = 9,
  error = 10,
};

/// Rejection and pipeline modes travel as the core's picospec::RejectionMode and picospec::PipelineMode
/// (modes.hpp), one byte each: greedy = 0, full = 1, topk = 2, candidates = 3, sparse_draft = 4;
/// cloud_ar = 0, edge_only = 1, vanilla = 2, paper = 3, picospec = 4.
using picospec::kPipelineModeCount;
using picospec::kRejectionModeCount;
using picospec::PipelineMode;

/// Error codes carried by an Error message. Values are part of the wire format.
enum class ErrorCode : std::uint16_t {
  none = 0,
  malformed = 1,               ///< a frame failed to decode
  unsupported_version = 2,     ///< protocol version differs
  incompatible_vocab = 3,      ///< draft and target vocabulary sizes differ
  incompatible_tokenizer = 4,  ///< tokenizer fingerprints differ
  unsupported_mode = 5,        ///< rejection or pipeline mode not supported
  unsupported_codec = 6,       ///< codec spec not understood by this peer
  invalid_params = 7,          ///< parameters out of range (gamma 0, K 0 in topk mode, NaN temperature, ...)
  bad_state = 8,               ///< message not valid in the current session state (e.g. Draft before Prefill)
  unknown_session = 9,         ///< session id not known to the cloud
  too_large = 10,              ///< frame or prompt exceeds a limit
  busy = 11,                   ///< cloud refuses new sessions for now
  internal = 12,               ///< unexpected failure on the sender's side
  cancelled = 13,              ///< the session was cancelled
  context_full = 14,           ///< the session's context is full (the target's, or the cloud's per-session limit):
                               ///< the edge ends the generation with finish `length`, keeping its tokens
};

/// Header flag bits (version 1 receivers ignore bits they do not know).
/// On a Hello: the edge asks for block verification (RejectionMode full / sparse_draft; rejection.hpp
/// block_verify). A cloud that ignores it verifies token by token; both are exact, so the edge need not know.
inline constexpr std::uint8_t kHelloFlagBlockVerify = 1;
/// On a Hello: cloud fill (GenerateParams::cloud_fill; rejection greedy or coupled only, refused otherwise). The
/// cloud commits tokens itself whenever it has no draft to verify: the token its pending row decides, sent
/// down at once as a Tokens message. A Draft then starts at or before the cloud's length: the tokens behind it
/// are compared with the committed ones (all equal: those count as accepted and the rest is verified, or the
/// chunk is consumed without a verdict if nothing is left; one differs: the chunk is void, no verdict, and the
/// cloud's epoch moves on by one, as the edge, which saw the differing token first, expects).
inline constexpr std::uint8_t kHelloFlagCloudFill = 2;

/// Fixed frame header. `type` and `payload_len` are filled by encode(); the caller sets the rest.
struct Header {
  std::uint16_t version = kVersion;
  MessageType type = MessageType::bye;
  std::uint8_t flags = 0;          ///< reserved, 0 in version 1 (receivers ignore unknown bits)
  std::uint64_t session_id = 0;    ///< assigned by the cloud in Welcome; 0 in Hello
  std::uint32_t epoch = 0;         ///< speculation epoch; frames of an old epoch are dropped on arrival
  std::uint32_t seq = 0;           ///< per-direction sequence number (informative; transports are reliable and ordered)
  std::uint32_t payload_len = 0;   ///< bytes after the header; must equal the rest of the frame
  friend bool operator==(const Header&, const Header&) = default;
};

/// Model identity both sides must agree on.
struct ModelFingerprint {
  std::uint32_t vocab_size = 0;
  std::uint64_t tokenizer_hash = 0;  ///< 0 = unknown (not checked)
  friend bool operator==(const ModelFingerprint&, const ModelFingerprint&) = default;
};

/// edge -> cloud: opens a session.
struct Hello {
  std::uint16_t protocol_version = kVersion;
  ModelFingerprint draft;
  SamplingParams sampling;
  RejectionMode rejection = RejectionMode::candidates;
  PipelineMode pipeline = PipelineMode::picospec;
  std::string codec;                ///< codec spec, e.g. "topk_q:32"; empty = none (at most 255 bytes)
  std::uint32_t topk_k = 0;         ///< K of the Top-K verdict frame (topk mode)
  std::uint32_t candidates_m = 0;   ///< candidates per verdict (candidates mode)
  std::uint64_t seed = 0;
  std::uint32_t gamma = 0;          ///< draft chunk length
  std::uint32_t max_new_tokens = 0;
  friend bool operator==(const Hello&, const Hello&) = default;
};

/// cloud -> edge: accepts a session (the header carries the assigned session id).
struct Welcome {
  ModelFingerprint target;
  std::string server_name;  ///< at most 255 bytes
  friend bool operator==(const Welcome&, const Welcome&) = default;
};

/// edge -> cloud: the prompt.
struct Prefill {
  std::vector<Token> tokens;
  friend bool operator==(const Prefill&, const Prefill&) = default;
};

/// edge -> cloud: a chunk of draft tokens.
struct Draft {
  std::uint32_t start_position = 0;  ///< absolute position of tokens[0]
  std::uint8_t n_fixed = 0;          ///< 0 or 1: tokens[0] is an already-decided correction, committed untested
  std::vector<Token> tokens;         ///< at most 65535
  std::vector<float> q_scalars;      ///< empty, or one q(d_i) per token (topk / candidates modes)
  std::vector<std::vector<std::uint8_t>> q_frames;  ///< empty, or one codec frame per token (full / sparse_draft)
  friend bool operator==(const Draft&, const Draft&) = default;
};

enum class VerdictKind : std::uint8_t { all_accepted = 0, correction_token = 1, candidates = 2, topk = 3 };

/// cloud -> edge: the outcome of verifying a chunk. The header epoch is the epoch the edge must use from now on.
struct Verdict {
  std::uint32_t start_position = 0;        ///< start_position of the chunk verified
  std::uint16_t accepted = 0;              ///< tokens of the chunk accepted (n_fixed counts as accepted)
  VerdictKind kind = VerdictKind::all_accepted;
  Token correction = kNoToken;             ///< the correction (kind correction_token), else kNoToken
  std::uint32_t first_candidate_index = 0; ///< index of the first candidate in `payload` (kind candidates)
  std::vector<std::uint8_t> payload;       ///< opaque: encoded candidate stream or Top-K frame
  friend bool operator==(const Verdict&, const Verdict&) = default;
};

/// edge -> cloud: the candidates for `position` are exhausted; send more starting at `next_index`.
struct MoreCandidates {
  std::uint32_t position = 0;
  std::uint32_t next_index = 0;
  friend bool operator==(const MoreCandidates&, const MoreCandidates&) = default;
};

/// cloud -> edge: tokens generated by the cloud itself (cloud_ar mode).
struct Tokens {
  std::uint32_t start_position = 0;
  std::vector<Token> tokens;  ///< at most 65535
  bool done = false;          ///< no more tokens follow
  friend bool operator==(const Tokens&, const Tokens&) = default;
};

/// either way: stop the current generation (the session stays open).
struct Cancel {
  std::string reason;  ///< at most 1024 bytes
  friend bool operator==(const Cancel&, const Cancel&) = default;
};

/// either way: the session ends.
struct Bye {
  friend bool operator==(const Bye&, const Bye&) = default;
};

/// either way: a refusal or failure (named ErrorMessage so that it never shadows picospec::Error).
struct ErrorMessage {
  ErrorCode code = ErrorCode::internal;
  std::string message;  ///< at most 1024 bytes (longer messages are truncated by encode)
  friend bool operator==(const ErrorMessage&, const ErrorMessage&) = default;
};

/// The payload alternatives; the index order matches nothing on the wire (MessageType does).
using Body = std::variant<Hello, Welcome, Prefill, Draft, Verdict, MoreCandidates, Tokens, Cancel, Bye,
                          ErrorMessage>;

/// A whole frame: header + body.
struct Message {
  Header header;
  Body body;
  [[nodiscard]] MessageType type() const noexcept;
  friend bool operator==(const Message&, const Message&) = default;
};

/// Bounds applied by decode() to untrusted frames.
struct DecodeLimits {
  std::size_t max_frame_bytes = kDefaultMaxFrameBytes;  ///< header + payload
  std::size_t max_prompt_tokens = 1u << 18;             ///< Prefill token count
  std::size_t max_q_frame_bytes = kDefaultMaxFrameBytes; ///< one per-token codec frame in a Draft
};

/// Why a frame failed to decode.
enum class DecodeFailure : std::uint8_t {
  none = 0,
  too_short,          ///< fewer than kHeaderSize bytes
  bad_magic,
  bad_version,        ///< header version != kVersion (answer with ErrorCode::unsupported_version)
  too_large,          ///< frame above DecodeLimits::max_frame_bytes or a field above its limit
  length_mismatch,    ///< payload_len != bytes after the header
  unknown_type,
  malformed,          ///< payload truncated, trailing bytes, bad enum value, bad count
};

/// Result of try_decode(): exactly one of `message` / (`failure` != none, `reason`).
struct DecodeResult {
  std::optional<Message> message;
  DecodeFailure failure = DecodeFailure::none;
  std::string reason;
  [[nodiscard]] bool ok() const noexcept { return message.has_value(); }
};

/// Appends the encoded frame to `out` (which is not cleared, so a buffer can be reused). Fills the header's
/// type and payload_len. Throws picospec::Error if the message cannot be represented (counts above the
/// field widths, q_scalars/q_frames size not 0 or tokens.size(), negative token ids, n_fixed > 1 or
/// > tokens.size(), strings over their limit except ErrorMessage::message which is truncated).
void encode(const Message& msg, std::vector<std::uint8_t>& out);
[[nodiscard]] std::vector<std::uint8_t> encode(const Message& msg);
/// Convenience: encode(Message{header, body}).
[[nodiscard]] std::vector<std::uint8_t> encode(const Header& header, Body body);

/// Decodes one frame. Throws picospec::DecodeError with a clear reason on any malformed input.
[[nodiscard]] Message decode(std::span<const std::uint8_t> frame, const DecodeLimits& limits = {});
/// Non-throwing decode for hot paths (allocations may still throw std::bad_alloc).
[[nodiscard]] DecodeResult try_decode(std::span<const std::uint8_t> frame, const DecodeLimits& limits = {});
/// Decodes and checks only the header (magic, version, size, payload_len); cheap, for dropping stale epochs
/// before a full decode. Throws DecodeError.
[[nodiscard]] Header decode_header(std::span<const std::uint8_t> frame, const DecodeLimits& limits = {});

/// Maps a decode failure to the ErrorCode to answer with.
[[nodiscard]] ErrorCode error_code_for(DecodeFailure f) noexcept;

/// One-line human-readable description, e.g. "Draft{s=7 e=2 seq=5 pos=120 n=4 fixed=1 q=4 frames=0}".
[[nodiscard]] std::string describe(const Message& msg);
[[nodiscard]] std::string_view to_string(MessageType t) noexcept;
[[nodiscard]] std::string_view to_string(ErrorCode c) noexcept;
[[nodiscard]] std::string_view to_string(DecodeFailure f) noexcept;

/// Checks a Hello against the cloud's target model. Returns the refusal (code + reason) or nullopt when the pair
/// is compatible: protocol version, vocab size, tokenizer fingerprint (checked when both are non-zero), enum
/// ranges, and parameter sanity (gamma in 1..65535, finite temperature >= 0, top_p in (0,1], topk_k > 0 in topk
/// mode, candidates_m > 0 in candidates mode). Codec support is not checked here (the server knows its codecs).
[[nodiscard]] std::optional<ErrorMessage> compatibility_error(const Hello& hello, const ModelInfo& target);
/// Same check, reason string only.
[[nodiscard]] std::optional<std::string> check_compatible(const Hello& hello, const ModelInfo& target);

/// The fingerprint of a model as sent in Hello/Welcome.
[[nodiscard]] inline ModelFingerprint fingerprint(const ModelInfo& info) noexcept {
  return ModelFingerprint{info.vocab_size, info.tokenizer_fingerprint};
}

}  // namespace picospec::wire
