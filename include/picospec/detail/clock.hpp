#pragma once
// Clock helpers shared by the runtime and the transports (internal): one steady clock, one saturating
// "deadline after a timeout" and one "milliseconds between" instead of a copy per file.
// Thread-safety: pure functions.

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace picospec::detail {

using Clock = std::chrono::steady_clock;

/// now + timeout, with the timeout clamped to [0, 2^40 ms] so that "wait forever" values cannot overflow.
[[nodiscard]] inline Clock::time_point deadline_after(std::chrono::milliseconds timeout) {
  return Clock::now() + std::clamp(timeout, std::chrono::milliseconds(0),
                                   std::chrono::milliseconds(std::int64_t{1} << 40));
}

/// b - a in milliseconds (double).
[[nodiscard]] inline double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

/// A measured time's exponential moving average, `weight` on the new sample; a negative `old` means "not
/// measured yet" and gives the sample itself.
[[nodiscard]] inline double ema_ms(double old, double sample, double weight = 0.2) noexcept {
  return old < 0.0 ? sample : (1.0 - weight) * old + weight * sample;
}

}  // namespace picospec::detail
