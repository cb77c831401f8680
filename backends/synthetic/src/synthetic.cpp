// The synthetic backend (see include/picospec/synthetic/synthetic.hpp).
#include "picospec/synthetic/synthetic.hpp"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <thread>

#include "picospec/lm_adapters.hpp"
#include "picospec/sampling.hpp"

namespace picospec::synthetic {
namespace {

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ull;
constexpr std::uint64_t kSaltTarget = 0x7461726765740001ull;
constexpr std::uint64_t kSaltNoise = 0x6e6f697365000002ull;

constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Natural log of x > 0 (normal floats), max abs error ~1e-4: exponent + a fixed polynomial in the mantissa.
// Pure float arithmetic in one fixed order, so rows are identical on every IEEE-754 machine.
inline float fast_ln(float x) noexcept {
  const auto bits = std::bit_cast<std::uint32_t>(x);
  const auto e = static_cast<float>(static_cast<std::int32_t>(bits >> 23) - 127);
  const float m = std::bit_cast<float>((bits & 0x007FFFFFu) | 0x3F800000u) - 1.0f;  // [0, 1)
  // ln(1 + m) on [0, 1): degree-5 least-squares fit.
  const float p = m * (0.99949556f + m * (-0.49190896f + m * (0.28947478f + m * (-0.13606275f + m * 0.03215845f))));
  return e * 0.69314718f + p;
}

// Fills out[x] = -s ln u(h, x) for every token x.
void zipf_row(std::uint64_t h, float s, std::span<float> out) noexcept {
  const std::size_t v = out.size();
  for (std::size_t x = 0; x < v; ++x) {
    const std::uint64_t z = mix64(h + (static_cast<std::uint64_t>(x) + 1) * kGolden);
    const float u = (static_cast<float>(z >> 40) + 0.5f) * 0x1.0p-24f;
    out[x] = -s * fast_ln(u);
  }
}

void softmax_inplace(std::span<float> row) noexcept {
  float mx = row[0];
  for (float x : row) mx = std::max(mx, x);
  double sum = 0.0;
  for (float& x : row) {
    x = std::exp(x - mx);
    sum += x;
  }
  const auto inv = static_cast<float>(1.0 / sum);
  for (float& x : row) x *= inv;
}

std::uint64_t context_hash(std::uint64_t seed, std::span<const Token> context, int order) noexcept {
  std::uint64_t h = mix64(seed ^ kSaltTarget);
  const auto n = static_cast<std::ptrdiff_t>(context.size());
  for (int k = order; k >= 1; --k) {
    const std::ptrdiff_t i = n - k;
    const std::uint64_t tok = i >= 0 ? static_cast<std::uint64_t>(context[static_cast<std::size_t>(i)]) + 1 : 0;
    h = mix64(h + tok * kGolden);
  }
  return h;
}

ModelInfo make_info(const ModelParams& p) {
  if (p.vocab_size < 2) throw Error("synthetic: vocab_size must be >= 2");
  if (!(p.zipf_s > 0.0) || !std::isfinite(p.zipf_s)) throw Error("synthetic: zipf_s must be > 0");
  if (!(p.alpha > 0.0 && p.alpha <= 1.0)) throw Error("synthetic: alpha must be in (0, 1]");
  if (p.context_order < 1 || p.context_order > 4) throw Error("synthetic: context_order must be in [1, 4]");
  if (!(p.time_scale >= 0.0) || !std::isfinite(p.time_scale)) throw Error("synthetic: time_scale must be >= 0");
  if (!(p.latency.a_ms >= 0.0 && p.latency.b_ms >= 0.0)) throw Error("synthetic: latencies must be >= 0");
  if (p.eos != kNoToken && (p.eos < 0 || static_cast<std::uint32_t>(p.eos) >= p.vocab_size))
    throw Error("synthetic: eos outside the vocabulary");
  for (Token t : p.eog)
    if (t < 0 || static_cast<std::uint32_t>(t) >= p.vocab_size)
      throw Error("synthetic: eog token outside the vocabulary");
  ModelInfo info;
  info.name = !p.name.empty() ? p.name : (p.role == Role::target ? "synthetic-target" : "synthetic-draft");
  info.vocab_size = p.vocab_size;
  info.context_length = p.context_length;
  // Both roles share the fingerprint: same (synthetic) vocabulary.
  info.tokenizer_fingerprint = mix64(0x53594e5448ull ^ p.vocab_size);
  info.bos = kNoToken;
  info.eos = p.eos;
  info.eog = p.eog;
  info.batch_invariant = true;
  return info;
}

}  // namespace

SyntheticLM::SyntheticLM(ModelParams params) : CausalLM(make_info(params)), params_(std::move(params)) {}

void SyntheticLM::logits_for(std::span<const Token> context, std::span<float> out) const {
  if (out.size() != params_.vocab_size) throw Error("SyntheticLM::logits_for: wrong row size");
  const std::uint64_t h = context_hash(params_.world_seed, context, params_.context_order);
  const auto s = static_cast<float>(params_.zipf_s);
  if (params_.role == Role::target) {
    zipf_row(h, s, out);
    return;
  }
  // Draft: q = (1 - λ) p + λ w with λ chosen so that Σ min(p, q) = α.
  scratch_p_.resize(out.size());
  scratch_w_.resize(out.size());
  zipf_row(h, s, scratch_p_);
  zipf_row(mix64(h ^ kSaltNoise), 2.0f * s + 0.5f, scratch_w_);
  softmax_inplace(scratch_p_);
  softmax_inplace(scratch_w_);
  double tv = 0.0;
  for (std::size_t x = 0; x < out.size(); ++x) tv += std::fabs(static_cast<double>(scratch_p_[x]) - scratch_w_[x]);
  tv *= 0.5;
  const double lambda = tv > 0.0 ? std::min(1.0, (1.0 - params_.alpha) / tv) : 0.0;
  const auto l1 = static_cast<float>(1.0 - lambda), l2 = static_cast<float>(lambda);
  for (std::size_t x = 0; x < out.size(); ++x) {
    const float q = l1 * scratch_p_[x] + l2 * scratch_w_[x];
    out[x] = q > 0.0f ? std::log(q) : -1e30f;
  }
}

namespace {
void sleep_ms_from(std::chrono::steady_clock::time_point start, double ms) {
  if (ms > 0.0)
    std::this_thread::sleep_until(start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                              std::chrono::duration<double, std::milli>(ms)));
}
}  // namespace

