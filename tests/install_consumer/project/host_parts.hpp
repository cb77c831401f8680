#pragma once
// The two plug-ins a host application brings along: a model-free Drafter and a Transport decorator. Written
// against the installed headers only (this folder is built with find_package(picospec), never the build tree).

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <picospec/drafter.hpp>
#include <picospec/transport.hpp>

namespace host {

/// Proposes the token that most often followed the context's last token so far (ties: the most recent), or
/// repeats the last token when it was never followed. A one-hot logits row (0 there, -inf elsewhere): the edge
/// session does the sampling and the cloud the acceptance test, so the output is still exactly the target's.
/// `info` must be the target's vocabulary facts (LlamaWeights::info() gives them without building a model).
class BigramDrafter final : public picospec::Drafter {
 public:
  explicit BigramDrafter(picospec::ModelInfo info) : Drafter(relabel(std::move(info))) {
    row_.assign(info_.vocab_size, -std::numeric_limits<float>::infinity());
  }

 protected:
  void do_begin(std::span<const picospec::Token> prompt) override { ctx_.assign(prompt.begin(), prompt.end()); }
  void do_append(picospec::Token t) override { ctx_.push_back(t); }
  void do_rollback(std::size_t n) override { ctx_.resize(n); }
  std::span<const float> do_next_logits() override {
    if (hot_ != picospec::kNoToken) row_[static_cast<std::size_t>(hot_)] = -std::numeric_limits<float>::infinity();
    hot_ = propose();
    row_[static_cast<std::size_t>(hot_)] = 0.0f;
    return row_;
  }

 private:
  static picospec::ModelInfo relabel(picospec::ModelInfo info) {
    info.name = "bigram";
    info.batch_invariant = true;  // no arithmetic: rows never depend on how tokens arrived
    return info;
  }
  picospec::Token propose() const {
    const picospec::Token last = ctx_.back();
    std::vector<std::uint32_t> count;  // successor counts of `last`, sparse enough for a short context
    picospec::Token best = last;
    std::uint32_t best_n = 0;
    for (std::size_t i = 0; i + 1 < ctx_.size(); ++i) {
      if (ctx_[i] != last) continue;
      const auto next = static_cast<std::size_t>(ctx_[i + 1]);
      if (count.size() <= next) count.resize(next + 1, 0);
      if (++count[next] >= best_n) best_n = count[next], best = ctx_[i + 1];
    }
    return best;
  }
  std::vector<picospec::Token> ctx_;
  std::vector<float> row_;
  picospec::Token hot_ = picospec::kNoToken;
};

/// A Transport decorator: forwards every call to the transport it wraps and keeps its own log of frame sizes.
/// The pattern: forward through the inner transport's *public* methods (send/recv/close), so the inner layer
/// counts what crossed it and this layer's base class counts what crossed the decorator; count a refused send as
/// dropped here; close the inner transport in close() and in the destructor.
class TapTransport final : public picospec::Transport {
 public:
  explicit TapTransport(std::unique_ptr<picospec::Transport> inner) : inner_(std::move(inner)) {
    if (!inner_) throw picospec::Error("TapTransport: null inner transport");
  }
  ~TapTransport() override { inner_->close(); }

  [[nodiscard]] std::string describe() const override { return "tap(" + inner_->describe() + ")"; }
  [[nodiscard]] picospec::TransportStats inner_stats() const noexcept { return inner_->stats(); }
  [[nodiscard]] std::uint64_t largest_frame_up() const noexcept { return largest_up_.load(); }

 protected:
  bool do_send(picospec::Frame frame) override {
    const std::uint64_t n = frame.size();
    if (!inner_->send(std::move(frame))) {
      count_dropped();
      return false;
    }
    for (std::uint64_t cur = largest_up_.load(); n > cur && !largest_up_.compare_exchange_weak(cur, n);) {
    }
    return true;
  }
  picospec::Received do_recv(picospec::Millis timeout) override { return inner_->recv(timeout); }
  void do_close() override { inner_->close(); }

 private:
  std::unique_ptr<picospec::Transport> inner_;
  std::atomic<std::uint64_t> largest_up_{0};
};

}  // namespace host
