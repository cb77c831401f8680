// The AVX-512 variant's integer Q8_0 product with VNNI (vpdpbusd). Compiled with the AVX-512 flags plus
// -mavx512vnni (backends/llama/CMakeLists.txt); used only when the CPU reports avx512vnni.
#include "kernels.hpp"

#include <type_traits>

#if defined(__AVX512F__) && defined(__AVX512VNNI__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

namespace picospec::llama::kernels {

#define PICOSPEC_Q8_VNNI 1
#include "kernels_q8_avx512.inc"
#undef PICOSPEC_Q8_VNNI

const Table* avx512_vnni_table() noexcept {
  if (!__builtin_cpu_supports("avx512vnni")) return nullptr;
  const Table* bw = avx512_bw_table();
  if (bw == nullptr) return nullptr;
  static const Table t = [bw] {
    Table v = *bw;
    v.matmul_q8 = &int_matmul;
    v.q8_dot = "vnni";
    return v;
  }();
  return &t;
}

}  // namespace picospec::llama::kernels

#else

namespace picospec::llama::kernels {
const Table* avx512_vnni_table() noexcept { return nullptr; }
}  // namespace picospec::llama::kernels

#endif
