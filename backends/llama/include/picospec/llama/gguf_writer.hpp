#pragma once
// GgufWriter: builds a GGUF (version 3, or 2 on request) file in memory. Used by the tests (robustness corpus,
// tiny models) and the benchmark (a larger random model), and handy for users who want to craft test models.
//
// Thread-safety: none (one thread builds a file). Not blocking except write_file().

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "picospec/llama/ggml_types.hpp"
#include "picospec/llama/gguf.hpp"

namespace picospec::llama {

class GgufWriter {
 public:
  explicit GgufWriter(std::uint32_t version = 3, std::uint32_t alignment = 32);

  /// Adds a metadata entry (any GgufValue, arrays and nested arrays included). Order is kept.
  void add(std::string key, GgufValue value);
  void add_u32(std::string key, std::uint32_t v);
  void add_i32(std::string key, std::int32_t v);
  void add_u64(std::string key, std::uint64_t v);
  void add_f32(std::string key, float v);
  void add_bool(std::string key, bool v);
  void add_string(std::string key, std::string v);
  void add_string_array(std::string key, const std::vector<std::string>& v);
  void add_f32_array(std::string key, const std::vector<float>& v);
  void add_i32_array(std::string key, const std::vector<std::int32_t>& v);

  /// Adds a tensor from floats, stored as `type` (F32, F16, BF16 or Q8_0). dims[0] is innermost.
  void add_tensor(std::string name, std::vector<std::uint64_t> dims, GgmlType type, std::span<const float> values);
  /// Adds a tensor from raw bytes already in `type`'s layout.
  void add_tensor_raw(std::string name, std::vector<std::uint64_t> dims, GgmlType type, std::vector<std::uint8_t> bytes);

  /// The file's bytes.
  [[nodiscard]] std::vector<std::uint8_t> bytes() const;
  /// Writes the file; throws picospec::Error when it cannot.
  void write_file(const std::string& path) const;

  /// Scalar value helpers for add().
  static GgufValue u32(std::uint32_t v);
  static GgufValue str(std::string v);
  static GgufValue array(GgufType elem, std::vector<GgufValue> items);

 private:
  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> dims;
    GgmlType type;
    std::vector<std::uint8_t> data;
  };
  std::uint32_t version_;
  std::uint32_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace picospec::llama
