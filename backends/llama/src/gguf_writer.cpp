#include "picospec/llama/gguf_writer.hpp"

#include <cstring>
#include <fstream>

namespace picospec::llama {

namespace {

template <class T>
void put(std::vector<std::uint8_t>& out, T v) {
  const auto n = out.size();
  out.resize(n + sizeof(T));
  std::memcpy(out.data() + n, &v, sizeof(T));
}

void put_string(std::vector<std::uint8_t>& out, const std::string& s) {
  put<std::uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

void put_value(std::vector<std::uint8_t>& out, const GgufValue& v) {
  switch (v.type) {
    case GgufType::u8: put<std::uint8_t>(out, static_cast<std::uint8_t>(v.u)); break;
    case GgufType::i8: put<std::int8_t>(out, static_cast<std::int8_t>(v.i)); break;
    case GgufType::u16: put<std::uint16_t>(out, static_cast<std::uint16_t>(v.u)); break;
    case GgufType::i16: put<std::int16_t>(out, static_cast<std::int16_t>(v.i)); break;
    case GgufType::u32: put<std::uint32_t>(out, static_cast<std::uint32_t>(v.u)); break;
    case GgufType::i32: put<std::int32_t>(out, static_cast<std::int32_t>(v.i)); break;
    case GgufType::u64: put<std::uint64_t>(out, v.u); break;
    case GgufType::i64: put<std::int64_t>(out, v.i); break;
    case GgufType::f32: put<float>(out, static_cast<float>(v.f)); break;
    case GgufType::f64: put<double>(out, v.f); break;
    case GgufType::boolean: put<std::uint8_t>(out, v.i != 0 ? 1 : 0); break;
    case GgufType::string: put_string(out, v.str); break;
    case GgufType::array:
      put<std::uint32_t>(out, static_cast<std::uint32_t>(v.elem_type));
      put<std::uint64_t>(out, v.items.size());
      for (const auto& it : v.items) put_value(out, it);
      break;
  }
}

}  // namespace

GgufWriter::GgufWriter(std::uint32_t version, std::uint32_t alignment) : version_(version), alignment_(alignment) {
  if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0) throw Error("GgufWriter: alignment must be a power of two");
  if (alignment_ != 32) add_u32("general.alignment", alignment_);
}

GgufValue GgufWriter::u32(std::uint32_t v) {
  GgufValue x;
  x.type = GgufType::u32;
  x.u = v;
  return x;
}
GgufValue GgufWriter::str(std::string v) {
  GgufValue x;
  x.type = GgufType::string;
  x.str = std::move(v);
  return x;
}
GgufValue GgufWriter::array(GgufType elem, std::vector<GgufValue> items) {
  GgufValue x;
  x.type = GgufType::array;
  x.elem_type = elem;
  x.items = std::move(items);
  return x;
}

void GgufWriter::add(std::string key, GgufValue value) { kv_.emplace_back(std::move(key), std::move(value)); }
void GgufWriter::add_u32(std::string key, std::uint32_t v) { add(std::move(key), u32(v)); }
void GgufWriter::add_i32(std::string key, std::int32_t v) {
  GgufValue x;
  x.type = GgufType::i32;
  x.i = v;
  add(std::move(key), std::move(x));
}
void GgufWriter::add_u64(std::string key, std::uint64_t v) {
  GgufValue x;
  x.type = GgufType::u64;
  x.u = v;
  add(std::move(key), std::move(x));
}
void GgufWriter::add_f32(std::string key, float v) {
  GgufValue x;
  x.type = GgufType::f32;
  x.f = v;
  add(std::move(key), std::move(x));
}
void GgufWriter::add_bool(std::string key, bool v) {
  GgufValue x;
  x.type = GgufType::boolean;
  x.i = v ? 1 : 0;
  add(std::move(key), std::move(x));
}
void GgufWriter::add_string(std::string key, std::string v) { add(std::move(key), str(std::move(v))); }
void GgufWriter::add_string_array(std::string key, const std::vector<std::string>& v) {
  std::vector<GgufValue> items;
  items.reserve(v.size());
  for (const auto& s : v) items.push_back(str(s));
  add(std::move(key), array(GgufType::string, std::move(items)));
}
void GgufWriter::add_f32_array(std::string key, const std::vector<float>& v) {
  std::vector<GgufValue> items(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    items[i].type = GgufType::f32;
    items[i].f = v[i];
  }
  add(std::move(key), array(GgufType::f32, std::move(items)));
}
void GgufWriter::add_i32_array(std::string key, const std::vector<std::int32_t>& v) {
  std::vector<GgufValue> items(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    items[i].type = GgufType::i32;
    items[i].i = v[i];
  }
  add(std::move(key), array(GgufType::i32, std::move(items)));
}

void GgufWriter::add_tensor(std::string name, std::vector<std::uint64_t> dims, GgmlType type,
                            std::span<const float> values) {
  std::uint64_t n = 1;
  for (auto d : dims) n *= d;
  if (n != values.size()) throw Error("GgufWriter::add_tensor '" + name + "': value count does not match the shape");
  const std::size_t row = dims.empty() ? 0 : static_cast<std::size_t>(dims[0]);
  const std::size_t rows = row == 0 ? 0 : static_cast<std::size_t>(n) / row;
  std::vector<std::uint8_t> bytes(rows * row_bytes(type, row));
  for (std::size_t r = 0; r < rows; ++r)
    quantize_row(type, values.data() + r * row, bytes.data() + r * row_bytes(type, row), row);
  add_tensor_raw(std::move(name), std::move(dims), type, std::move(bytes));
}

void GgufWriter::add_tensor_raw(std::string name, std::vector<std::uint64_t> dims, GgmlType type,
                                std::vector<std::uint8_t> bytes) {
  tensors_.push_back(Tensor{std::move(name), std::move(dims), type, std::move(bytes)});
}

std::vector<std::uint8_t> GgufWriter::bytes() const {
  std::vector<std::uint8_t> out;
  put<std::uint32_t>(out, 0x46554747u);
  put<std::uint32_t>(out, version_);
  put<std::uint64_t>(out, tensors_.size());
  put<std::uint64_t>(out, kv_.size());
  for (const auto& [k, v] : kv_) {
    put_string(out, k);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(v.type));
    put_value(out, v);
  }
  auto align_up = [&](std::uint64_t x) { return (x + alignment_ - 1) / alignment_ * alignment_; };
  std::uint64_t off = 0;
  for (const auto& t : tensors_) {
    put_string(out, t.name);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(t.dims.size()));
    for (auto d : t.dims) put<std::uint64_t>(out, d);
    put<std::uint32_t>(out, static_cast<std::uint32_t>(t.type));
    put<std::uint64_t>(out, off);
    off = align_up(off + t.data.size());
  }
  const std::size_t data_start = static_cast<std::size_t>(align_up(out.size()));
  out.resize(data_start, 0);
  for (const auto& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    out.resize(data_start + static_cast<std::size_t>(align_up(out.size() - data_start)), 0);
  }
  return out;
}

void GgufWriter::write_file(const std::string& path) const {
  const auto b = bytes();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw Error("GgufWriter: cannot create " + path);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  if (!f) throw Error("GgufWriter: cannot write " + path);
}

}  // namespace picospec::llama
