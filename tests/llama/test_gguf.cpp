// GGUF reader/writer: round trips of every metadata type, versions 2 and 3, alignment, tensor types, and the
// validation errors (each must name the file and the key or tensor at fault).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <future>
#include <limits>
#include <string>

#include "picospec/llama/gguf.hpp"
#include "picospec/llama/gguf_writer.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/llama/random_model.hpp"

using namespace picospec;
using namespace picospec::llama;

namespace {

GgufValue scalar(GgufType t, std::uint64_t u, std::int64_t i, double f) {
  GgufValue v;
  v.type = t;
  v.u = u;
  v.i = i;
  v.f = f;
  return v;
}

std::string error_of(const std::vector<std::uint8_t>& bytes, const char* name = "test.gguf") {
  try {
    auto f = GgufFile::from_bytes(bytes, name);
    (void)LlamaWeights::from_gguf(std::move(f));
  } catch (const DecodeError& e) {
    return e.what();
  } catch (const Error& e) {
    return std::string("Error: ") + e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("every metadata value type round-trips, nested arrays included", "[gguf]") {
  for (std::uint32_t version : {2u, 3u}) {
    GgufWriter w(version, 64);
    w.add("a.u8", scalar(GgufType::u8, 200, 0, 0));
    w.add("a.i8", scalar(GgufType::i8, 0, -100, 0));
    w.add("a.u16", scalar(GgufType::u16, 60000, 0, 0));
    w.add("a.i16", scalar(GgufType::i16, 0, -30000, 0));
    w.add_u32("a.u32", 4000000000u);
    w.add_i32("a.i32", -2000000000);
    w.add_u64("a.u64", 1ull << 60);
    w.add("a.i64", scalar(GgufType::i64, 0, -(1ll << 60), 0));
    w.add_f32("a.f32", 1.5f);
    w.add("a.f64", scalar(GgufType::f64, 0, 0, 0.1));
    w.add_bool("a.bool", true);
    w.add_string("a.str", "h\xC3\xA9llo");
    w.add_string_array("a.strs", {"x", "", "yz"});
    w.add("a.nested", GgufWriter::array(GgufType::array, {GgufWriter::array(GgufType::u32, {GgufWriter::u32(7)}),
                                                          GgufWriter::array(GgufType::string, {GgufWriter::str("q")})}));
    const std::vector<float> vals = {1, 2, 3, 4};
    w.add_tensor("t", {2, 2}, GgmlType::f32, vals);
    auto f = GgufFile::from_bytes(w.bytes(), "mem");
    CHECK(f.version() == version);
    CHECK(f.alignment() == 64);
    CHECK(f.data_offset() % 64 == 0);
    CHECK(f.get_uint("a.u8") == 200);
    CHECK(f.get_int("a.i8") == -100);
    CHECK(f.get_uint("a.u16") == 60000);
    CHECK(f.get_int("a.i16") == -30000);
    CHECK(f.get_uint("a.u32") == 4000000000u);
    CHECK(f.get_int("a.i32") == -2000000000);
    CHECK(f.get_uint("a.u64") == (1ull << 60));
    CHECK(f.get_int("a.i64") == -(1ll << 60));
    CHECK(f.get_float("a.f32") == 1.5);
    CHECK(f.get_float("a.f64") == 0.1);
    CHECK(f.get_bool("a.bool"));
    CHECK(f.get_string("a.str") == "h\xC3\xA9llo");
    const auto& strs = f.get_array("a.strs", GgufType::string);
    REQUIRE(strs.items.size() == 3);
    CHECK(strs.items[2].str == "yz");
    const auto& nested = f.get_array("a.nested", GgufType::array);
    REQUIRE(nested.items.size() == 2);
    CHECK(nested.items[0].items.at(0).u == 7);
    CHECK(nested.items[1].items.at(0).str == "q");
    const auto& t = f.tensor("t");
    CHECK(t.n_elements == 4);
    float back[4];
    std::memcpy(back, f.tensor_data(t).data(), 16);
    CHECK(back[3] == 4.0f);
    // wrong types are reported with the key
    CHECK_THROWS_WITH(f.get_string("a.u32"), Catch::Contains("a.u32") && Catch::Contains("mem"));
    CHECK_THROWS_WITH(f.get_uint("a.i8"), Catch::Contains("negative"));
    CHECK_THROWS_WITH(f.get_uint("nope"), Catch::Contains("missing required key 'nope'"));
    CHECK_THROWS_WITH(f.tensor("nope"), Catch::Contains("missing required tensor 'nope'"));
  }
}

TEST_CASE("half and bfloat16 conversions", "[gguf]") {
  for (float x : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.333333f}) {
    CHECK(std::fabs(half_to_float(float_to_half(x)) - x) <= std::fabs(x) * 1e-3f + 1e-7f);
    CHECK(std::fabs(bf16_to_float(float_to_bf16(x)) - x) <= std::fabs(x) * 8e-3f);
  }
  CHECK(std::isinf(half_to_float(float_to_half(70000.0f))));
  CHECK(std::isnan(half_to_float(float_to_half(std::numeric_limits<float>::quiet_NaN()))));
  // every finite half converts to float and back exactly
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 10) & 0x1f) == 0x1f) continue;
    REQUIRE(float_to_half(half_to_float(static_cast<std::uint16_t>(h))) == h);
  }
}

