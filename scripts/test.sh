#!/usr/bin/env bash
# The test command: installs dependencies, builds, and runs every test suite.
#
#   scripts/test.sh            all stages: release (-Werror) + ASan/UBSan + TSan
#   scripts/test.sh release    one stage (release | asan | tsan); several may be named
#
# Stages:
#   release  Release build with -Werror; every test (models tests skip visibly without ../shared);
#            also installs the build and builds and runs a host application against the installed package
#            (find_package(picospec); tests/install_consumer).
#   asan     ASan+UBSan build; every test except those labelled `slow`.
#   tsan     TSan build; the threaded suites (label `concurrency`): transports, pipeline, llama thread pool,
#            integration.
set -euo pipefail
cd "$(dirname "$0")/.."
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(release asan tsan)
jobs=${PICOSPEC_JOBS:-$(nproc)}

bash scripts/bootstrap.sh

run_stage() {
  local name=$1; shift
  local dir=build/$name
  echo "=== [$name] configure"
  cmake -S . -B "$dir" -DPICOSPEC_WERROR=ON "$@" >/dev/null
  echo "=== [$name] build"
  cmake --build "$dir" -j "$jobs"
}

for stage in "${stages[@]}"; do
  start=$(date +%s)
  case "$stage" in
    release)
      run_stage release -DCMAKE_BUILD_TYPE=Release
      echo "=== [release] test"
      ctest --test-dir build/release -j "$jobs" --output-on-failure
      ;;
    asan)
      run_stage asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
        -DPICOSPEC_SANITIZE=address,undefined -DPICOSPEC_BUILD_BENCH=OFF -DPICOSPEC_BUILD_EXAMPLES=OFF
      echo "=== [asan] test"
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build/asan -j "$jobs" --output-on-failure -LE 'slow|install'
      ;;
    tsan)
      run_stage tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
        -DPICOSPEC_SANITIZE=thread -DPICOSPEC_BUILD_BENCH=OFF -DPICOSPEC_BUILD_EXAMPLES=OFF
      echo "=== [tsan] test"
      TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
        ctest --test-dir build/tsan -j "$jobs" --output-on-failure -L concurrency -LE slow
      ;;
    *) echo "unknown stage: $stage (release | asan | tsan)" >&2; exit 2 ;;
  esac
  echo "=== [$stage] done in $(( $(date +%s) - start )) s"
done
