#pragma once
// Legacy hand-written flag parser (the programs now use CLI11 through common/cli.hpp; kept until every
// program is ported). Tiny command-line helper: flags with values, strict number parsing, and a
// one-line error for anything malformed (CLI arguments are untrusted input).

#include <cstdint>
#include <cstdio>
#include <exception>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/usage_error.hpp"

namespace picospec::examples {

class Args {
 public:
  Args(int argc, char** argv) : argc_(argc), argv_(argv) {}

  /// Next flag, or false at the end.
  bool next(std::string& flag) {
    if (i_ + 1 >= argc_) return false;
    flag = argv_[++i_];
    flag_ = flag;
    return true;
  }
  /// The value after the current flag.
  std::string value() {
    if (i_ + 1 >= argc_) throw UsageError(flag_ + " needs a value");
    return argv_[++i_];
  }
  double number(double lo, double hi) {
    const std::string v = value();
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    if (v.empty() || end == nullptr || *end != '\0' || !(d >= lo && d <= hi))
      throw UsageError(flag_ + " expects a number in [" + trim(lo) + ", " + trim(hi) + "], got '" + v + "'");
    return d;
  }
  std::uint64_t integer(std::uint64_t lo, std::uint64_t hi) {
    const std::string v = value();
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || v[0] == '-' || *end != '\0' || errno != 0 || n < lo || n > hi)
      throw UsageError(flag_ + " expects an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                       "], got '" + v + "'");
    return n;
  }
  [[noreturn]] void unknown() const { throw UsageError("unknown argument '" + flag_ + "' (try --help)"); }

 private:
  static std::string trim(double d) {
    std::string s = std::to_string(d);
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  int argc_;
  char** argv_;
  int i_ = 0;
  std::string flag_;
};

/// The programs' main(): parse() failing with UsageError prints one line and exits 2; body(options) failing with
/// any exception prints one line and exits 1; otherwise body's status.
template <class Parse, class Body>
int run_main(const char* prog, Parse&& parse, Body&& body) {
  decltype(parse()) options;
  try {
    options = parse();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\n", prog, e.what());
    return 2;
  }
  try {
    return body(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", prog, e.what());
    return 1;
  }
}

}  // namespace picospec::examples
