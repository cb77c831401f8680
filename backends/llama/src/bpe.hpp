#pragma once
// Internal: the byte-level BPE algorithm behind Tokenizer for GGUF `tokenizer.ggml.model = "gpt2"` vocabularies
// (Llama 3, Qwen2/2.5/3). PCRE2 and ICU stay inside bpe_tokenizer.cpp; this header includes nothing heavy.
//
// Text pipeline (one fragment of text between special tokens):
//   1. normalization: NFC for the `qwen2` pre-tokenizer (its tokenizer.json's normalizer), none for `llama-bpe`;
//   2. pre-tokenization: the tokenizer.json Split regex of the pre-tokenizer, run by PCRE2 (UTF + UCP) with
//      "Isolated" behaviour (every match and every gap between matches is a piece);
//   3. each piece's bytes are mapped to GPT-2's printable byte alphabet, then merged pair by pair, lowest merge rank
//      first (leftmost on ties), as Hugging Face `tokenizers`' BPE does; with ignore_merges (Llama 3) a piece that
//      is itself a vocabulary entry is emitted whole.
//
// Thread-safety: immutable after construction; encode() may run on any number of threads at once (each call uses
// its own match data).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "picospec/types.hpp"

namespace picospec::llama::detail {

/// The pre-tokenizers picospec knows, by their GGUF `tokenizer.ggml.pre` names.
struct BpePreTokenizer {
  std::string name;     ///< "llama-bpe" or "qwen2"
  std::string pattern;  ///< the Split regex exactly as in tokenizer.json
  bool nfc = false;     ///< NFC-normalize fragments first
  bool ignore_merges = false;
};

/// Looks up a pre-tokenizer by GGUF name ("llama-bpe", "llama3", "qwen2", ...); nullptr when unknown.
[[nodiscard]] const BpePreTokenizer* find_pre_tokenizer(std::string_view name) noexcept;

/// GPT-2's byte <-> printable code point table: the UTF-8 text of byte b's code point.
[[nodiscard]] const std::string& byte_to_unicode(unsigned char b) noexcept;
/// Inverse of byte_to_unicode over a whole token text; false when a code point is not in the table.
[[nodiscard]] bool unicode_to_bytes(std::string_view text, std::string& out);
/// Whether `s` is well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF).
[[nodiscard]] bool valid_utf8(std::string_view s) noexcept;

class BpeEncoder {
 public:
  /// `tokens`: the vocabulary in byte-alphabet form; `normal[i]`: whether token i takes part in BPE (normal type);
  /// `merges`: "left right" strings, rank = index. Throws Error on a malformed merge, a merge of pieces that are
  /// not both in the vocabulary, or a regex PCRE2 refuses.
  BpeEncoder(const std::vector<std::string>& tokens, const std::vector<bool>& normal,
             const std::vector<std::string>& merges, const BpePreTokenizer& pre);
  ~BpeEncoder();
  BpeEncoder(const BpeEncoder&) = delete;
  BpeEncoder& operator=(const BpeEncoder&) = delete;

  /// Appends the ids of `text` (a fragment with no special tokens) to `out`.
  void encode(std::string_view text, std::vector<Token>& out) const;
  [[nodiscard]] const BpePreTokenizer& pre() const noexcept { return pre_; }

 private:
  void encode_piece(std::string_view piece, std::vector<Token>& out, std::string& scratch) const;
  struct Regex;
  BpePreTokenizer pre_;
  std::unique_ptr<Regex> regex_;
  std::unordered_map<std::string, Token> vocab_;         // normal tokens, byte-alphabet text -> id
  std::unordered_map<std::string, std::int32_t> ranks_;  // "left right" -> merge rank
};

}  // namespace picospec::llama::detail
