// A tiny application that uses an installed picospec through find_package(picospec): the core types and, with the
// `loopback` component, one frame through an in-process pair.
#include <cstdio>
#include <picospec/types.hpp>
#include <picospec/version.hpp>
#ifdef CONSUMER_HAS_LOOPBACK
#include <chrono>
#include <picospec/loopback/loopback.hpp>
#endif

int main() {
  picospec::SparseDist d;
  d.vocab_size = 4;
  d.ids = {1, 3};
  d.probs = {0.25f, 0.75f};
  if (d.prob(3) != 0.75f || d.prob(2) != 0.0f) return 1;
#ifdef CONSUMER_HAS_LOOPBACK
  auto [a, b] = picospec::loopback::make_pair();
  if (!a->send(picospec::Frame{1, 2, 3})) return 1;
  const auto r = b->recv(std::chrono::milliseconds(1000));
  if (!r.ok() || r.frame != picospec::Frame{1, 2, 3}) return 1;
#endif
  std::printf("picospec %s found and linked\n", picospec::version_string());
  return 0;
}
