// Byte-level BPE tokenizer on hand-made vocabularies: merge order by rank (not by length or position), the two
// pre-tokenizers' splits (digits, contractions, spaces), ignore_merges, special tokens only with parse_special,
// user-defined tokens always, BOS, end-of-generation set, NFC for qwen2, decode(encode(s)) == s on arbitrary bytes,
// GGUF validation with clear errors, long runs, and concurrent use of one tokenizer.
#include <catch2/catch.hpp>

#include <atomic>
#include <random>
#include <thread>

#include "picospec/llama/chat.hpp"
#include "picospec/llama/gguf.hpp"
#include "picospec/llama/gguf_writer.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"
#include "picospec/llama/tokenizer.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

// GPT-2's byte alphabet, written out independently of the library: printable bytes are themselves, the others
// U+0100 upwards in byte order.
std::string byte_char(int b) {
  static std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    int next = 256;
    for (int c = 0; c < 256; ++c) {
      const bool printable = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255);
      const int cp = printable ? c : next++;
      std::string s;
      if (cp < 0x80) {
        s.push_back(static_cast<char>(cp));
      } else {
        s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
      t[static_cast<std::size_t>(c)] = s;
    }
    return t;
  }();
  return table[static_cast<std::size_t>(b)];
}

std::string enc(std::string_view text) {
  std::string s;
  for (unsigned char c : text) s += byte_char(c);
  return s;
}

// 256 byte tokens, then merged pieces, then special tokens.
BpeVocab small_vocab(std::string pre = "llama-bpe") {
  BpeVocab v;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_char(b));
  v.types.assign(256, 1);
  auto add = [&](const std::string& text, std::int32_t type = 1) {
    v.tokens.push_back(text);
    v.types.push_back(type);
    return static_cast<Token>(v.tokens.size() - 1);
  };
  // merges (rank order): "l l" first, then "h e", "he ll", "hell o"; " w" etc.
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"l", "l"}, {"h", "e"}, {"he", "ll"}, {"hell", "o"}, {enc(" "), "w"}, {enc(" w"), "o"}, {"r", "l"},
      {enc(" wo"), "rl"}, {enc(" worl"), "d"}, {"1", "2"}, {"12", "3"}, {"'", "s"}};
  for (const auto& [a, b] : merges) {
    v.merges.push_back(a + " " + b);
    add(a + b);
  }
  add("xyz");  // in the vocabulary but unreachable by merges: only ignore_merges (llama-bpe) emits it whole
  v.bos = add("<|begin|>", 3);
  v.eos = add("<|end|>", 3);
  add("<|im_end|>", 3);
  add("<tool>", 4);  // user-defined: matched in text always
  v.pre = std::move(pre);
  v.add_bos = true;
  return v;
}

Token id(const Tokenizer& t, std::string_view piece) {
  const Token x = t.find(piece);
  REQUIRE(x != kNoToken);
  return x;
}

}  // namespace

TEST_CASE("BPE merges by rank and splits words as the pre-tokenizer says", "[tokenizer][bpe]") {
  const auto t = Tokenizer::bpe(small_vocab());
  REQUIRE(t->kind() == TokenizerKind::bpe);
  CHECK(t->pre_tokenizer() == "llama-bpe");
  CHECK(t->encode("hello") == std::vector<Token>{id(*t, "hello")});
  CHECK(t->encode("hello world") == std::vector<Token>{id(*t, "hello"), id(*t, enc(" world"))});
  // "hel": "l l" is not applicable, "h e" is -> [he, l]
  CHECK(t->encode("hel") == std::vector<Token>{id(*t, "he"), id(*t, "l")});
  // rank beats position: "lll" -> "ll" + "l" (leftmost pair of equal rank first)
  CHECK(t->encode("lll") == std::vector<Token>{id(*t, "ll"), id(*t, "l")});
  // llama-bpe: digits in runs of up to three; "123" merges, "4" alone
  CHECK(t->encode("1234") == std::vector<Token>{id(*t, "123"), id(*t, "4")});
  // contractions are their own piece: "'s"
  CHECK(t->encode("he's") == std::vector<Token>{id(*t, "he"), id(*t, "'s")});
  // ignore_merges: a piece that is a vocabulary entry is emitted whole
  CHECK(t->encode("xyz") == std::vector<Token>{id(*t, "xyz")});
  // BOS on request
  CHECK(t->encode("hello", true) == std::vector<Token>{t->bos(), id(*t, "hello")});
  CHECK(t->add_bos());

  const auto q = Tokenizer::bpe(small_vocab("qwen2"));
  CHECK(q->pre_tokenizer() == "qwen2");
  // qwen2: one digit per piece, so "12" never merges; no ignore_merges
  CHECK(q->encode("1234") ==
        std::vector<Token>{id(*q, "1"), id(*q, "2"), id(*q, "3"), id(*q, "4")});
  CHECK(q->encode("xyz") == std::vector<Token>{id(*q, "x"), id(*q, "y"), id(*q, "z")});
}

