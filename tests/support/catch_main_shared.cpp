// Catch2 main for suites that need ../shared (models, corpora). When the folder is absent (a user's fresh
// clone), the suite prints why and exits 77, which ctest reports as "Skipped" — never a silent pass.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>

#include "support/shared.hpp"

int main(int argc, char* argv[]) {
  const auto dir = picospec::test::shared_dir();
  if (!std::filesystem::is_directory(dir / "models") || !std::filesystem::is_directory(dir / "data")) {
    std::printf("SKIPPED: %s has no models/ and data/ (a fresh clone has no ../shared); "
                "set PICOSPEC_SHARED_DIR at configure time to run these tests\n",
                dir.string().c_str());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
