#pragma once
// Chat prompts: wraps one user message in the chat template of the model families picospec knows (ChatML for
// Qwen2 / Qwen2.5 / Qwen3, the header format of Llama 3.x), detected from the GGUF file's metadata. The result is
// what Hugging Face's apply_chat_template(..., add_generation_prompt=True) writes for a single user turn without a
// system message, and its ids are those of Hugging Face's encode of that text (special tokens matched).
// Pure functions; thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "picospec/types.hpp"

namespace picospec::llama {

class GgufFile;
class Tokenizer;

enum class ChatFormat : std::uint8_t {
  chatml,  ///< "<|im_start|>user\n" MESSAGE "<|im_end|>\n<|im_start|>assistant\n"
  llama3,  ///< "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" MESSAGE "<|eot_id|>"
           ///< "<|start_header_id|>assistant<|end_header_id|>\n\n" (MESSAGE with surrounding whitespace trimmed)
};

/// "chatml" or "llama3".
[[nodiscard]] std::string_view to_string(ChatFormat f) noexcept;

/// The family from GGUF metadata: `tokenizer.chat_template` when present (ChatML if it writes `<|im_start|>`, Llama 3
/// if it writes `<|start_header_id|>`, unknown otherwise); without one, `tokenizer.ggml.pre` (`qwen2` -> ChatML,
/// `llama-bpe` -> Llama 3), then `general.architecture` (`qwen2` / `qwen3` -> ChatML). nullopt when unknown.
[[nodiscard]] std::optional<ChatFormat> detect_chat_format(const GgufFile& file);

/// The prompt text for one user turn followed by the opening of the assistant's turn, special tokens written out.
[[nodiscard]] std::string chat_prompt(ChatFormat format, std::string_view message);

/// The ids of chat_prompt(detect_chat_format(file), message) under `tok`, special tokens matched (encode with
/// parse_special, no BOS added beyond the template's). Throws Error with one line naming the file when the family
/// is unknown or the vocabulary lacks one of the template's special tokens.
[[nodiscard]] std::vector<Token> chat_tokens(const GgufFile& file, const Tokenizer& tok, std::string_view message);

}  // namespace picospec::llama
