#include "picospec/llama/model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <thread>
#include <vector>

#include <Eigen/Core>
#include <Eigen/StdVector>

#include "kernels.hpp"
#include "picospec/llama/gguf.hpp"
#include "thread_pool.hpp"

namespace picospec::llama {

// ---------------------------------------------------------------------------------------------------------------
// Weights
// ---------------------------------------------------------------------------------------------------------------

/// A 2-D weight: `rows` rows of `cols` elements, each row `row_bytes` bytes of `type`.
struct WeightMatrix {
  GgmlType type = GgmlType::f32;
  const std::uint8_t* data = nullptr;
  std::size_t rows = 0, cols = 0, row_bytes = 0;
  [[nodiscard]] const std::uint8_t* row(std::size_t r) const noexcept { return data + r * row_bytes; }
};

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;
  WeightMatrix wq, wk, wv, wo, w_gate, w_up, w_down;
  std::vector<float> bq, bk, bv;      // qwen2: Q/K/V biases (empty otherwise)
  std::vector<float> q_norm, k_norm;  // qwen3: per-head RMSNorm weights, head_dim each (empty otherwise)
};

struct LlamaWeights::Impl {
  GgufFile file;
  std::string name;
  LlamaHParams hp;
  WeightFormat format = WeightFormat::native;
  std::shared_ptr<const Tokenizer> tokenizer;
  WeightMatrix token_embd, output;
  std::vector<float> output_norm;
  std::vector<float> rope_factors;  // rope_freqs.weight (Llama 3.1/3.2), empty when absent
  std::vector<LayerWeights> layers;
  std::vector<std::vector<float>> owned;  // dequantized copies (WeightFormat::f32)
  std::size_t weight_bytes = 0;

  explicit Impl(GgufFile f) : file(std::move(f)) {}

  [[noreturn]] void fail(const std::string& what) const { throw DecodeError("GGUF " + file.name() + ": " + what); }

