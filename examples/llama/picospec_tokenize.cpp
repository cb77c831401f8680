// picospec-tokenize: the token ids a GGUF file's tokenizer gives for a text, as one JSON array on one line.
//
//   picospec-tokenize -m FILE [--ids] [--no-bos] [--special] TEXT
//
//   --ids      print the ids only: [128000,9906,1917]   (default: [{"id":128000,"text":"<|begin_of_text|>"},...])
//   --no-bos   do not prepend BOS (by default BOS is added when the file's tokenizer.ggml.add_bos_token says so)
//   --special  match control tokens written in the text (<|im_start|>, <|eot_id|>, ...), as Hugging Face's encode
//              does; without it they are tokenized as plain text
//
// Reads only the tokenizer metadata (any GGUF file with tokenizer.ggml.*, vocabulary-only files included).
// Usage errors: one line on stderr, exit status 2; a file that cannot be read: one line, exit status 1.

#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cli.hpp"
#include "picospec/llama/gguf.hpp"
#include "picospec/llama/tokenizer.hpp"

using namespace picospec;
using namespace picospec::llama;

int main(int argc, char** argv) {
  std::string model, text;
  bool ids_only = false, no_bos = false, special = false;
  CLI::App app{"picospec-tokenize: token ids of TEXT under a GGUF file's tokenizer, as one JSON array on one line",
               "picospec-tokenize"};
  examples::Cli cli(app);
  app.add_option("-m,--model", model, "GGUF file with tokenizer metadata (vocabulary-only files too)")->required();
  app.add_flag("--ids", ids_only, "print the ids only");
  app.add_flag("--no-bos", no_bos, "do not prepend BOS (default: as the file's add_bos_token says)");
  app.add_flag("--special", special, "match control tokens written in the text (<|im_start|>, ...)");
  app.add_option("text", text, "the text to tokenize")->required();
  return cli.run(argc, argv, [&]() -> int {
    const auto tok = Tokenizer::from_gguf(GgufFile::open(model));
    const std::vector<Token> ids = tok->encode(text, !no_bos && tok->add_bos(), special);
    nlohmann::json out = nlohmann::json::array();
    Token prev = kNoToken;
    for (Token t : ids) {
      if (ids_only) {
        out.push_back(t);
      } else {
        // The raw piece for control tokens (decode gives them no text), the decoded bytes otherwise.
        const bool control = tok->type(t) == TokenType::control;
        out.push_back({{"id", t}, {"text", control ? tok->piece(t) : tok->token_to_text(t, prev)}});
      }
      prev = t;
    }
    // A BPE token may end inside a UTF-8 character: show such bytes as U+FFFD rather than failing.
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  });
}
