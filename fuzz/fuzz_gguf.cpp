// Fuzz target: the GGUF reader (a model file is untrusted) and what is built from a file that validates: the
// tokenizer and the weights. Invariants: only picospec::Error (DecodeError included) escapes; every tensor's data
// lies inside the file (its first and last bytes are read: ASan reports an access outside the copy).
#include <vector>

#include "fuzz_target.hpp"
#include "picospec/llama/gguf.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/tokenizer.hpp"

PICOSPEC_FUZZ_TARGET(gguf) {
  using namespace picospec;
  try {
    auto file = llama::GgufFile::from_bytes(std::vector<std::uint8_t>(data, data + size), "<fuzz>");
    for (const auto& t : file.tensors()) {
      const auto span = file.tensor_data(t);
      volatile std::uint8_t sink = 0;
      if (!span.empty()) sink = static_cast<std::uint8_t>(span.front() ^ span.back());
      (void)sink;
    }
    try {
      (void)llama::Tokenizer::from_gguf(file);
    } catch (const Error&) {
    }
    (void)llama::LlamaWeights::from_gguf(std::move(file));
  } catch (const Error&) {
  }
  return 0;
}
