#pragma once
// EdgeSession: the edge side of the asynchronous speculative-decoding pipeline (docs/pipeline.md).
//
// It owns a Drafter and the edge end of a Transport to a CloudServer. generate() runs one generation: the
// Hello/Welcome handshake (compatibility is checked by the cloud; a refusal becomes an exception), Prefill,
// then, depending on the mode, drafting and verdict handling, until EOS, max_tokens or cancel(). Committed
// tokens are streamed to a callback as soon as the cloud confirms them.
//
// Threads: generate() runs the drafting loop on the calling thread (it owns the drafter). The first generation
// that talks to a cloud starts the session's I/O thread, which blocks in the transport's recv, decodes frames
// into a bounded event queue and lives until the session is destroyed (the destructor closes the transport,
// which wakes it, and joins it). Errors on either thread (transport closed, cloud Error frame, timeout, bad
// frames, drafter exceptions) surface as exceptions from generate(), never std::terminate -- except the loss of
// the cloud, which GenerateParams::on_cloud_loss may turn into a result (see CloudLoss).
//
// Thread-safety: generate() must not be called concurrently on one session (a second concurrent call throws).
// cancel() may be called from any thread (including the token callback) and makes the running generate()
// return early with FinishReason::cancelled. Blocking: generate() blocks until the generation ends.
// Ownership: the session owns the drafter and the transport; transport() stays usable for statistics.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "picospec/drafter.hpp"
#include "picospec/metrics.hpp"
#include "picospec/pipeline_mode.hpp"
#include "picospec/modes.hpp"
#include "picospec/transport.hpp"
#include "picospec/types.hpp"