TEST_CASE("BPE special tokens: control only with parse_special, user-defined always", "[tokenizer][bpe]") {
  const auto t = Tokenizer::bpe(small_vocab());
  const std::string text = "hello<|end|>x<tool>";
  const auto plain = t->encode(text);
  CHECK(std::find(plain.begin(), plain.end(), t->eos()) == plain.end());
  CHECK(plain.back() == id(*t, "<tool>"));
  const auto special = t->encode(text, false, true);
  CHECK(special == std::vector<Token>{id(*t, "hello"), t->eos(), id(*t, "x"), id(*t, "<tool>")});
  // decode gives control tokens no text, user-defined ones their text
  CHECK(t->decode(special) == "hellox<tool>");
  CHECK(t->decode(plain) == text);
}

TEST_CASE("BPE end-of-generation tokens", "[tokenizer][bpe]") {
  const auto t = Tokenizer::bpe(small_vocab());
  CHECK(t->is_eog(t->eos()));
  CHECK(t->is_eog(id(*t, "<|im_end|>")));
  CHECK(t->eot() == id(*t, "<|im_end|>"));
  CHECK_FALSE(t->is_eog(t->bos()));
  CHECK_FALSE(t->is_eog(id(*t, "hello")));
  CHECK(t->eog_tokens().size() == 2);
}

TEST_CASE("BPE decode(encode(s)) == s on arbitrary bytes", "[tokenizer][bpe]") {
  for (const char* pre : {"llama-bpe", "qwen2"}) {
    const auto t = Tokenizer::bpe(small_vocab(pre));
    std::mt19937 rng(42);
    for (int n = 0; n < 300; ++n) {
      std::string s(rng() % 40, '\0');
      for (auto& c : s) c = static_cast<char>(rng() % (pre[0] == 'q' ? 128 : 256));  // NFC applies to Unicode only
      if (n % 3 == 0)
        for (auto& c : s) c = "hel o12'sw\n\t"[rng() % 12];
      const auto ids = t->encode(s);
      std::string streamed;
      Token prev = kNoToken;
      for (Token x : ids) {
        CHECK(x >= 0);
        streamed += t->token_to_text(x, prev);
        prev = x;
      }
      CHECK(t->decode(ids) == s);
      CHECK(streamed == s);
    }
  }
}

TEST_CASE("qwen2 normalizes to NFC first, llama-bpe does not", "[tokenizer][bpe]") {
  const auto q = Tokenizer::bpe(small_vocab("qwen2"));
  const auto l = Tokenizer::bpe(small_vocab("llama-bpe"));
  const std::string composed = "caf\xC3\xA9", decomposed = "cafe\xCC\x81";
  CHECK(q->encode(decomposed) == q->encode(composed));
  CHECK(l->encode(decomposed) != l->encode(composed));
  CHECK(l->decode(l->encode(decomposed)) == decomposed);
}

TEST_CASE("BPE vocabularies are validated", "[tokenizer][bpe]") {
  auto v = small_vocab("gpt-neox");
  CHECK_THROWS_WITH(Tokenizer::bpe(v), Catch::Contains("pre-tokenizer") && Catch::Contains("gpt-neox"));
  v = small_vocab();
  v.merges.push_back("nospace");
  CHECK_THROWS_WITH(Tokenizer::bpe(v), Catch::Contains("merge"));
  v = small_vocab();
  v.merges.push_back("q zz");
  CHECK_THROWS_WITH(Tokenizer::bpe(v), Catch::Contains("outside the vocabulary"));
  v = small_vocab();
  v.eos = 100000;
  CHECK_THROWS_AS(Tokenizer::bpe(v), Error);

  // From GGUF: the same checks name the file and key.
  auto gguf = [](const BpeVocab& b, bool merges = true, const char* pre = nullptr) {
    GgufWriter w;
    w.add_string("tokenizer.ggml.model", "gpt2");
    w.add_string("tokenizer.ggml.pre", pre ? pre : b.pre);
    w.add_string_array("tokenizer.ggml.tokens", b.tokens);
    w.add_i32_array("tokenizer.ggml.token_type", b.types);
    if (merges) w.add_string_array("tokenizer.ggml.merges", b.merges);
    w.add_u32("tokenizer.ggml.bos_token_id", static_cast<std::uint32_t>(b.bos));
    w.add_u32("tokenizer.ggml.eos_token_id", static_cast<std::uint32_t>(b.eos));
    return GgufFile::from_bytes(w.bytes(), "bpe.gguf");
  };
  const auto ok = Tokenizer::from_gguf(gguf(small_vocab()));
  CHECK(ok->kind() == TokenizerKind::bpe);
  CHECK(ok->add_bos());  // llama-bpe default without the key
  CHECK(ok->encode("hello world") == Tokenizer::bpe(small_vocab())->encode("hello world"));
  CHECK(ok->fingerprint() == Tokenizer::bpe(small_vocab())->fingerprint());
  CHECK(ok->fingerprint() != Tokenizer::bpe(small_vocab("qwen2"))->fingerprint());
  {  // Same texts, another EOS id: another end-of-generation set, so another fingerprint (a pair must agree on it).
    auto other = small_vocab();
    other.eos = other.bos;
    const auto t = Tokenizer::bpe(std::move(other));
    CHECK(t->eog_tokens() != ok->eog_tokens());
    CHECK(t->fingerprint() != ok->fingerprint());
  }
  CHECK_FALSE(Tokenizer::from_gguf(gguf(small_vocab("qwen2")))->add_bos());  // qwen2 default
  CHECK_THROWS_WITH(Tokenizer::from_gguf(gguf(small_vocab(), false)),
                    Catch::Contains("bpe.gguf") && Catch::Contains("tokenizer.ggml.merges"));
  CHECK_THROWS_WITH(Tokenizer::from_gguf(gguf(small_vocab(), true, "falcon")),
                    Catch::Contains("bpe.gguf") && Catch::Contains("tokenizer.ggml.pre"));
  auto bad = small_vocab();
  bad.merges.push_back("q zz");
  CHECK_THROWS_WITH(Tokenizer::from_gguf(gguf(bad)), Catch::Contains("bpe.gguf") && Catch::Contains("merge"));
}

