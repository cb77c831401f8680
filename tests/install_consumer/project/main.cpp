// A tiny application that uses an installed picospec through find_package(picospec).
#include <cstdio>
#include <picospec/types.hpp>
#include <picospec/version.hpp>

int main() {
  picospec::SparseDist d;
  d.vocab_size = 4;
  d.ids = {1, 3};
  d.probs = {0.25f, 0.75f};
  if (d.prob(3) != 0.75f || d.prob(2) != 0.0f) return 1;
  std::printf("picospec %s found and linked\n", picospec::version_string());
  return 0;
}
