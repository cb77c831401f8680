// CloudServer (see include/picospec/cloud_server.hpp and docs/pipeline.md).
#include "picospec/cloud_server.hpp"

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "picospec/pipeline_mode.hpp"
#include "picospec/detail/clock.hpp"
#include "picospec/protocol.hpp"
#include "picospec/rng.hpp"
#include "picospec/sampling.hpp"
#include "picospec/sparse_codec.hpp"
#include "policies/policy.hpp"
#include "seq_order.hpp"

namespace picospec {
namespace {

using detail::Clock;
using detail::ema_ms;
using detail::ms_between;
constexpr double kFillEmaWeight = 0.25;  // paced fill's two EMAs (redraft wait, fill pass), as benchmarked

// Thrown inside a session's handler to refuse / fail with a wire error code; ends the session.
struct SessionFailure {
  wire::ErrorCode code;
  std::string message;
};

}  // namespace

struct CloudSession {
  PeerId peer = 0;
  std::uint64_t id = 0;
  std::uint32_t hello_seq = 0;  // echoed in the Welcome or refusal, so the edge can match the answer to its Hello

  // Guarded by `mu`.
  std::mutex mu;
  struct Queued {
    Frame frame;
    Clock::time_point arrived;  // when the I/O thread received it (paced fill times the edge by it)
  };
  std::deque<Queued> inbox;
  std::size_t inbox_bytes = 0;  // bytes of the frames in `inbox`
  bool scheduled = false;
  bool closed = false;

  // Guarded by the server mutex.
  Clock::time_point last_seen{};
  detail::SeqOrder<Frame> order;  // I/O thread only: frames after the Hello, released in seq order

  std::atomic<bool> cancel{false};
  std::atomic<bool> counted{false};  // included in CloudStats::sessions_active

  // Worker-only state (one worker at a time per session).
  bool hello_ok = false;
  bool prefilled = false;
  wire::Hello hello;
  std::unique_ptr<Verifier> verifier;
  std::unique_ptr<detail::CloudPolicy> policy;  // the rejection mode's cloud half (speculative modes)
  std::uint32_t epoch = 0;
  std::size_t length = 0;
  std::uint32_t seq_out = 0;
  bool awaiting_fixed = false;  // candidates / topk: the next Draft starts with the edge's correction
  std::size_t rej_position = 0;
  // A committed token the verifier has not run yet (a correction): it goes through the model together with the
  // next Draft, in one forward pass, instead of a pass of its own. `length` counts it.
  std::optional<Token> unscored;
  LogitRows rows, shifted;
  std::vector<Token> tokens;  // scratch: the unscored token followed by a Draft's tokens
  std::vector<float> probs;  // cloud-ar sampling
  SamplingWorkspace ws;

  // A chunk waiting for the worker's batched evaluation (Verifier::score_batch), worker-only: a Draft whose
  // verdict follows the evaluation, or one cloud-ar step (the token just sent, to be appended).
  enum class Pending : std::uint8_t { none, draft, ar_step, fill_step } pending = Pending::none;
  std::optional<wire::Message> pending_msg;  // the Draft
  std::span<const Token> pending_chunk;      // what goes through the model
  bool pending_shifted = false;              // pending_chunk = unscored + Draft tokens: rows shift by one
  // cloud-ar: generating in steps (one token per worker pass, batched with other sessions' chunks).
  bool ar_active = false;
  std::uint32_t ar_k = 0;
  Token ar_token = 0;
  // Cloud fill (wire::kHelloFlagCloudFill): the committed tokens (prompt included), for comparing Drafts that
  // start behind the cloud's length; `fill_done` once max_new_tokens or an end-of-generation token is committed.
  bool fill = false;
  bool fill_done = false;
  bool starved = false;  // no useful Draft can be on its way (start, after a rejection or a void): fill steps run
  std::size_t prompt_length = 0;
  std::vector<Token> committed;
  std::size_t fill_matched = 0;  // tokens of the pending Draft that were already committed (reported as accepted)
  // Coalesced Drafts (picospec pipeline): the pending Draft may hold several queued contiguous Drafts, verified in
  // one pass; `segments` keeps each one's original start position and its token count in the merged Draft, so
  // that each still gets the verdict a pass of its own would have given.
  bool coalesce = false;
  struct Segment {
    std::uint32_t start;  // the Draft's start_position as sent (before fill reconciliation)
    std::size_t end;      // one past its last token in the merged Draft's tokens
  };
  std::vector<Segment> segments;
  // Paced fill (CloudOptions::fill_paced), worker-only. `gap_ms`: EMA of the time from a rejection verdict to the
  // arrival of the next chunk of the new epoch; `pass_ms`: EMA of a fill pass (its batch); negative = unmeasured.
  Clock::time_point popped_arrival{};  // arrival of the frame being served
  Clock::time_point prefill_at{}, starved_at{};
  bool gap_open = false;     // a rejection's wait is being timed
  bool fill_paused = false;  // this wait runs no more fill passes (cleared when the wait ends)
  double gap_ms = -1.0, pass_ms = -1.0;
};

struct CloudServer::Impl {
  Impl(CloudServer::VerifierFactory f, ServerTransport& t, CloudOptions o)
      : factory(std::move(f)), transport(t), options(std::move(o)) {}

  CloudServer::VerifierFactory factory;
  ServerTransport& transport;
  CloudOptions options;

  std::mutex mu;  // sessions, ready queue, flags
  std::condition_variable ready_cv;
  std::map<std::pair<PeerId, std::uint64_t>, std::shared_ptr<CloudSession>> sessions;
  std::deque<std::shared_ptr<CloudSession>> ready;
  std::uint64_t next_id = 0;
  bool started = false;
  bool stopping = false;
  std::atomic<bool> stop_flag{false};

  mutable std::mutex stats_mu;
  CloudStats stats;
  std::atomic<std::uint64_t> queued_bytes{0}, queued_frames{0};  // all inboxes together

  // Pops / clears under s.mu (held by the caller), keeping the totals.
  Frame pop_frame_locked(CloudSession& s) {
    Frame f = std::move(s.inbox.front().frame);
    s.popped_arrival = s.inbox.front().arrived;
    s.inbox.pop_front();
    s.inbox_bytes -= f.size();
    queued_bytes -= f.size();
    --queued_frames;
    return f;
  }
  void clear_inbox_locked(CloudSession& s) {
    queued_bytes -= s.inbox_bytes;
    queued_frames -= s.inbox.size();
    s.inbox_bytes = 0;
    s.inbox.clear();
  }

  std::thread io_thread;
  std::vector<std::thread> workers;

  template <class F>
  void bump(F&& f) {
    std::lock_guard lk(stats_mu);
    f(stats);
  }