TEST_CASE("tensor types F32 F16 BF16 Q8_0 load and dequantize", "[gguf]") {
  std::vector<float> v(64);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(static_cast<float>(i)) * 3.0f;
  for (GgmlType t : {GgmlType::f32, GgmlType::f16, GgmlType::bf16, GgmlType::q8_0}) {
    GgufWriter w;
    w.add_tensor("x", {64}, t, v);
    auto f = GgufFile::from_bytes(w.bytes());
    const auto& ti = f.tensor("x");
    CHECK(ti.type == t);
    std::vector<float> back(64);
    dequantize_row(t, f.tensor_data(ti).data(), back.data(), 64);
    const float tol = t == GgmlType::f32 ? 0.0f : t == GgmlType::q8_0 ? 3.0f / 127.0f : 0.02f;
    for (std::size_t i = 0; i < v.size(); ++i) REQUIRE(std::fabs(back[i] - v[i]) <= tol);
  }
}

TEST_CASE("header validation errors name the file and the fault", "[gguf]") {
  RandomLlamaSpec spec;
  const auto good = random_llama_gguf(spec).bytes();
  CHECK(error_of(good).empty());

  auto bad = good;
  bad[0] = 'X';
  CHECK_THAT(error_of(bad), Catch::Contains("test.gguf") && Catch::Contains("bad magic"));
  bad = good;
  bad[4] = 1;
  CHECK_THAT(error_of(bad), Catch::Contains("version 1"));
  bad = good;
  bad[4] = 9;
  CHECK_THAT(error_of(bad), Catch::Contains("unsupported GGUF version 9"));
  CHECK_THAT(error_of({}), Catch::Contains("truncated"));
  CHECK_THAT(error_of(std::vector<std::uint8_t>(good.begin(), good.begin() + 100)), Catch::Contains("truncated") || Catch::Contains("exceeds") ||
                                                                                   Catch::Contains("past the end"));
  CHECK_THAT(error_of(std::vector<std::uint8_t>(good.begin(), good.end() - 1)), Catch::Contains("runs past the end"));
  // tensor count far beyond the file
  bad = good;
  bad[15] = 0x7f;
  CHECK_THAT(error_of(bad), Catch::Contains("tensor count"));
}

