#include "picospec/llama/tokenizer.hpp"

#include <algorithm>
#include <cmath>
#include <queue>

#include "bpe.hpp"
#include "picospec/llama/gguf.hpp"

namespace picospec::llama {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

std::size_t utf8_len(unsigned char lead) noexcept {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;  // stray continuation or invalid byte: a symbol of its own (byte fallback keeps it exact)
}

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// "<0xNN>" -> NN, else -1.
int byte_piece_value(const std::string& s) noexcept {
  if (s.size() != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
  const int hi = hex_digit(s[3]), lo = hex_digit(s[4]);
  return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, from.size(), from) == 0) {
      out.append(to);
      i += from.size();
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

}  // namespace

namespace {

std::shared_ptr<const Tokenizer> bpe_from_gguf(const GgufFile& f) {
  auto fail = [&](const std::string& what) -> void { throw DecodeError("GGUF " + f.name() + ": " + what); };
  BpeVocab v;
  const GgufValue& toks = f.get_array("tokenizer.ggml.tokens", GgufType::string);
  v.tokens.reserve(toks.items.size());
  for (const auto& t : toks.items) v.tokens.push_back(t.str);
  if (f.has("tokenizer.ggml.token_type")) {
    const GgufValue& t = f.get_array("tokenizer.ggml.token_type", GgufType::i32);
    if (t.items.size() != v.tokens.size()) fail("key 'tokenizer.ggml.token_type' has a different length than the tokens");
    v.types.reserve(t.items.size());
    for (const auto& x : t.items) {
      if (x.i < 0 || x.i > 6) fail("key 'tokenizer.ggml.token_type' holds unknown type " + std::to_string(x.i));
      v.types.push_back(static_cast<std::int32_t>(x.i));
    }
  }
  if (!f.has("tokenizer.ggml.merges")) fail("key 'tokenizer.ggml.merges' is missing (needed when 'tokenizer.ggml.model' is 'gpt2')");
  const GgufValue& merges = f.get_array("tokenizer.ggml.merges", GgufType::string);
  v.merges.reserve(merges.items.size());
  for (const auto& m : merges.items) v.merges.push_back(m.str);
  v.pre = f.has("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : std::string("default");
  if (detail::find_pre_tokenizer(v.pre) == nullptr)
    fail("key 'tokenizer.ggml.pre' is '" + v.pre + "'; supported BPE pre-tokenizers: llama-bpe, qwen2");
  auto opt_id = [&](const char* key) -> Token {
    auto x = f.opt_uint(key);
    if (!x || *x == 0xFFFFFFFFull) return kNoToken;
    if (*x >= v.tokens.size()) fail(std::string("key '") + key + "' = " + std::to_string(*x) + " is outside the vocabulary");
    return static_cast<Token>(*x);
  };
  v.bos = opt_id("tokenizer.ggml.bos_token_id");
  v.eos = opt_id("tokenizer.ggml.eos_token_id");
  v.eot = opt_id("tokenizer.ggml.eot_token_id");
  v.eom = opt_id("tokenizer.ggml.eom_token_id");
  // llama.cpp's defaults when the key is absent: Llama 3 adds BOS, the others do not.
  v.add_bos = f.opt_bool("tokenizer.ggml.add_bos_token").value_or(detail::find_pre_tokenizer(v.pre)->name == "llama-bpe");
  try {
    return Tokenizer::bpe(std::move(v));
  } catch (const DecodeError&) {
    throw;
  } catch (const Error& e) {
    throw DecodeError("GGUF " + f.name() + ": " + e.what());
  }
}

}  // namespace

Tokenizer::Tokenizer(std::vector<std::string> tokens, std::vector<float> scores, std::vector<std::int32_t> types,
                     Token bos, Token eos, Token unk, bool add_bos, bool add_space_prefix)
    : tokens_(std::move(tokens)), scores_(std::move(scores)), bos_(bos), eos_(eos), unk_(unk), add_bos_(add_bos),
      add_space_prefix_(add_space_prefix) {
  const std::size_t n = tokens_.size();
  if (n == 0) throw Error("Tokenizer: empty vocabulary");
  if (n > static_cast<std::size_t>(INT32_MAX)) throw Error("Tokenizer: vocabulary too large");
  if (scores_.empty()) scores_.assign(n, 0.0f);
  if (scores_.size() != n) throw Error("Tokenizer: scores and tokens differ in length");
  for (float sc : scores_)
    if (!std::isfinite(sc)) throw Error("Tokenizer: a token score is not finite");
  if (!types.empty() && types.size() != n) throw Error("Tokenizer: token types and tokens differ in length");
  types_.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (types.empty()) {
      types_[i] = byte_piece_value(tokens_[i]) >= 0 ? TokenType::byte : TokenType::normal;
    } else {
      if (types[i] < 0 || types[i] > 6) throw Error("Tokenizer: token " + std::to_string(i) + " has unknown type " +
                                                    std::to_string(types[i]));
      types_[i] = static_cast<TokenType>(types[i]);
    }
  }
  auto check_id = [&](Token t, const char* what) {
    if (t != kNoToken && (t < 0 || static_cast<std::size_t>(t) >= n))
      throw Error(std::string("Tokenizer: ") + what + " id " + std::to_string(t) + " outside the vocabulary");
  };
  check_id(bos_, "BOS");
  check_id(eos_, "EOS");
  check_id(unk_, "unknown-token");
  build();
  finish_special();
}

Tokenizer::Tokenizer(BpeVocab v, int)
    : tokens_(std::move(v.tokens)), bos_(v.bos), eos_(v.eos), unk_(kNoToken), add_bos_(v.add_bos),
      add_space_prefix_(false), pre_(v.pre), eot_(v.eot), eom_(v.eom) {
  const std::size_t n = tokens_.size();
  if (n == 0) throw Error("Tokenizer: empty vocabulary");
  if (n > static_cast<std::size_t>(INT32_MAX)) throw Error("Tokenizer: vocabulary too large");
  if (!v.types.empty() && v.types.size() != n) throw Error("Tokenizer: token types and tokens differ in length");
  scores_.assign(n, 0.0f);
  types_.assign(n, TokenType::normal);
  std::vector<bool> normal(n, true);
  for (std::size_t i = 0; i < v.types.size(); ++i) {
    if (v.types[i] < 0 || v.types[i] > 6)
      throw Error("Tokenizer: token " + std::to_string(i) + " has unknown type " + std::to_string(v.types[i]));
    types_[i] = static_cast<TokenType>(v.types[i]);
    normal[i] = types_[i] == TokenType::normal;
  }
  for (Token t : {bos_, eos_, eot_, eom_})
    if (t != kNoToken && (t < 0 || static_cast<std::size_t>(t) >= n))
      throw Error("Tokenizer: special token id " + std::to_string(t) + " outside the vocabulary");
  const detail::BpePreTokenizer* pre = detail::find_pre_tokenizer(pre_);
  if (pre == nullptr)
    throw Error("Tokenizer: unknown BPE pre-tokenizer '" + pre_ + "' (known: llama-bpe, qwen2)");
  pre_ = pre->name;
  bpe_ = std::make_shared<const detail::BpeEncoder>(tokens_, normal, v.merges, *pre);
  build();
  // The merges decide the ids as much as the vocabulary does.
  std::uint64_t h = fingerprint_;
  for (const auto& m : v.merges) {
    for (unsigned char c : m) {
      h ^= c;
      h *= 0x100000001b3ull;
    }
    h ^= 0xFF;
    h *= 0x100000001b3ull;
  }
  for (unsigned char c : pre_) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  fingerprint_ = h;
  finish_special();
}

Tokenizer::~Tokenizer() = default;

std::shared_ptr<const Tokenizer> Tokenizer::bpe(BpeVocab vocab) {
  return std::shared_ptr<const Tokenizer>(new Tokenizer(std::move(vocab), 0));
}

void Tokenizer::finish_special() {
  // End of generation: the ids the file names, plus the end-of-turn texts llama.cpp recognises.
  static constexpr std::string_view kEogTexts[] = {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|endoftext|>",
                                                   "<|end_of_text|>", "<|end|>"};
  for (std::size_t i = 0; i < tokens_.size(); ++i) {
    const TokenType ty = types_[i];
    if (ty == TokenType::control || ty == TokenType::user_defined) specials_.push_back(static_cast<Token>(i));
    if (ty != TokenType::control) continue;
    for (std::string_view e : kEogTexts) {
      if (tokens_[i] != e) continue;
      eog_.push_back(static_cast<Token>(i));
      if (eot_ == kNoToken && (e == "<|eot_id|>" || e == "<|im_end|>")) eot_ = static_cast<Token>(i);
      if (eom_ == kNoToken && e == "<|eom_id|>") eom_ = static_cast<Token>(i);
    }
  }
  for (Token t : {eos_, eot_, eom_})
    if (t != kNoToken) eog_.push_back(t);
  std::sort(eog_.begin(), eog_.end());
  eog_.erase(std::unique(eog_.begin(), eog_.end()), eog_.end());
  // Generation stops at these ids on both sides of a pair, so they are part of the identity the pair agrees on.
  for (Token t : eog_) {
    for (int b = 0; b < 4; ++b) {
      fingerprint_ ^= static_cast<std::uint8_t>(static_cast<std::uint32_t>(t) >> (8 * b));
      fingerprint_ *= 0x100000001b3ull;
    }
    fingerprint_ ^= 0xEE;
    fingerprint_ *= 0x100000001b3ull;
  }
  std::stable_sort(specials_.begin(), specials_.end(), [&](Token a, Token b) {
    return tokens_[static_cast<std::size_t>(a)].size() > tokens_[static_cast<std::size_t>(b)].size();
  });
  std::erase_if(specials_, [&](Token t) { return tokens_[static_cast<std::size_t>(t)].empty(); });
}

bool Tokenizer::is_eog(Token t) const noexcept { return std::binary_search(eog_.begin(), eog_.end(), t); }

Token Tokenizer::find(std::string_view text) const {
  for (std::size_t i = 0; i < tokens_.size(); ++i)
    if (tokens_[i] == text) return static_cast<Token>(i);
  return kNoToken;
}

void Tokenizer::build() {
  for (auto& b : byte_tokens_) b = kNoToken;
  std::uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](const void* p, std::size_t len) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < len; ++i) {
      h ^= b[i];
      h *= 0x100000001b3ull;
    }
  };
  const std::uint64_t n = tokens_.size();
  mix(&n, sizeof n);
  lookup_.reserve(tokens_.size());
  for (std::size_t i = 0; i < tokens_.size(); ++i) {
    const std::uint64_t len = tokens_[i].size();
    const auto ty = static_cast<std::int32_t>(types_[i]);
    mix(&len, sizeof len);
    mix(tokens_[i].data(), tokens_[i].size());
    mix(&ty, sizeof ty);
    const auto id = static_cast<Token>(i);
    if (types_[i] == TokenType::byte) {
      const int v = byte_piece_value(tokens_[i]);
      if (v >= 0 && byte_tokens_[v] == kNoToken) byte_tokens_[v] = id;
    } else if (types_[i] == TokenType::normal || types_[i] == TokenType::user_defined ||
               types_[i] == TokenType::undefined) {
      lookup_.emplace(std::string_view(tokens_[i]), id);  // first occurrence wins
    }
  }
  fingerprint_ = h;
}