  // ------------------------------------------------------------------------------------------- sending
  bool send(CloudSession& s, std::uint32_t epoch, wire::Body body) {
    wire::Header h;
    h.session_id = s.id;
    h.epoch = epoch;
    h.seq = s.seq_out++;
    return transport.send(s.peer, wire::encode(h, std::move(body)));
  }
  void send_error(PeerId peer, std::uint64_t session_id, wire::ErrorCode code, std::string message,
                  std::uint32_t seq = 0) {
    wire::Header h;
    h.session_id = session_id;
    h.seq = seq;
    try {
      (void)transport.send(peer, wire::encode(h, wire::ErrorMessage{code, std::move(message)}));
    } catch (...) {  // encoding an Error cannot really fail; never let it escape a thread
    }
    bump([](CloudStats& st) { ++st.errors_sent; });
  }

  // ------------------------------------------------------------------------------------------- I/O thread
  void enqueue(const std::shared_ptr<CloudSession>& s, Frame frame) {
    bool schedule = false;
    bool over = false;
    {
      std::lock_guard lk(s->mu);
      if (s->closed) return;
      if (s->inbox.size() >= options.inbox_frames) {
        bump([](CloudStats& st) { ++st.malformed; });
        return;
      }
      const std::size_t n = frame.size();
      over = s->inbox_bytes + n > options.max_queued_bytes_per_session ||
             queued_bytes.load() + n > options.max_queued_bytes_total;
      if (!over) {
        s->inbox_bytes += n;
        queued_bytes += n;
        ++queued_frames;
        s->inbox.push_back({std::move(frame), Clock::now()});
        if (!s->scheduled) s->scheduled = schedule = true;
      }
    }
    if (over) {  // memory is bounded by bytes: the session that would exceed a limit ends, its frames freed
      s->cancel = true;
      close_session(s);
      bump([](CloudStats& st) { ++st.sessions_over_limit; });
      send_error(s->peer, s->id, wire::ErrorCode::too_large,
                 "frames queued for this session exceed the server's byte limit");
      return;
    }
    if (schedule) {
      {
        std::lock_guard lk(mu);
        ready.push_back(s);
      }
      ready_cv.notify_one();
    }
  }

  // Frames after the Hello are enqueued in seq order, each once (src/seq_order.hpp): duplicates and stale copies
  // are dropped and counted. Bye / Cancel / Error end the session and skip the order. I/O thread only.
  void enqueue_in_order(const std::shared_ptr<CloudSession>& s, const wire::Header& h, Frame frame) {
    using T = wire::MessageType;
    if (h.type == T::hello || h.type == T::bye || h.type == T::cancel || h.type == T::error)
      return enqueue(s, std::move(frame));
    std::vector<Frame> in_order;
    const auto o = s->order.offer(h.seq, std::move(frame), in_order);
    if (o == detail::SeqOrder<Frame>::Outcome::duplicate || o == detail::SeqOrder<Frame>::Outcome::dropped)
      bump([](CloudStats& st) { ++st.stale_dropped; });
    for (auto& f : in_order) enqueue(s, std::move(f));
  }

