// decode(encode(line)) == line for every line of ../shared/data/corpus/* (tinystories, tinyshakespeare, the
// gutenberg texts; UTF-8 included) with stories260K's tokenizer (512 pieces + byte fallback).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "picospec/llama/gguf.hpp"
#include "picospec/llama/tokenizer.hpp"
#include "support/shared.hpp"

using namespace picospec;
using namespace picospec::llama;

TEST_CASE("every corpus line round-trips through encode/decode", "[tokenizer][corpus]") {
  const auto tok = Tokenizer::from_gguf(GgufFile::open(test::shared_model("stories260K.gguf").string()));
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(test::shared_data("corpus")))
    if (e.is_regular_file() && e.path().extension() == ".txt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 3);
  std::size_t lines = 0, tokens = 0, bytes = 0, non_ascii_lines = 0;
  for (const auto& p : files) {
    std::ifstream f(p, std::ios::binary);
    std::string line;
    while (std::getline(f, line)) {
      const auto ids = tok->encode(line);
      const std::string back = tok->decode(ids);
      if (back != line) {
        INFO(p.string() << " line " << lines);
        REQUIRE(back == line);
      }
      ++lines;
      tokens += ids.size();
      bytes += line.size();
      for (unsigned char c : line)
        if (c >= 0x80) {
          ++non_ascii_lines;
          break;
        }
    }
  }
  INFO(lines << " lines, " << bytes << " bytes, " << tokens << " tokens");
  CHECK(lines > 10000);
  CHECK(non_ascii_lines > 0);  // UTF-8 really was exercised
  CHECK(tokens < bytes);       // merging really happened
}