std::shared_ptr<const Tokenizer> Tokenizer::from_gguf(const GgufFile& f) {
  auto fail = [&](const std::string& what) -> void { throw DecodeError("GGUF " + f.name() + ": " + what); };
  if (f.has("tokenizer.ggml.model")) {
    const std::string& model = f.get_string("tokenizer.ggml.model");
    if (model == "gpt2") return bpe_from_gguf(f);
    if (model != "llama")
      fail("key 'tokenizer.ggml.model' is '" + model +
           "'; supported: 'llama' (SentencePiece) and 'gpt2' (byte-level BPE)");
  }
  const GgufValue& toks = f.get_array("tokenizer.ggml.tokens", GgufType::string);
  std::vector<std::string> tokens;
  tokens.reserve(toks.items.size());
  for (const auto& v : toks.items) tokens.push_back(v.str);
  std::vector<float> scores;
  if (f.has("tokenizer.ggml.scores")) {
    const GgufValue& s = f.get_array("tokenizer.ggml.scores", GgufType::f32);
    if (s.items.size() != tokens.size()) fail("key 'tokenizer.ggml.scores' has a different length than the tokens");
    scores.reserve(s.items.size());
    for (const auto& v : s.items) scores.push_back(static_cast<float>(v.f));
  }
  std::vector<std::int32_t> types;
  if (f.has("tokenizer.ggml.token_type")) {
    const GgufValue& t = f.get_array("tokenizer.ggml.token_type", GgufType::i32);
    if (t.items.size() != tokens.size()) fail("key 'tokenizer.ggml.token_type' has a different length than the tokens");
    types.reserve(t.items.size());
    for (const auto& v : t.items) {
      if (v.i < 0 || v.i > 6) fail("key 'tokenizer.ggml.token_type' holds unknown type " + std::to_string(v.i));
      types.push_back(static_cast<std::int32_t>(v.i));
    }
  }
  auto opt_id = [&](const char* key) -> Token {
    auto v = f.opt_uint(key);
    if (!v || *v == 0xFFFFFFFFull) return kNoToken;
    if (*v >= tokens.size()) fail(std::string("key '") + key + "' = " + std::to_string(*v) + " is outside the vocabulary");
    return static_cast<Token>(*v);
  };
  const Token bos = opt_id("tokenizer.ggml.bos_token_id");
  const Token eos = opt_id("tokenizer.ggml.eos_token_id");
  const Token unk = opt_id("tokenizer.ggml.unknown_token_id");
  const bool add_bos = f.opt_bool("tokenizer.ggml.add_bos_token").value_or(true);
  const bool add_space = f.opt_bool("tokenizer.ggml.add_space_prefix").value_or(true);
  try {
    return std::make_shared<const Tokenizer>(std::move(tokens), std::move(scores), std::move(types), bos, eos, unk,
                                             add_bos, add_space);
  } catch (const DecodeError&) {
    throw;
  } catch (const Error& e) {
    throw DecodeError("GGUF " + f.name() + ": " + e.what());
  }
}