namespace picospec {

/// When a partially drafted chunk is sent.
enum class SendPolicy : std::uint8_t {
  full_chunks,  ///< send a chunk when it holds γ tokens (or the generation cannot draft more)
  when_idle,    ///< also send what is drafted when no chunk is in flight (the cloud would idle otherwise)
};

/// When pre-drafted branches (GenerateParams::branch_heads) grow.
enum class BranchSchedule : std::uint8_t {
  idle,   ///< only while the edge waits for a verdict that is expected later than one branch step takes
  fused,  ///< also with every main-line draft: one batched evaluation for the main token and all branches
};

/// What generate() does when the cloud is lost mid-generation: the transport closes (server stopped or killed,
/// connection dropped, ZeroMQ heartbeats lost), the cloud is silent for EdgeOptions::response_timeout while an
/// answer is due, or it ends the session itself (Bye, unknown session). Every committed token is kept in every case
/// (and was already streamed to the callback). Resume attempts (GenerateParams::resume_attempts) come first.
enum class CloudLoss : std::uint8_t {
  raise,      ///< throw picospec::Error (the committed tokens were streamed to the callback only)
  stop,       ///< return what was committed: finish = cloud_lost, GenerateResult::error says why
  edge_only,  ///< finish with the drafter alone: the tokens after the loss are sampled from the drafter's own
              ///< distribution (under `sampling`; greedy: its argmax), no longer the target's; finish is how that
              ///< ended (max_tokens, eos, length, cancelled), GenerateResult::cloud_lost and error say what happened
};

/// Per-generation parameters.
struct GenerateParams {
  PipelineMode mode = PipelineMode::picospec;
  SamplingParams sampling{};                       ///< applied on both sides (temperature 0 = greedy)
  std::uint64_t seed = 0;                          ///< keys every random draw (rng.hpp)
  std::uint32_t max_tokens = 128;                  ///< new tokens to generate (>= 1)
  std::uint32_t gamma = 4;                         ///< draft chunk length (the maximum with adaptive_gamma)
  /// Adaptive draft length (pipelined modes): before each chunk the edge picks the length in [1, gamma] that
  /// maximizes expected committed tokens per second (analytic.hpp best_gamma) from what it measured: acceptance,
  /// draft time, round trip (handshake) and send-to-verdict times by chunk size. Same tokens as fixed γ.
  bool adaptive_gamma = false;
  /// Confidence stop: close the chunk after a draft whose distribution's top probability is below this (as
  /// llama.cpp's --draft-p-min); 0 = off. Same tokens, shorter chunks where the draft is unsure.
  float draft_p_min = 0.0f;
  std::uint32_t depth = 1;                         ///< chunks in flight while drafting the next (paper: 1)
  SendPolicy send_policy = SendPolicy::full_chunks;
  std::optional<RejectionMode> rejection;          ///< override the mode's default (see plan_mode)
  std::string sparse_codec = "topk_q:64";          ///< sparse_draft mode uplink codec
  std::uint32_t topk_k = 10;                       ///< paper mode: Top-K entries on a rejection
  std::uint32_t candidates_m = 32;                 ///< picospec candidates mode: candidates per verdict
  TopkFallback topk_fallback = TopkFallback::renormalized_p;
  bool stop_at_eos = true;                         ///< stop after committing an EOS/EOG token (ModelInfo::is_eog)
  /// No flush on a miss (pipelined modes): for each draft of the chunk in flight, pre-draft branches after its
  /// `branch_heads` likeliest alternatives under q; when a rejection's correction equals a branch head, that
  /// branch goes up at once instead of being redrafted. Same tokens as without branches (the branch drafts use
  /// the keys of the redraft). 0 = off. Needs a batch-invariant drafter.
  std::uint32_t branch_heads = 0;
  std::uint32_t branch_length = 0;                 ///< drafts per branch (0 = gamma)
  BranchSchedule branch_schedule = BranchSchedule::idle;
  /// Block verification (Sun et al. 2024) in the modes where the cloud holds both distributions (full, i.e.
  /// vanilla, and sparse_draft): the cloud verifies each chunk jointly, accepting more drafts in expectation;
  /// exact, but the tokens differ from token-level verification for the same seed. Ignored in other modes.
  bool block_verify = false;
  /// Cloud fill (wire::kHelloFlagCloudFill): whenever the cloud has no draft to verify (after a rejection, while
  /// the next chunk is on its way, before the first) it commits the next token itself, as cloud-ar would, and
  /// streams it down; drafts that arrive behind it are compared with what it committed. The cloud never waits
  /// for the edge, so the rate is never below cloud-ar's (less the edge's share of a shared machine). Needs a
  /// rejection whose tokens do not depend on the draft: greedy (temperature 0) or `coupled`; the tokens are then
  /// the same with fill on or off, at every γ, depth and link. Not with branch_heads.
  bool cloud_fill = false;
  /// What to do when the cloud is lost (see CloudLoss); the default throws, as every other failure does.
  CloudLoss on_cloud_loss = CloudLoss::raise;
  /// Before on_cloud_loss applies: up to this many reconnects through EdgeOptions::reconnect (ignored without
  /// it, and when no cloud ever answered this generation's Hello: an unreachable cloud is not waited for twice), each followed by a new session (Hello, then Prefill of the prompt and every committed token) that
  /// continues where the lost one stopped: no committed token is lost or repeated, greedy output stays the
  /// target's token for token, sampled output stays exactly the target's distribution (the new session's random
  /// draws restart at epoch 0, so the tokens differ from an uninterrupted run with the same seed). Each attempt
  /// waits at most EdgeOptions::response_timeout for the Welcome, after EdgeOptions::resume_backoff.
  std::uint32_t resume_attempts = 0;
};

/// How a generation ended. `length`: the model's context is full (the draft model's, known before the start, or
/// the target's, reported by the cloud); `cloud_lost`: CloudLoss::stop returned after the cloud was lost;
/// `error`: not produced by generate() (which throws), used by programs that report a failed generation.
enum class FinishReason : std::uint8_t { max_tokens, eos, cancelled, length, cloud_lost, error };
[[nodiscard]] std::string_view to_string(FinishReason r) noexcept;

struct GenerateResult {
  std::vector<Token> tokens;  ///< committed new tokens (the EOS/EOG token included when it ended the generation)
  FinishReason finish = FinishReason::max_tokens;
  bool cloud_lost = false;    ///< the cloud was lost at least once (resumed, stopped or finished edge-only)
  std::uint32_t resumes = 0;  ///< sessions resumed after a loss (GenerateParams::resume_attempts)
  std::size_t edge_only_tokens = 0;  ///< trailing tokens drawn by the drafter alone after a loss (CloudLoss::edge_only)
  std::string error;          ///< why the cloud was lost (the last loss), empty when it never was
  Metrics metrics;
};

/// Session-level options.
struct EdgeOptions {
  std::chrono::milliseconds response_timeout{30000};  ///< max wait for any cloud frame while one is due
  std::size_t event_queue = 256;                      ///< bounded queue between the I/O and drafting threads
  std::size_t max_frame_bytes = std::size_t{64} << 20;  ///< decode limit for frames from the cloud
  std::string label_backend;                          ///< copied into Metrics::backend
  std::string label_profile;                          ///< copied into Metrics::profile
  std::string label_link;                             ///< copied into Metrics::link (default: transport describe())
  /// Makes a fresh transport to the cloud for a resume after a loss (GenerateParams::resume_attempts); the old
  /// one is closed and destroyed first. May throw (the attempt fails). Empty: no resume.
  std::function<std::unique_ptr<Transport>()> reconnect;
  std::chrono::milliseconds resume_backoff{200};      ///< wait before each resume attempt
};

class EdgeSession {
 public:
  using TokenCallback = std::function<void(Token)>;

  /// `transport` may be null only for edge-only generations. Throws Error if `drafter` is null.
  EdgeSession(std::unique_ptr<Drafter> drafter, std::unique_ptr<Transport> transport, EdgeOptions options = {});
  ~EdgeSession();
  EdgeSession(const EdgeSession&) = delete;
  EdgeSession& operator=(const EdgeSession&) = delete;

  /// Runs one generation (see the file comment). `on_token` (may be empty) is called on the calling thread
  /// for every committed token, in order. Throws Error on bad params, refusal by the cloud, protocol or
  /// transport failure, timeout.
  GenerateResult generate(std::span<const Token> prompt, const GenerateParams& params,
                          const TokenCallback& on_token = {});

  /// Asks the running generate() to stop; safe from any thread; no effect when idle.
  void cancel() noexcept;

  [[nodiscard]] Drafter& drafter() noexcept { return *drafter_; }
  /// The transport (null if none was given; replaced by a resume, see EdgeOptions::reconnect).
  [[nodiscard]] Transport* transport() noexcept { return transport_.get(); }

 private:
  struct Run;
  friend struct Run;
  struct Io;

  std::unique_ptr<Drafter> drafter_;
  std::unique_ptr<Transport> transport_;
  EdgeOptions options_;
  std::atomic<bool> busy_{false};
  std::mutex run_mu_;     // guards run_ (cancel() vs generate())
  Run* run_ = nullptr;
  std::uint64_t generations_ = 0;
  std::unique_ptr<Io> io_;  // started by the first generation that uses the transport
};

}  // namespace picospec
