#include "picospec/llama/gguf.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

namespace picospec::llama {

// ---------------------------------------------------------------------------------------------------------------
// Storage: a read-only mapping of a file (RAII) or an owned byte vector.
// ---------------------------------------------------------------------------------------------------------------
struct GgufFile::Storage {
  void* map = nullptr;
  std::size_t map_size = 0;
  std::vector<std::uint8_t> owned;

  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (map != nullptr) ::munmap(map, map_size);
  }
};

namespace {

constexpr std::uint32_t kMagic = 0x46554747u;  // "GGUF" little-endian

class Cursor {
 public:
  Cursor(const std::uint8_t* p, std::size_t n) : p_(p), n_(n) {}
  [[nodiscard]] std::size_t pos() const noexcept { return pos_; }
  [[nodiscard]] std::size_t remaining() const noexcept { return n_ - pos_; }

  template <class T>
  bool read(T& out) noexcept {
    if (remaining() < sizeof(T)) return false;
    std::memcpy(&out, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool read_bytes(std::size_t len, std::string& out) {
    if (remaining() < len) return false;
    out.assign(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return true;
  }

 private:
  const std::uint8_t* p_;
  std::size_t n_;
  std::size_t pos_ = 0;
};

bool valid_value_type(std::uint32_t t) noexcept { return t <= 12; }

// Smallest number of bytes one value of type t can take in the file (for checking array counts up front).
std::size_t min_value_bytes(GgufType t) noexcept {
  switch (t) {
    case GgufType::u8: case GgufType::i8: case GgufType::boolean: return 1;
    case GgufType::u16: case GgufType::i16: return 2;
    case GgufType::u32: case GgufType::i32: case GgufType::f32: return 4;
    case GgufType::u64: case GgufType::i64: case GgufType::f64: return 8;
    case GgufType::string: return 8;
    case GgufType::array: return 12;
  }
  return 1;
}

const char* value_type_name(GgufType t) noexcept {
  switch (t) {
    case GgufType::u8: return "u8"; case GgufType::i8: return "i8"; case GgufType::u16: return "u16";
    case GgufType::i16: return "i16"; case GgufType::u32: return "u32"; case GgufType::i32: return "i32";
    case GgufType::f32: return "f32"; case GgufType::boolean: return "bool"; case GgufType::string: return "string";
    case GgufType::array: return "array"; case GgufType::u64: return "u64"; case GgufType::i64: return "i64";
    case GgufType::f64: return "f64";
  }
  return "?";
}

}  // namespace

bool GgufValue::is_integer() const noexcept {
  switch (type) {
    case GgufType::u8: case GgufType::i8: case GgufType::u16: case GgufType::i16: case GgufType::u32:
    case GgufType::i32: case GgufType::u64: case GgufType::i64: return true;
    default: return false;
  }
}

GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

void GgufFile::fail(const std::string& what) const { throw DecodeError("GGUF " + name_ + ": " + what); }

GgufFile GgufFile::open(const std::string& path, GgufLimits limits) {
  GgufFile f;
  f.name_ = path;
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer; it is refused below like any other
  // file that is not regular (directory, device, socket).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw Error("GGUF " + path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error("GGUF " + path + ": cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    const char* kind = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    throw Error("GGUF " + path + ": not a regular file (" + kind + ")");
  }
  auto storage = std::make_shared<Storage>();
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size > 0) {
    void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      throw Error("GGUF " + path + ": cannot map: " + std::strerror(e));
    }
    storage->map = m;
    storage->map_size = size;
  }
  ::close(fd);
  f.bytes_ = static_cast<const std::uint8_t*>(storage->map);
  f.size_ = size;
  f.storage_ = std::move(storage);
  f.parse(limits);
  return f;
}

GgufFile GgufFile::from_bytes(std::vector<std::uint8_t> bytes, std::string name, GgufLimits limits) {
  GgufFile f;
  f.name_ = std::move(name);
  auto storage = std::make_shared<Storage>();
  storage->owned = std::move(bytes);
  f.bytes_ = storage->owned.data();
  f.size_ = storage->owned.size();
  f.storage_ = std::move(storage);
  f.parse(limits);
  return f;
}

