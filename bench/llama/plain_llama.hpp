#pragma once
// PlainLlama: the baseline bench_llama measures picospec::llama against in the same run. A plain reference loop
// over the same GGUF file: every weight dequantized to F32 at load, one thread, textbook loops (a dot product per
// output element, softmax attention over the cache), no tiling, no SIMD beyond what the compiler does on its own.
// It computes the same function as LlamaModel (same RoPE, norms, SwiGLU; Qwen3's per-head Q/K norms and NEOX
// rotation) and the logits of the rows asked for.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "picospec/llama/ggml_types.hpp"
#include "picospec/llama/gguf.hpp"
#include "picospec/llama/model.hpp"

namespace plain {

using picospec::Token;
using namespace picospec::llama;

class PlainLlama {
 public:
  explicit PlainLlama(const std::string& path) : hp_(LlamaWeights::load(path)->hparams()) {
    const GgufFile f = GgufFile::open(path);
    auto load = [&](const std::string& name) {
      const GgufTensorInfo& t = f.tensor(name);
      std::size_t n = 1;
      for (auto d : t.dims) n *= static_cast<std::size_t>(d);
      std::vector<float> v(n);
      dequantize_row(t.type, f.tensor_data(t).data(), v.data(), n);
      return v;
    };
    embd_ = load("token_embd.weight");
    out_norm_ = load("output_norm.weight");
    out_ = f.find_tensor("output.weight") ? load("output.weight") : embd_;
    for (std::uint32_t l = 0; l < hp_.n_layers; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      layers_.push_back({load(p + "attn_norm.weight"), load(p + "ffn_norm.weight"), load(p + "attn_q.weight"),
                         load(p + "attn_k.weight"), load(p + "attn_v.weight"), load(p + "attn_output.weight"),
                         load(p + "ffn_gate.weight"), load(p + "ffn_up.weight"), load(p + "ffn_down.weight"),
                         hp_.qk_norm ? load(p + "attn_q_norm.weight") : std::vector<float>(),
                         hp_.qk_norm ? load(p + "attn_k_norm.weight") : std::vector<float>()});
    }
    const std::size_t kv = static_cast<std::size_t>(hp_.n_kv_heads) * hp_.head_dim;
    kcache_.assign(hp_.n_layers, std::vector<float>(hp_.context_length * kv));
    vcache_.assign(hp_.n_layers, std::vector<float>(hp_.context_length * kv));
  }

