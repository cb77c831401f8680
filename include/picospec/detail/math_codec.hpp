#pragma once
// Implementation of picospec/sparse_codec.hpp. Include the public header instead.

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>

#include "picospec/detail/math_topk.hpp"
#include "picospec/detail/varint.hpp"

namespace picospec {
namespace detail {

// ------------------------------------------------------------------ little-endian writers and a checked reader

inline void put_u16(std::vector<std::uint8_t>& o, std::uint16_t v) {
  o.push_back(static_cast<std::uint8_t>(v));
  o.push_back(static_cast<std::uint8_t>(v >> 8));
}
inline void put_u32(std::vector<std::uint8_t>& o, std::uint32_t v) {
  for (int s = 0; s < 32; s += 8) o.push_back(static_cast<std::uint8_t>(v >> s));
}
inline void put_f32(std::vector<std::uint8_t>& o, float v) { put_u32(o, std::bit_cast<std::uint32_t>(v)); }

/// Bounds-checked reader over untrusted bytes; every failure is a DecodeError naming `what`.
class ByteReader {
 public:
  ByteReader(std::span<const std::uint8_t> b, const char* what, std::size_t pos = 0) : b_(b), pos_(pos), what_(what) {
    if (pos_ > b_.size()) fail("offset past the end");
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw DecodeError(std::string(what_) + ": " + why + " (at byte " + std::to_string(pos_) + ")");
  }
  [[nodiscard]] std::size_t pos() const noexcept { return pos_; }
  [[nodiscard]] std::size_t remaining() const noexcept { return b_.size() - pos_; }
  void need(std::size_t n) const {
    if (remaining() < n) fail("truncated");
  }
  std::uint16_t u16() {
    need(2);
    const auto v = static_cast<std::uint16_t>(b_[pos_] | (b_[pos_ + 1] << 8));
    pos_ += 2;
    return v;
  }
  std::uint32_t u32() {
    need(4);
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(b_[pos_ + static_cast<std::size_t>(i)]) << (8 * i);
    pos_ += 4;
    return v;
  }
  float f32() { return std::bit_cast<float>(u32()); }
  /// Canonical LEB128 of at most 32 bits (max 5 bytes, no redundant trailing zero byte).
  std::uint32_t varint32() {
    std::uint32_t v = 0;
    switch (read_varint32(b_.data(), b_.size(), pos_, v)) {
      case VarintStatus::ok: return v;
      case VarintStatus::truncated: fail("truncated");
      case VarintStatus::non_canonical: fail("non-canonical varint");
      case VarintStatus::above_32_bits: fail("varint exceeds 32 bits");
      case VarintStatus::too_long: break;
    }
    fail("varint longer than 5 bytes");
  }
  void expect_end() const {
    if (pos_ != b_.size()) fail(std::to_string(remaining()) + " trailing bytes");
  }

 private:
  std::span<const std::uint8_t> b_;
  std::size_t pos_;
  const char* what_;
};

// ------------------------------------------------------------------------------------------- IEEE fp16

/// Positive finite float -> fp16 bits, round to nearest even. Values below the smallest subnormal (2^-24)
/// become that subnormal (a kept token never gets probability 0). Throws Error above 65504.
inline std::uint16_t positive_to_half(float x) {
  const std::uint32_t b = std::bit_cast<std::uint32_t>(x);
  const int e = static_cast<int>((b >> 23) & 0xff) - 127;
  const std::uint32_t m = b & 0x7fffff;
  std::uint32_t h;
  if ((b >> 23) == 0) {
    h = 0;  // float subnormal: far below 2^-24
  } else if (e >= -14) {
    h = (static_cast<std::uint32_t>(e + 15) << 10) | (m >> 13);
    const std::uint32_t rest = m & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // a carry into the exponent is correct rounding
    if (h >= 0x7c00) throw Error("fp16: value " + std::to_string(x) + " too large");
  } else {
    const int shift = -(e + 1);  // value / 2^-24 = (m | 2^23) / 2^shift, shift >= 14
    if (shift > 24) {
      h = 0;
    } else {
      const std::uint32_t full = m | 0x800000u;
      h = full >> shift;
      const std::uint32_t rest = full & ((1u << shift) - 1);
      const std::uint32_t half = 1u << (shift - 1);
      if (rest > half || (rest == half && (h & 1))) ++h;
    }
  }
  return static_cast<std::uint16_t>(h == 0 ? 1 : h);
}

/// fp16 bits -> float (exact). Caller rejects sign/inf/NaN/zero before use.
inline float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0) return static_cast<float>(m) * 0x1.0p-24f;
  return std::bit_cast<float>(((e + 112u) << 23) | (m << 13) | (static_cast<std::uint32_t>(h >> 15) << 31));
}

