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

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/args.hpp"
#include "picospec/llama/gguf.hpp"
#include "picospec/llama/tokenizer.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

struct Options {
  std::string model, text;
  bool ids = false, no_bos = false, special = false;
};

Options parse(int argc, char** argv) {
  CLI::App app{"picospec-tokenize: token ids of TEXT under a GGUF file's tokenizer, as one JSON array"};
  Options o;
  app.add_option("-m,--model", o.model, "GGUF file with tokenizer metadata")->required();
  app.add_flag("--ids", o.ids, "print the ids only");
  app.add_flag("--no-bos", o.no_bos, "do not prepend BOS");
  app.add_flag("--special", o.special, "match control tokens written in the text");
  app.add_option("text", o.text, "the text to tokenize")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    std::exit(0);
  } catch (const CLI::ParseError& e) {
    throw examples::UsageError(e.what());
  }
  return o;
}

int run(const Options& o) {
  const auto tok = Tokenizer::from_gguf(GgufFile::open(o.model));
  const std::vector<Token> ids = tok->encode(o.text, !o.no_bos && tok->add_bos(), o.special);
  nlohmann::json out = nlohmann::json::array();
  Token prev = kNoToken;
  for (Token t : ids) {
    if (o.ids) {
      out.push_back(t);
    } else {
      // The raw piece for control tokens (decode gives them no text), the decoded bytes otherwise.
      const TokenType ty = tok->type(t);
      out.push_back({{"id", t}, {"text", ty == TokenType::control ? tok->piece(t) : tok->token_to_text(t, prev)}});
    }
    prev = t;
  }
  // A BPE token may end inside a UTF-8 character: show such bytes as U+FFFD rather than failing.
  std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::run_main("picospec-tokenize", [&] { return parse(argc, argv); }, [](const Options& o) { return run(o); });
}