void GgufFile::parse(const GgufLimits& limits) {
  Cursor c(bytes_, size_);
  std::uint32_t magic = 0;
  if (!c.read(magic)) fail("truncated: shorter than the 4-byte magic");
  if (magic != kMagic) fail("bad magic (not a GGUF file)");
  if (!c.read(version_)) fail("truncated in the header (version)");
  if (version_ != 2 && version_ != 3) {
    if (version_ == 1) fail("GGUF version 1 is not supported (versions 2 and 3 are)");
    if (version_ == 0x02000000u || version_ == 0x03000000u) fail("big-endian GGUF files are not supported");
    fail("unsupported GGUF version " + std::to_string(version_) + " (versions 2 and 3 are supported)");
  }
  std::uint64_t n_tensors = 0, n_kv = 0;
  if (!c.read(n_tensors) || !c.read(n_kv)) fail("truncated in the header (counts)");
  // Each kv takes >= 8 (key length) + 4 (type) + 1 bytes; each tensor info >= 8 + 4 + 4 + 8 bytes.
  if (n_kv > c.remaining() / 13) fail("metadata count " + std::to_string(n_kv) + " exceeds the file size");
  if (n_tensors > c.remaining() / 24) fail("tensor count " + std::to_string(n_tensors) + " exceeds the file size");

  auto read_string = [&](std::string& out, const std::string& what) {
    std::uint64_t len = 0;
    if (!c.read(len)) fail("truncated reading the length of " + what);
    if (len > c.remaining()) fail("length " + std::to_string(len) + " of " + what + " runs past the end of the file");
    c.read_bytes(static_cast<std::size_t>(len), out);
  };

  // Recursive value reader with a depth cap.
  auto read_value = [&](auto& self, GgufType t, GgufValue& v, std::uint32_t depth, const std::string& key) -> void {
    v.type = t;
    bool ok = true;
    switch (t) {
      case GgufType::u8: { std::uint8_t x = 0; ok = c.read(x); v.u = x; break; }
      case GgufType::i8: { std::int8_t x = 0; ok = c.read(x); v.i = x; break; }
      case GgufType::u16: { std::uint16_t x = 0; ok = c.read(x); v.u = x; break; }
      case GgufType::i16: { std::int16_t x = 0; ok = c.read(x); v.i = x; break; }
      case GgufType::u32: { std::uint32_t x = 0; ok = c.read(x); v.u = x; break; }
      case GgufType::i32: { std::int32_t x = 0; ok = c.read(x); v.i = x; break; }
      case GgufType::u64: { std::uint64_t x = 0; ok = c.read(x); v.u = x; break; }
      case GgufType::i64: { std::int64_t x = 0; ok = c.read(x); v.i = x; break; }
      case GgufType::f32: { float x = 0; ok = c.read(x); v.f = x; break; }
      case GgufType::f64: { double x = 0; ok = c.read(x); v.f = x; break; }
      case GgufType::boolean: {
        std::uint8_t x = 0;
        ok = c.read(x);
        if (ok && x > 1) fail("key '" + key + "': bool value " + std::to_string(x) + " is neither 0 nor 1");
        v.i = x;
        break;
      }
      case GgufType::string: read_string(v.str, "the string value of key '" + key + "'"); break;
      case GgufType::array: {
        if (depth >= limits.max_array_depth) fail("key '" + key + "': arrays nested deeper than " +
                                                   std::to_string(limits.max_array_depth));
        std::uint32_t et = 0;
        std::uint64_t n = 0;
        if (!c.read(et) || !c.read(n)) fail("truncated in the array header of key '" + key + "'");
        if (!valid_value_type(et)) fail("key '" + key + "': unknown array element type " + std::to_string(et));
        v.elem_type = static_cast<GgufType>(et);
        if (n > c.remaining() / min_value_bytes(v.elem_type))
          fail("key '" + key + "': array of " + std::to_string(n) + " elements runs past the end of the file");
        v.items.resize(static_cast<std::size_t>(n));
        for (auto& item : v.items) self(self, v.elem_type, item, depth + 1, key);
        break;
      }
    }
    if (!ok) fail("truncated in the value of key '" + key + "'");
  };

  for (std::uint64_t k = 0; k < n_kv; ++k) {
    std::string key;
    read_string(key, "metadata key #" + std::to_string(k));
    std::uint32_t t = 0;
    if (!c.read(t)) fail("truncated in the type of key '" + key + "'");
    if (!valid_value_type(t)) fail("key '" + key + "': unknown value type " + std::to_string(t));
    GgufValue v;
    read_value(read_value, static_cast<GgufType>(t), v, 0, key);
    if (kv_.count(key) != 0) fail("duplicate metadata key '" + key + "'");
    kv_.emplace(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_integer() || a->u == 0 || a->u > (1u << 20) || (a->u & (a->u - 1)) != 0)
      fail("key 'general.alignment' must be an unsigned power of two <= 2^20");
    alignment_ = a->u;
  }

  tensors_.reserve(static_cast<std::size_t>(n_tensors));
  for (std::uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo ti;
    read_string(ti.name, "the name of tensor #" + std::to_string(k));
    std::uint32_t nd = 0;
    if (!c.read(nd)) fail("truncated in the info of tensor '" + ti.name + "'");
    if (nd == 0 || nd > limits.max_dims)
      fail("tensor '" + ti.name + "': " + std::to_string(nd) + " dimensions (1.." + std::to_string(limits.max_dims) +
           " supported)");
    ti.dims.resize(nd);
    std::uint64_t n_el = 1;
    for (auto& d : ti.dims) {
      if (!c.read(d)) fail("truncated in the dimensions of tensor '" + ti.name + "'");
      if (d == 0) fail("tensor '" + ti.name + "': a dimension is zero");
      if (n_el > std::numeric_limits<std::uint64_t>::max() / d) fail("tensor '" + ti.name + "': element count overflows");
      n_el *= d;
    }
    std::uint32_t type = 0;
    if (!c.read(type) || !c.read(ti.offset)) fail("truncated in the info of tensor '" + ti.name + "'");
    const auto tr = ggml_type_traits(type);
    if (!tr) fail("tensor '" + ti.name + "': unknown tensor type " + std::to_string(type));
    ti.type = static_cast<GgmlType>(type);
    if (ti.dims[0] % tr->block_elems != 0)
      fail("tensor '" + ti.name + "': first dimension " + std::to_string(ti.dims[0]) + " is not a multiple of the " +
           tr->name + " block size " + std::to_string(tr->block_elems));
    const std::uint64_t blocks = n_el / tr->block_elems;
    if (blocks > std::numeric_limits<std::uint64_t>::max() / tr->block_bytes)
      fail("tensor '" + ti.name + "': byte size overflows");
    ti.n_elements = n_el;
    ti.n_bytes = blocks * tr->block_bytes;
    if (ti.offset % alignment_ != 0)
      fail("tensor '" + ti.name + "': data offset " + std::to_string(ti.offset) + " is not a multiple of the alignment " +
           std::to_string(alignment_));
    if (tensor_index_.count(ti.name) != 0) fail("duplicate tensor name '" + ti.name + "'");
    tensor_index_.emplace(ti.name, tensors_.size());
    tensors_.push_back(std::move(ti));
  }

  // Data section starts at the next multiple of the alignment.
  const std::uint64_t header_end = c.pos();
  data_offset_ = (header_end + alignment_ - 1) / alignment_ * alignment_;
  if (!tensors_.empty() && data_offset_ > size_) fail("truncated: the data section starts past the end of the file");
  const std::uint64_t data_size = size_ >= data_offset_ ? size_ - data_offset_ : 0;
  for (const auto& ti : tensors_) {
    if (ti.offset > data_size || ti.n_bytes > data_size - ti.offset)
      fail("tensor '" + ti.name + "': data [" + std::to_string(ti.offset) + ", +" + std::to_string(ti.n_bytes) +
           ") runs past the end of the file (data section holds " + std::to_string(data_size) + " bytes)");
  }
}

