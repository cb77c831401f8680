#pragma once
// Test fixture: a CloudServer over a LoopbackHub and EdgeSessions connected to it (optionally through a
// LinkTransport), with the synthetic backend at a scaled-down latency.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "picospec/cloud_server.hpp"
#include "picospec/edge_session.hpp"
#include "picospec/link.hpp"
#include "picospec/loopback/loopback.hpp"
#include "picospec/synthetic/synthetic.hpp"

namespace picospec::test {

inline synthetic::PairParams small_pair(double alpha = 0.7, std::uint32_t vocab = 256, double time_scale = 0.0) {
  synthetic::PairParams p;
  p.profile = synthetic::profile("tiny");
  p.profile.vocab_size = vocab;
  p.alpha = alpha;
  p.time_scale = time_scale;
  p.world_seed = 7;
  return p;
}

struct Cloud {
  explicit Cloud(const synthetic::PairParams& pair, CloudOptions options = {}) {
    loopback::LoopbackParams lp;
    lp.max_frame_bytes = 0;
    auto h = std::make_unique<loopback::LoopbackHub>(lp);
    hub = h.get();
    server = std::make_unique<CloudServer>([pair] { return synthetic::make_verifier(pair); }, std::move(h),
                                           std::move(options));
    server->start();
  }
  ~Cloud() { server->stop(); }

  /// A new edge session; `link` wraps the loopback end in a LinkTransport.
  std::unique_ptr<EdgeSession> edge(const synthetic::PairParams& pair,
                                    std::optional<LinkProfile> link = std::nullopt, EdgeOptions opts = {}) {
    std::unique_ptr<Transport> t = hub->connect();
    if (link) t = std::make_unique<LinkTransport>(std::move(t), *link);
    opts.label_backend = "synthetic";
    if (opts.response_timeout > std::chrono::milliseconds(20000))
      opts.response_timeout = std::chrono::milliseconds(20000);
    return std::make_unique<EdgeSession>(synthetic::make_drafter(pair), std::move(t), opts);
  }

  loopback::LoopbackHub* hub = nullptr;
  std::unique_ptr<CloudServer> server;
};

inline std::vector<Token> test_prompt() { return {3, 14, 15, 92, 65}; }

}  // namespace picospec::test