void SyntheticLM::rows_for(std::span<const Token> tokens, LogitRows& out) {
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    tokens_.push_back(tokens[i]);
    logits_for(tokens_, out.row(i));
  }
}

void SyntheticLM::do_forward(std::span<const Token> tokens, LogitRows& out) {
  std::unique_lock<std::mutex> lk;
  if (params_.device) lk = std::unique_lock(params_.device->mu);
  const auto start = std::chrono::steady_clock::now();
  rows_for(tokens, out);
  sleep_ms_from(start, params_.time_scale * params_.latency.forward_ms(tokens.size()));
}

const void* SyntheticLM::do_batch_key() const noexcept { return params_.device.get(); }

void SyntheticLM::do_forward_batch(std::span<const BatchItem> items) {
  // Same device (the batch key); every model must also share this one's latency to be costed as one call.
  for (const BatchItem& it : items) {
    const auto* m = dynamic_cast<const SyntheticLM*>(it.model);
    if (m == nullptr || m->params_.latency.a_ms != params_.latency.a_ms ||
        m->params_.latency.b_ms != params_.latency.b_ms || m->params_.time_scale != params_.time_scale)
      return CausalLM::do_forward_batch(items);
  }
  std::unique_lock lk(params_.device->mu);
  const auto start = std::chrono::steady_clock::now();
  std::size_t total = 0;
  for (const BatchItem& it : items) {
    static_cast<SyntheticLM*>(it.model)->rows_for(it.tokens, *it.out);
    total += it.tokens.size();
  }
  sleep_ms_from(start, params_.time_scale * params_.latency.forward_ms(total));
}

void SyntheticLM::do_truncate(std::size_t n) { tokens_.resize(n); }

