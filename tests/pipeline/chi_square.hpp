#pragma once
// Pearson chi-square of observed token counts against a distribution p, as tests/core/test_rejection.cpp uses:
// bins with expected count < 5 pooled, draws of p = 0 tokens counted as impossible, critical value at upper tail
// 1e-6 (Wilson-Hilferty, z = 4.7534), so a correct sampler essentially never fails.
#include <algorithm>
#include <cmath>
#include <vector>

namespace picospec::test {

struct ChiResult {
  double chi2 = 0, crit = 0;
  int dof = 0;
  long impossible = 0;
  [[nodiscard]] bool pass() const { return impossible == 0 && chi2 < crit; }
};

inline double chi2_crit(int k) {
  const double z = 4.7534, a = 2.0 / (9.0 * k);
  return k * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

inline ChiResult chi_square(const std::vector<float>& p, const std::vector<long>& counts, long n) {
  ChiResult r;
  double pooled_e = 0, pooled_o = 0, psum = 0;
  int bins = 0;
  for (float x : p) psum += x;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double e = n * (p[i] / psum);
    if (p[i] == 0.0f) {
      r.impossible += counts[i];
      continue;
    }
    if (e < 5.0) {
      pooled_e += e;
      pooled_o += static_cast<double>(counts[i]);
      continue;
    }
    r.chi2 += (counts[i] - e) * (counts[i] - e) / e;
    ++bins;
  }
  if (pooled_e > 0) {
    r.chi2 += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e;
    ++bins;
  }
  r.dof = std::max(1, bins - 1);
  r.crit = chi2_crit(r.dof);
  return r;
}

}  // namespace picospec::test
