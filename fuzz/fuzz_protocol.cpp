// Fuzz target: the wire protocol decoder (every frame from a peer is untrusted). Invariants: try_decode never
// throws, decode() throws DecodeError exactly when try_decode fails, and a decoded frame re-encodes to the same
// bytes (strict decoding accounts for every byte).
#include <span>
#include <vector>

#include "fuzz_target.hpp"
#include "picospec/protocol.hpp"

PICOSPEC_FUZZ_TARGET(protocol) {
  using namespace picospec;
  const std::span<const std::uint8_t> bytes(data, size);
  wire::DecodeLimits limits;
  limits.max_frame_bytes = 1 << 16;
  limits.max_q_frame_bytes = 1 << 12;
  const wire::DecodeResult r = wire::try_decode(bytes, limits);
  if (r.ok()) {
    FUZZ_CHECK(r.failure == wire::DecodeFailure::none);
    FUZZ_CHECK(wire::encode(*r.message) == std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
    (void)wire::describe(*r.message);
    FUZZ_CHECK(wire::decode_header(bytes, limits).type == r.message->type());
  } else {
    FUZZ_CHECK(r.failure != wire::DecodeFailure::none);
    FUZZ_CHECK(!r.reason.empty());
    bool threw = false;
    try {
      (void)wire::decode(bytes, limits);
    } catch (const DecodeError&) {
      threw = true;
    }
    FUZZ_CHECK(threw);
  }
  return 0;
}