const std::string& Tokenizer::piece(Token t) const {
  if (t < 0 || static_cast<std::size_t>(t) >= tokens_.size()) throw Error("Tokenizer: token id out of range");
  return tokens_[static_cast<std::size_t>(t)];
}

TokenType Tokenizer::type(Token t) const {
  if (t < 0 || static_cast<std::size_t>(t) >= tokens_.size()) throw Error("Tokenizer: token id out of range");
  return types_[static_cast<std::size_t>(t)];
}

std::vector<Token> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<Token> out;
  if (add_bos && bos_ != kNoToken) out.push_back(bos_);
  // Special tokens: control ones only when asked; user-defined ones always for BPE (llama.cpp and Hugging Face
  // both match them), only when asked for SentencePiece (its original behaviour).
  const bool any = parse_special || bpe_;
  std::size_t start = 0;
  bool first = true;
  if (any && !specials_.empty()) {
    for (std::size_t i = 0; i < text.size();) {
      Token hit = kNoToken;
      for (Token t : specials_) {  // longest first: leftmost-longest, as tokenizers' added-token matcher
        const std::string& s = tokens_[static_cast<std::size_t>(t)];
        if (!parse_special && types_[static_cast<std::size_t>(t)] == TokenType::control) continue;
        if (s[0] == text[i] && text.compare(i, s.size(), s) == 0) {
          hit = t;
          break;
        }
      }
      if (hit == kNoToken) {
        ++i;
        continue;
      }
      if (i > start) encode_text(text.substr(start, i - start), first, out);
      out.push_back(hit);
      first = false;
      i += tokens_[static_cast<std::size_t>(hit)].size();
      start = i;
    }
  }
  if (start < text.size()) encode_text(text.substr(start), first, out);
  return out;
}

