#include "picospec/llama/tokenizer.hpp"

#include <cmath>
#include <queue>

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
    if (model != "llama")
      fail("key 'tokenizer.ggml.model' is '" + model + "'; only the SentencePiece 'llama' tokenizer is supported");
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

std::vector<Token> Tokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<Token> out;
  if (add_bos && bos_ != kNoToken) out.push_back(bos_);
  if (text.empty()) return out;

  std::string norm;
  if (add_space_prefix_) norm.append(kSpace);
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
  return out;
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