  void sweep_idle(Clock::time_point now) {
    std::vector<std::shared_ptr<CloudSession>> dead;
    {
      std::lock_guard lk(mu);
      for (auto it = sessions.begin(); it != sessions.end();) {
        bool busy;
        {
          std::lock_guard slk(it->second->mu);
          busy = it->second->scheduled;  // being served (e.g. a long cloud-ar generation): not idle
        }
        if (!busy && now - it->second->last_seen > options.session_idle_timeout) {
          dead.push_back(it->second);
          it = sessions.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& s : dead) {
      s->cancel = true;
      {
        std::lock_guard lk(s->mu);
        s->closed = true;
        clear_inbox_locked(*s);
      }
      if (s->counted.exchange(false)) bump([](CloudStats& st) { --st.sessions_active; });
      bump([](CloudStats& st) { ++st.sessions_timed_out; });
    }
  }

  // ---- peer lifetime (issue 12): a peer whose connection ended holds nothing; one peer holds few sessions.
  std::size_t sessions_of_locked(PeerId peer) const {  // mu held
    std::size_t n = 0;
    for (auto it = sessions.lower_bound({peer, 0}); it != sessions.end() && it->first.first == peer; ++it) ++n;
    return n;
  }
  bool repeated_hello_locked(PeerId peer, std::uint32_t hello_seq) const {  // mu held
    for (auto it = sessions.lower_bound({peer, 0}); it != sessions.end() && it->first.first == peer; ++it)
      if (it->second->hello_seq == hello_seq) return true;
    return false;
  }
  void free_peer_sessions(PeerId peer) {
    std::vector<std::shared_ptr<CloudSession>> gone;
    {
      std::lock_guard lk(mu);
      for (auto it = sessions.lower_bound({peer, 0}); it != sessions.end() && it->first.first == peer;) {
        gone.push_back(it->second);
        it = sessions.erase(it);
      }
    }
    for (auto& s : gone) {
      s->cancel = true;  // a worker serving it stops between tokens; its replies to the departed peer are dropped
      {
        std::lock_guard lk(s->mu);
        s->closed = true;
        clear_inbox_locked(*s);
      }
      if (s->counted.exchange(false)) bump([](CloudStats& st) { --st.sessions_active; });
      bump([](CloudStats& st) { ++st.sessions_disconnected; });
    }
  }

  void io_loop() {
    wire::DecodeLimits limits;
    limits.max_frame_bytes = options.max_frame_bytes;
    limits.max_q_frame_bytes = options.max_frame_bytes;
    auto last_sweep = Clock::now();
    while (!stop_flag.load()) {
      // Departed peers first, then the next frame: a peer's disconnect is reported only after its last frame was
      // received, and that frame was handled in the previous turn (a Bye frees its session as a Bye).
      for (const PeerId gone : transport.take_disconnected()) free_peer_sessions(gone);
      PeerReceived r = transport.recv(Millis(100));
      const auto now = Clock::now();
      if (now - last_sweep > std::chrono::seconds(1)) {
        sweep_idle(now);
        last_sweep = now;
      }
      if (r.status == RecvStatus::closed) break;
      if (r.status != RecvStatus::ok) continue;
      bump([](CloudStats& st) { ++st.frames_in; });
      wire::Header h;
      try {
        h = wire::decode_header(r.frame, limits);
      } catch (const std::exception& e) {
        bump([](CloudStats& st) { ++st.malformed; });
        send_error(r.peer, 0, wire::ErrorCode::malformed, e.what());
        continue;
      }
      std::shared_ptr<CloudSession> s;
      if (h.type == wire::MessageType::hello) {
        std::unique_lock lk(mu);
        if (sessions.size() >= options.max_sessions) {
          lk.unlock();
          bump([](CloudStats& st) { ++st.sessions_refused; });
          send_error(r.peer, 0, wire::ErrorCode::busy, "too many sessions", h.seq);
          continue;
        }
        if (sessions_of_locked(r.peer) >= options.max_sessions_per_peer) {
          lk.unlock();
          bump([](CloudStats& st) { ++st.sessions_refused; });
          send_error(r.peer, 0, wire::ErrorCode::busy, "too many sessions on this connection", h.seq);
          continue;
        }
        if (repeated_hello_locked(r.peer, h.seq)) {  // a duplicated Hello (faulty link): not a second session
          lk.unlock();
          bump([](CloudStats& st) { ++st.stale_dropped; });
          continue;
        }
        s = std::make_shared<CloudSession>();
        s->peer = r.peer;
        s->id = ++next_id;
        s->hello_seq = h.seq;
        s->last_seen = now;
        sessions.emplace(std::make_pair(r.peer, s->id), s);
      } else {
        std::unique_lock lk(mu);
        const auto it = sessions.find({r.peer, h.session_id});
        if (it == sessions.end()) {
          lk.unlock();
          if (h.type != wire::MessageType::bye && h.type != wire::MessageType::error &&
              h.type != wire::MessageType::cancel)
            send_error(r.peer, h.session_id, wire::ErrorCode::unknown_session, "unknown session");
          continue;
        }
        s = it->second;
        s->last_seen = now;
        if (h.type == wire::MessageType::bye || h.type == wire::MessageType::cancel ||
            h.type == wire::MessageType::error) {
          s->cancel = true;    // a cloud-ar loop in a worker stops between tokens
          sessions.erase(it);  // admission counts live sessions only; a worker still finishes this one's frames
        }
      }
      enqueue_in_order(s, h, std::move(r.frame));
    }
  }

  // ------------------------------------------------------------------------------------------- workers
  void close_session(const std::shared_ptr<CloudSession>& s) {
    {
      std::lock_guard lk(s->mu);
      if (s->closed) return;
      s->closed = true;
      clear_inbox_locked(*s);
    }
    {
      std::lock_guard lk(mu);
      const auto it = sessions.find({s->peer, s->id});
      if (it != sessions.end() && it->second == s) sessions.erase(it);
    }
    if (s->counted.exchange(false)) bump([](CloudStats& st) { --st.sessions_active; });
  }

  // Serves one frame; false ends the session. Never throws.
  bool serve(CloudSession& s, const Frame& frame) {
    try {
      wire::DecodeLimits limits;
      limits.max_frame_bytes = options.max_frame_bytes;
      limits.max_q_frame_bytes = options.max_frame_bytes;
      auto decoded = wire::try_decode(frame, limits);
      if (!decoded.ok()) {
        bump([](CloudStats& st) { ++st.malformed; });
        throw SessionFailure{wire::error_code_for(decoded.failure), decoded.reason};
      }
      if (std::holds_alternative<wire::Draft>(decoded.message->body)) {
        // Kept in the session: its verdict is finished after the batched evaluation (finish_pending).
        s.pending_msg = std::move(*decoded.message);
        const bool keep = prepare_draft(s, s.pending_msg->header, std::get<wire::Draft>(s.pending_msg->body));
        if (s.pending == CloudSession::Pending::none) s.pending_msg.reset();
        return keep;
      }
      wire::Message& msg = *decoded.message;
      return std::visit([&](auto& body) { return handle(s, msg.header, body); }, msg.body);
    } catch (const SessionFailure& f) {
      if (!s.hello_ok) bump([](CloudStats& st) { ++st.sessions_refused; });
      s.pending = CloudSession::Pending::none;
      s.pending_msg.reset();
      end_with_error(s, f.code, f.message);
      return false;
    } catch (...) {
      return guarded(s, [] () -> bool { throw; });
    }
  }

  // Ends a session with an Error: out of the admission table first, then the Error. A peer that has the Error may
  // send its next Hello at once (even with the same seq, on the same connection); it must not find the ended session
  // still counted (refused `busy`) or still holding that seq (dropped as a duplicated Hello). Worker thread.
  void end_with_error(CloudSession& s, wire::ErrorCode code, std::string message) {
    {
      std::lock_guard lk(mu);
      const auto it = sessions.find({s.peer, s.id});
      if (it != sessions.end() && it->second.get() == &s) sessions.erase(it);
    }
    send_error(s.peer, s.id, code, std::move(message), reply_seq(s));
  }

  // An error that answers the Hello echoes its seq (the edge matches it to its Hello); later ones carry the session.
  static std::uint32_t reply_seq(const CloudSession& s) noexcept { return s.hello_ok ? 0u : s.hello_seq; }

  // ------------------------------------------------------------------------------------------- batching
  // A worker takes up to options.max_batch ready sessions, advances each to its next chunk that needs the model
  // (a Draft, a cloud-ar step), evaluates all those chunks as one Verifier::score_batch (one backend call when the
  // verifiers share a batch key), then finishes each (verdict) and puts the sessions that have more work at the
  // back of the ready queue: every session gets one chunk per pass, so none starves and cloud-ar holds no worker.
  void worker_loop() {
    std::vector<std::shared_ptr<CloudSession>> batch, scoring;
    for (;;) {
      batch.clear();
      {
        std::unique_lock lk(mu);
        ready_cv.wait(lk, [&] { return stopping || !ready.empty(); });
        if (stopping) return;
        while (!ready.empty() && batch.size() < options.max_batch) {
          batch.push_back(std::move(ready.front()));
          ready.pop_front();
        }
      }
      scoring.clear();
      for (auto& s : batch) {
        const auto t0 = Clock::now();
        const bool keep = advance(*s);
        bump([&](CloudStats& st) { st.busy_ms += ms_between(t0, Clock::now()); });
        if (!keep) {
          close_session(s);
        } else if (s->pending != CloudSession::Pending::none) {
          scoring.push_back(s);
        }
      }
      if (!scoring.empty()) {
        const auto t0 = Clock::now();
        score_all(scoring);
        const double pass = ms_between(t0, Clock::now());
        for (auto& s : scoring) {
          if (s->pending == CloudSession::Pending::fill_step) s->pass_ms = ema_ms(s->pass_ms, pass, kFillEmaWeight);
          if (!finish_pending(*s)) close_session(s);
        }
        bump([&](CloudStats& st) { st.busy_ms += ms_between(t0, Clock::now()); });
      }
      for (auto& s : batch) release(s);
    }
  }

  // Serves the session's queued frames until one needs the model (then pending is set) or none is left; a
  // cloud-ar session with nothing queued prepares its next step. False ends the session.
  bool advance(CloudSession& s) {
    for (;;) {
      Frame frame;
      {
        std::lock_guard lk(s.mu);
        if (s.closed || stop_flag.load()) return true;
        if (s.inbox.empty()) break;
        frame = pop_frame_locked(s);
      }
      if (!serve(s, frame)) return false;
      if (s.pending != CloudSession::Pending::none) return true;
    }
    if (s.ar_active) return guarded(s, [&] { return step_cloud_ar(s); });
    if (fill_step_wanted(s)) return guarded(s, [&] { return step_fill(s); });
    return true;
  }

  // Back to the ready queue when it has more to do, else unscheduled (the I/O thread schedules it again).
  void release(const std::shared_ptr<CloudSession>& s) {
    bool again;
    {
      std::lock_guard lk(s->mu);
      again = !s->closed && !stop_flag.load() &&
              (!s->inbox.empty() || s->ar_active || (s->starved && !s->fill_paused && fill_wanted(*s)));
      if (!again) s->scheduled = false;
    }
    if (again) {
      {
        std::lock_guard lk(mu);
        ready.push_back(s);
      }
      ready_cv.notify_one();
    }
  }

  // One evaluation for every pending chunk (validated when it was prepared). A backend failure of the whole
  // batch is retried one session at a time, so it ends only the sessions whose own chunk fails.
  void score_all(std::vector<std::shared_ptr<CloudSession>>& ss) {
    std::vector<Verifier::ScoreItem> items;
    items.reserve(ss.size());
    for (auto& s : ss) items.push_back({s->verifier.get(), s->pending_chunk, &s->rows});
    const auto t0 = Clock::now();
    bool ok = true;
    try {
      Verifier::score_batch(items);
    } catch (...) {
      ok = false;
    }
    if (!ok) {
      for (auto& s : ss) {
        try {
          s->verifier->score(s->pending_chunk, s->rows);
        } catch (const std::exception& e) {
          s->pending = CloudSession::Pending::none;
          s->pending_msg.reset();
          end_with_error(*s, wire::ErrorCode::internal, e.what());
          close_session(s);
        }
      }
    }
    const double ms = ms_between(t0, Clock::now());
    const std::size_t n = ss.size();
    bump([&](CloudStats& st) {
      st.verify_ms += ms;
      ++st.verify_batches;
      st.verify_batch_items += n;
      std::size_t b = 0;
      while (b + 1 < st.batch_size_hist.size() && n > (std::size_t{1} << b)) ++b;
      ++st.batch_size_hist[b];
      if (n > st.max_batch_seen) st.max_batch_seen = n;
    });
  }

  // Runs `f` (returning keep/end) with serve()'s failure handling: a failure sends an Error and ends the session.
  template <class F>
  bool guarded(CloudSession& s, F&& f) {
    try {
      return f();
    } catch (const SessionFailure& fl) {
      end_with_error(s, fl.code, fl.message);
    } catch (const detail::PolicyFailure& fl) {
      end_with_error(s, fl.code, fl.message);
    } catch (const DecodeError& e) {
      end_with_error(s, wire::ErrorCode::malformed, e.what());
    } catch (const std::exception& e) {
      end_with_error(s, wire::ErrorCode::internal, e.what());
    } catch (...) {
      end_with_error(s, wire::ErrorCode::internal, "unknown exception");
    }
    s.pending = CloudSession::Pending::none;
    s.pending_msg.reset();
    s.ar_active = false;
    return false;
  }

  bool finish_pending(CloudSession& s) {
    {
      std::lock_guard lk(s.mu);
      if (s.closed) {  // ended while it was evaluated (its peer left, an error): nothing more to send
        s.pending = CloudSession::Pending::none;
        s.pending_msg.reset();
        return true;
      }
    }
    const auto kind = s.pending;
    s.pending = CloudSession::Pending::none;
    if (kind == CloudSession::Pending::ar_step) {
      ++s.length;
      ++s.ar_k;
      return true;
    }
    if (kind == CloudSession::Pending::fill_step) {  // the last committed token is in the model now
      s.unscored.reset();
      return guarded(s, [&] { return fill_wanted(s) ? commit_fill(s) : true; });
    }
    return guarded(s, [&] {
      const bool keep = finish_draft(s, s.pending_msg->header, std::get<wire::Draft>(s.pending_msg->body));
      s.pending_msg.reset();
      return keep;
    });
  }

  template <class F>
  auto timed_verify(F&& f) {
    const auto t0 = Clock::now();
    struct Guard {
      Impl* self;
      Clock::time_point t0;
      ~Guard() {
        const double ms = ms_between(t0, Clock::now());
        self->bump([&](CloudStats& st) { st.verify_ms += ms; });
      }
    } g{this, t0};
    return f();
  }

  // A session may hold CloudOptions::max_context tokens, and no more than its target's context length: beyond
  // either, context_full (the edge ends the generation with finish length and keeps its tokens).
  bool context_fits(const CloudSession& s, std::size_t tokens) const {
    const std::size_t model = s.verifier->info().context_length;
    return !(options.max_context != 0 && tokens > options.max_context) && !(model != 0 && tokens > model);
  }
  void check_context(const CloudSession& s, std::size_t tokens) {
    if (context_fits(s, tokens)) return;
    const std::size_t model = s.verifier->info().context_length;
    std::string limit;
    if (options.max_context != 0 && tokens > options.max_context)
      limit = "context limit of " + std::to_string(options.max_context) + " tokens per session";
    else
      limit = "the target's context length of " + std::to_string(model) + " tokens";
    bump([](CloudStats& st) { ++st.sessions_context_limited; });
    throw SessionFailure{wire::ErrorCode::context_full, limit + " reached (" + std::to_string(tokens) + ")"};
  }

  static void require(bool ok, wire::ErrorCode code, const std::string& msg) {
    if (!ok) throw SessionFailure{code, msg};
  }

  bool handle(CloudSession& s, const wire::Header& hello_header, wire::Hello& hello) {
    require(!s.hello_ok, wire::ErrorCode::bad_state, "second Hello in a session");
    s.verifier = factory();
    require(s.verifier != nullptr, wire::ErrorCode::internal, "verifier factory returned null");
    if (auto err = wire::compatibility_error(hello, s.verifier->info()))
      throw SessionFailure{err->code, err->message};
    const PipelineMode mode = hello.pipeline;
    require(hello.candidates_m <= kMaxCandidatesPerFrame, wire::ErrorCode::invalid_params,
            "candidates_m above " + std::to_string(kMaxCandidatesPerFrame) + " (one verdict frame's limit)");
    require(mode != PipelineMode::edge_only, wire::ErrorCode::unsupported_mode, "edge-only needs no cloud");
    if (mode != PipelineMode::cloud_ar) {
      detail::PolicyConfig cfg;
      cfg.sampling = hello.sampling;
      cfg.seed = hello.seed;
      cfg.vocab = s.verifier->info().vocab_size;
      cfg.codec = hello.codec;
      cfg.topk_k = hello.topk_k;
      cfg.candidates_m = hello.candidates_m;
      cfg.block_verify = (hello_header.flags & wire::kHelloFlagBlockVerify) != 0;
      const RejectionMode rejection = hello.sampling.greedy() ? RejectionMode::greedy : hello.rejection;
      try {
        s.policy = detail::make_cloud_policy(rejection, cfg);
      } catch (const detail::PolicyFailure& f) {
        throw SessionFailure{f.code, f.message};
      }
      // The paper's pipeline verifies chunk by chunk, as published; picospec's cloud takes every queued chunk
      // that continues the pending one into the same pass (not with block verification, whose outcome depends on
      // the block).
      s.coalesce = options.coalesce_drafts && mode == PipelineMode::picospec && !cfg.block_verify;
      if ((hello_header.flags & wire::kHelloFlagCloudFill) != 0) {
        require(draft_invariant(rejection), wire::ErrorCode::invalid_params,
                "cloud fill needs rejection greedy or coupled (tokens that do not depend on the draft)");
        s.fill = options.cloud_fill;
      }
    }
    s.hello = std::move(hello);
    s.hello_ok = true;
    s.counted = true;
    bump([](CloudStats& st) {
      ++st.sessions_opened;
      ++st.sessions_active;
    });
    {
      // Its peer left while this Hello was served: free_peer_sessions closed the session before it was counted,
      // so it is uncounted here (exactly one of the two exchanges sees `true`).
      std::lock_guard lk(s.mu);
      if (s.closed && s.counted.exchange(false)) bump([](CloudStats& st) { --st.sessions_active; });
    }
    wire::Welcome w;
    w.target = wire::fingerprint(s.verifier->info());
    w.server_name = options.name;
    wire::Header h;  // the Welcome echoes the Hello's seq (see CloudSession::hello_seq)
    h.session_id = s.id;
    h.seq = s.hello_seq;
    return transport.send(s.peer, wire::encode(h, std::move(w)));
  }

  bool handle(CloudSession& s, const wire::Header&, wire::Prefill& p) {
    require(s.hello_ok && !s.prefilled, wire::ErrorCode::bad_state, "Prefill before Hello or twice");
    require(!p.tokens.empty(), wire::ErrorCode::invalid_params, "empty prompt");
    if (options.max_context != 0 && p.tokens.size() > options.max_context) {
      bump([](CloudStats& st) { ++st.sessions_context_limited; });
      throw SessionFailure{wire::ErrorCode::invalid_params,
                           "prompt of " + std::to_string(p.tokens.size()) + " tokens is above the context limit of " +
                               std::to_string(options.max_context) + " tokens per session"};
    }
    try {
      timed_verify([&] { s.verifier->begin(p.tokens); });
    } catch (const Error& e) {
      throw SessionFailure{wire::ErrorCode::invalid_params, e.what()};
    }
    s.length = p.tokens.size();
    s.prefilled = true;
    if (s.fill) {
      s.prompt_length = p.tokens.size();
      s.committed = p.tokens;
      s.fill_done = s.hello.max_new_tokens == 0;
      s.prefill_at = Clock::now();
      start_wait(s, false);
      if (fill_wanted(s)) return commit_fill(s);  // the first token is decided by the prompt's pending row
    }
    if (s.hello.pipeline == PipelineMode::cloud_ar) {
      s.ar_active = s.hello.max_new_tokens > 0;  // generates in steps: advance() -> step_cloud_ar()
      s.ar_k = 0;
    }
    return true;
  }

  // The target's token at position `length` from the pending row: greedy argmax; with the coupled rejection the
  // coupled draw (what its acceptance test would decide, and what cloud-ar gives when asked for coupled); else a
  // draw keyed (target_sample, position).
  Token decide_next(CloudSession& s) {
    const auto& sp = s.hello.sampling;
    const auto row = s.verifier->pending_logits();
    if (sp.greedy()) return argmax(row);
    logits_to_probs(row, sp, s.probs, s.ws);
    if (s.hello.rejection == RejectionMode::coupled) return coupled_sample(s.probs, s.hello.seed, s.length);
    return sample_from(s.probs, uniform(s.hello.seed, Purpose::target_sample, s.length, 0));
  }

  // Leaves one token pending for the batched evaluation (a cloud-ar step or a fill step), after the checks.
  bool pend_one(CloudSession& s, Token tok, CloudSession::Pending kind) {
    s.ar_token = tok;
    s.pending_chunk = std::span<const Token>(&s.ar_token, 1);
    check_context(s, s.verifier->length() + 1);
    if (auto why = s.verifier->score_problem(s.pending_chunk); !why.empty()) throw Error(why);
    s.pending = kind;
    return true;
  }

  // One cloud-ar token: sample it from the pending row, send it, and (unless it ends the generation) leave it
  // pending for the batched evaluation that appends it. Stops quietly when the session is cancelled.
  bool step_cloud_ar(CloudSession& s) {
    if (s.cancel.load() || stop_flag.load() || s.ar_k >= s.hello.max_new_tokens) {
      s.ar_active = false;
      return true;
    }
    const ModelInfo& info = s.verifier->info();
    const Token tok = decide_next(s);
    const bool done = s.ar_k + 1 == s.hello.max_new_tokens || info.is_eog(tok);
    wire::Tokens t;
    t.start_position = static_cast<std::uint32_t>(s.length);
    t.tokens = {tok};
    t.done = done;
    if (!send(s, 0, std::move(t))) return false;
    bump([](CloudStats& st) { ++st.cloud_ar_tokens; });
    if (done) {
      s.ar_active = false;
      return true;
    }
    return pend_one(s, tok, CloudSession::Pending::ar_step);
  }

  // ---- cloud fill (wire::kHelloFlagCloudFill)
  // The next token may be committed now (its row is computed: after a pass, or the prompt's).
  bool fill_wanted(const CloudSession& s) const {
    return s.fill && s.prefilled && !s.fill_done && s.pending == CloudSession::Pending::none && !s.cancel.load() &&
           !stop_flag.load();
  }
  // A fill step (a one-token pass) is worth running: no Draft is queued and none that could be verified is on
  // its way (at the start, after a rejection or a void). After an accepted chunk the next one is usually in
  // flight, and a pass then would only delay it.
  bool fill_step_wanted(CloudSession& s) {
    if (!s.starved || s.fill_paused || !fill_wanted(s)) return false;
    {
      std::lock_guard lk(s.mu);
      if (!s.inbox.empty()) return false;
    }
    if (!fill_due(s)) {
      s.fill_paused = true;
      bump([](CloudStats& st) { ++st.fill_paused; });
      return false;
    }
    return true;
  }

  // Paced fill: a pass is worth it unless the next chunk is due before it would end, by more than the session's
  // wall time per committed token (what the pass gains). Unpaced until both times are measured.
  bool fill_due(const CloudSession& s) const {
    if (!options.fill_paced || s.gap_ms < 0.0 || s.pass_ms < 0.0) return true;
    const auto now = Clock::now();
    const double remaining = s.gap_ms - ms_between(s.starved_at, now);
    const std::size_t made = s.length - s.prompt_length;
    const double per_token = made > 0 ? ms_between(s.prefill_at, now) / static_cast<double>(made) : 0.0;
    return remaining >= s.pass_ms - per_token;
  }
  // A wait for the edge's next chunk starts (fill passes may run); `timed`: a rejection, whose wait is measured.
  static void start_wait(CloudSession& s, bool timed) {
    s.starved = true;
    s.fill_paused = false;
    s.starved_at = Clock::now();
    s.gap_open = timed;
  }

  // Decides the token at position `length` from the pending row, exactly as the policy's test would (greedy:
  // argmax; coupled: coupled_sample of the sampling transform), commits it and sends it down. It stays
  // `unscored` until a Draft or a fill step takes it through the model.
  bool commit_fill(CloudSession& s) {
    const Token tok = decide_next(s);
    const bool done = s.length + 1 - s.prompt_length >= s.hello.max_new_tokens || s.verifier->info().is_eog(tok);
    wire::Tokens t;
    t.start_position = static_cast<std::uint32_t>(s.length);
    t.tokens = {tok};
    t.done = done;
    s.committed.push_back(tok);
    ++s.length;
    s.unscored = tok;
    s.fill_done = done;
    bump([](CloudStats& st) { ++st.fill_tokens; });
    return send(s, s.epoch, std::move(t));
  }

  // No Draft to verify: take the last committed token through the model alone (one decode step), after which
  // finish_pending commits the next one. What cloud-ar does, while the edge's next chunk is on its way.
  bool step_fill(CloudSession& s) {
    if (!s.unscored) {
      if (!commit_fill(s)) return false;
      if (!fill_wanted(s)) return true;
    }
    return pend_one(s, *s.unscored, CloudSession::Pending::fill_step);
  }

  // A Draft in a fill session may start behind the cloud's length. The tokens behind it are compared with the
  // committed ones: one differs -> void (no verdict; the epoch moves on, as the edge expects); all equal and
  // nothing left -> consumed (no verdict); else they count as accepted and the rest is verified. False: no
  // verification needed.
  bool reconcile_fill(CloudSession& s, wire::Draft& d) {
    s.fill_matched = 0;
    require(d.n_fixed == 0, wire::ErrorCode::bad_state, "fixed token in a cloud-fill session");
    require(d.start_position <= s.length, wire::ErrorCode::bad_state,
            "Draft at position " + std::to_string(d.start_position) + ", beyond the cloud's " +
                std::to_string(s.length));
    const std::size_t behind = std::min<std::size_t>(s.length - d.start_position, d.tokens.size());
    for (std::size_t i = 0; i < behind; ++i) {
      if (d.tokens[i] != s.committed[d.start_position + i]) {
        ++s.epoch;
        start_wait(s, false);
        bump([](CloudStats& st) { ++st.chunks_voided; });
        return false;
      }
    }
    if (behind == d.tokens.size()) {
      bump([](CloudStats& st) { ++st.chunks_consumed; });
      return false;
    }
    s.fill_matched = behind;
    d.tokens.erase(d.tokens.begin(), d.tokens.begin() + static_cast<std::ptrdiff_t>(behind));
    d.start_position += static_cast<std::uint32_t>(behind);
    return true;
  }

  // Coalescing: the queued frames that continue `d` in the same epoch (Drafts without a fixed token, starting
  // where `d` ends, the same payload kinds, valid for the policy) join it, up to options.max_coalesced_tokens.
  // Each keeps its own verdict (finish_draft), so the edge sees what separate passes would have sent, earlier.
  // A frame that does not qualify stays queued and is served as usual (its errors included).
  void absorb_queued(CloudSession& s, wire::Draft& d) {
    wire::DecodeLimits limits;
    limits.max_frame_bytes = options.max_frame_bytes;
    limits.max_q_frame_bytes = options.max_frame_bytes;
    for (;;) {
      std::lock_guard lk(s.mu);
      if (s.inbox.empty() || s.closed) return;
      auto decoded = wire::try_decode(s.inbox.front().frame, limits);
      if (!decoded.ok() || !std::holds_alternative<wire::Draft>(decoded.message->body)) return;
      auto& next = std::get<wire::Draft>(decoded.message->body);
      const std::size_t n = d.tokens.size(), m = next.tokens.size();
      if (decoded.message->header.epoch != s.epoch || next.n_fixed != 0 || m == 0 ||
          next.start_position != d.start_position + n || n + m > options.max_coalesced_tokens ||
          !context_fits(s, s.verifier->length() + (s.unscored ? 1 : 0) + n + m) ||
          next.q_scalars.empty() != d.q_scalars.empty() || next.q_frames.empty() != d.q_frames.empty())
        return;
      if (!s.verifier->score_problem(next.tokens).empty()) return;  // served alone: its error, after this pass
      try {
        s.policy->check_draft(next);
      } catch (const detail::PolicyFailure&) {
        return;
      }
      const auto arrival = s.popped_arrival;  // paced fill times the Draft that opened the pass
      (void)pop_frame_locked(s);
      s.popped_arrival = arrival;
      d.tokens.insert(d.tokens.end(), next.tokens.begin(), next.tokens.end());
      d.q_scalars.insert(d.q_scalars.end(), next.q_scalars.begin(), next.q_scalars.end());
      for (auto& f : next.q_frames) d.q_frames.push_back(std::move(f));
      s.segments.push_back({next.start_position, d.tokens.size()});
      bump([](CloudStats& st) { ++st.drafts_coalesced; });
    }
  }

  // First half of a Draft: checks, and the chunk to evaluate (pending) unless it needs none.
  bool prepare_draft(CloudSession& s, const wire::Header& h, wire::Draft& d) {
    require(s.prefilled, wire::ErrorCode::bad_state, "Draft before Prefill");
    require(s.hello.pipeline != PipelineMode::cloud_ar, wire::ErrorCode::bad_state,
            "Draft in a cloud-ar session");
    if (h.epoch != s.epoch) {
      bump([](CloudStats& st) { ++st.stale_dropped; });
      return true;
    }
    require(!d.tokens.empty(), wire::ErrorCode::invalid_params, "empty Draft");
    if (s.fill && s.gap_open) {  // the chunk after a rejection: how long the edge took to send it
      s.gap_ms = ema_ms(s.gap_ms, ms_between(s.starved_at, s.popped_arrival), kFillEmaWeight);
      s.gap_open = false;
    }
    if (s.fill && !reconcile_fill(s, d)) return true;
    require(d.start_position == s.length, wire::ErrorCode::bad_state,
            "Draft at position " + std::to_string(d.start_position) + ", expected " + std::to_string(s.length));
    require(d.n_fixed == (s.awaiting_fixed ? 1 : 0), wire::ErrorCode::bad_state,
            s.awaiting_fixed ? "expected the correction as a fixed token" : "unexpected fixed token");
    const std::size_t n = d.tokens.size();
    detail::CloudPolicy& policy = *s.policy;
    policy.check_draft(d);

    const std::size_t base = s.length;
    if (n == d.n_fixed) {
      // Only the edge's correction: commit it untested (as always) and run it through the model with the next
      // Draft rather than in a forward pass of its own.
      s.unscored = d.tokens[0];
      s.awaiting_fixed = false;
      s.length = base + 1;
      bump([](CloudStats& st) { ++st.chunks_verified; });
      wire::Verdict v;
      v.start_position = d.start_position;
      v.accepted = 1;
      v.kind = wire::VerdictKind::all_accepted;
      return send(s, s.epoch, std::move(v));
    }
    s.segments.assign(1, CloudSession::Segment{static_cast<std::uint32_t>(d.start_position - s.fill_matched),
                                               d.tokens.size()});
    if (s.coalesce) absorb_queued(s, d);
    if (s.unscored) {
      s.tokens.assign(1, *s.unscored);
      s.tokens.insert(s.tokens.end(), d.tokens.begin(), d.tokens.end());
      s.pending_chunk = s.tokens;
      s.pending_shifted = true;
    } else {
      s.pending_chunk = d.tokens;
      s.pending_shifted = false;
    }
    check_context(s, s.verifier->length() + s.pending_chunk.size());
    if (auto why = s.verifier->score_problem(s.pending_chunk); !why.empty()) throw Error(why);
    s.pending = CloudSession::Pending::draft;
    return true;
  }

  // Second half, after the batched evaluation filled s.rows: the acceptance tests and the verdict.
  bool finish_draft(CloudSession& s, const wire::Header&, wire::Draft& d) {
    const std::size_t n = d.tokens.size();
    detail::CloudPolicy& policy = *s.policy;
    const std::size_t base = s.length;
    // Row i of `rows` is the target's distribution for d.tokens[i].
    LogitRows* rows = &s.rows;
    if (s.pending_shifted) {
      s.unscored.reset();
      s.shifted.resize(s.rows.rows() - 1, s.rows.vocab());
      std::copy(s.rows.data() + s.rows.vocab(), s.rows.data() + s.rows.rows() * s.rows.vocab(), s.shifted.data());
      rows = &s.shifted;
    }
    std::size_t accepted = d.n_fixed;
    bool rejected = false;
    std::uint64_t tested = 0;
    if (const auto block = d.tokens.size() > d.n_fixed
                               ? policy.verify_block(d, d.n_fixed, *rows, base + d.n_fixed, s.epoch)
                               : std::nullopt) {
      accepted += block->first;
      rejected = block->second;
      tested = block->first + (rejected ? 1 : 0);
    } else {
      for (std::size_t i = d.n_fixed; i < n; ++i) {
        ++tested;
        if (!policy.test(d, i, rows->row(i), base + i, s.epoch)) {
          rejected = true;
          break;
        }
        ++accepted;
      }
    }
    const std::uint64_t acc_drafts = accepted - d.n_fixed;
    bump([&](CloudStats& st) {
      ++st.chunks_verified;
      st.drafts_tested += tested;
      st.drafts_accepted += acc_drafts;
      if (rejected) ++st.rejections;
    });
    s.awaiting_fixed = false;
    if (s.fill) s.committed.insert(s.committed.end(), d.tokens.begin(), d.tokens.begin() + static_cast<std::ptrdiff_t>(accepted));
    // One verdict per Draft sent (several when coalesced): those wholly accepted before the one that ends this
    // pass (the rejected one, or the last) get all_accepted; Drafts after a rejection are void, as a chunk queued
    // behind a rejected one always is (dropped as stale, no verdict). Fill: a Draft's leading tokens that were
    // already committed count as accepted, from its original start.
    const std::size_t matched = s.fill_matched;
    s.fill_matched = 0;
    std::size_t ends = 0, lo = 0;
    while (ends + 1 < s.segments.size() && (!rejected || accepted >= s.segments[ends].end)) {
      wire::Verdict whole;
      whole.start_position = s.segments[ends].start;
      whole.accepted = static_cast<std::uint16_t>(s.segments[ends].end - lo + (ends == 0 ? matched : 0));
      whole.kind = wire::VerdictKind::all_accepted;
      if (!send(s, s.epoch, std::move(whole))) return false;
      lo = s.segments[ends].end;
      ++ends;
    }
    if (const std::size_t voided = s.segments.size() - ends - 1; voided + ends > 0)
      bump([&](CloudStats& st) {
        st.chunks_verified += ends;
        st.stale_dropped += voided;
      });
    wire::Verdict v;
    v.start_position = s.segments[ends].start;
    v.accepted = static_cast<std::uint16_t>(accepted - lo + (ends == 0 ? matched : 0));
    if (!rejected) {
      s.length = base + n;
      v.kind = wire::VerdictKind::all_accepted;
      if (!send(s, s.epoch, std::move(v))) return false;
      if (s.fill) {
        bool eog = false;
        for (const Token t : d.tokens) eog = eog || s.verifier->info().is_eog(t);
        if (eog || s.length - s.prompt_length >= s.hello.max_new_tokens) s.fill_done = true;
      }
      s.starved = false;
      // Fill: the row after the chunk is already computed, so the next token is decided at once.
      return fill_wanted(s) ? commit_fill(s) : true;
    }
    const std::size_t pos = base + accepted;
    const std::uint32_t old_epoch = s.epoch;
    s.epoch = old_epoch + 1;
    const detail::CloudRejection rej = policy.reject(v, pos, old_epoch);
    if (!rej.cloud_decided) {
      // The edge decides the correction and sends it back as the next Draft's fixed token.
      s.rej_position = pos;
      s.awaiting_fixed = true;
      const bool sent = send(s, s.epoch, std::move(v));
      timed_verify([&] { s.verifier->rollback(pos); });
      s.length = pos;
      return sent;
    }
    // The cloud decided: tell the edge first; the correction goes through the model with the next Draft.
    s.unscored = v.correction;
    if (s.fill) {
      start_wait(s, true);
      s.committed.push_back(v.correction);
      if (pos + 1 - s.prompt_length >= s.hello.max_new_tokens || s.verifier->info().is_eog(v.correction))
        s.fill_done = true;
    }
    const bool sent = send(s, s.epoch, std::move(v));
    timed_verify([&] { s.verifier->rollback(pos); });
    s.length = pos + 1;
    return sent;
  }

  bool handle(CloudSession& s, const wire::Header& h, wire::MoreCandidates& m) {
    if (h.epoch != s.epoch) {
      bump([](CloudStats& st) { ++st.stale_dropped; });
      return true;
    }
    require(s.awaiting_fixed && s.policy && m.position == s.rej_position, wire::ErrorCode::bad_state,
            "unexpected MoreCandidates");
    wire::Verdict v;
    s.policy->more(m, v);
    bump([](CloudStats& st) { ++st.more_candidates; });
    return send(s, s.epoch, std::move(v));
  }

  bool handle(CloudSession&, const wire::Header&, wire::Cancel&) { return false; }
  bool handle(CloudSession&, const wire::Header&, wire::Bye&) { return false; }
  bool handle(CloudSession&, const wire::Header&, wire::ErrorMessage&) { return false; }
  template <class Other>
  bool handle(CloudSession&, const wire::Header&, Other&) {
    throw SessionFailure{wire::ErrorCode::bad_state, "message not expected by the cloud"};
  }
};

CloudServer::CloudServer(VerifierFactory factory, std::unique_ptr<ServerTransport> transport, CloudOptions options)
    : transport_(std::move(transport)) {
  if (!factory) throw Error("CloudServer: empty verifier factory");
  if (!transport_) throw Error("CloudServer: null transport");
  if (options.workers == 0) throw Error("CloudServer: workers must be >= 1");
  if (options.inbox_frames == 0 || options.max_sessions == 0 || options.max_sessions_per_peer == 0 ||
      options.max_batch == 0)
    throw Error("CloudServer: zero-sized limits");
  impl_ = std::make_unique<Impl>(std::move(factory), *transport_, std::move(options));
}

CloudServer::~CloudServer() { stop(); }

void CloudServer::start() {
  std::lock_guard lk(impl_->mu);
  if (impl_->started || impl_->stopping) throw Error("CloudServer::start: already started or stopped");
  impl_->started = true;
  impl_->io_thread = std::thread([this] { impl_->io_loop(); });
  for (std::size_t i = 0; i < impl_->options.workers; ++i)
    impl_->workers.emplace_back([this] { impl_->worker_loop(); });
}

void CloudServer::stop() {
  {
    std::lock_guard lk(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
  }
  impl_->stop_flag = true;
  impl_->ready_cv.notify_all();
  transport_->close();
  if (impl_->io_thread.joinable()) impl_->io_thread.join();
  for (auto& w : impl_->workers)
    if (w.joinable()) w.join();
}

CloudStats CloudServer::stats() const {
  std::size_t ready = 0;
  {
    std::lock_guard lk(impl_->mu);
    ready = impl_->ready.size();
  }
  std::lock_guard lk(impl_->stats_mu);
  CloudStats s = impl_->stats;
  s.ready_sessions = ready;
  s.queued_frames = impl_->queued_frames.load();
  s.queued_bytes = impl_->queued_bytes.load();
  return s;
}

namespace {
struct Metric {
  const char* name;
  const char* type;  // counter | gauge
  const char* help;
  double value;
};

std::vector<Metric> metrics_of(const CloudStats& s) {
  auto d = [](std::uint64_t v) { return static_cast<double>(v); };
  return {
      {"sessions_opened_total", "counter", "Sessions opened (Hello accepted).", d(s.sessions_opened)},
      {"sessions_refused_total", "counter", "Hellos refused (limits, incompatibility).", d(s.sessions_refused)},
      {"sessions_active", "gauge", "Sessions open now.", d(s.sessions_active)},
      {"sessions_disconnected_total", "counter", "Sessions freed because their peer's connection ended.",
       d(s.sessions_disconnected)},
      {"sessions_timed_out_total", "counter", "Sessions closed after the idle timeout.", d(s.sessions_timed_out)},
      {"sessions_over_limit_total", "counter", "Sessions ended for queuing more bytes than allowed.",
       d(s.sessions_over_limit)},
      {"sessions_context_limited_total", "counter", "Sessions ended at a context limit (per-session max_context or the target model's context).",
       d(s.sessions_context_limited)},
      {"frames_in_total", "counter", "Frames received.", d(s.frames_in)},
      {"frames_stale_dropped_total", "counter", "Stale, duplicate or out-of-epoch frames dropped.", d(s.stale_dropped)},
      {"frames_malformed_total", "counter", "Frames that failed to decode or overflowed an inbox.", d(s.malformed)},
      {"errors_sent_total", "counter", "Error frames sent.", d(s.errors_sent)},
      {"chunks_verified_total", "counter", "Draft chunks verified.", d(s.chunks_verified)},
      {"drafts_tested_total", "counter", "Draft tokens tested.", d(s.drafts_tested)},
      {"drafts_accepted_total", "counter", "Draft tokens accepted.", d(s.drafts_accepted)},
      {"rejections_total", "counter", "Chunks with a rejected draft.", d(s.rejections)},
      {"drafts_coalesced_total", "counter", "Draft chunks verified in the pass of the chunk before them.",
       d(s.drafts_coalesced)},
      {"cloud_ar_tokens_total", "counter", "Tokens generated in cloud-ar sessions.", d(s.cloud_ar_tokens)},
      {"fill_tokens_total", "counter", "Tokens committed by the cloud with no draft (cloud fill).", d(s.fill_tokens)},
      {"chunks_consumed_total", "counter", "Drafts wholly behind cloud-fill tokens, all equal (no verdict).",
       d(s.chunks_consumed)},
      {"chunks_voided_total", "counter", "Drafts that differ from a cloud-fill token (void, no verdict).",
       d(s.chunks_voided)},
      {"fill_paused_total", "counter", "Waits in which paced fill ran no more passes: the next chunk was due.",
       d(s.fill_paused)},
      {"busy_seconds_total", "counter", "Worker time serving sessions.", s.busy_ms / 1000.0},
      {"ready_sessions", "gauge", "Sessions waiting for a worker.", d(s.ready_sessions)},
      {"queued_frames", "gauge", "Frames received and not yet served.", d(s.queued_frames)},
      {"queued_bytes", "gauge", "Bytes of frames received and not yet served.", d(s.queued_bytes)},
      {"max_batch_seen", "gauge", "Largest batch evaluated so far.", d(s.max_batch_seen)},
  };
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}
}  // namespace

std::string to_prometheus(const CloudStats& s, const std::string& prefix) {
  std::string out;
  for (const Metric& m : metrics_of(s)) {
    const std::string name = prefix + "_" + m.name;
    out += "# HELP " + name + " " + m.help + "\n# TYPE " + name + " " + m.type + "\n" + name + " " + number(m.value) + "\n";
  }
  // Batch sizes (chunks per evaluation) as a cumulative histogram with the CloudStats buckets.
  const std::string h = prefix + "_batch_size";
  out += "# HELP " + h + " Chunks evaluated together per Verifier::score_batch call.\n# TYPE " + h + " histogram\n";
  static const char* le[] = {"1", "2", "4", "8", "16", "32", "64", "+Inf"};
  std::uint64_t cum = 0;
  for (std::size_t i = 0; i < s.batch_size_hist.size(); ++i) {
    cum += s.batch_size_hist[i];
    out += h + "_bucket{le=\"" + le[i] + "\"} " + std::to_string(cum) + "\n";
  }
  out += h + "_sum " + std::to_string(s.verify_batch_items) + "\n" + h + "_count " + std::to_string(s.verify_batches) + "\n";
  // Verify time: the model time per chunk is _sum / _count.
  const std::string v = prefix + "_verify_seconds";
  out += "# HELP " + v + " Time inside Verifier calls; per chunk = _sum / _count.\n# TYPE " + v + " summary\n";
  out += v + "_sum " + number(s.verify_ms / 1000.0) + "\n" + v + "_count " + std::to_string(s.verify_batch_items) + "\n";
  return out;
}

std::string to_json(const CloudStats& s) {
  std::string out = "{";
  for (const Metric& m : metrics_of(s)) {
    out += '"';
    out += m.name;
    out += "\":";
    out += number(m.value);
    out += ',';
  }
  out += "\"verify_batches\":" + std::to_string(s.verify_batches);
  out += ",\"verify_batch_items\":" + std::to_string(s.verify_batch_items);
  out += ",\"verify_ms\":" + number(s.verify_ms);
  out += ",\"verify_ms_per_chunk\":";
  out += s.verify_batch_items ? number(s.verify_ms / static_cast<double>(s.verify_batch_items)) : std::string("null");
  out += ",\"batch_size_hist\":[";
  for (std::size_t i = 0; i < s.batch_size_hist.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(s.batch_size_hist[i]);
  }
  out += "]}";
  return out;
}

}  // namespace picospec
