#pragma once
// GGUF reader: versions 2 and 3 (little-endian), metadata of every value type (nested arrays included), tensor
// infos, alignment, and tensor data that stays memory-mapped.
//
// Every byte of the file is untrusted: the whole header is parsed and validated when the file is opened (counts
// and lengths against the bytes that remain, n_elements x type size against overflow, tensor data ranges inside
// the file, alignment, duplicate names, unknown value or tensor types). Failures throw picospec::DecodeError whose
// message names the file and the key or tensor at fault.
//
// Thread-safety: a GgufFile is immutable after construction; any number of threads may read it at once.
// Ownership: the file owns its mapping (or byte buffer); spans and pointers returned by it live as long as it does.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "picospec/llama/ggml_types.hpp"
#include "picospec/types.hpp"

namespace picospec::llama {

/// GGUF metadata value types (the numbers stored in the file).
enum class GgufType : std::uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9,
  u64 = 10, i64 = 11, f64 = 12,
};

/// One metadata value. Integers are kept in `u` (unsigned types) or `i` (signed types and bool), floats in `f`.
struct GgufValue {
  GgufType type = GgufType::u8;
  std::uint64_t u = 0;
  std::int64_t i = 0;
  double f = 0.0;
  std::string str;
  GgufType elem_type = GgufType::u8;  ///< arrays only
  std::vector<GgufValue> items;       ///< arrays only

  [[nodiscard]] bool is_integer() const noexcept;
  [[nodiscard]] bool is_float() const noexcept { return type == GgufType::f32 || type == GgufType::f64; }
};

/// One tensor's description. dims[0] is the innermost (contiguous) dimension, as in ggml.
struct GgufTensorInfo {
  std::string name;
  std::vector<std::uint64_t> dims;
  GgmlType type = GgmlType::f32;
  std::uint64_t offset = 0;  ///< relative to the start of the data section
  std::uint64_t n_elements = 0;
  std::uint64_t n_bytes = 0;
};

/// Limits applied while parsing (defensive caps against hostile headers).
struct GgufLimits {
  std::uint32_t max_array_depth = 4;
  std::uint32_t max_dims = 4;
};

class GgufFile {
 public:
  /// Memory-maps and validates `path`. Throws DecodeError (bad content) or Error (cannot open/map).
  static GgufFile open(const std::string& path, GgufLimits limits = {});
  /// Validates an in-memory copy (takes ownership). `name` is used in error messages.
  static GgufFile from_bytes(std::vector<std::uint8_t> bytes, std::string name = "<memory>", GgufLimits limits = {});

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] std::uint32_t version() const noexcept { return version_; }
  [[nodiscard]] std::uint64_t alignment() const noexcept { return alignment_; }
  [[nodiscard]] std::uint64_t data_offset() const noexcept { return data_offset_; }

  // ---- metadata
  [[nodiscard]] const std::map<std::string, GgufValue, std::less<>>& metadata() const noexcept { return kv_; }
  [[nodiscard]] const GgufValue* find(std::string_view key) const noexcept;
  [[nodiscard]] bool has(std::string_view key) const noexcept { return find(key) != nullptr; }
  /// Typed getters: throw DecodeError naming the file and key when the key is missing, has the wrong type, or does
  /// not fit the requested type. Integer getters accept any integer type whose value fits.
  [[nodiscard]] std::uint64_t get_uint(std::string_view key) const;
  [[nodiscard]] std::int64_t get_int(std::string_view key) const;
  [[nodiscard]] double get_float(std::string_view key) const;  ///< f32/f64 (integers accepted)
  [[nodiscard]] bool get_bool(std::string_view key) const;
  [[nodiscard]] const std::string& get_string(std::string_view key) const;
  [[nodiscard]] const GgufValue& get_array(std::string_view key, std::optional<GgufType> elem = std::nullopt) const;
  /// Optional variants: nullopt when absent; still throw when present with a wrong type.
  [[nodiscard]] std::optional<std::uint64_t> opt_uint(std::string_view key) const;
  [[nodiscard]] std::optional<double> opt_float(std::string_view key) const;
  [[nodiscard]] std::optional<bool> opt_bool(std::string_view key) const;

  // ---- tensors
  [[nodiscard]] const std::vector<GgufTensorInfo>& tensors() const noexcept { return tensors_; }
  [[nodiscard]] const GgufTensorInfo* find_tensor(std::string_view name) const noexcept;
  /// Tensor info by name; throws DecodeError naming the file and tensor when absent.
  [[nodiscard]] const GgufTensorInfo& tensor(std::string_view name) const;
  /// The tensor's bytes inside the mapping (already checked to lie inside the file).
  [[nodiscard]] std::span<const std::uint8_t> tensor_data(const GgufTensorInfo& t) const noexcept;

 private:
  struct Storage;
  GgufFile() = default;
  void parse(const GgufLimits& limits);
  [[noreturn]] void fail(const std::string& what) const;

  std::string name_;
  std::shared_ptr<const Storage> storage_;
  const std::uint8_t* bytes_ = nullptr;
  std::size_t size_ = 0;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = 32;
  std::uint64_t data_offset_ = 0;
  std::map<std::string, GgufValue, std::less<>> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, std::size_t, std::less<>> tensor_index_;
};

}  // namespace picospec::llama
