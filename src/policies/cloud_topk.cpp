// topk, cloud half (the paper's mode): on a rejection the Top-K of p (raw values, topk_f32:K) goes down.
#include "picospec/sparse_codec.hpp"
#include "policies/cloud_scalars.hpp"

namespace picospec::detail {
namespace {

class CloudTopk final : public CloudScalars {
 public:
  explicit CloudTopk(const PolicyConfig& cfg) : CloudScalars(cfg) {
    try {
      codec_ = make_codec("topk_f32:" + std::to_string(cfg.topk_k));
    } catch (const std::exception& e) {
      throw PolicyFailure{wire::ErrorCode::unsupported_codec, e.what()};
    }
  }
  RejectionMode mode() const noexcept override { return RejectionMode::topk; }
  CloudRejection reject(wire::Verdict& v, std::uint64_t, std::uint32_t) override {
    codec_->encode(probs_, v.payload);
    v.kind = wire::VerdictKind::topk;
    return CloudRejection{false};
  }

 private:
  std::unique_ptr<SparseCodec> codec_;
};

}  // namespace

std::unique_ptr<CloudPolicy> make_cloud_topk(const PolicyConfig& cfg) { return std::make_unique<CloudTopk>(cfg); }

}  // namespace picospec::detail
