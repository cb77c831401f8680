#pragma once
// CloudServer: the cloud side of the asynchronous pipeline (docs/pipeline.md).
//
// It owns a Verifier factory and a ServerTransport (one endpoint serves many edge sessions). Each Hello opens
// a session with its own Verifier (made by the factory) after a compatibility check (wire::compatibility_error
// plus codec support); the session keeps its committed length, the pending target row and its epoch. Draft
// chunks are verified in order; frames of an old epoch are dropped and counted. On a rejection the server
// commits accepted + correction, bumps the epoch, rolls the verifier back and, when it chose the correction
// itself (greedy / full / sparse_draft), pre-verifies it at once so the next chunk's first token can be tested
// on arrival. In candidates / topk modes it sends the candidate stream / Top-K frame and the edge returns the
// correction as the first, fixed token of its next Draft. cloud-ar sessions generate alone and stream Tokens.
//
// Threads: start() launches one I/O thread (receives, routes frames to sessions) and `workers` verify
// workers; a session is served by at most one worker at a time, so its frames are handled in arrival order.
// stop() closes the transport and joins every thread (also done by the destructor); it is final.
// Sessions end with a Bye / Cancel / Error, after session_idle_timeout of silence, or at once when the transport
// reports their peer's connection gone (ServerTransport::take_disconnected: closed, killed, heartbeats lost).
// A failure while serving a session (bad frame, backend exception) sends an Error frame to that peer and ends
// that session only; it never reaches std::terminate.
//
// Thread-safety: start()/stop()/stats() may be called from any thread. Blocking: stop() waits for workers to
// finish the frame they are serving (a cloud-ar loop notices the stop between tokens).

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "picospec/transport.hpp"
#include "picospec/verifier.hpp"