inline void check_decoded_prob(const ByteReader& r, float v) {
  if (!(v > 0.0f) || !(v <= std::numeric_limits<float>::max())) r.fail("probability not positive and finite");
}

inline void normalize(SparseDist& d) {
  double sum = 0.0;
  for (const float v : d.probs) sum += v;
  for (auto& v : d.probs) v = static_cast<float>(static_cast<double>(v) / sum);
}

inline void check_vocab(std::uint32_t vocab_size, const char* what) {
  if (vocab_size == 0 || vocab_size > static_cast<std::uint32_t>(std::numeric_limits<Token>::max()))
    throw Error(std::string(what) + ": vocab_size must be in [1, 2^31 - 1]");
}

inline void validate_dense(DenseView probs, const char* what) {
  if (probs.empty()) throw Error(std::string(what) + ": empty distribution");
  if (probs.size() > static_cast<std::size_t>(std::numeric_limits<Token>::max()))
    throw Error(std::string(what) + ": vocabulary too large");
}

// ------------------------------------------------------------------------------------------------ codecs

class DenseF32Codec final : public SparseCodec {
 protected:
  std::string_view do_name() const noexcept override { return "dense_f32"; }
  bool do_lossy() const noexcept override { return false; }
  void do_encode(DenseView probs, std::vector<std::uint8_t>& out) const override {
    int bad = 0, any = 0;
    for (const float v : probs) {
      bad |= static_cast<int>(!(v >= 0.0f)) | static_cast<int>(!(v <= std::numeric_limits<float>::max()));
      any |= static_cast<int>(v > 0.0f);
    }
    if (bad) throw Error("dense_f32: probabilities must be finite and >= 0");
    if (!any) throw Error("dense_f32: no positive probability");
    const std::size_t at = out.size();
    out.resize(at + 4 * probs.size());
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(out.data() + at, probs.data(), 4 * probs.size());
    } else {
      for (std::size_t i = 0; i < probs.size(); ++i) {
        const std::uint32_t u = std::bit_cast<std::uint32_t>(probs[i]);
        for (std::size_t b = 0; b < 4; ++b) out[at + 4 * i + b] = static_cast<std::uint8_t>(u >> (8 * b));
      }
    }
  }
  void do_decode(std::span<const std::uint8_t> bytes, SparseDist& d) const override {
    ByteReader r(bytes, "dense_f32");
    if (bytes.size() != 4ull * d.vocab_size) r.fail("frame size is not 4 * vocab_size");
    for (std::uint32_t i = 0; i < d.vocab_size; ++i) {
      const float v = r.f32();
      if (!(v >= 0.0f) || !(v <= std::numeric_limits<float>::max())) r.fail("probability not finite and >= 0");
      if (v > 0.0f) {
        d.ids.push_back(static_cast<Token>(i));
        d.probs.push_back(v);
      }
    }
    if (d.ids.empty()) r.fail("no positive probability");
  }
};

/// Shared selection for the top-K codecs: top-K (and optional top-p) of probs, ids ascending.
class TopkCodecBase : public SparseCodec {
 public:
  TopkCodecBase(std::string name, std::uint32_t k, double top_p) : name_(std::move(name)), k_(k), top_p_(top_p) {}

 protected:
  std::string_view do_name() const noexcept override { return name_; }
  bool do_lossy() const noexcept override { return true; }

  void select(DenseView probs, std::vector<ValueId>& sel) const {
    select_top_k(probs.data(), probs.size(), k_, 0.0f, 0.0f, sel, "topk codec");
    if (sel.empty()) throw Error(std::string(name_) + ": no positive probability");
    if (top_p_ < 1.0) {
      double total = 0.0;
      for (const float v : probs) total += v;
      const double target = top_p_ * total;
      double cum = 0.0;
      std::size_t keep = 0;
      while (keep < sel.size()) {
        cum += sel[keep++].value;
        if (cum >= target) break;
      }
      sel.resize(keep);
    }
    std::sort(sel.begin(), sel.end(), [](const ValueId& a, const ValueId& b) { return a.id < b.id; });
  }
  [[nodiscard]] std::uint32_t k() const noexcept { return k_; }

