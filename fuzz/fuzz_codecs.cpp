// Fuzz target: the sparse distribution codecs, the candidate stream and the draft scalars (frames from the peer).
// Input: byte 0 picks the decoder, bytes 1-2 the vocabulary size (1..4096), the rest is the payload. Invariants:
// only DecodeError escapes; a decoded distribution has ids < vocab, strictly ascending, finite positive values.
#include <cmath>
#include <memory>
#include <span>
#include <string>

#include "fuzz_target.hpp"
#include "picospec/rejection.hpp"
#include "picospec/sparse_codec.hpp"

namespace {
const char* const kSpecs[] = {"dense_f32", "topk_f32:16", "topk_q:16", "topk_q:64:0.9", "topk_f32:8:0.5"};
}

PICOSPEC_FUZZ_TARGET(codecs) {
  using namespace picospec;
  if (size < 3) return 0;
  const unsigned which = data[0] % 7;
  const std::uint32_t vocab = 1u + ((static_cast<std::uint32_t>(data[1]) | static_cast<std::uint32_t>(data[2]) << 8) % 4096u);
  const std::span<const std::uint8_t> payload(data + 3, size - 3);
  try {
    if (which < 5) {
      static const auto codecs = [] {
        std::vector<std::unique_ptr<SparseCodec>> v;
        for (const char* s : kSpecs) v.push_back(make_codec(s));
        return v;
      }();
      const SparseDist d = codecs[which]->decode(payload, vocab);
      FUZZ_CHECK(d.ids.size() == d.probs.size());
      for (std::size_t i = 0; i < d.ids.size(); ++i) {
        FUZZ_CHECK(d.ids[i] >= 0 && static_cast<std::uint32_t>(d.ids[i]) < vocab);
        if (i > 0) FUZZ_CHECK(d.ids[i] > d.ids[i - 1]);
      }
      for (float v : d.probs) FUZZ_CHECK(std::isfinite(v) && v >= 0.0f);
    } else if (which == 5) {
      const CandidateStream c = decode_candidates(payload, vocab);
      FUZZ_CHECK(c.ids.size() == c.p.size());
      for (std::size_t i = 0; i < c.size(); ++i)
        FUZZ_CHECK(c.ids[i] >= 0 && static_cast<std::uint32_t>(c.ids[i]) < vocab && c.p[i] > 0.0f);
    } else {
      (void)decode_draft_scalars(payload, vocab);
    }
  } catch (const DecodeError&) {
  }
  return 0;
}
