#pragma once
// Where tests find ../shared (models, corpora). Compiled in by CMake (PICOSPEC_SHARED_DIR).

#include <filesystem>

namespace picospec::test {

inline std::filesystem::path shared_dir() {
#ifdef PICOSPEC_SHARED_DIR
  return std::filesystem::path(PICOSPEC_SHARED_DIR);
#else
  return std::filesystem::path("../shared");
#endif
}

inline std::filesystem::path shared_model(const char* name) { return shared_dir() / "models" / name; }
inline std::filesystem::path shared_data(const char* rel) { return shared_dir() / "data" / rel; }

}  // namespace picospec::test