const GgufValue* GgufFile::find(std::string_view key) const noexcept {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

namespace {
std::string qkey(std::string_view k) { return "key '" + std::string(k) + "'"; }
}  // namespace

std::uint64_t GgufFile::get_uint(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) fail("missing required " + qkey(key));
  if (!v->is_integer()) fail(qkey(key) + " has type " + value_type_name(v->type) + ", expected an integer");
  switch (v->type) {
    case GgufType::u8: case GgufType::u16: case GgufType::u32: case GgufType::u64: return v->u;
    default:
      if (v->i < 0) fail(qkey(key) + " is negative (" + std::to_string(v->i) + ")");
      return static_cast<std::uint64_t>(v->i);
  }
}

std::int64_t GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) fail("missing required " + qkey(key));
  if (!v->is_integer()) fail(qkey(key) + " has type " + value_type_name(v->type) + ", expected an integer");
  switch (v->type) {
    case GgufType::u8: case GgufType::u16: case GgufType::u32: case GgufType::u64:
      if (v->u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) fail(qkey(key) + " is too large");
      return static_cast<std::int64_t>(v->u);
    default: return v->i;
  }
}

double GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) fail("missing required " + qkey(key));
  if (v->is_float()) return v->f;
  if (v->is_integer()) return static_cast<double>(get_int(key));
  fail(qkey(key) + " has type " + value_type_name(v->type) + ", expected a number");
}

bool GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) fail("missing required " + qkey(key));
  if (v->type != GgufType::boolean) fail(qkey(key) + " has type " + value_type_name(v->type) + ", expected bool");
  return v->i != 0;
}

const std::string& GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) fail("missing required " + qkey(key));
  if (v->type != GgufType::string) fail(qkey(key) + " has type " + value_type_name(v->type) + ", expected string");
  return v->str;
}

const GgufValue& GgufFile::get_array(std::string_view key, std::optional<GgufType> elem) const {
  const GgufValue* v = find(key);
  if (v == nullptr) fail("missing required " + qkey(key));
  if (v->type != GgufType::array) fail(qkey(key) + " has type " + value_type_name(v->type) + ", expected array");
  if (elem && v->elem_type != *elem)
    fail(qkey(key) + " is an array of " + value_type_name(v->elem_type) + ", expected " + value_type_name(*elem));
  return *v;
}

std::optional<std::uint64_t> GgufFile::opt_uint(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_uint(key);
}
std::optional<double> GgufFile::opt_float(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_float(key);
}
std::optional<bool> GgufFile::opt_bool(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_bool(key);
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const noexcept {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::tensor(std::string_view name) const {
  const GgufTensorInfo* t = find_tensor(name);
  if (t == nullptr) fail("missing required tensor '" + std::string(name) + "'");
  return *t;
}

std::span<const std::uint8_t> GgufFile::tensor_data(const GgufTensorInfo& t) const noexcept {
  return {bytes_ + data_offset_ + t.offset, static_cast<std::size_t>(t.n_bytes)};
}

}  // namespace picospec::llama
