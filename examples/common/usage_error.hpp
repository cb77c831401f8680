#pragma once
// The example programs' usage error: thrown for a bad command line; printed as one line, exit status 2.

#include <stdexcept>

namespace picospec::examples {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace picospec::examples
