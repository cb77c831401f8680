// fuzz_seeds DIR: writes the seed corpora DIR/protocol, DIR/codecs, DIR/gguf (valid inputs the fuzzers mutate from):
// one frame per message type, each codec's encoding of a few distributions, candidate and draft-scalar frames, and
// a tiny random LLaMA GGUF. Deterministic.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "picospec/llama/random_model.hpp"
#include "picospec/protocol.hpp"
#include "picospec/rejection.hpp"
#include "picospec/sparse_codec.hpp"

namespace fs = std::filesystem;
using namespace picospec;
using Bytes = std::vector<std::uint8_t>;

namespace {
void put(const fs::path& dir, int& n, const Bytes& b) {
  fs::create_directories(dir);
  std::ofstream(dir / ("seed-" + std::to_string(n++)), std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
Bytes with_prefix(unsigned which, std::uint32_t vocab, const Bytes& payload) {
  Bytes b{static_cast<std::uint8_t>(which), static_cast<std::uint8_t>(vocab - 1), static_cast<std::uint8_t>((vocab - 1) >> 8)};
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const fs::path root = argv[1];
  int n = 0;
  // Protocol: one frame of each message type.
  wire::Hello h;
  h.draft = {32000, 99};
  h.codec = "topk_q:32";
  h.gamma = 4;
  wire::Draft d;
  d.start_position = 5;
  d.n_fixed = 1;
  d.tokens = {1, 200, 30000};
  d.q_scalars = {0.5f, 0.25f, 1.0f};
  wire::Draft f;
  f.tokens = {7, 8};
  f.q_frames = {{1, 2, 3, 4}, {5}};
  wire::Verdict v;
  v.kind = wire::VerdictKind::topk;
  v.payload = {1, 2, 3, 4, 5, 6};
  const std::vector<wire::Body> bodies = {h, wire::Welcome{{32000, 99}, "srv"}, wire::Prefill{{1, 2, 300, 40000}}, d, f, v,
                                          wire::MoreCandidates{3, 4}, wire::Tokens{1, {5, 6}, true},
                                          wire::Cancel{"x"}, wire::Bye{},
                                          wire::ErrorMessage{wire::ErrorCode::busy, "later"}};
  for (const auto& b : bodies) {
    wire::Header hd;
    hd.session_id = 7;
    hd.epoch = 2;
    hd.seq = 3;
    put(root / "protocol", n, wire::encode(hd, b));
  }
  // Codecs: each codec's encoding of a peaked and a flat distribution over V = 300.
  const char* const specs[] = {"dense_f32", "topk_f32:16", "topk_q:16", "topk_q:64:0.9", "topk_f32:8:0.5"};
  std::vector<float> peaked(300), flat(300, 1.0f / 300.0f);
  for (std::size_t i = 0; i < peaked.size(); ++i) peaked[i] = std::exp(-0.05f * static_cast<float>(i));
  for (unsigned w = 0; w < 5; ++w)
    for (const auto* p : {&peaked, &flat}) {
      Bytes out;
      make_codec(specs[w])->encode(*p, out);
      put(root / "codecs", n, with_prefix(w, 300, out));
    }
  CandidateStream cs;
  cs.ids = {3, 17, 3, 250};
  cs.p = {0.25f, 0.5f, 0.25f, 0.125f};
  Bytes cb;
  encode_candidates(cs, cb);
  put(root / "codecs", n, with_prefix(5, 300, cb));
  Bytes sb;
  const std::vector<Token> ids{1, 2, 299};
  const std::vector<float> q{0.5f, 0.25f, 0.125f};
  encode_draft_scalars(ids, q, sb);
  put(root / "codecs", n, with_prefix(6, 300, sb));
  // GGUF: a tiny random model (tokenizer + weights), F32 and Q8_0 if available.
  llama::RandomLlamaSpec spec;
  spec.vocab_size = 262;
  spec.dim = 16;
  spec.n_layers = 1;
  spec.ffn_dim = 16;
  spec.n_heads = 2;
  spec.n_kv_heads = 1;
  spec.context_length = 32;
  put(root / "gguf", n, llama::random_llama_gguf(spec).bytes());
  return 0;
}
