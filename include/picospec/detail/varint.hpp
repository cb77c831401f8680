#pragma once
// Unsigned LEB128 varints, shared by the sparse codecs (math_codec.hpp) and the wire protocol (src/protocol.cpp).
// Decoding is for untrusted bytes: it never reads past `size` and reports why it refused.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace picospec::detail {

/// Appends `v` as unsigned LEB128 (7 bits per byte, least significant first).
inline void put_varint(std::vector<std::uint8_t>& out, std::uint64_t v) {
  while (v >= 0x80u) {
    out.push_back(static_cast<std::uint8_t>(v | 0x80u));
    v >>= 7;
  }
  out.push_back(static_cast<std::uint8_t>(v));
}

enum class VarintStatus : std::uint8_t { ok, truncated, too_long, non_canonical, above_32_bits };

/// Reads a canonical varint of at most 32 bits (at most 5 bytes, no redundant trailing zero byte) from
/// `data[pos, size)`. On ok, `value` is set and `pos` advanced past it; otherwise `pos` is left where the
/// offending byte was read.
inline VarintStatus read_varint32(const std::uint8_t* data, std::size_t size, std::size_t& pos,
                                  std::uint32_t& value) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < 5; ++i) {
    if (pos >= size) return VarintStatus::truncated;
    const std::uint8_t byte = data[pos++];
    v |= static_cast<std::uint64_t>(byte & 0x7Fu) << (7 * i);
    if ((byte & 0x80u) == 0) {
      if (i > 0 && byte == 0) return VarintStatus::non_canonical;
      if (v > 0xFFFFFFFFull) return VarintStatus::above_32_bits;
      value = static_cast<std::uint32_t>(v);
      return VarintStatus::ok;
    }
  }
  return VarintStatus::too_long;
}

}  // namespace picospec::detail
