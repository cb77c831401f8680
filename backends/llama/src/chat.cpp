#include "picospec/llama/chat.hpp"

#include "picospec/llama/gguf.hpp"
#include "picospec/llama/tokenizer.hpp"

namespace picospec::llama {

namespace {

std::string_view trim(std::string_view s) {
  constexpr std::string_view ws = " \t\n\r\f\v";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::string string_key(const GgufFile& f, std::string_view key) {
  const GgufValue* v = f.find(key);
  return v != nullptr && v->type == GgufType::string ? v->str : std::string();
}

}  // namespace

std::string_view to_string(ChatFormat f) noexcept {
  switch (f) {
    case ChatFormat::chatml: return "chatml";
    case ChatFormat::llama3: return "llama3";
  }
  return "?";
}

std::optional<ChatFormat> detect_chat_format(const GgufFile& f) {
  if (f.has("tokenizer.chat_template")) {
    const std::string t = string_key(f, "tokenizer.chat_template");
    const bool chatml = t.find("<|im_start|>") != std::string::npos;
    const bool llama3 = t.find("<|start_header_id|>") != std::string::npos;
    if (chatml != llama3) return chatml ? ChatFormat::chatml : ChatFormat::llama3;
    return std::nullopt;  // another family's template (or an ambiguous one): not guessed from other keys
  }
  const std::string pre = string_key(f, "tokenizer.ggml.pre");
  if (pre == "qwen2") return ChatFormat::chatml;
  if (pre == "llama-bpe") return ChatFormat::llama3;
  const std::string arch = string_key(f, "general.architecture");
  if (arch == "qwen2" || arch == "qwen3") return ChatFormat::chatml;
  return std::nullopt;
}

std::string chat_prompt(ChatFormat format, std::string_view message) {
  std::string s;
  switch (format) {
    case ChatFormat::chatml:
      s = "<|im_start|>user\n";
      s += message;
      s += "<|im_end|>\n<|im_start|>assistant\n";
      break;
    case ChatFormat::llama3:
      s = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n";
      s += trim(message);  // the Llama 3 templates write `message['content'] | trim`
      s += "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
  }
  return s;
}

std::vector<Token> chat_tokens(const GgufFile& file, const Tokenizer& tok, std::string_view message) {
  const auto format = detect_chat_format(file);
  if (!format) {
    auto shown = [&](std::string_view key) {
      const std::string v = string_key(file, key);
      return v.empty() ? std::string("none") : "'" + v + "'";
    };
    throw Error(file.name() + ": unknown chat template family (general.architecture " +
                shown("general.architecture") + ", tokenizer.ggml.pre " + shown("tokenizer.ggml.pre") +
                (file.has("tokenizer.chat_template") ? ", a chat_template of another family" : ", no chat_template") +
                "); known: ChatML (Qwen), Llama 3");
  }
  const auto specials = *format == ChatFormat::chatml
                            ? std::vector<std::string_view>{"<|im_start|>", "<|im_end|>"}
                            : std::vector<std::string_view>{"<|begin_of_text|>", "<|start_header_id|>",
                                                            "<|end_header_id|>", "<|eot_id|>"};
  for (std::string_view s : specials) {
    const Token t = tok.find(s);
    if (t == kNoToken || tok.type(t) != TokenType::control)
      throw Error(file.name() + ": the " + std::string(to_string(*format)) + " chat template needs the control token " +
                  std::string(s) + ", which the vocabulary lacks");
  }
  return tok.encode(chat_prompt(*format, message), false, true);
}

}  // namespace picospec::llama
