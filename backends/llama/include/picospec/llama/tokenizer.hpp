#pragma once
// SentencePiece-style ("llama") tokenizer built from GGUF metadata:
// tokenizer.ggml.tokens / scores / token_type, bos_token_id / eos_token_id / unknown_token_id, add_bos_token,
// add_space_prefix; byte fallback through the <0xNN> tokens.
//
// encode: spaces become U+2581, a space is prefixed (add_space_prefix, default true), the text is split into UTF-8
// characters, then adjacent pieces are merged greedily by the score of the merged piece (highest first, leftmost
// on ties), as SentencePiece BPE does; pieces left outside the vocabulary become byte tokens.
// decode: the inverse; byte tokens give their byte, control tokens give nothing, U+2581 gives a space, and the
// space that encode prefixed is removed from the first piece of the sequence (or of the piece after BOS).
//
// Thread-safety: immutable after construction; share it freely (shared_ptr<const Tokenizer>).

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "picospec/types.hpp"

namespace picospec::llama {

class GgufFile;

/// SentencePiece token types as GGUF stores them.
enum class TokenType : std::int32_t { undefined = 0, normal = 1, unknown = 2, control = 3, user_defined = 4,
                                       unused = 5, byte = 6 };

class Tokenizer {
 public:
  /// Builds the tokenizer from a GGUF file's metadata; throws DecodeError naming the file and key when
  /// tokenizer.ggml.model is not "llama" or the arrays are missing, mistyped or of different lengths.
  static std::shared_ptr<const Tokenizer> from_gguf(const GgufFile& file);
  /// Builds it from parts (tests). `types` may be empty (all normal; <0xNN> pieces become byte tokens).
  Tokenizer(std::vector<std::string> tokens, std::vector<float> scores, std::vector<std::int32_t> types,
            Token bos, Token eos, Token unk, bool add_bos = true, bool add_space_prefix = true);
  Tokenizer(const Tokenizer&) = delete;  // the lookup table points into tokens_
  Tokenizer& operator=(const Tokenizer&) = delete;

  [[nodiscard]] std::size_t vocab_size() const noexcept { return tokens_.size(); }
  [[nodiscard]] Token bos() const noexcept { return bos_; }
  [[nodiscard]] Token eos() const noexcept { return eos_; }
  [[nodiscard]] bool add_bos() const noexcept { return add_bos_; }
  /// FNV-1a 64 over every token's text and type: two tokenizers with equal fingerprints map ids to the same text.
  [[nodiscard]] std::uint64_t fingerprint() const noexcept { return fingerprint_; }
  [[nodiscard]] const std::string& piece(Token t) const;  ///< raw vocabulary entry (with U+2581)
  [[nodiscard]] TokenType type(Token t) const;

  /// Encodes `text`; prepends BOS when `add_bos` is true.
  [[nodiscard]] std::vector<Token> encode(std::string_view text, bool add_bos = false) const;
  /// Decodes a whole sequence (a leading BOS is skipped; the prefix space is removed).
  [[nodiscard]] std::string decode(std::span<const Token> tokens) const;
  /// Text of `t` when it follows `prev` (kNoToken or BOS = start of text): for streaming output.
  [[nodiscard]] std::string token_to_text(Token t, Token prev) const;

 private:
  void build();
  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  Token bos_, eos_, unk_;
  bool add_bos_, add_space_prefix_;
  std::uint64_t fingerprint_ = 0;
  std::unordered_map<std::string_view, Token> lookup_;  // normal/user-defined pieces only
  Token byte_tokens_[256];
};

}  // namespace picospec::llama