void Tokenizer::encode_text(std::string_view text, bool first, std::vector<Token>& out) const {
  if (text.empty()) return;
  if (bpe_) {
    bpe_->encode(text, out);
    return;
  }

  std::string norm;
  if (add_space_prefix_ && first) norm.append(kSpace);
  norm += replace_all(text, " ", kSpace);

  struct Sym {
    int prev, next;
    std::size_t start, len;
  };
  std::vector<Sym> syms;
  for (std::size_t i = 0; i < norm.size();) {
    const std::size_t len = std::min(utf8_len(static_cast<unsigned char>(norm[i])), norm.size() - i);
    const int idx = static_cast<int>(syms.size());
    syms.push_back(Sym{idx - 1, idx + 1, i, len});
    i += len;
  }
  syms.back().next = -1;

  struct Bigram {
    float score;
    int left, right;
    std::size_t size;
  };
  auto worse = [](const Bigram& a, const Bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  const std::string_view sv(norm);
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const std::size_t size = syms[l].len + syms[r].len;
    auto it = lookup_.find(sv.substr(syms[l].start, size));
    if (it == lookup_.end()) return;
    queue.push(Bigram{scores_[static_cast<std::size_t>(it->second)], l, r, size});
  };
  for (std::size_t i = 1; i < syms.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Sym& l = syms[b.left];
    Sym& r = syms[b.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.size || l.next != b.right) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int i = 0; i >= 0; i = syms[i].next) {
    const Sym& s = syms[i];
    auto it = lookup_.find(sv.substr(s.start, s.len));
    if (it != lookup_.end()) {
      out.push_back(it->second);
      continue;
    }
    for (std::size_t k = 0; k < s.len; ++k) {
      const Token bt = byte_tokens_[static_cast<unsigned char>(norm[s.start + k])];
      if (bt != kNoToken) {
        out.push_back(bt);
      } else if (unk_ != kNoToken) {
        out.push_back(unk_);
        break;  // one unknown token for the whole piece
      }
    }
  }
}