  const GgufTensorInfo& expect(const std::string& tname, std::initializer_list<std::uint64_t> shape) const {
    const GgufTensorInfo& t = file.tensor(tname);
    const std::vector<std::uint64_t> want(shape);
    if (t.dims != want) {
      auto str = [](const std::vector<std::uint64_t>& d) {
        std::string s = "[";
        for (std::size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
        return s + "]";
      };
      fail("tensor '" + tname + "' has shape " + str(t.dims) + ", expected " + str(want) + " from the " + hp.arch +
           ".* hyperparameters");
    }
    if (!ggml_type_computable(t.type))
      fail("tensor '" + tname + "' has type " + ggml_type_name(static_cast<std::uint32_t>(t.type)) +
           ", which this backend cannot compute (supported: f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k)");
    return t;
  }

  WeightMatrix matrix(const std::string& tname, std::uint64_t cols, std::uint64_t rows) {
    const GgufTensorInfo& t = expect(tname, {cols, rows});
    WeightMatrix m;
    m.rows = static_cast<std::size_t>(rows);
    m.cols = static_cast<std::size_t>(cols);
    const auto bytes = file.tensor_data(t);
    if (format == WeightFormat::f32 && t.type != GgmlType::f32) {
      owned.emplace_back(m.rows * m.cols);
      auto& buf = owned.back();
      const std::size_t rb = row_bytes(t.type, m.cols);
      for (std::size_t r = 0; r < m.rows; ++r) dequantize_row(t.type, bytes.data() + r * rb, buf.data() + r * m.cols, m.cols);
      m.type = GgmlType::f32;
      m.data = reinterpret_cast<const std::uint8_t*>(buf.data());
    } else {
      m.type = t.type;
      m.data = bytes.data();
    }
    m.row_bytes = row_bytes(m.type, m.cols);
    weight_bytes += m.rows * m.row_bytes;
    return m;
  }

  std::vector<float> vector(const std::string& tname, std::uint64_t n) {
    const GgufTensorInfo& t = expect(tname, {n});
    std::vector<float> v(static_cast<std::size_t>(n));
    dequantize_row(t.type, file.tensor_data(t).data(), v.data(), v.size());
    return v;
  }

  void load() {
    const GgufFile& f = file;
    const std::string& arch = f.get_string("general.architecture");
    if (arch != "llama" && arch != "qwen2" && arch != "qwen3")
      fail("key 'general.architecture' is '" + arch + "'; only 'llama', 'qwen2' and 'qwen3' are supported");
    hp.arch = arch;
    hp.rope_neox = arch != "llama";  // llama.cpp: LLM_ARCH_QWEN2/QWEN3 use LLAMA_ROPE_TYPE_NEOX
    const std::string k_dim = arch + ".embedding_length", k_layers = arch + ".block_count",
                      k_ffn = arch + ".feed_forward_length", k_heads = arch + ".attention.head_count",
                      k_kv = arch + ".attention.head_count_kv", k_ctx = arch + ".context_length",
                      k_klen = arch + ".attention.key_length", k_vlen = arch + ".attention.value_length",
                      k_rope = arch + ".rope.dimension_count", k_base = arch + ".rope.freq_base",
                      k_eps = arch + ".attention.layer_norm_rms_epsilon";
    auto u32key = [&](const std::string& key, std::uint64_t max) -> std::uint32_t {
      const std::uint64_t v = f.get_uint(key);
      if (v == 0 || v > max) fail("key '" + key + "' = " + std::to_string(v) + " is out of range [1, " +
                                  std::to_string(max) + "]");
      return static_cast<std::uint32_t>(v);
    };
    hp.dim = u32key(k_dim, 1u << 16);
    hp.n_layers = u32key(k_layers, 1024);
    hp.ffn_dim = u32key(k_ffn, 1u << 18);
    hp.n_heads = u32key(k_heads, 1024);
    hp.n_kv_heads = f.has(k_kv) ? u32key(k_kv, 1024) : hp.n_heads;
    hp.context_length = u32key(k_ctx, 1u << 24);
    if (f.has(k_klen)) {  // head size set explicitly (Qwen3: 128 with dim 1024 and 16 heads)
      hp.head_dim = u32key(k_klen, 1u << 12);
      if (f.has(k_vlen) && u32key(k_vlen, 1u << 12) != hp.head_dim)
        fail("key '" + k_vlen + "' differs from '" + k_klen + "' (not supported)");
    } else {
      if (hp.dim % hp.n_heads != 0)
        fail("key '" + k_dim + "' (" + std::to_string(hp.dim) + ") is not a multiple of '" + k_heads + "' (" +
             std::to_string(hp.n_heads) + ")");
      hp.head_dim = hp.dim / hp.n_heads;
    }
    if (hp.n_heads % hp.n_kv_heads != 0) fail("key '" + k_heads + "' is not a multiple of '" + k_kv + "'");
    hp.rope_dim = f.has(k_rope) ? u32key(k_rope, 1u << 16) : hp.head_dim;
    if (hp.rope_dim % 2 != 0 || hp.rope_dim > hp.head_dim)
      fail("key '" + k_rope + "' (" + std::to_string(hp.rope_dim) + ") must be even and <= the head size " +
           std::to_string(hp.head_dim));
    const double base = f.opt_float(k_base).value_or(10000.0);
    if (!(base > 0.0) || !std::isfinite(base)) fail("key '" + k_base + "' must be a positive number");
    hp.rope_base = static_cast<float>(base);
    const double eps = f.get_float(k_eps);
    if (!(eps > 0.0) || !(eps < 1.0)) fail("key '" + k_eps + "' must be in (0, 1)");
    // RoPE scaling keys (llama.cpp): linear position interpolation is applied; Llama 3.1/3.2 scaling arrives as the
    // rope_freqs tensor instead; YaRN and others change the attention too and are refused rather than run wrongly.
    const std::string k_stype = arch + ".rope.scaling.type", k_sfactor = arch + ".rope.scaling.factor";
    if (f.has(k_stype)) {
      const std::string& st = f.get_string(k_stype);
      if (st == "linear") {
        const double fac = f.opt_float(k_sfactor).value_or(1.0);
        if (!(fac >= 1.0) || !std::isfinite(fac)) fail("key '" + k_sfactor + "' must be a number >= 1");
        hp.rope_freq_scale = static_cast<float>(1.0 / fac);
      } else if (st != "none") {
        fail("key '" + k_stype + "' is '" + st + "'; supported RoPE scaling: none, linear (and rope_freqs.weight)");
      }
    }
    hp.rms_eps = static_cast<float>(eps);
    name = f.has("general.name") ? f.get_string("general.name") : f.name();

    const GgufTensorInfo& emb = f.tensor("token_embd.weight");
    if (emb.dims.size() != 2) fail("tensor 'token_embd.weight' must have 2 dimensions");
    if (emb.dims[1] > (1u << 24)) fail("tensor 'token_embd.weight': vocabulary larger than 2^24");
    hp.vocab_size = static_cast<std::uint32_t>(emb.dims[1]);
    if (f.has("tokenizer.ggml.tokens")) {
      tokenizer = Tokenizer::from_gguf(f);
      if (tokenizer->vocab_size() != hp.vocab_size)
        fail("key 'tokenizer.ggml.tokens' has " + std::to_string(tokenizer->vocab_size()) +
             " tokens but tensor 'token_embd.weight' has " + std::to_string(hp.vocab_size) + " rows");
    }

    const std::uint32_t q = hp.n_heads * hp.head_dim, kv = hp.n_kv_heads * hp.head_dim;
    token_embd = matrix("token_embd.weight", hp.dim, hp.vocab_size);
    output_norm = vector("output_norm.weight", hp.dim);
    hp.tied_output = f.find_tensor("output.weight") == nullptr;
    output = hp.tied_output ? token_embd : matrix("output.weight", hp.dim, hp.vocab_size);
    if (f.find_tensor("rope_freqs.weight") != nullptr) {  // Llama 3.1/3.2: one divisor per frequency
      rope_factors = vector("rope_freqs.weight", hp.rope_dim / 2);
      for (float r : rope_factors)
        if (!(r > 0.0f) || !std::isfinite(r)) fail("tensor 'rope_freqs.weight' holds a factor that is not positive");
      hp.rope_freq_factors = true;
    }
    hp.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
    hp.qk_norm = f.find_tensor("blk.0.attn_q_norm.weight") != nullptr;
    layers.resize(hp.n_layers);
    for (std::uint32_t l = 0; l < hp.n_layers; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      LayerWeights& L = layers[l];
      L.attn_norm = vector(p + "attn_norm.weight", hp.dim);
      L.ffn_norm = vector(p + "ffn_norm.weight", hp.dim);
      L.wq = matrix(p + "attn_q.weight", hp.dim, q);
      L.wk = matrix(p + "attn_k.weight", hp.dim, kv);
      L.wv = matrix(p + "attn_v.weight", hp.dim, kv);
      L.wo = matrix(p + "attn_output.weight", q, hp.dim);
      L.w_gate = matrix(p + "ffn_gate.weight", hp.dim, hp.ffn_dim);
      L.w_up = matrix(p + "ffn_up.weight", hp.dim, hp.ffn_dim);
      L.w_down = matrix(p + "ffn_down.weight", hp.ffn_dim, hp.dim);
      if (hp.qkv_bias) {
        L.bq = vector(p + "attn_q.bias", q);
        L.bk = vector(p + "attn_k.bias", kv);
        L.bv = vector(p + "attn_v.bias", kv);
      }
      if (hp.qk_norm) {
        L.q_norm = vector(p + "attn_q_norm.weight", hp.head_dim);
        L.k_norm = vector(p + "attn_k_norm.weight", hp.head_dim);
      }
    }
  }
};

LlamaWeights::LlamaWeights(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LlamaWeights::~LlamaWeights() = default;

std::shared_ptr<const LlamaWeights> LlamaWeights::from_gguf(GgufFile file, WeightFormat format) {
  auto impl = std::make_unique<Impl>(std::move(file));
  impl->format = format;
  impl->load();
  return std::shared_ptr<const LlamaWeights>(new LlamaWeights(std::move(impl)));
}

std::shared_ptr<const LlamaWeights> LlamaWeights::load(const std::string& path, WeightFormat format) {
  return from_gguf(GgufFile::open(path), format);
}

const LlamaHParams& LlamaWeights::hparams() const noexcept { return impl_->hp; }
const std::string& LlamaWeights::name() const noexcept { return impl_->name; }
WeightFormat LlamaWeights::format() const noexcept { return impl_->format; }
std::shared_ptr<const Tokenizer> LlamaWeights::tokenizer() const noexcept { return impl_->tokenizer; }
const GgufFile& LlamaWeights::file() const noexcept { return impl_->file; }
std::size_t LlamaWeights::weight_bytes() const noexcept { return impl_->weight_bytes; }
ModelInfo LlamaWeights::info() const {
  ModelInfo info;  // what LlamaModel reports (make_info below), at the file's full context length
  info.name = name();
  info.vocab_size = hparams().vocab_size;
  info.context_length = hparams().context_length;
  if (const auto& t = tokenizer()) {
    info.tokenizer_fingerprint = t->fingerprint();
    info.bos = t->bos();
    info.eos = t->eos();
    info.eog = t->eog_tokens();
  }
  info.batch_invariant = true;
  return info;
}

// ---------------------------------------------------------------------------------------------------------------
// Model state: KV cache (per layer [position][kv_head * head_dim], grown with the context), activations, kernels,
// thread pool.
// ---------------------------------------------------------------------------------------------------------------

namespace {

using Vec = Eigen::Map<Eigen::VectorXf>;
using CVec = Eigen::Map<const Eigen::VectorXf>;

constexpr std::size_t pad16(std::size_t n) noexcept { return (n + 15) / 16 * 16; }

/// Activations for up to `cap` tokens, each row padded to a multiple of 16 floats.
struct Activations {
  std::size_t stride = 0, cap = 0;
  std::vector<float, Eigen::aligned_allocator<float>> data;  // every row starts on the same alignment
  void reserve(std::size_t rows, std::size_t width) {
    stride = pad16(width);
    if (rows > cap) {
      cap = rows;
      data.assign(cap * stride, 0.0f);
    }
  }
  float* row(std::size_t j) noexcept { return data.data() + j * stride; }
};

/// Below this many multiply-adds a matmul or attention runs on the calling thread alone.
constexpr std::size_t kParallelWork = 1u << 15;

}  // namespace

struct LlamaModel::State {
  const LlamaWeights::Impl* w;
  std::size_t ctx;
  const kernels::Table* K;
  detail::ThreadPool pool;
  std::size_t kv_cap = 0;                       // positions the cache holds now (grows up to ctx)
  std::vector<std::vector<float>> k_cache, v_cache;  // per layer: [position][kv_head * head_dim]
  std::vector<float> scores;                    // attention scratch: pool.size() rows of kv_cap floats
  Activations x, xn, q, k, v, att, gate, up;
  std::vector<double> inv_freq;
  std::vector<float> rope_cs;                   // per token of the current call: rope_dim/2 (cos, sin) pairs
  // A multi-sequence call (forward_many), per row of the call: its sequence and position; the logits of
  // several sequences are computed into one buffer and copied to each sequence's output.
  std::vector<std::uint32_t> row_seq;
  std::vector<std::size_t> row_pos;
  std::vector<Token> row_tok;
  std::vector<std::size_t> seq_row0;  // first row of each sequence
  std::vector<float> multi_logits;
  std::vector<float> branch_k, branch_v;  // [layer][row][kv]: K/V of branch rows (kept out of every cache)
  // The integer path: activation rows quantized once per input (kernels::Table::quantize_q8 / quantize_q8k, each
  // part when a matmul first needs it), reused by the matmuls that read the same input (Q/K/V, gate/up) while q_src
  // says which rows they are and which parts are filled.
  bool q8_int = true;
  std::vector<std::uint8_t, Eigen::aligned_allocator<std::uint8_t>> xq;
  struct {
    const float* x = nullptr;
    std::size_t stride = 0, rows = 0, cols = 0;
    bool blocks32 = false, super256 = false;
  } q_src;

  State(const LlamaWeights::Impl* weights, std::size_t context, std::size_t threads, bool q8_integer)
      : w(weights), ctx(context), K(&kernels::select()), pool(threads), q8_int(q8_integer) {
    const auto& hp = w->hp;
    k_cache.resize(hp.n_layers);
    v_cache.resize(hp.n_layers);
    inv_freq.resize(hp.rope_dim / 2);
    for (std::size_t i = 0; i < inv_freq.size(); ++i)
      inv_freq[i] = std::pow(static_cast<double>(hp.rope_base), -2.0 * static_cast<double>(i) / hp.rope_dim);
    if (!w->rope_factors.empty())  // Llama 3.1/3.2 frequency scaling, as llama.cpp: theta / factor
      for (std::size_t i = 0; i < inv_freq.size(); ++i) inv_freq[i] /= static_cast<double>(w->rope_factors[i]);
    for (auto& f : inv_freq) f *= static_cast<double>(hp.rope_freq_scale);  // linear scaling (1 = none)
  }

  /// Makes room for positions [0, need): capacity doubles (at least 64 positions), never beyond ctx.
  void grow_cache(std::size_t need) {
    if (need <= kv_cap) return;
    const std::size_t cap = std::min(ctx, std::max({need, 2 * kv_cap, std::size_t{64}}));
    const std::size_t row = static_cast<std::size_t>(w->hp.n_kv_heads) * w->hp.head_dim;
    try {
      for (std::size_t l = 0; l < k_cache.size(); ++l) {
        k_cache[l].resize(cap * row);
        v_cache[l].resize(cap * row);
      }
      scores.resize(pool.size() * cap);
    } catch (const std::bad_alloc&) {
      throw Error("LlamaModel: cannot grow the KV cache to " + std::to_string(cap) +
                  " positions; set LlamaParams::context_length lower");
    }
    kv_cap = cap;
  }

  float* k_at(std::size_t l, std::size_t g, std::size_t pos) noexcept {
    return k_cache[l].data() + (pos * w->hp.n_kv_heads + g) * w->hp.head_dim;
  }
  float* v_at(std::size_t l, std::size_t g, std::size_t pos) noexcept {
    return v_cache[l].data() + (pos * w->hp.n_kv_heads + g) * w->hp.head_dim;
  }

  /// The quantized activation rows X[0..nt) (integer path) with `part` filled: `reuse` (the caller knows X has not
  /// changed since the last call) takes them from the last quantization when that covered these rows.
  const std::uint8_t* quantized(const float* X, std::size_t xstride, std::size_t nt, std::size_t cols, bool reuse,
                                kernels::Q8Part part) {
    const std::size_t qb = kernels::q8_row_bytes(cols);
    std::size_t first = 0;  // row of the last quantization where X starts
    if (reuse && q_src.x != nullptr && q_src.stride == xstride && q_src.cols == cols && X >= q_src.x) {
      const std::size_t off = static_cast<std::size_t>(X - q_src.x);
      if (off % xstride == 0 && off / xstride + nt <= q_src.rows) first = off / xstride;
      else reuse = false;
    } else {
      reuse = false;
    }
    if (!reuse) {
      if (xq.size() < nt * qb) xq.resize(nt * qb);
      q_src = {X, xstride, nt, cols, false, false};
      first = 0;
    }
    // Fill the part for all the rows of the last quantization (later calls may read any of them).
    const bool b32 = part == kernels::Q8Part::blocks32;
    bool& filled = b32 ? q_src.blocks32 : q_src.super256;
    if (!filled) {  // rows split over the threads when there is enough of them (a prefill)
      const kernels::Table* kt = K;
      const float* x0 = q_src.x;
      const std::size_t stride = q_src.stride;
      std::uint8_t* out = xq.data();
      pool.parallel_for(q_src.rows, [&](std::size_t j0, std::size_t j1) {
        for (std::size_t j = j0; j < j1; ++j) {
          if (b32) kt->quantize_q8(x0 + j * stride, cols, out + j * qb);
          else kt->quantize_q8k(x0 + j * stride, cols, out + j * qb);
        }
      }, q_src.rows * cols < 4 * kParallelWork ? 1 : 0);
      filled = true;
    }
    return xq.data() + first * qb;
  }

  /// Y[j][r] = dot(W.row(r), X[j]) for j < nt, r < W.rows; rows are split across threads in whole row tiles.
  /// reuse_q: X holds the same values as at the previous call (see quantized()).
  void matmul(const WeightMatrix& W, const float* X, std::size_t xstride, std::size_t nt, float* Y,
              std::size_t ystride, bool reuse_q = false) {
    const kernels::Weights kw{W.type, W.data, W.rows, W.cols, W.row_bytes};
    const std::size_t rt = K->row_tile;
    const std::size_t units = (W.rows + rt - 1) / rt;
    const std::size_t work = W.rows * W.cols * nt;
    const kernels::Table* kt = K;
    if (!reuse_q) q_src.x = nullptr;  // X may have changed since the last quantization
    if (q8_int && kernels::has_int_path(W.type) && W.cols % 32 == 0) {
      const std::uint8_t* XQ = quantized(X, xstride, nt, W.cols, reuse_q, kernels::q8_part(W.type));
      const std::size_t qb = kernels::q8_row_bytes(W.cols);
      pool.parallel_for(units, [&](std::size_t u0, std::size_t u1) {
        kt->matmul_q8(kw, u0 * rt, std::min(u1 * rt, kw.rows), XQ, qb, nt, Y, ystride);
      }, work < 2 * kParallelWork ? 1 : 0);
      return;
    }
    pool.parallel_for(units, [&](std::size_t u0, std::size_t u1) {
      kt->matmul(kw, u0 * rt, std::min(u1 * rt, kw.rows), X, xstride, nt, Y, ystride);
    }, work < 2 * kParallelWork ? 1 : 0);
  }

  void rmsnorm(const float* in, const std::vector<float>& weight, float* out) const {
    const std::size_t n = weight.size();
    const float ss = K->dot(in, in, n);
    const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + w->hp.rms_eps);
    Vec(out, static_cast<Eigen::Index>(n)) =
        (CVec(in, static_cast<Eigen::Index>(n)) * scale).cwiseProduct(CVec(weight.data(), static_cast<Eigen::Index>(n)));
  }

  /// (cos, sin) of every RoPE angle of each row's position (row_pos), once per call for all layers.
  void rope_table(std::size_t nt) {
    const std::size_t half = inv_freq.size();
    if (rope_cs.size() < nt * half * 2) rope_cs.resize(nt * half * 2);
    for (std::size_t j = 0; j < nt; ++j)
      for (std::size_t i = 0; i < half; ++i) {
        const double a = static_cast<double>(row_pos[j]) * inv_freq[i];
        rope_cs[(j * half + i) * 2] = static_cast<float>(std::cos(a));
        rope_cs[(j * half + i) * 2 + 1] = static_cast<float>(std::sin(a));
      }
  }

  void rope(float* vec, std::size_t n_heads, std::size_t j) const {
    const auto& hp = w->hp;
    const std::size_t half = inv_freq.size();
    const float* cs = rope_cs.data() + j * half * 2;
    for (std::size_t i = 0; i < half; ++i) {
      const float c = cs[2 * i], s = cs[2 * i + 1];
      const std::size_t off = hp.rope_neox ? i : 2 * i, other = hp.rope_neox ? hp.rope_dim / 2 : 1;
      for (std::size_t h = 0; h < n_heads; ++h) {
        float* p = vec + h * hp.head_dim + off;  // pairs (2i, 2i+1), or (i, i + rope_dim/2) for NEOX
        const float x0 = p[0], x1 = p[other];
        p[0] = x0 * c - x1 * s;
        p[other] = x0 * s + x1 * c;
      }
    }
  }

  /// qwen2: q (rows jb..nt-1, the ones computed), k, v (rows 0..nt-1) += their biases (per token: batch-invariant).
  void add_qkv_bias(const LayerWeights& L, std::size_t jb, std::size_t nt) {
    for (std::size_t j = 0; j < nt; ++j) {
      if (j >= jb)
        for (std::size_t i = 0; i < L.bq.size(); ++i) q.row(j)[i] += L.bq[i];
      for (std::size_t i = 0; i < L.bk.size(); ++i) k.row(j)[i] += L.bk[i];
      for (std::size_t i = 0; i < L.bv.size(); ++i) v.row(j)[i] += L.bv[i];
    }
  }

  /// qwen3: RMSNorm of every query and key head (head_dim values each), before RoPE.
  void norm_qk_heads(const LayerWeights& L, std::size_t jb, std::size_t nt) {
    const auto& hp = w->hp;
    for (std::size_t j = 0; j < nt; ++j) {
      if (j >= jb)
        for (std::size_t h = 0; h < hp.n_heads; ++h)
          rmsnorm(q.row(j) + h * hp.head_dim, L.q_norm, q.row(j) + h * hp.head_dim);
      for (std::size_t h = 0; h < hp.n_kv_heads; ++h)
        rmsnorm(k.row(j) + h * hp.head_dim, L.k_norm, k.row(j) + h * hp.head_dim);
    }
  }

  /// One sequence of a multi-sequence call: its state (KV cache), tokens, first position and output rows.
  struct Seq {
    State* st;
    std::span<const Token> tokens;
    std::size_t pos0;
    float* out;  // tokens.size() rows of vocab floats (rows from first_out on, for a single sequence)
    /// A branch: the context is st's first pos0 positions followed by `tokens`, whose K/V stay in this call's
    /// scratch (st's cache is not written); `out` receives the last token's row only.
    bool branch = false;
  };

  /// Evaluates `tokens` at positions pos0.. and writes the logits of tokens [first_out, nt) to out (one row each,
  /// `vocab` floats apart). Rows before first_out are only run as far as the KV cache needs them.
  void forward(std::span<const Token> tokens, std::size_t pos0, std::size_t first_out, float* out) {
    const Seq one{this, tokens, pos0, out};
    forward_many(std::span<const Seq>(&one, 1), first_out);
  }

  /// Several sequences (distinct states over these weights) in one pass: the rows of all of them go through each
  /// weight matrix together (every weight read once per call); RoPE, the KV cache and attention are per sequence.
  /// Every row is computed exactly as in a call of its own (the kernels' reduction order per output element does
  /// not depend on the rows beside it), so the result is bit-identical to one call per sequence. This state's
  /// thread pool and scratch are used. first_out applies to a single sequence only (several: every row).
  void forward_many(std::span<const Seq> seqs, std::size_t first_out) {
    const auto& hp = w->hp;
    const std::size_t hd = hp.head_dim, nq = hp.n_heads * hd, nkv = hp.n_kv_heads * hd;
    if (seqs.size() > 1) first_out = 0;
    std::size_t nt = 0, max_pos = 0;
    bool any_branch = false;
    for (const Seq& sq : seqs) {
      if (!sq.branch) sq.st->grow_cache(sq.pos0 + sq.tokens.size());
      any_branch = any_branch || sq.branch;
      nt += sq.tokens.size();
      max_pos = std::max(max_pos, sq.pos0 + sq.tokens.size());
    }
    if (scores.size() < pool.size() * max_pos) scores.resize(pool.size() * max_pos);
    const std::size_t sc_stride = max_pos;
    if (any_branch) {
      branch_k.resize(hp.n_layers * nt * nkv);
      branch_v.resize(hp.n_layers * nt * nkv);
    }
    row_seq.resize(nt);
    row_pos.resize(nt);
    row_tok.resize(nt);
    seq_row0.resize(seqs.size());
    for (std::size_t s = 0, r = 0; s < seqs.size(); ++s)
      for (std::size_t j = 0; j < seqs[s].tokens.size(); ++j, ++r) {
        if (j == 0) seq_row0[s] = r;
        row_seq[r] = static_cast<std::uint32_t>(s);
        row_pos[r] = seqs[s].pos0 + j;
        row_tok[r] = seqs[s].tokens[j];
      }
    x.reserve(nt, hp.dim);
    xn.reserve(nt, hp.dim);
    q.reserve(nt, nq);
    k.reserve(nt, nkv);
    v.reserve(nt, nkv);
    att.reserve(nt, nq);
    gate.reserve(nt, hp.ffn_dim);
    up.reserve(nt, hp.ffn_dim);
    rope_table(nt);

    for (std::size_t j = 0; j < nt; ++j)
      dequantize_row(w->token_embd.type, w->token_embd.row(static_cast<std::size_t>(row_tok[j])), x.row(j), hp.dim);

    const float att_scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const std::size_t group = hp.n_heads / hp.n_kv_heads;
    const kernels::Table* kt = K;
    for (std::size_t l = 0; l < hp.n_layers; ++l) {
      const LayerWeights& L = w->layers[l];
      // The last layer's output is only needed for the rows asked for (its K/V are still stored for every row).
      const std::size_t jb = l + 1 == hp.n_layers ? first_out : 0, nr = nt - jb;
      for (std::size_t j = 0; j < nt; ++j) rmsnorm(x.row(j), L.attn_norm, xn.row(j));
      matmul(L.wk, xn.row(0), xn.stride, nt, k.row(0), k.stride);
      matmul(L.wv, xn.row(0), xn.stride, nt, v.row(0), v.stride, true);
      matmul(L.wq, xn.row(jb), xn.stride, nr, q.row(jb), q.stride, true);
      if (hp.qkv_bias) add_qkv_bias(L, jb, nt);
      if (hp.qk_norm) norm_qk_heads(L, jb, nt);
      for (std::size_t j = 0; j < nt; ++j) {
        if (j >= jb) rope(q.row(j), hp.n_heads, j);
        rope(k.row(j), hp.n_kv_heads, j);
        const Seq& sj = seqs[row_seq[j]];
        float* kd = sj.branch ? branch_k.data() + (l * nt + j) * nkv : sj.st->k_at(l, 0, row_pos[j]);
        float* vd = sj.branch ? branch_v.data() + (l * nt + j) * nkv : sj.st->v_at(l, 0, row_pos[j]);
        std::copy_n(k.row(j), nkv, kd);
        std::copy_n(v.row(j), nkv, vd);
      }
      // Attention: one task per (token, head); each query row is computed the same way whatever the chunk.
      const std::size_t tasks = nr * hp.n_heads;
      std::size_t att_work = 0;
      for (std::size_t j = jb; j < nt; ++j) att_work += (row_pos[j] + 1) * hd * hp.n_heads;
      pool.parallel_for(tasks, [&](std::size_t t0, std::size_t t1, std::size_t part) {
        float* sc = scores.data() + part * sc_stride;
        for (std::size_t t = t0; t < t1; ++t) {
          const std::size_t j = jb + t / hp.n_heads, h = t % hp.n_heads, g = h / group;
          const std::size_t n_pos = row_pos[j] + 1;
          const Seq& sj = seqs[row_seq[j]];
          State& sq = *sj.st;
          // Key / value of position p for this row: a branch's own tokens are in the scratch, the rest in a cache.
          const std::size_t own0 = sj.branch ? sj.pos0 : n_pos;
          const std::size_t scratch_row0 = seq_row0[row_seq[j]];
          auto key = [&](std::size_t p) {
            return p < own0 ? sq.k_at(l, g, p) : branch_k.data() + (l * nt + scratch_row0 + (p - own0)) * nkv + g * hd;
          };
          auto val = [&](std::size_t p) {
            return p < own0 ? sq.v_at(l, g, p) : branch_v.data() + (l * nt + scratch_row0 + (p - own0)) * nkv + g * hd;
          };
          const float* qh = q.row(j) + h * hd;
          float mx = -std::numeric_limits<float>::infinity();
          for (std::size_t p = 0; p < n_pos; ++p) {
            sc[p] = kt->dot(qh, key(p), hd) * att_scale;
            mx = std::max(mx, sc[p]);
          }
          float sum = 0.0f;
          for (std::size_t p = 0; p < n_pos; ++p) {
            sc[p] = std::exp(sc[p] - mx);
            sum += sc[p];
          }
          float* o = att.row(j) + h * hd;
          std::fill_n(o, hd, 0.0f);
          for (std::size_t p = 0; p < n_pos; ++p) kt->axpy(sc[p], val(p), o, hd);
          Vec(o, static_cast<Eigen::Index>(hd)) *= 1.0f / sum;
        }
      }, att_work < kParallelWork ? 1 : 0);
      matmul(L.wo, att.row(jb), att.stride, nr, xn.row(jb), xn.stride);
      for (std::size_t j = jb; j < nt; ++j)
        Vec(x.row(j), hp.dim) += CVec(xn.row(j), hp.dim);

      for (std::size_t j = jb; j < nt; ++j) rmsnorm(x.row(j), L.ffn_norm, xn.row(j));
      matmul(L.w_gate, xn.row(jb), xn.stride, nr, gate.row(jb), gate.stride);
      matmul(L.w_up, xn.row(jb), xn.stride, nr, up.row(jb), up.stride, true);
      for (std::size_t j = jb; j < nt; ++j) {
        Vec gv(gate.row(j), hp.ffn_dim);
        // SwiGLU: silu(g) * u, elementwise
        gv = (gv.array() / (1.0f + (-gv.array()).exp())) * CVec(up.row(j), hp.ffn_dim).array();
      }
      matmul(L.w_down, gate.row(jb), gate.stride, nr, xn.row(jb), xn.stride);
      for (std::size_t j = jb; j < nt; ++j)
        Vec(x.row(j), hp.dim) += CVec(xn.row(j), hp.dim);
    }
    for (std::size_t j = first_out; j < nt; ++j) rmsnorm(x.row(j), w->output_norm, xn.row(j));
    if (seqs.size() == 1) {
      matmul(w->output, xn.row(first_out), xn.stride, nt - first_out, seqs[0].out, hp.vocab_size);
      return;
    }
    multi_logits.resize(nt * hp.vocab_size);
    matmul(w->output, xn.row(0), xn.stride, nt, multi_logits.data(), hp.vocab_size);
    for (std::size_t s = 0, r = 0; s < seqs.size(); r += seqs[s].tokens.size(), ++s) {
      if (seqs[s].tokens.empty()) continue;
      if (seqs[s].branch)
        std::copy_n(multi_logits.data() + (r + seqs[s].tokens.size() - 1) * hp.vocab_size, hp.vocab_size, seqs[s].out);
      else
        std::copy_n(multi_logits.data() + r * hp.vocab_size, seqs[s].tokens.size() * hp.vocab_size, seqs[s].out);
    }
  }
};

namespace {

ModelInfo make_info(const LlamaWeights& w, const LlamaParams& p) {
  const auto& hp = w.hparams();
  ModelInfo info;
  info.name = w.name();
  info.vocab_size = hp.vocab_size;
  info.context_length = p.context_length != 0 ? std::min(p.context_length, hp.context_length) : hp.context_length;
  if (auto t = w.tokenizer()) {
    info.tokenizer_fingerprint = t->fingerprint();
    info.bos = t->bos();
    info.eos = t->eos();
    info.eog = t->eog_tokens();
  }
  info.batch_invariant = true;
  return info;
}

bool resolve_q8(const std::optional<bool>& q8) {
  if (q8) return *q8;
  const char* env = std::getenv("PICOSPEC_LLAMA_Q8");
  if (env == nullptr || *env == '\0' || std::strcmp(env, "int") == 0) return true;
  if (std::strcmp(env, "float") == 0) return false;
  throw Error("PICOSPEC_LLAMA_Q8=" + std::string(env).substr(0, 32) + ": unknown (use int or float)");
}

std::size_t resolve_threads(std::size_t t) {
  if (t != 0) return t;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : hw;
}

const std::shared_ptr<const LlamaWeights>& non_null(const std::shared_ptr<const LlamaWeights>& w) {
  if (!w) throw Error("LlamaModel: null weights");
  return w;
}

}  // namespace

LlamaModel::LlamaModel(std::shared_ptr<const LlamaWeights> weights, LlamaParams params)
    : CausalLM(make_info(*non_null(weights), params)), weights_(std::move(weights)) {
  if (params.threads > 1024) throw Error("LlamaModel: threads must be <= 1024");
  st_ = std::make_unique<State>(&weights_->impl(), info_.context_length, resolve_threads(params.threads),
                                resolve_q8(params.q8_activations));
}

std::unique_ptr<LlamaModel> LlamaModel::load(const std::string& path, LlamaParams params) {
  return std::make_unique<LlamaModel>(LlamaWeights::load(path, params.weights), params);
}

LlamaModel::~LlamaModel() = default;

std::size_t LlamaModel::threads() const noexcept { return st_->pool.size(); }

void LlamaModel::do_forward(std::span<const Token> tokens, LogitRows& out) {
  st_->forward(tokens, length(), 0, out.data());
}

const void* LlamaModel::do_batch_key() const noexcept { return weights_.get(); }

void LlamaModel::do_forward_batch(std::span<const BatchItem> items) {
  std::vector<State::Seq> seqs;
  seqs.reserve(items.size());
  for (const BatchItem& it : items) {
    auto* m = dynamic_cast<LlamaModel*>(it.model);
    if (m == nullptr || m->weights_.get() != weights_.get() || m->st_->q8_int != st_->q8_int)
      return CausalLM::do_forward_batch(items);
    seqs.push_back({m->st_.get(), it.tokens, m->length(), it.out->data()});
  }
  st_->forward_many(seqs, 0);
}

bool LlamaModel::do_forward_with_branches(std::span<const Token> tokens, LogitRows& out,
                                          std::span<const Branch> branches, LogitRows& branch_out) {
  // The main tokens and every branch in one pass: a branch attends to the context's first `base` positions in the
  // cache (the main tokens of this call included: each layer stores them before its attention) and to its own
  // tail, whose K/V stay in scratch. Rows are bit-identical to forwarding each branch alone and truncating.
  std::vector<State::Seq> seqs;
  seqs.reserve(branches.size() + 1);
  seqs.push_back({st_.get(), tokens, length(), out.data()});
  for (std::size_t b = 0; b < branches.size(); ++b)
    seqs.push_back({st_.get(), branches[b].tail, branches[b].base, branch_out.row(b).data(), true});
  st_->forward_many(seqs, 0);
  return true;
}

void LlamaModel::do_forward_last(std::span<const Token> tokens, LogitRows& out) {
  st_->forward(tokens, length(), tokens.size() - 1, out.data());
}

const char* LlamaModel::kernel_isa() const noexcept { return kernels::isa_name(st_->K->isa); }

const char* LlamaModel::q8_path() const noexcept { return st_->q8_int ? "int" : "float"; }

void LlamaModel::do_truncate(std::size_t) {
  // Positions >= n are simply overwritten by later forward() calls; attention never reads past the context length.
  // The cache keeps its capacity (it grows with the context, and is freed with the model).
}

}  // namespace picospec::llama