TEST_CASE("BPE handles long runs (regex backtracking and merge queues stay bounded)", "[tokenizer][bpe]") {
  for (const char* pre : {"llama-bpe", "qwen2"}) {
    const auto t = Tokenizer::bpe(small_vocab(pre));
    for (const std::string& unit : {std::string(" "), std::string("l"), std::string("1"), std::string("\n"),
                                    std::string("\xF0\x9F\x98\x80"), std::string(" \n")}) {
      std::string s;
      for (int i = 0; i < 50000; ++i) s += unit;
      s += "x";
      const auto ids = t->encode(s);
      CHECK(!ids.empty());
      CHECK(t->decode(ids) == s);
    }
  }
}

TEST_CASE("one BPE tokenizer encodes from several threads at once", "[tokenizer][bpe][concurrency]") {
  const auto t = Tokenizer::bpe(small_vocab("qwen2"));
  const std::string text = "hello world, he's 1234 cafe\xCC\x81 <tool> hello\n\n  world";
  const auto want = t->encode(text, true, true);
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i)
        if (t->encode(text, true, true) != want || t->decode(want).empty()) ++bad;
    });
  for (auto& th : threads) th.join();
  CHECK(bad.load() == 0);
}

TEST_CASE("chat formats: detection from metadata and clear errors", "[chat]") {
  auto file = [](std::initializer_list<std::pair<std::string, std::string>> keys) {
    GgufWriter w;
    for (const auto& [k, v] : keys) w.add_string(k, v);
    return GgufFile::from_bytes(w.bytes(), "meta.gguf");
  };
  CHECK(detect_chat_format(file({{"general.architecture", "qwen3"}})) == ChatFormat::chatml);
  CHECK(detect_chat_format(file({{"general.architecture", "llama"}, {"tokenizer.ggml.pre", "llama-bpe"}})) ==
        ChatFormat::llama3);
  CHECK(detect_chat_format(file({{"general.architecture", "llama"}, {"tokenizer.ggml.pre", "qwen2"}})) ==
        ChatFormat::chatml);
  CHECK_FALSE(detect_chat_format(file({{"general.architecture", "llama"}})).has_value());
  // A template decides over the other keys; one of another family is not guessed.
  CHECK(detect_chat_format(file({{"general.architecture", "qwen2"},
                                 {"tokenizer.chat_template", "{{'<|start_header_id|>' + role}}"}})) ==
        ChatFormat::llama3);
  CHECK_FALSE(detect_chat_format(file({{"general.architecture", "qwen2"},
                                       {"tokenizer.chat_template", "[INST] {{ content }} [/INST]"}}))
                  .has_value());
  CHECK(chat_prompt(ChatFormat::chatml, " hi ") == "<|im_start|>user\n hi <|im_end|>\n<|im_start|>assistant\n");
  CHECK(chat_prompt(ChatFormat::llama3, " hi \n") ==
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // Unknown family / missing special tokens: one line naming the file.
  const auto sp =
      LlamaWeights::from_gguf(GgufFile::from_bytes(random_llama_gguf(RandomLlamaSpec{}).bytes(), "sp.gguf"));
  CHECK_THROWS_WITH(chat_tokens(sp->file(), *sp->tokenizer(), "hi"),
                    Catch::Contains("sp.gguf: unknown chat template family") && Catch::Contains("known: ChatML"));
  CHECK_THROWS_WITH(chat_tokens(file({{"general.architecture", "qwen3"}}), *sp->tokenizer(), "hi"),
                    Catch::Contains("needs the control token <|im_start|>"));
}