  /// Evaluates `tokens` at positions pos0.. and returns the logits of every token (all) or of the last one.
  std::vector<float> forward(const std::vector<Token>& tokens, std::size_t pos0, bool all) {
    const std::size_t D = hp_.dim, hd = hp_.head_dim, nh = hp_.n_heads, nkv = hp_.n_kv_heads, F = hp_.ffn_dim;
    const std::size_t V = hp_.vocab_size, kvd = nkv * hd;
    std::vector<float> logits, x(D), xn(D), q(nh * hd), k(kvd), v(kvd), att(nh * hd), tmp(D), g(F), u(F);
    for (std::size_t j = 0; j < tokens.size(); ++j) {
      const std::size_t pos = pos0 + j;
      for (std::size_t i = 0; i < D; ++i) x[i] = embd_[static_cast<std::size_t>(tokens[j]) * D + i];
      for (std::size_t l = 0; l < hp_.n_layers; ++l) {
        const Layer& L = layers_[l];
        rmsnorm(x, L.attn_norm, xn);
        matvec(L.wq, xn, q);
        matvec(L.wk, xn, k);
        matvec(L.wv, xn, v);
        if (hp_.qk_norm) {  // qwen3: RMSNorm of every query / key head before the rotation
          head_norm(q, nh, L.q_norm);
          head_norm(k, nkv, L.k_norm);
        }
        rope(q, nh, pos);
        rope(k, nkv, pos);
        for (std::size_t i = 0; i < kvd; ++i) {
          kcache_[l][pos * kvd + i] = k[i];
          vcache_[l][pos * kvd + i] = v[i];
        }
        for (std::size_t h = 0; h < nh; ++h) {
          const std::size_t kh = h / (nh / nkv);
          std::vector<float> s(pos + 1);
          float mx = -INFINITY, sum = 0.0f;
          for (std::size_t p = 0; p <= pos; ++p) {
            float d = 0.0f;
            for (std::size_t e = 0; e < hd; ++e) d += q[h * hd + e] * kcache_[l][p * kvd + kh * hd + e];
            s[p] = d / std::sqrt(static_cast<float>(hd));
            mx = std::max(mx, s[p]);
          }
          for (std::size_t p = 0; p <= pos; ++p) sum += (s[p] = std::exp(s[p] - mx));
          for (std::size_t e = 0; e < hd; ++e) {
            float o = 0.0f;
            for (std::size_t p = 0; p <= pos; ++p) o += s[p] * vcache_[l][p * kvd + kh * hd + e];
            att[h * hd + e] = o / sum;
          }
        }
        matvec(L.wo, att, tmp);
        for (std::size_t i = 0; i < D; ++i) x[i] += tmp[i];
        rmsnorm(x, L.ffn_norm, xn);
        matvec(L.gate, xn, g);
        matvec(L.up, xn, u);
        for (std::size_t i = 0; i < F; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
        matvec(L.down, g, tmp);
        for (std::size_t i = 0; i < D; ++i) x[i] += tmp[i];
      }
      if (all || j + 1 == tokens.size()) {
        std::vector<float> row(V);
        rmsnorm(x, out_norm_, xn);
        matvec(out_, xn, row);
        logits.insert(logits.end(), row.begin(), row.end());
      }
    }
    return logits;
  }

 private:
  struct Layer {
    std::vector<float> attn_norm, ffn_norm, wq, wk, wv, wo, gate, up, down, q_norm, k_norm;
  };
  void head_norm(std::vector<float>& vec, std::size_t heads, const std::vector<float>& w) const {
    const std::size_t hd = hp_.head_dim;
    std::vector<float> h(hd), out(hd);
    for (std::size_t i = 0; i < heads; ++i) {
      const auto first = vec.begin() + static_cast<std::ptrdiff_t>(i * hd);
      std::copy(first, first + static_cast<std::ptrdiff_t>(hd), h.begin());
      rmsnorm(h, w, out);
      std::copy(out.begin(), out.end(), first);
    }
  }
  static void matvec(const std::vector<float>& W, const std::vector<float>& x, std::vector<float>& y) {
    const std::size_t n = x.size();
    for (std::size_t r = 0; r < y.size(); ++r) {
      float s = 0.0f;
      for (std::size_t i = 0; i < n; ++i) s += W[r * n + i] * x[i];
      y[r] = s;
    }
  }
  void rmsnorm(const std::vector<float>& x, const std::vector<float>& w, std::vector<float>& y) const {
    float ss = 0.0f;
    for (float e : x) ss += e * e;
    const float scale = 1.0f / std::sqrt(ss / static_cast<float>(x.size()) + hp_.rms_eps);
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] * scale * w[i];
  }
  void rope(std::vector<float>& vec, std::size_t heads, std::size_t pos) const {
    for (std::size_t i = 0; i < hp_.rope_dim / 2; ++i) {
      const double a = static_cast<double>(pos) * std::pow(static_cast<double>(hp_.rope_base),
                                                           -2.0 * static_cast<double>(i) / hp_.rope_dim);
      const auto c = static_cast<float>(std::cos(a)), s = static_cast<float>(std::sin(a));
      for (std::size_t h = 0; h < heads; ++h) {
        // llama: pairs (2i, 2i+1); NEOX (qwen2, qwen3): pairs (i, i + rope_dim/2)
        float* p0 = vec.data() + h * hp_.head_dim + (hp_.rope_neox ? i : 2 * i);
        float* p1 = hp_.rope_neox ? p0 + hp_.rope_dim / 2 : p0 + 1;
        const float x0 = *p0, x1 = *p1;
        *p0 = x0 * c - x1 * s;
        *p1 = x0 * s + x1 * c;
      }
    }
  }

  LlamaHParams hp_;
  std::vector<float> embd_, out_norm_, out_;
  std::vector<Layer> layers_;
  std::vector<std::vector<float>> kcache_, vcache_;
};

}  // namespace plain