namespace picospec {

struct CloudOptions {
  std::size_t workers = 2;                          ///< verify worker threads
  /// Chunks of different sessions evaluated together in one Verifier::score_batch (one backend call when the
  /// verifiers share a batch key, e.g. one model on one device); 1 = one session's chunk at a time.
  std::size_t max_batch = 32;
  std::size_t max_sessions = 64;                    ///< Hello beyond this is refused (busy)
  std::size_t max_sessions_per_peer = 8;  ///< open sessions per connection (PeerId); a Hello beyond is refused (busy)
  std::size_t inbox_frames = 256;                   ///< frames queued per session; more are dropped
  /// Bytes of frames queued (received, not yet served) per session, and in all sessions together: a frame that
  /// would go over either ends its session with an Error (too_large), so memory is bounded by bytes, not counts.
  std::size_t max_queued_bytes_per_session = std::size_t{160} << 20;
  std::size_t max_queued_bytes_total = std::size_t{512} << 20;
  std::size_t max_frame_bytes = std::size_t{64} << 20;  ///< decode limit (vanilla mode uploads dense rows)
  /// Tokens a session may hold (prompt + committed + the chunk being verified); 0 = the target model's context
  /// length. A chunk beyond it (or beyond the target model's context length) ends the session with `context_full`; a
  /// longer Prefill is refused with `invalid_params`.
  std::size_t max_context = 0;
  std::chrono::milliseconds session_idle_timeout{300000};  ///< sessions silent this long are closed
  std::string name = "picospec-cloud";             ///< sent in Welcome
  /// Honour cloud fill (wire::kHelloFlagCloudFill) when an edge asks for it. Off: the flag is ignored and the
  /// session runs without fill (safe: the edge's rules hold when no Tokens frame arrives), so a cloud saturated
  /// by many sessions spends no one-token passes on waits. A Hello with fill and a rejection that does not allow
  /// it is refused either way.
  bool cloud_fill = true;
  /// Paced fill: once a session has measured how long its edge takes to send the next chunk after a rejection,
  /// a one-token fill pass starts only if that chunk is not due before the pass would end, less one committed
  /// token's worth of the session's own time (remaining wait >= pass time - wall time per committed token). A
  /// pass that would hold up a chunk about to arrive delays a verification (several tokens) to commit one. Off:
  /// fill passes run whenever nothing is queued (the first rejection of every session is unpaced either way).
  bool fill_paced = true;
  /// Coalesced verification (picospec pipeline; not the paper's, nor with block verification): when a Draft is
  /// taken up, the queued Drafts that continue it join the same target pass, up to `max_coalesced_tokens`
  /// tokens in all. Each Draft still gets the verdict a pass of its own would give, only earlier: one pass of
  /// `a + b·n` replaces several of `a + b·n_i`. Lets an edge stream its drafts (GenerateParams::gamma 1 with a
  /// deeper `depth`) without paying a pass per token.
  bool coalesce_drafts = true;
  std::size_t max_coalesced_tokens = 64;
};

/// Counters since start(); monotonic; safe to read from any thread.
struct CloudStats {
  std::uint64_t sessions_opened = 0, sessions_refused = 0, sessions_active = 0;
  std::uint64_t sessions_disconnected = 0;  ///< freed because their peer's connection ended (take_disconnected)
  std::uint64_t frames_in = 0, stale_dropped = 0, malformed = 0, errors_sent = 0;
  std::uint64_t chunks_verified = 0, drafts_tested = 0, drafts_accepted = 0, rejections = 0;
  std::uint64_t drafts_coalesced = 0;  ///< Drafts verified in the pass of the Draft before them (coalesce_drafts)
  std::uint64_t more_candidates = 0, cloud_ar_tokens = 0;
  /// Cloud fill (GenerateParams::cloud_fill): tokens the cloud committed with no draft, and drafts chunks that
  /// arrived wholly or partly behind them (consumed: every token equal to the committed one; void: one differs).
  std::uint64_t fill_tokens = 0, chunks_consumed = 0, chunks_voided = 0;
  std::uint64_t fill_paused = 0;  ///< waits in which paced fill ran no (more) passes: the next chunk was due
  double verify_ms = 0.0;  ///< time inside Verifier calls (begin/score/rollback), all sessions
  double busy_ms = 0.0;    ///< time workers spent serving frames (verify + sampling + encoding)
  std::uint64_t sessions_timed_out = 0;  ///< closed by session_idle_timeout
  std::uint64_t sessions_over_limit = 0;  ///< ended because their queued bytes went over a limit
  std::uint64_t sessions_context_limited = 0;  ///< ended at CloudOptions::max_context or the target's context (context_full)
  // Gauges, sampled by stats(): sessions waiting for a worker, frames and bytes received but not yet served.
  std::uint64_t ready_sessions = 0, queued_frames = 0, queued_bytes = 0;
  std::uint64_t verify_batches = 0;      ///< Verifier::score_batch calls (Drafts and cloud-ar steps)
  std::uint64_t verify_batch_items = 0;  ///< chunks in them (items / batches = mean batch size)
  std::uint64_t max_batch_seen = 0;
  /// Batch sizes: [0] = 1, [1] = 2, [2] = 3-4, [3] = 5-8, [4] = 9-16, [5] = 17-32, [6] = 33-64, [7] = more.
  std::array<std::uint64_t, 8> batch_size_hist{};
};

/// The counters as a Prometheus text exposition (version 0.0.4): `<prefix>_<name>` counters and gauges, the
/// batch sizes as a histogram, verify time per chunk as a summary-style pair (_sum, _count).
[[nodiscard]] std::string to_prometheus(const CloudStats& s, const std::string& prefix = "picospec_cloud");
/// The counters as one JSON object (unknown figures are never invented: every field is a counter or gauge).
[[nodiscard]] std::string to_json(const CloudStats& s);

class CloudServer {
 public:
  using VerifierFactory = std::function<std::unique_ptr<Verifier>()>;

  /// Throws Error if `factory` is empty or `transport` null.
  CloudServer(VerifierFactory factory, std::unique_ptr<ServerTransport> transport, CloudOptions options = {});
  ~CloudServer();
  CloudServer(const CloudServer&) = delete;
  CloudServer& operator=(const CloudServer&) = delete;

  /// Starts the threads. Throws Error if already started or stopped.
  void start();
  /// Closes the transport and joins every thread. Idempotent.
  void stop();

  [[nodiscard]] CloudStats stats() const;
  [[nodiscard]] ServerTransport& transport() noexcept { return *transport_; }
  /// The transport as its concrete type, for what only that type offers after it moved into the server:
  /// `cloud.transport_as<loopback::LoopbackHub>().connect()` (another in-process edge),
  /// `cloud.transport_as<zmq::ZmqServerTransport>().endpoint()` (the bound address, e.g. an ephemeral tcp port).
  /// Throws Error naming the transport when it is not a T.
  template <class T>
  [[nodiscard]] T& transport_as() {
    if (auto* t = dynamic_cast<T*>(transport_.get())) return *t;
    throw Error("CloudServer::transport_as: the server's transport is " + transport_->describe() +
                ", not the requested type");
  }

 private:
  struct Impl;
  std::unique_ptr<ServerTransport> transport_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace picospec