 private:
  std::string name_;
  std::uint32_t k_;
  double top_p_;
};

class TopkF32Codec final : public TopkCodecBase {
 public:
  using TopkCodecBase::TopkCodecBase;

 protected:
  void do_encode(DenseView probs, std::vector<std::uint8_t>& out) const override {
    std::vector<ValueId> sel;
    select(probs, sel);
    out.reserve(out.size() + 8 * sel.size());
    for (const auto& e : sel) {
      put_u32(out, static_cast<std::uint32_t>(e.id));
      put_f32(out, e.value);
    }
  }
  void do_decode(std::span<const std::uint8_t> bytes, SparseDist& d) const override {
    ByteReader r(bytes, "topk_f32");
    if (bytes.empty() || bytes.size() % 8 != 0) r.fail("frame size is not a positive multiple of 8");
    const std::size_t n = bytes.size() / 8;
    if (n > k() || n > d.vocab_size) r.fail("more entries than K or the vocabulary");
    d.ids.resize(n);
    d.probs.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t id = r.u32();
      if (id >= d.vocab_size) r.fail("token id out of range");
      if (i > 0 && id <= static_cast<std::uint32_t>(d.ids[i - 1])) r.fail("token ids not strictly ascending");
      const float v = r.f32();
      check_decoded_prob(r, v);
      d.ids[i] = static_cast<Token>(id);
      d.probs[i] = v;
    }
  }
};

class TopkQCodec final : public TopkCodecBase {
 public:
  using TopkCodecBase::TopkCodecBase;

 protected:
  void do_encode(DenseView probs, std::vector<std::uint8_t>& out) const override {
    std::vector<ValueId> sel;
    select(probs, sel);
    put_varint(out, sel.size());
    Token prev = -1;
    for (const auto& e : sel) {
      put_varint(out, static_cast<std::uint64_t>(e.id - prev - 1));  // first: id itself; then gap - 1
      prev = e.id;
    }
    for (const auto& e : sel) put_u16(out, positive_to_half(e.value));
  }
  void do_decode(std::span<const std::uint8_t> bytes, SparseDist& d) const override {
    ByteReader r(bytes, "topk_q");
    const std::uint32_t n = r.varint32();
    if (n == 0 || n > k() || n > d.vocab_size) r.fail("entry count 0 or above K or the vocabulary");
    r.need(3ull * n);  // at least one varint byte + 2 fp16 bytes per entry
    d.ids.resize(n);
    d.probs.resize(n);
    std::uint64_t id = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::uint64_t gap = r.varint32();
      id = (i == 0) ? gap : id + gap + 1;
      if (id >= d.vocab_size) r.fail("token id out of range");
      d.ids[i] = static_cast<Token>(id);
    }
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::uint16_t h = r.u16();
      if ((h & 0x8000) || (h & 0x7c00) == 0x7c00 || h == 0) r.fail("fp16 probability not positive and finite");
      d.probs[i] = half_to_float(h);
    }
    r.expect_end();
  }
};

inline std::uint32_t decode_cand_count(ByteReader& r, std::uint32_t cap) {
  const std::uint32_t n = r.varint32();
  if (n > cap) r.fail("count above the limit");
  if (n > r.remaining()) r.fail("count larger than the bytes left");
  return n;
}

}  // namespace detail

// ------------------------------------------------------------------------------------------- SparseCodec

inline void SparseCodec::encode(DenseView probs, std::vector<std::uint8_t>& out) const {
  detail::validate_dense(probs, "SparseCodec::encode");
  do_encode(probs, out);
}

inline SparseDist SparseCodec::decode(std::span<const std::uint8_t> bytes, std::uint32_t vocab_size,
                                      Normalization norm) const {
  detail::check_vocab(vocab_size, "SparseCodec::decode");
  SparseDist d;
  d.vocab_size = vocab_size;
  do_decode(bytes, d);
  if (norm == Normalization::normalize) detail::normalize(d);
  return d;
}