bool SyntheticLM::do_forward_with_branches(std::span<const Token> tokens, LogitRows& out,
                                           std::span<const Branch> branches, LogitRows& branch_out) {
  std::unique_lock<std::mutex> lk;
  if (params_.device) lk = std::unique_lock(params_.device->mu);
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    tokens_.push_back(tokens[i]);
    logits_for(tokens_, out.row(i));
  }
  // A row depends only on the last context_order tokens: evaluate each branch on that window.
  const auto order = static_cast<std::size_t>(params_.context_order);
  for (std::size_t b = 0; b < branches.size(); ++b) {
    const auto& br = branches[b];
    window_.assign(tokens_.begin() + static_cast<std::ptrdiff_t>(br.base - std::min(br.base, order)),
                   tokens_.begin() + static_cast<std::ptrdiff_t>(br.base));
    window_.insert(window_.end(), br.tail.begin(), br.tail.end());
    logits_for(window_, branch_out.row(b));
  }
  const double ms = params_.time_scale * params_.latency.forward_ms(tokens.size() + branches.size());
  if (ms > 0.0)
    std::this_thread::sleep_until(start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                              std::chrono::duration<double, std::milli>(ms)));
  return true;
}

Profile profile(const std::string& name) {
  if (name == "qwen-paper")  // a + b = 72, a + 4b = 87
    return Profile{name, 151936, Latency{20.0, 4.0}, Latency{67.0, 5.0}};
  if (name == "llama-paper")  // a + b = 146, a + 4b = 166
    return Profile{name, 128256, Latency{38.0, 5.0}, Latency{146.0 - 20.0 / 3.0, 20.0 / 3.0}};
  if (name == "tiny") return Profile{name, 64, Latency{1.5, 0.5}, Latency{4.0, 1.0}};
  throw Error("synthetic: unknown profile '" + name + "' (qwen-paper | llama-paper | tiny)");
}

std::vector<std::string> profile_names() { return {"qwen-paper", "llama-paper", "tiny"}; }

static ModelParams model_params(const PairParams& p, Role role) {
  ModelParams m;
  m.role = role;
  m.vocab_size = p.profile.vocab_size;
  m.world_seed = p.world_seed;
  m.zipf_s = p.zipf_s;
  m.alpha = p.alpha;
  m.context_order = p.context_order;
  m.latency = role == Role::target ? p.profile.target : p.profile.draft;
  m.time_scale = p.time_scale;
  m.eos = p.eos;
  m.eog = p.eog;
  m.name = std::string("synthetic-") + (role == Role::target ? "target" : "draft") + "(" + p.profile.name + ")";
  if (role == Role::target) m.device = p.target_device;
  return m;
}

std::unique_ptr<SyntheticLM> make_target_lm(const PairParams& p) {
  return std::make_unique<SyntheticLM>(model_params(p, Role::target));
}
std::unique_ptr<SyntheticLM> make_draft_lm(const PairParams& p) {
  return std::make_unique<SyntheticLM>(model_params(p, Role::draft));
}
std::unique_ptr<Drafter> make_drafter(const PairParams& p) { return std::make_unique<LmDrafter>(make_draft_lm(p)); }
std::unique_ptr<Verifier> make_verifier(const PairParams& p) {
  return std::make_unique<LmVerifier>(make_target_lm(p));
}

double measure_alpha(const PairParams& p, const SamplingParams& sampling, int contexts, std::uint64_t seed) {
  if (contexts <= 0) throw Error("measure_alpha: contexts must be > 0");
  const auto target = make_target_lm(p);
  const auto draft = make_draft_lm(p);
  const std::size_t v = p.profile.vocab_size;
  std::vector<float> lp(v), lq(v), pp, pq;
  SamplingWorkspace ws;
  double total = 0.0;
  for (int c = 0; c < contexts; ++c) {
    Token ctx[4];
    for (int k = 0; k < 4; ++k)
      ctx[k] = static_cast<Token>(mix64(seed + static_cast<std::uint64_t>(c) * 4 + static_cast<std::uint64_t>(k)) % v);
    target->logits_for(ctx, lp);
    draft->logits_for(ctx, lq);
    logits_to_probs(lp, sampling, pp, ws);
    logits_to_probs(lq, sampling, pq, ws);
    double a = 0.0;
    for (std::size_t x = 0; x < v; ++x) a += std::min(pp[x], pq[x]);
    total += a;
  }
  return total / contexts;
}

}  // namespace picospec::synthetic