TEST_CASE("model-level validation: missing keys and tensors, shapes, types, arch", "[gguf]") {
  auto build = [](auto&& mutate) {
    GgufWriter w;
    RandomLlamaSpec s;
    s.n_layers = 1;
    // Rebuild by hand so individual pieces can be left out or changed.
    w.add_string("general.architecture", "llama");
    w.add_u32("llama.context_length", 64);
    w.add_u32("llama.embedding_length", 32);
    w.add_u32("llama.feed_forward_length", 48);
    w.add_u32("llama.block_count", 1);
    w.add_u32("llama.attention.head_count", 4);
    w.add_u32("llama.attention.head_count_kv", 2);
    w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    auto zeros = [](std::size_t n) { return std::vector<float>(n, 0.5f); };
    std::map<std::string, std::vector<std::uint64_t>> shapes = {
        {"token_embd.weight", {32, 300}}, {"output_norm.weight", {32}}, {"blk.0.attn_norm.weight", {32}},
        {"blk.0.ffn_norm.weight", {32}}, {"blk.0.attn_q.weight", {32, 32}}, {"blk.0.attn_k.weight", {32, 16}},
        {"blk.0.attn_v.weight", {32, 16}}, {"blk.0.attn_output.weight", {32, 32}},
        {"blk.0.ffn_gate.weight", {32, 48}}, {"blk.0.ffn_up.weight", {32, 48}}, {"blk.0.ffn_down.weight", {48, 32}}};
    std::map<std::string, GgmlType> types;
    mutate(w, shapes, types);
    for (auto& [name, dims] : shapes) {
      std::size_t n = 1;
      for (auto d : dims) n *= d;
      const GgmlType t = types.count(name) ? types[name] : GgmlType::f32;
      if (t == GgmlType::f32 || t == GgmlType::q8_0)
        w.add_tensor(name, dims, t, zeros(n));
      else
        w.add_tensor_raw(name, dims, t, std::vector<std::uint8_t>(n / 256 * 144));
    }
    return w.bytes();
  };
  using Shapes = std::map<std::string, std::vector<std::uint64_t>>;
  using Types = std::map<std::string, GgmlType>;
  CHECK(error_of(build([](GgufWriter&, Shapes&, Types&) {})).empty());
  CHECK_THAT(error_of(build([](GgufWriter&, Shapes& s, Types&) { s.erase("blk.0.ffn_up.weight"); })),
             Catch::Contains("missing required tensor 'blk.0.ffn_up.weight'"));
  CHECK_THAT(error_of(build([](GgufWriter&, Shapes& s, Types&) { s["blk.0.attn_k.weight"] = {32, 32}; })),
             Catch::Contains("'blk.0.attn_k.weight' has shape [32, 32], expected [32, 16]"));
  CHECK_THAT(error_of(build([](GgufWriter&, Shapes& s, Types& t) {
               s["blk.0.attn_q.weight"] = {256, 4};  // shape wrong too, but type first would be fine either way
               t["blk.0.attn_q.weight"] = GgmlType::q4_k;
             })),
             Catch::Contains("blk.0.attn_q.weight"));
  CHECK_THAT(error_of(build([](GgufWriter& w, Shapes&, Types&) { w.add_u32("llama.embedding_length", 33); })),
             Catch::Contains("duplicate metadata key 'llama.embedding_length'"));
  CHECK_THAT(error_of(build([](GgufWriter& w, Shapes&, Types&) { w.add_string("general.alignment", "x"); })),
             Catch::Contains("general.alignment"));
  // a file without the required epsilon key
  {
    GgufWriter w;
    w.add_string("general.architecture", "llama");
    CHECK_THAT(error_of(w.bytes()), Catch::Contains("missing required key 'llama."));
  }
  {
    GgufWriter w;
    w.add_string("general.architecture", "gpt2");
    CHECK_THAT(error_of(w.bytes()), Catch::Contains("only 'llama'"));
  }
}

TEST_CASE("files open through mmap and bad paths fail clearly", "[gguf]") {
  const auto path = std::filesystem::temp_directory_path() / "picospec_llama_test_gguf.gguf";
  RandomLlamaSpec spec;
  random_llama_gguf(spec).write_file(path.string());
  auto f = GgufFile::open(path.string());
  CHECK(f.find_tensor("token_embd.weight") != nullptr);
  auto m = LlamaModel::load(path.string(), {.threads = 1});
  CHECK(m->info().vocab_size == spec.vocab_size);
  std::filesystem::remove(path);
  CHECK_THROWS_WITH(GgufFile::open("/nonexistent/dir/x.gguf"), Catch::Contains("/nonexistent/dir/x.gguf"));
}

TEST_CASE("files that are not regular are refused at once with one line (FIFO, directory, device)", "[gguf]") {
  const auto dir = std::filesystem::temp_directory_path() / ("picospec_gguf_fifo_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string fifo = (dir / "model.gguf").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // Without O_NONBLOCK the open would wait for a writer forever: run it on another thread, bounded by 10 s; if it
  // hangs, a writer releases it and the test fails.
  auto attempt = [](const std::string& path, bool model) {
    return std::async(std::launch::async, [path, model]() -> std::string {
      try {
        if (model)
          (void)LlamaWeights::load(path);
        else
          (void)GgufFile::open(path);
        return "opened";
      } catch (const Error& e) {
        return e.what();
      }
    });
  };
  for (bool model : {false, true}) {
    auto result = attempt(fifo, model);
    if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // a writer: the blocked open returns
      (void)result.wait();
      if (w >= 0) ::close(w);
      std::filesystem::remove_all(dir);
      FAIL("opening a FIFO blocked");
    }
    const std::string msg = result.get();
    INFO(msg);
    CHECK(msg == "GGUF " + fifo + ": not a regular file (a FIFO)");
  }
  CHECK_THROWS_WITH(GgufFile::open(dir.string()), "GGUF " + dir.string() + ": not a regular file (a directory)");
  CHECK_THROWS_WITH(GgufFile::open("/dev/null"), "GGUF /dev/null: not a regular file (a character device)");
  std::filesystem::remove_all(dir);
}