inline SparseDist SparseCodec::round_trip(DenseView probs) const {
  std::vector<std::uint8_t> buf;
  encode(probs, buf);
  return decode(buf, static_cast<std::uint32_t>(probs.size()));
}

inline std::size_t SparseCodec::encoded_size(DenseView probs) const {
  std::vector<std::uint8_t> buf;
  encode(probs, buf);
  return buf.size();
}

inline std::unique_ptr<SparseCodec> make_codec(std::string_view spec) {
  auto bad = [&](const char* why) -> Error {
    return Error("make_codec: bad codec spec '" + std::string(spec) + "': " + why +
                 " (expected dense_f32, topk_f32:K[:P] or topk_q:K[:P])");
  };
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    const std::size_t c = spec.find(':', start);
    parts.push_back(spec.substr(start, c == std::string_view::npos ? std::string_view::npos : c - start));
    if (c == std::string_view::npos) break;
    start = c + 1;
  }
  if (parts[0] == "dense_f32") {
    if (parts.size() != 1) throw bad("dense_f32 takes no arguments");
    return std::make_unique<detail::DenseF32Codec>();
  }
  if (parts[0] != "topk_f32" && parts[0] != "topk_q") throw bad("unknown codec");
  if (parts.size() < 2 || parts.size() > 3) throw bad("need K and optionally P");
  std::uint32_t k = 0;
  {
    const auto s = parts[1];
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), k);
    if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) throw bad("K is not a number");
    if (k == 0 || k > (1u << 24)) throw bad("K must be in [1, 2^24]");
  }
  double top_p = 1.0;
  std::string name(parts[0]);
  name.append(":").append(std::to_string(k));
  if (parts.size() == 3) {
    const auto s = parts[2];
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), top_p);
    if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) throw bad("P is not a number");
    if (!(top_p > 0.0 && top_p <= 1.0)) throw bad("P must be in (0, 1]");
    name.append(":").append(s);
  }
  if (parts[0] == "topk_f32") return std::make_unique<detail::TopkF32Codec>(std::move(name), k, top_p);
  return std::make_unique<detail::TopkQCodec>(std::move(name), k, top_p);
}

inline double total_variation(DenseView p, const SparseDist& q) {
  if (q.vocab_size != p.size() || q.ids.size() != q.probs.size())
    throw Error("total_variation: vocabulary mismatch");
  double s = 0.0;
  std::size_t j = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    double qv = 0.0;
    if (j < q.ids.size() && q.ids[j] >= 0 && static_cast<std::size_t>(q.ids[j]) == i) qv = q.probs[j++];
    s += std::abs(static_cast<double>(p[i]) - qv);
  }
  if (j != q.ids.size()) throw Error("total_variation: sparse ids not ascending or out of range");
  return 0.5 * s;
}

inline double mass_outside_top_k(DenseView p, std::uint32_t k) {
  std::vector<detail::ValueId> sel;
  detail::select_top_k(p.data(), p.size(), k, 0.0f, 0.0f, sel, "mass_outside_top_k");
  double total = 0.0, top = 0.0;
  for (const float v : p) total += v;
  for (const auto& e : sel) top += e.value;
  return std::max(0.0, total - top);
}

// ------------------------------------------------------------------------------------------ candidate stream

inline void encode_candidates(const CandidateStream& s, std::vector<std::uint8_t>& out) {
  if (s.ids.size() != s.p.size()) throw Error("encode_candidates: ids and p differ in length");
  if (s.ids.size() > kMaxCandidatesPerFrame) throw Error("encode_candidates: too many candidates");
  if (static_cast<std::uint64_t>(s.first_index) + s.ids.size() > 0xffffffffull)
    throw Error("encode_candidates: candidate index overflows 32 bits");
  detail::put_varint(out, s.first_index);
  detail::put_varint(out, s.ids.size());
  std::unordered_map<Token, std::pair<std::uint32_t, float>> seen;  // id -> (distinct index, p)
  for (std::size_t k = 0; k < s.ids.size(); ++k) {
    const Token y = s.ids[k];
    const float p = s.p[k];
    if (y < 0) throw Error("encode_candidates: negative token id");
    if (!(p > 0.0f) || !(p <= std::numeric_limits<float>::max()))
      throw Error("encode_candidates: p must be positive and finite");
    const auto it = seen.find(y);
    if (it != seen.end()) {
      if (std::bit_cast<std::uint32_t>(it->second.second) != std::bit_cast<std::uint32_t>(p))
        throw Error("encode_candidates: the same token appears with different p");
      detail::put_varint(out, static_cast<std::uint64_t>(it->second.first) << 1);
    } else {
      const auto idx = static_cast<std::uint32_t>(seen.size());
      seen.emplace(y, std::make_pair(idx, p));
      detail::put_varint(out, (static_cast<std::uint64_t>(y) << 1) | 1u);
      detail::put_f32(out, p);
    }
  }
}

