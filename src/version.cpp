#include "picospec/version.hpp"

namespace picospec {
const char* version_string() noexcept { return "0.1.0"; }
}  // namespace picospec
