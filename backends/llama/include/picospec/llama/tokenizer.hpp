#pragma once
// Tokenizers built from GGUF metadata, of two kinds (TokenizerKind):
//
// * byte-level BPE (`tokenizer.ggml.model = "gpt2"`: Llama 3, Qwen2/2.5/3): tokenizer.ggml.tokens / token_type /
//   merges / pre, bos/eos/eot/eom ids, add_bos_token. The text is split by the pre-tokenizer (`llama-bpe` or
//   `qwen2`: the Split regexes of their tokenizer.json run by PCRE2; `qwen2` NFC-normalizes first), every piece's
//   bytes are mapped to GPT-2's byte alphabet and merged by merge rank, as Hugging Face `tokenizers` does.
//   User-defined (non-special added) tokens are always matched in the text; control tokens (`<|im_start|>`,
//   `<|eot_id|>`, ...) only when encode() is asked to (parse_special), as llama.cpp does.
//   add_bos_token defaults to true for `llama-bpe` and false otherwise. decode() gives control tokens no text.
//
// * SentencePiece-style ("llama", the original kind):
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

namespace detail {
class BpeEncoder;
}

class GgufFile;

/// The algorithm a tokenizer runs.
enum class TokenizerKind { sentencepiece, bpe };

/// The parts of a byte-level BPE tokenizer (what a GGUF "gpt2" tokenizer stores).
struct BpeVocab {
  std::vector<std::string> tokens;  ///< byte-alphabet text (user-defined and control tokens: their plain text)
  std::vector<std::int32_t> types;  ///< TokenType per token; empty = all normal
  std::vector<std::string> merges;  ///< "left right", rank = index
  std::string pre = "llama-bpe";    ///< pre-tokenizer name (tokenizer.ggml.pre)
  Token bos = kNoToken, eos = kNoToken, eot = kNoToken, eom = kNoToken;
  bool add_bos = false;
};

/// SentencePiece token types as GGUF stores them.
enum class TokenType : std::int32_t { undefined = 0, normal = 1, unknown = 2, control = 3, user_defined = 4,
                                       unused = 5, byte = 6 };

class Tokenizer {
 public:
  /// Builds the tokenizer from a GGUF file's metadata; throws DecodeError naming the file and key when
  /// tokenizer.ggml.model is neither "llama" nor "gpt2", the pre-tokenizer is unknown, or the arrays are missing,
  /// mistyped, of different lengths or inconsistent (a merge naming a piece outside the vocabulary).
  static std::shared_ptr<const Tokenizer> from_gguf(const GgufFile& file);
  /// A byte-level BPE tokenizer from parts; throws Error on inconsistent parts.
  static std::shared_ptr<const Tokenizer> bpe(BpeVocab vocab);
  /// Builds it from parts (tests). `types` may be empty (all normal; <0xNN> pieces become byte tokens).
  Tokenizer(std::vector<std::string> tokens, std::vector<float> scores, std::vector<std::int32_t> types,
            Token bos, Token eos, Token unk, bool add_bos = true, bool add_space_prefix = true);
  Tokenizer(const Tokenizer&) = delete;  // the lookup table points into tokens_
  Tokenizer& operator=(const Tokenizer&) = delete;
  ~Tokenizer();

  [[nodiscard]] TokenizerKind kind() const noexcept { return bpe_ ? TokenizerKind::bpe : TokenizerKind::sentencepiece; }
  /// The BPE pre-tokenizer's name ("llama-bpe", "qwen2"); empty for SentencePiece.
  [[nodiscard]] const std::string& pre_tokenizer() const noexcept { return pre_; }
  /// End-of-generation tokens: EOS, EOT, EOM and the control tokens llama.cpp treats as such (`<|eot_id|>`,
  /// `<|eom_id|>`, `<|im_end|>`, `<|endoftext|>`, `<|end_of_text|>`, `<|end|>`); sorted, without duplicates.
  [[nodiscard]] const std::vector<Token>& eog_tokens() const noexcept { return eog_; }
  /// Whether generation should stop at `t` (one of eog_tokens()).
  [[nodiscard]] bool is_eog(Token t) const noexcept;
  /// The end-of-turn token (tokenizer.ggml.eot_token_id, else `<|eot_id|>` / `<|im_end|>` by text), or kNoToken.
  [[nodiscard]] Token eot() const noexcept { return eot_; }
  /// The id of a token whose vocabulary text is exactly `text` (any type), or kNoToken.
  [[nodiscard]] Token find(std::string_view text) const;

  [[nodiscard]] std::size_t vocab_size() const noexcept { return tokens_.size(); }
  [[nodiscard]] Token bos() const noexcept { return bos_; }
  [[nodiscard]] Token eos() const noexcept { return eos_; }
  [[nodiscard]] bool add_bos() const noexcept { return add_bos_; }
  /// FNV-1a 64 over every token's text and type (and the BPE merges, pre-tokenizer and end-of-generation ids): two
  /// tokenizers with equal fingerprints map ids to the same text and stop generation at the same tokens.
  [[nodiscard]] std::uint64_t fingerprint() const noexcept { return fingerprint_; }
  [[nodiscard]] const std::string& piece(Token t) const;  ///< raw vocabulary entry (with U+2581)
  [[nodiscard]] TokenType type(Token t) const;

  /// Encodes `text`; prepends BOS when `add_bos` is true (and the vocabulary has one). With `parse_special`,
  /// control and user-defined tokens written in the text (`<|im_start|>`) become their ids (longest match first)
  /// instead of being tokenized as text, as Hugging Face's encode does for added tokens.
  [[nodiscard]] std::vector<Token> encode(std::string_view text, bool add_bos = false,
                                          bool parse_special = false) const;
  /// Decodes a whole sequence (a leading BOS is skipped; the prefix space is removed).
  [[nodiscard]] std::string decode(std::span<const Token> tokens) const;
  /// Text of `t` when it follows `prev` (kNoToken or BOS = start of text): for streaming output. A BPE token may
  /// end inside a UTF-8 character; concatenating the texts of a sequence gives decode()'s bytes.
  [[nodiscard]] std::string token_to_text(Token t, Token prev) const;

 private:
  Tokenizer(BpeVocab vocab, int);  // the BPE constructor (bpe())
  void build();
  void finish_special();  // eog_, specials_ (after build)
  void encode_text(std::string_view text, bool first, std::vector<Token>& out) const;
  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  Token bos_, eos_, unk_;
  bool add_bos_, add_space_prefix_;
  std::uint64_t fingerprint_ = 0;
  std::unordered_map<std::string_view, Token> lookup_;  // normal/user-defined pieces only
  Token byte_tokens_[256];
  // BPE (kind() == bpe) and special-token matching.
  std::shared_ptr<const detail::BpeEncoder> bpe_;
  std::string pre_;
  Token eot_ = kNoToken, eom_ = kNoToken;
  std::vector<Token> eog_;
  std::vector<Token> specials_;  // control + user-defined tokens, longest text first
};

}  // namespace picospec::llama