std::string Tokenizer::token_to_text(Token t, Token prev) const {
  const auto i = static_cast<std::size_t>(t);
  if (t < 0 || i >= tokens_.size()) throw Error("Tokenizer: token id " + std::to_string(t) + " out of range");
  switch (types_[i]) {
    case TokenType::byte: {
      const int v = byte_piece_value(tokens_[i]);
      return v >= 0 ? std::string(1, static_cast<char>(v)) : std::string();
    }
    case TokenType::control:
    case TokenType::unknown:
    case TokenType::unused: return {};
    default: break;
  }
  if (bpe_) {
    if (types_[i] != TokenType::normal) return tokens_[i];  // user-defined: plain text
    std::string bytes;
    if (!detail::unicode_to_bytes(tokens_[i], bytes)) return tokens_[i];  // not byte-alphabet text: as stored
    return bytes;
  }
  std::string s = replace_all(tokens_[i], kSpace, " ");
  if (add_space_prefix_ && (prev == kNoToken || prev == bos_) && !s.empty() && s[0] == ' ') s.erase(0, 1);
  return s;
}

std::string Tokenizer::decode(std::span<const Token> tokens) const {
  std::string out;
  Token prev = kNoToken;
  for (Token t : tokens) {
    out += token_to_text(t, prev);
    prev = t;
  }
  return out;
}

}  // namespace picospec::llama
