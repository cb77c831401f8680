#pragma once
// One fuzz target = one function `int fuzz_<name>(const std::uint8_t*, std::size_t)`. Built by scripts/fuzz.sh with
// clang's libFuzzer (PICOSPEC_LIBFUZZER defined: the function becomes LLVMFuzzerTestOneInput), and by the normal
// build into transport_fuzz_regressions, which replays fuzz/regressions/<name>/* (every crash found, kept) and the
// generated seeds through the same functions (ASan/UBSan in scripts/test.sh's second stage).
//
// A target returns 0 for every input; a crash, sanitizer report, uncaught exception or failed invariant
// (FUZZ_CHECK -> abort) is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

#ifdef PICOSPEC_LIBFUZZER
#define PICOSPEC_FUZZ_TARGET(name)                                                 \
  int fuzz_##name(const std::uint8_t* data, std::size_t size);                    \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    return fuzz_##name(data, size);                                                \
  }                                                                                \
  int fuzz_##name(const std::uint8_t* data, std::size_t size)
#else
#define PICOSPEC_FUZZ_TARGET(name) int fuzz_##name(const std::uint8_t* data, std::size_t size)
#endif
