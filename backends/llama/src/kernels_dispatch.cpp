// Picks the kernel variant at load by cpuid (compiled for the baseline ISA; see kernels.hpp).
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels.hpp"
#include "picospec/types.hpp"

namespace picospec::llama::kernels {

const char* isa_name(Isa isa) noexcept {
  switch (isa) {
    case Isa::generic: return "generic";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

float* scratch_row(std::size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

namespace {
bool cpu_has(Isa isa) noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  switch (isa) {
    case Isa::generic: return true;
    case Isa::avx2: return avx2;
    case Isa::avx512:
      return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  }
  return false;
#else
  return isa == Isa::generic;
#endif
}
}  // namespace

const Table* table(Isa isa) noexcept {
  if (!cpu_has(isa)) return nullptr;
  switch (isa) {
    case Isa::generic: return generic_table();
    case Isa::avx2: return avx2_table();
    case Isa::avx512: return avx512_table();
  }
  return nullptr;
}

const Table& select() {
  if (const char* env = std::getenv("PICOSPEC_LLAMA_ISA"); env != nullptr && *env != '\0') {
    const std::string want(env);
    for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512})
      if (want == isa_name(isa)) {
        if (const Table* t = table(isa)) return *t;
        throw Error("PICOSPEC_LLAMA_ISA=" + want + ": this CPU or build cannot run the " + want + " kernels");
      }
    throw Error("PICOSPEC_LLAMA_ISA=" + want.substr(0, 32) + ": unknown (use generic, avx2 or avx512)");
  }
  for (Isa isa : {Isa::avx512, Isa::avx2})
    if (const Table* t = table(isa)) return *t;
  return *generic_table();
}

}  // namespace picospec::llama::kernels
