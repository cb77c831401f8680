#pragma once

namespace picospec {
/// Library version, "MAJOR.MINOR.PATCH".
[[nodiscard]] const char* version_string() noexcept;
}  // namespace picospec