/// Reads one candidate record starting at `offset` and advances it (for embedding in larger frames).
inline CandidateStream decode_candidates(std::span<const std::uint8_t> bytes, std::uint32_t vocab_size,
                                         std::size_t& offset) {
  detail::check_vocab(vocab_size, "decode_candidates");
  detail::ByteReader r(bytes, "candidates", offset);
  CandidateStream s;
  s.first_index = r.varint32();
  const std::uint32_t n = detail::decode_cand_count(r, kMaxCandidatesPerFrame);
  if (static_cast<std::uint64_t>(s.first_index) + n > 0xffffffffull) r.fail("candidate index overflows 32 bits");
  s.ids.resize(n);
  s.p.resize(n);
  std::vector<std::pair<Token, float>> distinct;
  for (std::uint32_t k = 0; k < n; ++k) {
    const std::uint32_t tag = r.varint32();
    if (tag & 1u) {
      const std::uint32_t id = tag >> 1;
      if (id >= vocab_size) r.fail("token id out of range");
      const float p = r.f32();
      detail::check_decoded_prob(r, p);
      distinct.emplace_back(static_cast<Token>(id), p);
    } else {
      if ((tag >> 1) >= distinct.size()) r.fail("repeat refers to an unknown candidate");
    }
    const auto& e = (tag & 1u) ? distinct.back() : distinct[tag >> 1];
    s.ids[k] = e.first;
    s.p[k] = e.second;
  }
  offset = r.pos();
  return s;
}

inline CandidateStream decode_candidates(std::span<const std::uint8_t> bytes, std::uint32_t vocab_size) {
  std::size_t off = 0;
  auto s = decode_candidates(bytes, vocab_size, off);
  if (off != bytes.size()) detail::ByteReader(bytes, "candidates", off).expect_end();
  return s;
}

// ------------------------------------------------------------------------------------------- draft scalars

inline void encode_draft_scalars(std::span<const Token> ids, std::span<const float> q, std::vector<std::uint8_t>& out) {
  if (ids.size() != q.size()) throw Error("encode_draft_scalars: ids and q differ in length");
  if (ids.size() > kMaxDraftsPerFrame) throw Error("encode_draft_scalars: too many drafts");
  detail::put_varint(out, ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0) throw Error("encode_draft_scalars: negative token id");
    if (!(q[i] > 0.0f) || !(q[i] <= std::numeric_limits<float>::max()))
      throw Error("encode_draft_scalars: q must be positive and finite");
    detail::put_varint(out, static_cast<std::uint64_t>(ids[i]));
    detail::put_f32(out, q[i]);
  }
}

/// Reads one draft-scalar record starting at `offset` and advances it (for embedding in larger frames).
inline DraftScalars decode_draft_scalars(std::span<const std::uint8_t> bytes, std::uint32_t vocab_size,
                                         std::size_t& offset) {
  detail::check_vocab(vocab_size, "decode_draft_scalars");
  detail::ByteReader r(bytes, "draft_scalars", offset);
  const std::uint32_t n = detail::decode_cand_count(r, kMaxDraftsPerFrame);
  DraftScalars d;
  d.ids.resize(n);
  d.q.resize(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint32_t id = r.varint32();
    if (id >= vocab_size) r.fail("token id out of range");
    const float q = r.f32();
    detail::check_decoded_prob(r, q);
    d.ids[i] = static_cast<Token>(id);
    d.q[i] = q;
  }
  offset = r.pos();
  return d;
}

inline DraftScalars decode_draft_scalars(std::span<const std::uint8_t> bytes, std::uint32_t vocab_size) {
  std::size_t off = 0;
  auto d = decode_draft_scalars(bytes, vocab_size, off);
  if (off != bytes.size()) detail::ByteReader(bytes, "draft_scalars", off).expect_end();
  return d;
}

}  // namespace picospec
