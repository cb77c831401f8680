#pragma once
// Helpers shared by the kernel tests (test_kernels.cpp, test_q8.cpp, test_qk.cpp): the kernel tables this CPU runs,
// seeded random weight matrices in a ggml type (with their dequantized floats), activation rows, quantized
// activation rows, bitwise comparison and a scoped environment variable.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "../../backends/llama/src/kernels.hpp"
#include "picospec/llama/ggml_types.hpp"

namespace picospec::llama::test {

namespace K = picospec::llama::kernels;

/// Every kernel table this CPU runs; with avx512_both, the AVX-512 one both with and without VNNI.
inline std::vector<const K::Table*> kernel_variants(bool avx512_both = true) {
  std::vector<const K::Table*> v;
  for (K::Isa isa : {K::Isa::generic, K::Isa::avx2})
    if (const K::Table* t = K::table(isa)) v.push_back(t);
  if (K::table(K::Isa::avx512) == nullptr) return v;
  if (!avx512_both) {
    v.push_back(K::table(K::Isa::avx512));
    return v;
  }
  v.push_back(K::avx512_bw_table());
  if (const K::Table* t = K::avx512_vnni_table()) v.push_back(t);
  else WARN("no avx512vnni on this CPU: the VNNI product is not tested");
  return v;
}

/// A weight matrix as stored (`bytes`, ggml `type`) and the same weights as floats (`deq`).
struct QuantMatrix {
  GgmlType type;
  std::size_t rows, cols, rb;
  std::vector<std::uint8_t> bytes;
  std::vector<float> deq;
  [[nodiscard]] K::Weights weights() const { return {type, bytes.data(), rows, cols, rb}; }
  [[nodiscard]] K::Weights f32() const {
    return {GgmlType::f32, reinterpret_cast<const std::uint8_t*>(deq.data()), rows, cols, cols * 4};
  }
};

/// rows x cols weights drawn by draw(rng, row), quantized to `type` (quantize_row) and dequantized back.
template <class Draw>
QuantMatrix quant_matrix(GgmlType type, std::size_t rows, std::size_t cols, std::uint64_t seed, Draw draw) {
  std::mt19937_64 rng(seed);
  QuantMatrix m{type, rows, cols, row_bytes(type, cols), {}, {}};
  m.bytes.resize(rows * m.rb);
  m.deq.resize(rows * cols);
  std::vector<float> src(cols);
  for (std::size_t r = 0; r < rows; ++r) {
    for (auto& x : src) x = draw(rng, r);
    quantize_row(type, src.data(), m.bytes.data() + r * m.rb, cols);
    dequantize_row(type, m.bytes.data() + r * m.rb, m.deq.data() + r * cols, cols);
  }
  return m;
}

inline std::vector<float> normal_x(std::size_t n, std::uint64_t seed, float sigma = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = g(rng);
  return v;
}

/// nt activation rows (xstride apart) quantized with table kt, both parts (blocks of 32; super-blocks of 256 when
/// cols allows); q8_row_bytes(cols) bytes per row, the unused bytes 0xAB.
inline std::vector<std::uint8_t> quantize_rows(const K::Table& kt, const float* x, std::size_t xstride, std::size_t nt,
                                               std::size_t cols) {
  const std::size_t qb = K::q8_row_bytes(cols);
  std::vector<std::uint8_t> q(nt * qb + 64, 0xAB);
  for (std::size_t j = 0; j < nt; ++j) {
    kt.quantize_q8(x + j * xstride, cols, q.data() + j * qb);
    if (cols % 256 == 0) kt.quantize_q8k(x + j * xstride, cols, q.data() + j * qb);
  }
  return q;
}

inline bool bits_equal(const float* a, const float* b, std::size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

/// The integer path (matmul_q8) of weights m against nt activation rows x (xstride apart), on every kernel
/// variant: each quantizes to the generic variant's bytes and gives its bits, for all rows and tokens at once, one
/// token per call, ranges of rows of every length 1..6, and a misaligned copy of the quantized rows. Returns the
/// generic variant's quantized rows and products (Y[j * m.rows + r]).
struct IntPathResult {
  std::vector<std::uint8_t> q;
  std::vector<float> y;
};
inline IntPathResult check_int_path_variants(const QuantMatrix& m, const float* x, std::size_t xstride,
                                             std::size_t nt) {
  const K::Table& ref_table = *K::table(K::Isa::generic);
  const std::size_t rows = m.rows, cols = m.cols, qb = K::q8_row_bytes(cols);
  IntPathResult ref{quantize_rows(ref_table, x, xstride, nt, cols), std::vector<float>(nt * rows)};
  ref_table.matmul_q8(m.weights(), 0, rows, ref.q.data(), qb, nt, ref.y.data(), rows);
  for (const K::Table* kt : kernel_variants()) {
    INFO("variant " << K::isa_name(kt->isa) << " / " << kt->q8_dot << ", type " << static_cast<int>(m.type)
                    << ", cols " << cols);
    const auto q = quantize_rows(*kt, x, xstride, nt, cols);
    CHECK(std::memcmp(q.data(), ref.q.data(), nt * qb) == 0);
    std::vector<float> all(nt * rows), one(nt * rows), split(nt * rows), moved(nt * rows);
    kt->matmul_q8(m.weights(), 0, rows, q.data(), qb, nt, all.data(), rows);
    for (std::size_t j = 0; j < nt; ++j)
      kt->matmul_q8(m.weights(), 0, rows, q.data() + j * qb, 0, 1, one.data() + j * rows, rows);
    for (std::size_t r0 = 0, step = 1; r0 < rows; r0 += step, step = step % 5 + 2)
      kt->matmul_q8(m.weights(), r0, std::min(rows, r0 + step), q.data(), qb, nt, split.data(), rows);
    std::vector<std::uint8_t> shifted(q.size() + 3);
    std::memcpy(shifted.data() + 3, q.data(), q.size());
    kt->matmul_q8(m.weights(), 0, rows, shifted.data() + 3, qb, nt, moved.data(), rows);
    CHECK(bits_equal(all.data(), ref.y.data(), all.size()));
    CHECK(bits_equal(all.data(), one.data(), all.size()));
    CHECK(bits_equal(all.data(), split.data(), all.size()));
    CHECK(bits_equal(all.data(), moved.data(), all.size()));
  }
  return ref;
}

struct EnvGuard {
  const char* name;
  explicit EnvGuard(const char* n, const char* v) : name(n) { ::setenv(n, v, 1); }
  ~EnvGuard() { ::unsetenv(name); }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;
};

/// The activation scale of element i of a quantized row, and its quantized value, in the part the integer path
/// reads for weights of `type` (blocks of 32, stored q + 128; or super-blocks of 256, int8).
inline float q8_scale_of(GgmlType type, const std::uint8_t* qrow, std::size_t cols, std::size_t i) {
  float d;
  if (K::q8_part(type) == K::Q8Part::super256)
    std::memcpy(&d, qrow + K::q8_k_at(cols) + K::q8k_block_bytes * (i / 256) + 288, 4);
  else
    std::memcpy(&d, qrow + cols + 32 * (i / 32), 4);
  return d;
}
inline int q8_value_of(GgmlType type, const std::uint8_t* qrow, std::size_t cols, std::size_t i) {
  if (K::q8_part(type) == K::Q8Part::super256)
    return static_cast<std::int8_t>(qrow[K::q8_k_at(cols) + K::q8k_block_bytes * (i / 256) + i % 256]);
  return static_cast<int>(qrow[i]) - 128;
}

/// The integer path's products y (check_int_path_variants) of weights m with activations x against float64.
/// Per element, round to nearest gives |x_i - d q_i| <= d / 2 (d the scale of i's block or super-block; checked
/// here), so |y - sum w_i x_i| <= sum_i |w_i| d(i) / 2 plus the float error of the combination (scale products,
/// conversions, lane sums, each within 2^-24 of the running magnitude), bounded by 1e-6 * sum |w_i d q_i| for
/// these sizes. mins_slack (Q4_K, Q5_K): the dequantized weight d sc u - dmin m is rounded twice by ggml while
/// the path keeps both products apart, within 2^-23 of |dmin m|, bounded by the block's largest |w|: that much
/// more magnitude per element. Checks both bounds and that the rounding really happened (the bound not vacuous).
inline void check_int_path_bounds(const QuantMatrix& m, const float* x, std::size_t xstride, std::size_t nt,
                                  const std::vector<std::uint8_t>& q, const std::vector<float>& y, bool mins_slack) {
  const std::size_t rows = m.rows, cols = m.cols, qb = K::q8_row_bytes(cols);
  double worst_exact = 0, worst_bound = 0, used = 0;
  for (std::size_t j = 0; j < nt; ++j) {
    const std::uint8_t* qr = q.data() + j * qb;
    for (std::size_t r = 0; r < rows; ++r) {
      double y_hat = 0, y_true = 0, mag = 0, bound = 0;
      for (std::size_t i = 0; i < cols; ++i) {
        const double w = m.deq[r * cols + i], d = q8_scale_of(m.type, qr, cols, i);
        const int qi = q8_value_of(m.type, qr, cols, i);
        double wmax = 0;
        if (mins_slack)
          for (std::size_t e = i / 32 * 32; e < i / 32 * 32 + 32; ++e)
            wmax = std::max(wmax, std::abs(static_cast<double>(m.deq[r * cols + e])));
        y_hat += w * (d * qi);
        y_true += w * x[j * xstride + i];
        mag += (std::abs(w) + wmax) * std::abs(d * qi);
        bound += std::abs(w) * d / 2;
        REQUIRE(std::abs(x[j * xstride + i] - d * qi) <= d / 2 * (1 + 1e-6));  // rounded to nearest
      }
      const double yv = y[j * rows + r];
      worst_exact = std::max(worst_exact, std::abs(yv - y_hat) / (1e-6 * mag + 1e-30));
      worst_bound = std::max(worst_bound, std::abs(yv - y_true) / (bound + 1e-6 * mag));
      used = std::max(used, std::abs(yv - y_true) / (bound + 1e-30));
    }
  }
  INFO("type " << static_cast<int>(m.type) << " cols " << cols << ": error / float bound " << worst_exact
               << ", error / rounding bound " << worst_bound);
  CHECK(worst_exact < 1.0);
  CHECK(worst_bound < 1.0);
  CHECK(used > 0.01);
}

}  // namespace picospec::llama::test
