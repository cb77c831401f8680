// Byte-level BPE (see bpe.hpp): PCRE2 pre-tokenization, ICU NFC normalization, rank-ordered merges.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include <array>
#include <queue>

#include "bpe.hpp"

namespace picospec::llama::detail {

namespace {

// The Split regexes of the tokenizer.json files, byte for byte (Llama 3: digits in runs of up to three; Qwen2:
// one digit per piece).
constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const std::array<BpePreTokenizer, 2>& pre_tokenizers() {
  static const std::array<BpePreTokenizer, 2> table{{
      {"llama-bpe", kLlama3Pattern, /*nfc=*/false, /*ignore_merges=*/true},
      {"qwen2", kQwen2Pattern, /*nfc=*/true, /*ignore_merges=*/false},
  }};
  return table;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100 onwards in
// byte order.
struct ByteTable {
  std::array<std::string, 256> text;
  std::array<std::uint32_t, 256> cp{};
  std::unordered_map<std::uint32_t, unsigned char> back;
  ByteTable() {
    std::uint32_t next = 256;
    for (std::uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      cp[b] = printable ? b : next++;
      append_utf8(text[b], cp[b]);
      back.emplace(cp[b], static_cast<unsigned char>(b));
    }
  }
};

const ByteTable& byte_table() {
  static const ByteTable t;
  return t;
}

// Decodes one UTF-8 code point at s[i]; returns its length (0 when malformed).
std::size_t decode_utf8(std::string_view s, std::size_t i, std::uint32_t& cp) noexcept {
  const auto c0 = static_cast<unsigned char>(s[i]);
  std::size_t len;
  std::uint32_t min;
  if (c0 < 0x80) {
    cp = c0;
    return 1;
  } else if ((c0 & 0xE0) == 0xC0) {
    len = 2, cp = c0 & 0x1F, min = 0x80;
  } else if ((c0 & 0xF0) == 0xE0) {
    len = 3, cp = c0 & 0x0F, min = 0x800;
  } else if ((c0 & 0xF8) == 0xF0) {
    len = 4, cp = c0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (c & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

}  // namespace

const BpePreTokenizer* find_pre_tokenizer(std::string_view name) noexcept {
  // Aliases llama.cpp's converter writes for the same regexes.
  if (name == "llama3" || name == "llama-v3" || name == "llama-bpe") name = "llama-bpe";
  for (const auto& p : pre_tokenizers())
    if (p.name == name) return &p;
  return nullptr;
}

const std::string& byte_to_unicode(unsigned char b) noexcept { return byte_table().text[b]; }

bool unicode_to_bytes(std::string_view text, std::string& out) {
  const auto& back = byte_table().back;
  for (std::size_t i = 0; i < text.size();) {
    std::uint32_t cp = 0;
    const std::size_t len = decode_utf8(text, i, cp);
    if (len == 0) return false;
    auto it = back.find(cp);
    if (it == back.end()) return false;
    out.push_back(static_cast<char>(it->second));
    i += len;
  }
  return true;
}

bool valid_utf8(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size();) {
    std::uint32_t cp = 0;
    const std::size_t len = decode_utf8(s, i, cp);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

struct BpeEncoder::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

BpeEncoder::BpeEncoder(const std::vector<std::string>& tokens, const std::vector<bool>& normal,
                       const std::vector<std::string>& merges, const BpePreTokenizer& pre)
    : pre_(pre), regex_(std::make_unique<Regex>()) {
  int err = 0;
  PCRE2_SIZE off = 0;
  // UTF + UCP: \p{L}, \p{N} and \s are Unicode classes, as in the Oniguruma regexes of `tokenizers`;
  // MATCH_INVALID_UTF: malformed input never matches (it becomes a gap piece of its own) instead of failing.
  regex_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pre_.pattern.c_str()), PCRE2_ZERO_TERMINATED,
                               PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off, nullptr);
  if (regex_->code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error("Tokenizer: pre-tokenizer '" + pre_.name + "' regex does not compile at offset " +
                std::to_string(off) + ": " + reinterpret_cast<const char*>(msg));
  }
  (void)pcre2_jit_compile(regex_->code, PCRE2_JIT_COMPLETE);  // optional speed-up; the interpreter is the fallback

  vocab_.reserve(tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i)
    if (normal[i]) vocab_.emplace(tokens[i], static_cast<Token>(i));  // first occurrence wins
  ranks_.reserve(merges.size());
  for (std::size_t r = 0; r < merges.size(); ++r) {
    const std::string& m = merges[r];
    const std::size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (sp == std::string::npos || sp + 1 >= m.size())
      throw Error("Tokenizer: merge " + std::to_string(r) + " is not two pieces separated by a space");
    const std::string left = m.substr(0, sp), right = m.substr(sp + 1);
    if (!vocab_.count(left) || !vocab_.count(right) || !vocab_.count(left + right))
      throw Error("Tokenizer: merge " + std::to_string(r) + " ('" + m + "') names a piece outside the vocabulary");
    if (r > static_cast<std::size_t>(INT32_MAX)) throw Error("Tokenizer: too many merges");
    ranks_.emplace(m, static_cast<std::int32_t>(r));  // first (lowest) rank wins
  }
}

BpeEncoder::~BpeEncoder() = default;

void BpeEncoder::encode(std::string_view text, std::vector<Token>& out) const {
  if (text.empty()) return;
  std::string normalized;
  if (pre_.nfc && valid_utf8(text)) {  // malformed UTF-8 is left as is (ICU would replace it)
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
    if (U_FAILURE(status)) throw Error("Tokenizer: ICU NFC normalizer unavailable");
    const icu::UnicodeString u = icu::UnicodeString::fromUTF8(
        icu::StringPiece(text.data(), static_cast<std::int32_t>(text.size())));
    if (!nfc->isNormalized(u, status)) {
      status = U_ZERO_ERROR;
      const icu::UnicodeString n = nfc->normalize(u, status);
      if (U_FAILURE(status)) throw Error("Tokenizer: NFC normalization failed");
      n.toUTF8String(normalized);
      text = normalized;
    }
  }

  pcre2_match_data* md = pcre2_match_data_create_from_pattern(regex_->code, nullptr);
  if (md == nullptr) throw Error("Tokenizer: out of memory (PCRE2 match data)");
  struct Free {
    pcre2_match_data* p;
    ~Free() { pcre2_match_data_free(p); }
  } guard{md};

  std::string scratch;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t pos = 0, emitted = 0;
  while (pos <= text.size()) {
    const int rc = pcre2_match(regex_->code, subject, text.size(), pos, 0, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw Error(std::string("Tokenizer: pre-tokenizer regex failed: ") + reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const std::size_t b = ov[0], e = ov[1];
    if (b > emitted) encode_piece(text.substr(emitted, b - emitted), out, scratch);  // gap (Isolated split)
    if (e > b) encode_piece(text.substr(b, e - b), out, scratch);
    emitted = std::max(emitted, e);
    if (e == b) {  // empty match (these patterns have none): step one code unit so the loop ends
      pos = e + 1;
      continue;
    }
    pos = e;
  }
  if (emitted < text.size()) encode_piece(text.substr(emitted), out, scratch);
}

void BpeEncoder::encode_piece(std::string_view piece, std::vector<Token>& out, std::string& word) const {
  // The piece's bytes in the byte alphabet; each symbol starts as one byte's code point.
  word.clear();
  struct Sym {
    int prev, next;
    std::size_t start, len;
  };
  std::vector<Sym> syms;
  syms.reserve(piece.size());
  for (std::size_t i = 0; i < piece.size(); ++i) {
    const std::string& t = byte_to_unicode(static_cast<unsigned char>(piece[i]));
    const int idx = static_cast<int>(syms.size());
    syms.push_back(Sym{idx - 1, idx + 1, word.size(), t.size()});
    word += t;
  }
  syms.back().next = -1;
  if (pre_.ignore_merges) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }

  struct Merge {
    std::int32_t rank;
    int left, right;
    std::size_t size;
  };
  auto worse = [](const Merge& a, const Merge& b) { return a.rank > b.rank || (a.rank == b.rank && a.left > b.left); };
  std::priority_queue<Merge, std::vector<Merge>, decltype(worse)> queue(worse);
  std::string key;
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    key.assign(word, syms[l].start, syms[l].len);
    key.push_back(' ');
    key.append(word, syms[r].start, syms[r].len);
    auto it = ranks_.find(key);
    if (it != ranks_.end()) queue.push(Merge{it->second, l, r, syms[l].len + syms[r].len});
  };
  for (std::size_t i = 1; i < syms.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));
  while (!queue.empty()) {
    const Merge m = queue.top();
    queue.pop();
    Sym& l = syms[m.left];
    Sym& r = syms[m.right];
    if (l.len == 0 || r.len == 0 || l.next != m.right || l.len + r.len != m.size) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = m.left;
    try_add(l.prev, m.left);
    try_add(m.left, l.next);
  }
  for (int i = 0; i >= 0; i = syms[i].next) {
    auto it = vocab_.find(word.substr(syms[i].start, syms[i].len));
    if (it != vocab_.end()) {
      out.push_back(it->second);
    } else {  // not reachable with a complete byte alphabet; emit the bytes one by one where they exist
      for (std::size_t k = syms[i].start; k < syms[i].start + syms[i].len;) {
        std::uint32_t cp = 0;
        const std::size_t n = decode_utf8(word, k, cp);
        auto bt = vocab_.find(word.substr(k, n == 0 ? 1 : n));
        if (bt != vocab_.end()) out.push_back(bt->second);
        k += n == 0 ? 1 : n;
      }
    }
  }
}

}  // namespace picospec::llama::detail
