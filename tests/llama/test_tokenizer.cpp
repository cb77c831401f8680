// Tokenizer on hand-made vocabularies: merge order by score, byte fallback, decode inverse, prefix space,
// control tokens never produced from text, fingerprint.
#include <catch2/catch.hpp>

#include "picospec/llama/gguf.hpp"
#include "picospec/llama/random_model.hpp"
#include "picospec/llama/tokenizer.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

const std::string SP = "\xE2\x96\x81";

std::shared_ptr<const Tokenizer> small_vocab() {
  std::vector<std::string> toks = {"<unk>", "<s>", "</s>"};
  std::vector<std::int32_t> types = {2, 3, 3};
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    toks.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
    types.push_back(6);
  }
  // pieces with scores: higher merges first
  const std::vector<std::pair<std::string, float>> pieces = {
      {SP, -1}, {"a", -2}, {"b", -2}, {"c", -2}, {"h", -2}, {"e", -2}, {"l", -2}, {"o", -2}, {"ab", -5},
      {"bc", -3}, {SP + "a", -4}, {"he", -6}, {"ll", -6}, {"hell", -7}, {"hello", -8}, {SP + "hello", -9},
      {"<", -2}, {"s", -2}, {">", -2}};
  for (auto& [p, s] : pieces) {
    toks.push_back(p);
    types.push_back(1);
  }
  std::vector<float> scores(toks.size(), 0.0f);
  for (std::size_t i = 0; i < pieces.size(); ++i) scores[259 + i] = pieces[i].second;
  return std::make_shared<const Tokenizer>(toks, scores, types, 1, 2, 0);
}

Token id_of(const Tokenizer& t, const std::string& piece) {
  for (std::size_t i = 0; i < t.vocab_size(); ++i)
    if (t.piece(static_cast<Token>(i)) == piece) return static_cast<Token>(i);
  return kNoToken;
}

}  // namespace

TEST_CASE("merges follow scores, leftmost first on ties", "[tokenizer]") {
  const auto t = small_vocab();
  // " abc" -> ▁ a b c: bigrams ▁a(-4), ab(-5), bc(-3): bc merges first, then ▁a, giving [▁a, bc].
  const auto ids = t->encode("abc");
  REQUIRE(ids.size() == 2);
  CHECK(t->piece(ids[0]) == SP + "a");
  CHECK(t->piece(ids[1]) == "bc");
  const auto h = t->encode("hello");
  REQUIRE(h.size() == 1);
  CHECK(t->piece(h[0]) == SP + "hello");
  CHECK(t->decode(h) == "hello");
  CHECK(t->encode("hello", true).front() == 1);
}

TEST_CASE("byte fallback and exact decode for any UTF-8", "[tokenizer]") {
  const auto t = small_vocab();
  for (const std::string s : {"x", "h\xC3\xA9llo w\xE4\xB8\xAD\xF0\x9F\x98\x80", "  two  spaces ", "tab\tnew\nline",
                              "\xFF\xFE broken utf8 \xC3", "<s></s><unk><0x41>", ""}) {
    const auto ids = t->encode(s);
    CHECK(t->decode(ids) == s);
    for (Token id : ids) {
      CHECK(id != t->bos());  // control tokens are never produced from text
      CHECK(id != t->eos());
    }
  }
  const auto ids = t->encode("\xC3\xA9");  // é not in vocab -> <0xC3> <0xA9> after ▁
  REQUIRE(ids.size() == 3);
  CHECK(t->piece(ids[1]) == "<0xC3>");
  CHECK(t->type(ids[1]) == TokenType::byte);
}

TEST_CASE("streaming text strips the prefix space only at the start", "[tokenizer]") {
  const auto t = small_vocab();
  const Token hello = id_of(*t, SP + "hello");
  CHECK(t->token_to_text(hello, t->bos()) == "hello");
  CHECK(t->token_to_text(hello, kNoToken) == "hello");
  CHECK(t->token_to_text(hello, hello) == " hello");
  CHECK(t->token_to_text(t->eos(), hello).empty());
}

TEST_CASE("fingerprint identifies the vocabulary", "[tokenizer]") {
  const auto a = small_vocab();
  const auto b = small_vocab();
  CHECK(a->fingerprint() == b->fingerprint());
  RandomLlamaSpec s;
  const auto f = GgufFile::from_bytes(random_llama_gguf(s).bytes());
  const auto c = Tokenizer::from_gguf(f);
  CHECK(c->fingerprint() != a->fingerprint());
  s.vocab_size = 301;
  const auto d = Tokenizer::from_gguf(GgufFile::from_bytes(random_llama_gguf(s).bytes()));
  CHECK(d->fingerprint() != c->fingerprint());
}

TEST_CASE("tokenizer metadata is validated", "[tokenizer]") {
  GgufWriter w;
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string_array("tokenizer.ggml.tokens", {"a"});
  CHECK_THROWS_WITH(Tokenizer::from_gguf(GgufFile::from_bytes(w.bytes(), "tok.gguf")),
                    Catch::Contains("tok.gguf") && Catch::Contains("tokenizer.ggml.model"));
  GgufWriter w2;
  w2.add_string_array("tokenizer.ggml.tokens", {"a", "b"});
  w2.add_f32_array("tokenizer.ggml.scores", {0.0f});
  CHECK_THROWS_WITH(Tokenizer::from_gguf(GgufFile::from_bytes(w2.bytes(), "tok.gguf")),
                    Catch::Contains("tokenizer.ggml.scores"));
  GgufWriter w3;
  w3.add_string_array("tokenizer.ggml.tokens", {"a", "b"});
  w3.add_u32("tokenizer.ggml.bos_token_id", 7);
  CHECK_THROWS_WITH(Tokenizer::from_gguf(GgufFile::from_bytes(w3.bytes(), "tok.gguf")),
                    Catch::Contains("bos_token_id"));
}
