// EdgeSession (see include/picospec/edge_session.hpp and docs/pipeline.md).
#include "picospec/edge_session.hpp"

#include <deque>
#include <thread>
#include <utility>
#include <variant>

#include "picospec/detail/bounded_queue.hpp"
#include "picospec/analytic.hpp"
#include "picospec/detail/clock.hpp"
#include "picospec/protocol.hpp"
#include "picospec/rng.hpp"
#include "picospec/sampling.hpp"
#include "policies/policy.hpp"
#include "seq_order.hpp"

namespace picospec {
namespace {

using detail::Clock;
using detail::ema_ms;
using detail::ms_between;

struct IoFailure {
  std::string message;
  bool lost = true;  // the connection is gone (false: the cloud sent something undecodable)
};
// Thrown inside a Run when the cloud is lost (GenerateParams::on_cloud_loss decides what follows); `message` is the
// complete error text.
struct CloudLost {
  std::string message;
};
// Thrown inside a Run when the cloud reports that the target's context is full: finish reason `length`.
struct ContextFull {};
using Event = std::variant<wire::Message, IoFailure>;

// " (connection refused ...)" when the transport can tell why nothing arrives (Transport::problem), else "".
std::string problem_suffix(const Transport& t) {
  std::string p = t.problem();
  return p.empty() ? p : " (" + p + ")";
}

using Spec = detail::SpecToken;  // one speculative (drafted, not yet committed) token

struct Chunk {
  std::uint32_t start = 0;
  std::uint32_t n = 0;        // tokens in the Draft
  std::uint32_t n_fixed = 0;  // leading fixed tokens (correction)
  Clock::time_point sent_at{};
  std::uint32_t prefilled = 0;  // cloud fill: leading tokens already committed by the cloud's own tokens
  [[nodiscard]] std::uint32_t drafts() const noexcept { return n - n_fixed; }
};

// A pre-drafted branch (no flush on a miss): what the edge would draft after a rejection at `pos` if the
// correction there were `toks[0]`. Its drafts are drawn with the keys of that future, (draft_sample, position,
// epoch + 1), so when the correction does come out as toks[0] they are exactly the tokens the edge would draft
// anyway and can be sent at once.
struct BranchLine {
  std::size_t pos = 0;        // absolute position of the head (a draft of the chunk in flight)
  std::uint32_t epoch = 0;    // epoch after a rejection there (keys of the drafts)
  std::size_t limit = 0;      // most drafts this line may hold (branch_length, max_tokens)
  std::vector<Token> toks;    // head, then the drafts
  std::deque<Spec> spec;      // one per draft
  bool closed = false;        // limit reached or EOS drafted
};

}  // namespace

std::string_view to_string(FinishReason r) noexcept {
  switch (r) {
    case FinishReason::max_tokens: return "max_tokens";
    case FinishReason::eos: return "eos";
    case FinishReason::cancelled: return "cancelled";
    case FinishReason::length: return "length";
    case FinishReason::cloud_lost: return "cloud_lost";
    case FinishReason::error: return "error";
  }
  return "?";
}

// The edge's I/O: one thread per EdgeSession (started by its first generation that talks to a cloud) blocks in
// Transport::recv, decodes each frame (bounds-checked) and queues it; ~EdgeSession closes the queue and the
// transport, which wakes it, and joins it. It does not poll: it wakes only for a frame or the close. Frames of
// another generation are filtered, and this session's put in seq order, by the drafting thread (Run::next_event). A transport or decode failure is
// queued once and then reported to every later pop (the queue is closed behind it).
struct EdgeSession::Io {
  Io(Transport& t, const EdgeOptions& options) : transport(t), queue(options.event_queue) {
    limits.max_frame_bytes = options.max_frame_bytes;
    limits.max_q_frame_bytes = options.max_frame_bytes;
    thread = std::thread([this] { loop(); });
  }
  ~Io() {
    queue.close();
    transport.close();
    if (thread.joinable()) thread.join();
  }
  Io(const Io&) = delete;
  Io& operator=(const Io&) = delete;

  void fail(std::string why, bool lost = true) {
    {
      std::lock_guard lk(failure_mu);
      failure = why;
      failure_lost = lost;
    }
    (void)queue.push(IoFailure{std::move(why), lost});
    queue.close();
  }
  void loop() {
    for (;;) {
      Received r;
      try {
        r = transport.recv(Millis(60000));  // blocks; close() wakes it (the minute only bounds one call)
      } catch (const std::exception& e) {
        fail(std::string("transport error: ") + e.what());
        return;
      }
      if (r.status == RecvStatus::closed) {
        fail("transport closed" + problem_suffix(transport));
        return;
      }
      if (r.status != RecvStatus::ok) continue;
      auto d = wire::try_decode(r.frame, limits);
      if (!d.ok()) {
        fail("malformed frame from the cloud: " + d.reason, false);
        return;
      }
      if (!queue.push(std::move(*d.message))) return;  // closed by ~Io
    }
  }
  // Pops one event, waiting at most `timeout`; nullopt on timeout or when `stop()` holds.
  template <class Stop>
  std::optional<Event> pop(Clock::duration timeout, Stop&& stop) {
    auto ev = queue.pop_for(timeout, stop);
    if (!ev && queue.closed()) {
      std::lock_guard lk(failure_mu);
      if (!failure.empty()) return Event{IoFailure{failure, failure_lost}};
    }
    return ev;
  }

  Transport& transport;
  wire::DecodeLimits limits;
  detail::BoundedQueue<Event> queue;
  std::mutex failure_mu;
  std::string failure;  // set once, when the thread ends on a failure
  bool failure_lost = true;
  std::thread thread;
};

struct EdgeSession::Run {
  Run(EdgeSession& session, std::span<const Token> prompt_in, const GenerateParams& params,
      const TokenCallback& callback)
      : es(session), gp(params), cb(callback), prompt(prompt_in.begin(), prompt_in.end()) {}

  EdgeSession& es;
  const GenerateParams& gp;
  const TokenCallback& cb;
  std::vector<Token> prompt;
  ModePlan plan;
  std::uint32_t vocab = 0;
  ModelInfo stop_info;  // the drafter's end-of-generation tokens (eos + eog); the cloud's agree via the fingerprint
  std::unique_ptr<detail::EdgePolicy> policy;  // the rejection mode's edge half
  std::atomic<bool> cancelled{false};
  std::uint64_t session_id = 0;
  std::uint64_t foreign_dropped = 0;
  // Receive order (next_event, drafting thread): frames of this session in seq order, each once.
  detail::SeqOrder<wire::Message> order;
  std::deque<wire::Message> released;  // released by `order` in one batch, not yet handed out
  bool hello_answered = false;         // the Welcome / Error for this generation's Hello was handed out

  // Drafting-thread state.
  std::uint32_t epoch = 0;
  std::uint32_t seq = 0;
  // The Hello's seq, unique per EdgeSession (its generation number): the cloud echoes it in the Welcome or the
  // Error that answers the Hello, so a late reply to an earlier generation's Hello (or an Error about an earlier
  // session) is never taken for this generation's.
  std::uint32_t hello_seq = 0;
  std::vector<Token> committed;
  std::deque<Spec> spec;
  std::size_t sent = 0;  // leading spec tokens already sent
  std::deque<Chunk> inflight;
  std::uint32_t inflight_drafts = 0;  // chunks in flight that hold draft tokens
  bool done = false;
  FinishReason finish = FinishReason::max_tokens;
  // New tokens this generation may commit: max_tokens, or less when the draft model's context is shorter.
  std::uint32_t limit = 0;
  // Cloud loss (GenerateParams::on_cloud_loss, resume_attempts).
  bool lost = false;
  bool welcomed = false;  // a Welcome arrived in this generation (resumes need one)
  std::uint32_t resumes = 0;
  std::size_t edge_only_tokens = 0;
  std::string loss_message;
  TransportStats stats_before;  // of the current transport (a resume replaces it)
  TransportStats stats_done;    // what replaced transports carried
  bool awaiting_more = false;
  bool fill = false;  // cloud fill negotiated (GenerateParams::cloud_fill)
  std::size_t rej_position = 0;
  std::vector<std::vector<float>> row_pool;
  // Branches (GenerateParams::branch_heads): lines for the oldest chunk in flight that holds drafts.
  std::vector<BranchLine> lines;
  std::uint32_t lines_for = UINT32_MAX;  // start position of that chunk (UINT32_MAX: none planned)
  std::uint32_t lines_epoch = 0;
  std::vector<Drafter::Branch> branch_q;  // scratch: one query per open line
  std::vector<std::size_t> branch_ix;     // scratch: line of each query
  LogitRows branch_rows;
  double step_ms = -1.0;     // measured duration of one branch step (EWMA)
  bool step_timed = false;   // step_ms measured on a branch step (else estimated from plain drafts)
  // Adaptive draft length and confidence stop.
  std::uint32_t chunk_len = 0;  // target length of the chunk being drafted (gamma unless adaptive)
  bool chunk_closed = false;    // confidence stop: the chunk being drafted is complete
  double rtt_est_ms = -1.0;     // Hello -> Welcome
  double draft_est_ms = -1.0;   // one plain draft (EWMA, the first one excluded: it includes the prompt)
  double ls_n = 0, ls_nn = 0, ls_t = 0, ls_nt = 0, ls_count = 0;  // least squares of send->verdict time on size
  std::uint32_t ls_min_n = UINT32_MAX, ls_max_n = 0;
  double verdict_ms = -1.0;  // measured send -> verdict time of a chunk with drafts (EWMA)
  SamplingWorkspace ws;

  Clock::time_point t_start{}, t_first{};
  bool have_first = false;
  double idle_ms = 0.0;
  Metrics m;

  // ------------------------------------------------------------------------------------------- events
  // Pops the next event of this generation, waiting at most `timeout` (0 = do not wait); nullopt on timeout or
  // cancel. Before the Welcome only the answer to this generation's Hello counts; after it, only this session's
  // frames, handed out in seq order, each once (release_in_order); anything else is a late frame of an earlier
  // generation or a duplicate (dropped, counted).
  std::optional<Event> next_event(Clock::duration timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (!released.empty()) {
        Event ev{std::move(released.front())};
        released.pop_front();
        return ev;
      }
      const auto left = timeout > Clock::duration::zero() ? std::max(deadline - Clock::now(), Clock::duration(1))
                                                          : Clock::duration::zero();
      auto ev = es.io_->pop(left, [this] { return cancelled.load(); });
      if (!ev) return ev;
      if (auto* msg = std::get_if<wire::Message>(&*ev)) {
        const auto type = msg->type();
        const bool ours = session_id == 0 ? (type == wire::MessageType::welcome ||
                                             type == wire::MessageType::error) &&
                                                msg->header.seq == hello_seq
                                          : msg->header.session_id == session_id;
        if (!ours) {
          ++foreign_dropped;
          if (timeout > Clock::duration::zero() && Clock::now() >= deadline) return std::nullopt;
          continue;
        }
        // The first answer to the Hello is handed out, a second one is a duplicate (faulty link); after the
        // Welcome, frames go through the receive order (the loop's head hands out what it released).
        if (session_id == 0 ? std::exchange(hello_answered, true) : release_in_order(std::move(*msg))) {
          if (session_id == 0) ++foreign_dropped;
          if (released.empty() && timeout > Clock::duration::zero() && Clock::now() >= deadline)
            return std::nullopt;
          continue;
        }
      }
      return ev;
    }
  }
  void wake() {  // from cancel(), under es.run_mu_ (which also guards the creation of es.io_)
    if (es.io_) es.io_->queue.interrupt();
  }
  // " (connection refused ...)" when the transport can tell why nothing arrives (Transport::problem), else "".
  std::string transport_problem() const { return problem_suffix(*es.transport_); }

  // After the Welcome, the session's frames are handed out in seq order, each once (src/seq_order.hpp): duplicates
  // and stale copies (a faulty link, a late Welcome) are dropped and counted. Errors skip the order. Appends what
  // is now deliverable to `released`; false when `msg` is to be handed out as is (an Error).
  bool release_in_order(wire::Message&& msg) {
    if (msg.type() == wire::MessageType::error) return false;
    std::vector<wire::Message> ready;
    const auto o = msg.type() == wire::MessageType::welcome
                       ? detail::SeqOrder<wire::Message>::Outcome::duplicate
                       : order.offer(msg.header.seq, std::move(msg), ready);
    if (o == detail::SeqOrder<wire::Message>::Outcome::duplicate ||
        o == detail::SeqOrder<wire::Message>::Outcome::dropped)
      ++foreign_dropped;
    for (auto& next : ready) released.push_back(std::move(next));
    return true;
  }

  // ------------------------------------------------------------------------------------------- sending
  void send(wire::Body body) {
    wire::Header h;
    h.session_id = session_id;
    h.epoch = epoch;
    h.seq = std::holds_alternative<wire::Hello>(body) ? hello_seq : seq++;
    if (std::holds_alternative<wire::Hello>(body)) {
      if (gp.block_verify) h.flags |= wire::kHelloFlagBlockVerify;
      if (fill) h.flags |= wire::kHelloFlagCloudFill;
    }
    if (!es.transport_->send(wire::encode(h, std::move(body))))
      throw CloudLost{"EdgeSession: transport closed" + transport_problem()};
  }

  // ------------------------------------------------------------------------------------------- commit
  void commit(Token t) {
    if (done) return;
    committed.push_back(t);
    if (!have_first) {
      have_first = true;
      t_first = Clock::now();
    }
    if (cb) cb(t);
    if (gp.stop_at_eos && stop_info.is_eog(t)) {
      done = true;
      finish = FinishReason::eos;
    } else if (committed.size() >= limit) {
      done = true;
      finish = limit < gp.max_tokens ? FinishReason::length : FinishReason::max_tokens;
    }
  }

  std::vector<float> take_row() {
    if (row_pool.empty()) return {};
    auto r = std::move(row_pool.back());
    row_pool.pop_back();
    return r;
  }
  void give_row(std::vector<float>&& r) {
    if (r.capacity() > 0 && row_pool.size() < 64) row_pool.push_back(std::move(r));
  }
  void drop_spec() {
    m.wasted_drafts += spec.size();
    for (auto& s : spec) give_row(std::move(s.row));
    spec.clear();
    sent = 0;
    inflight.clear();
    inflight_drafts = 0;
    chunk_closed = false;
  }

  // ------------------------------------------------------------------------------------------- drafting
  [[nodiscard]] bool draft_blocked() const {
    if (committed.size() + spec.size() >= limit) return true;
    if (gp.stop_at_eos && !spec.empty() && stop_info.is_eog(spec.back().token)) return true;
    return false;
  }
  [[nodiscard]] bool can_draft() const {
    if (done || awaiting_more || draft_blocked()) return false;
    if (!plan.pipelined && inflight_drafts > 0) return false;
    return !chunk_closed && spec.size() - sent < chunk_len;
  }

  void draft_one() {
    const auto t0 = Clock::now();
    Drafter& d = *es.drafter_;
    const std::size_t pos = d.length();
    const bool fused = gp.branch_schedule == BranchSchedule::fused && plan_lines() && branch_work();
    if (fused) collect_queries();
    const auto logits = fused ? d.next_logits_with_branches(branch_q, branch_rows) : d.next_logits();
    Spec s;
    s.row = take_row();
    policy->draft(logits, pos, epoch, s);
    d.append(s.token);
    if (gp.draft_p_min > 0.0f && s.top_q < gp.draft_p_min) chunk_closed = true;  // confidence stop
    spec.push_back(std::move(s));
    ++m.drafted;
    if (fused) extend_lines();
    const double ms = ms_between(t0, Clock::now());
    if (fused) {
      note_step(ms);
    } else {
      m.draft_ms += ms;
      if (m.drafted > 1) draft_est_ms = ema_ms(draft_est_ms, ms);
      // Until a branch step has been timed, one plain draft (not the first: it includes the prompt) estimates it.
      if (gp.branch_heads != 0 && !step_timed && m.drafted > 1) step_ms = ema_ms(step_ms, ms);
    }
  }

  // ------------------------------------------------------------------------------------------- branches
  void clear_lines() {
    for (auto& l : lines)
      for (auto& sp : l.spec) give_row(std::move(sp.row));
    lines.clear();
    lines_for = UINT32_MAX;
  }
  // Plans the lines of the oldest chunk in flight that holds drafts (once per chunk). False if none.
  bool plan_lines() {
    if (gp.branch_heads == 0) return false;
    const Chunk* c = nullptr;
    for (const Chunk& k : inflight)
      if (k.drafts() > 0) {
        c = &k;
        break;
      }
    if (!c) return false;
    if (lines_for == c->start && lines_epoch == epoch) return true;
    clear_lines();
    lines_for = c->start;
    lines_epoch = epoch;
    const std::size_t first = c->start + c->n_fixed;  // its drafts are spec[0 .. drafts) (older chunks hold none)
    const std::size_t len = gp.branch_length != 0 ? gp.branch_length : gp.gamma;
    for (std::uint32_t j = 0; j < c->drafts() && j < spec.size(); ++j) {
      const std::size_t pos = first + j;
      const std::size_t committed_at = pos - prompt.size() + 1;  // new tokens once the head is committed
      for (Token h : spec[j].alts) {
        BranchLine l;
        l.pos = pos;
        l.epoch = epoch + 1;
        l.limit = committed_at >= limit ? 0 : std::min<std::size_t>(len, limit - committed_at);
        l.toks = {h};
        l.closed = l.limit == 0 || (gp.stop_at_eos && stop_info.is_eog(h));
        lines.push_back(std::move(l));
        ++m.branch_lines;
      }
    }
    return true;
  }
  [[nodiscard]] bool branch_work() const {
    for (const auto& l : lines)
      if (!l.closed) return true;
    return false;
  }
  void collect_queries() {
    branch_q.clear();
    branch_ix.clear();
    for (std::size_t i = 0; i < lines.size(); ++i)
      if (!lines[i].closed) {
        branch_q.push_back(Drafter::Branch{lines[i].pos, lines[i].toks});
        branch_ix.push_back(i);
      }
  }
  // Draws one more draft on every open line from branch_rows (the rows of collect_queries()'s queries).
  void extend_lines() {
    for (std::size_t q = 0; q < branch_ix.size(); ++q) {
      BranchLine& l = lines[branch_ix[q]];
      Spec sp;
      sp.row = take_row();
      policy->draft(branch_rows.row(q), l.pos + l.toks.size(), l.epoch, sp);
      l.toks.push_back(sp.token);
      l.spec.push_back(std::move(sp));
      ++m.branch_drafted;
      if (l.spec.size() >= l.limit || (gp.stop_at_eos && stop_info.is_eog(l.toks.back()))) l.closed = true;
    }
  }
  // One branch-only step while the edge would wait: only when the verdict is expected later than the step ends.
  bool idle_branch_step() {
    if (!plan_lines() || !branch_work() || step_ms < 0.0 || verdict_ms < 0.0) return false;
    const Chunk* c = nullptr;
    for (const Chunk& k : inflight)
      if (k.drafts() > 0) {
        c = &k;
        break;
      }
    const auto now = Clock::now();
    if (ms_between(c->sent_at, now) + step_ms > verdict_ms) return false;
    const auto t0 = now;
    collect_queries();
    (void)es.drafter_->next_logits_with_branches(branch_q, branch_rows);
    extend_lines();
    const double ms = ms_between(t0, Clock::now());
    m.branch_idle_ms += ms;
    note_step(ms);
    return true;
  }
  void note_step(double ms) {
    m.draft_ms += ms;
    m.branch_ms += ms;
    step_ms = !step_timed ? ms : 0.8 * step_ms + 0.2 * ms;
    step_timed = true;
  }
  // On a correction c at pos (epoch already advanced): the line that agrees with it, if it holds drafts.
  BranchLine* matching_line(Token c, std::size_t pos) {
    for (auto& l : lines)
      if (l.pos == pos && l.epoch == epoch && l.toks[0] == c && !l.spec.empty()) return &l;
    return nullptr;
  }

  void send_unsent() {
    const std::size_t n = spec.size() - sent;
    if (n == 0) return;
    wire::Draft dr;
    dr.start_position = static_cast<std::uint32_t>(prompt.size() + committed.size() + sent);
    dr.n_fixed = 0;
    for (std::size_t i = sent; i < spec.size(); ++i) {
      dr.tokens.push_back(spec[i].token);
      policy->add_uplink(spec[i], dr);
    }
    inflight.push_back(Chunk{dr.start_position, static_cast<std::uint32_t>(n), 0, Clock::now()});
    ++inflight_drafts;
    sent = spec.size();
    m.sent_drafts += n;
    send(std::move(dr));
    chunk_closed = false;
    choose_chunk_len();
  }

  // Adaptive draft length: the γ in [1, gamma] that maximizes expected committed tokens per second under the
  // analytic model (analytic.hpp best_gamma), evaluated with what this generation measured. Until two chunk
  // sizes have verdicts (needed to separate the verify cost's per-token part), it alternates γ and γ/2.
  void choose_chunk_len() {
    if (!gp.adaptive_gamma || !plan.pipelined) {
      chunk_len = gp.gamma;
      return;
    }
    if (ls_count < 3 || ls_min_n == ls_max_n || draft_est_ms < 0.0 || rtt_est_ms < 0.0) {
      chunk_len = (static_cast<std::uint64_t>(ls_count) % 2 == 0 || gp.gamma == 1) ? gp.gamma : std::max(1u, gp.gamma / 2);
      return;
    }
    const double mn = ls_n / ls_count, mt = ls_t / ls_count;
    const double var = ls_nn / ls_count - mn * mn;
    const double b = var > 0.0 ? std::max(0.0, (ls_nt / ls_count - mn * mt) / var) : 0.0;
    const double a = std::max(0.0, mt - b * mn - rtt_est_ms);
    std::uint64_t tested = 0;
    for (auto t : m.position_tested) tested += t;
    AnalyticInputs in;
    in.draft_a_ms = draft_est_ms;
    in.target_a_ms = a;
    in.target_b_ms = b;
    in.rtt_ms = rtt_est_ms;
    in.alpha = (static_cast<double>(m.accepted) + 1.0) / (static_cast<double>(tested) + 2.0);
    in.depth = gp.depth;
    in.edge_decides_correction = !cloud_decides_correction(plan.rejection);
    chunk_len = best_gamma(plan.mode, in, gp.gamma);
    ++m.gamma_choices;
    m.gamma_chosen_sum += chunk_len;
  }

  void maybe_send() {
    const std::size_t unsent = spec.size() - sent;
    if (unsent == 0 || done) return;
    const bool ready = unsent >= chunk_len || chunk_closed || draft_blocked();
    if (ready && inflight_drafts < gp.depth) {
      send_unsent();
      return;
    }
    if (gp.send_policy == SendPolicy::when_idle && inflight_drafts == 0) send_unsent();
  }

  void send_fixed(Token c, std::size_t pos) {
    wire::Draft dr;
    dr.start_position = static_cast<std::uint32_t>(pos);
    dr.n_fixed = 1;
    dr.tokens = {c};
    policy->add_fixed_uplink(dr);
    inflight.push_back(Chunk{dr.start_position, 1, 1, Clock::now()});
    send(std::move(dr));
  }

  // ------------------------------------------------------------------------------------------- verdicts
  [[noreturn]] static void protocol_error(const std::string& what) {
    throw Error("EdgeSession: protocol error: " + what);
  }

  void apply_correction(Token c, std::size_t pos, bool edge_decided) {
    if (c < 0 || static_cast<std::uint32_t>(c) >= vocab) protocol_error("correction outside the vocabulary");
    es.drafter_->rollback(pos);
    es.drafter_->append(c);
    ++m.corrections;
    commit(c);
    BranchLine* line = done ? nullptr : matching_line(c, pos);
    if (line) {
      adopt(*line, c, pos, edge_decided);
    } else if (edge_decided && !done) {
      send_fixed(c, pos);
    }
    clear_lines();
  }

  // No flush on a miss: the line's drafts become the speculation after the correction and go up at once (with
  // the correction as the fixed token when the edge decided it), so the cloud verifies on without waiting for
  // the edge to redraft.
  void adopt(BranchLine& line, Token c, std::size_t pos, bool edge_decided) {
    ++m.branch_hits;
    wire::Draft dr;
    dr.start_position = static_cast<std::uint32_t>(edge_decided ? pos : pos + 1);
    dr.n_fixed = edge_decided ? 1 : 0;
    if (edge_decided) {
      dr.tokens.push_back(c);
      policy->add_fixed_uplink(dr);
    }
    for (std::size_t k = 1; k < line.toks.size(); ++k) es.drafter_->append(line.toks[k]);
    for (auto& sp : line.spec) {
      dr.tokens.push_back(sp.token);
      policy->add_uplink(sp, dr);
      spec.push_back(std::move(sp));
    }
    line.spec.clear();
    const auto n = static_cast<std::uint32_t>(spec.size());
    m.branch_used += n;
    m.drafted += n;
    m.sent_drafts += n;
    sent = spec.size();
    inflight.push_back(Chunk{dr.start_position, static_cast<std::uint32_t>(dr.tokens.size()), dr.n_fixed,
                             Clock::now()});
    ++inflight_drafts;
    send(std::move(dr));
  }

  // Acts on the policy's answer to a rejection at `pos`: commit the correction, or ask for more candidates.
  void decide(const detail::EdgeDecision& dec, std::size_t pos) {
    if (dec.decided) {
      awaiting_more = false;
      give_row(policy->release_row());
      apply_correction(dec.correction, pos, dec.send_fixed);
      return;
    }
    awaiting_more = true;
    rej_position = pos;
    ++m.more_candidates;
    wire::MoreCandidates mc;
    mc.position = static_cast<std::uint32_t>(pos);
    mc.next_index = dec.more_from;
    send(mc);
  }

  // One chunk's outcome in the metrics: its first `tested` drafts were tested, the first `acc` accepted.
  void count_round(std::uint32_t tested, std::uint32_t acc) {
    ++m.rounds;
    m.accepted += acc;
    if (m.position_tested.size() < tested) {
      m.position_tested.resize(tested, 0);
      m.position_accepted.resize(tested, 0);
    }
    for (std::uint32_t j = 0; j < tested; ++j) ++m.position_tested[j];
    for (std::uint32_t j = 0; j < acc; ++j) ++m.position_accepted[j];
  }

  void on_verdict(const wire::Header& h, const wire::Verdict& v) {
    if (h.epoch < epoch) {
      ++m.stale_dropped;
      return;
    }
    if (awaiting_more) {
      if (v.start_position != rej_position || h.epoch != epoch) protocol_error("expected more candidates");
      detail::EdgeDecision dec;
      try {
        dec = policy->on_follow_up(v);
      } catch (const detail::PolicyFailure& f) {
        protocol_error(f.message);
      }
      decide(dec, rej_position);
      return;
    }
    if (inflight.empty()) protocol_error("verdict with no chunk in flight");
    const Chunk c = inflight.front();
    if (v.start_position != c.start) protocol_error("verdict for an unknown chunk");
    inflight.pop_front();
    if (c.drafts() > 0) --inflight_drafts;
    if (v.accepted < c.n_fixed + c.prefilled || v.accepted > c.n) protocol_error("accepted count out of range");
    const std::uint32_t acc = v.accepted - c.n_fixed;
    const bool all = v.kind == wire::VerdictKind::all_accepted;
    if (all != (acc == c.drafts())) protocol_error("verdict kind does not match the accepted count");
    if (all && h.epoch != epoch) protocol_error("epoch changed without a rejection");
    if (c.drafts() > 0) count_round(all ? acc : acc + 1, acc);
    // The chunk's drafts are the oldest spec tokens (less those the cloud's fill tokens already committed).
    if (acc - c.prefilled > spec.size() || acc - c.prefilled > sent) protocol_error("verdict accepts tokens never sent");
    for (std::uint32_t j = c.prefilled; j < acc; ++j) {
      commit(spec.front().token);
      give_row(std::move(spec.front().row));
      spec.pop_front();
      --sent;
    }
    if (c.drafts() > 0) {
      const double ms = ms_between(c.sent_at, Clock::now());
      verdict_ms = ema_ms(verdict_ms, ms);
      const double n = c.n;
      ls_n += n;
      ls_nn += n * n;
      ls_t += ms;
      ls_nt += n * ms;
      ls_count += 1;
      ls_min_n = std::min(ls_min_n, c.n);
      ls_max_n = std::max(ls_max_n, c.n);
    }
    if (all) {
      if (lines_for == c.start) clear_lines();
      return;
    }
    // Rejection at position pos: everything speculative is void.
    const std::size_t pos = c.start + v.accepted;
    if (pos != prompt.size() + committed.size() && !done) protocol_error("rejection position mismatch");
    const std::uint32_t old_epoch = epoch;
    epoch = h.epoch;
    ++m.rollbacks;
    if (spec.empty()) protocol_error("rejection without a rejected draft");
    if (done) {  // max_tokens or EOS reached by the accepted drafts: no correction needed
      drop_spec();
      return;
    }
    detail::EdgeDecision dec;
    try {
      dec = policy->on_rejection(v, pos, old_epoch, spec.front());
    } catch (const detail::PolicyFailure& f) {
      protocol_error(f.message);
    }
    drop_spec();
    es.drafter_->rollback(pos);
    decide(dec, pos);
  }

  // Cloud fill: a token the cloud committed with no draft, at the edge's next position. Equal to the next
  // speculative token: that token is committed and leaves the oldest chunk in flight (a chunk whose every token
  // was so committed gets no verdict). Different: the speculation is void; if any of it was sent, the cloud will
  // find the same difference in the oldest chunk in flight, drop that chunk and the rest, and move to the next
  // epoch, so the edge moves there now and drafts on from the cloud's token.
  void on_fill(const wire::Tokens& t) {
    if (done) return;
    for (std::size_t k = 0; k < t.tokens.size(); ++k) {
      const Token x = t.tokens[k];
      if (x < 0 || static_cast<std::uint32_t>(x) >= vocab) protocol_error("token outside the vocabulary");
      const std::size_t pos = pf_length();
      if (t.start_position + k != pos) protocol_error("cloud token out of order");
      ++m.cloud_filled;
      if (!spec.empty() && spec.front().token == x) {
        give_row(std::move(spec.front().row));
        spec.pop_front();
        if (sent > 0) {
          --sent;
          if (inflight.empty()) protocol_error("sent drafts with no chunk in flight");
          Chunk& c = inflight.front();
          if (++c.prefilled == c.n) {  // consumed: no verdict follows; its drafts count as tested and accepted
            count_round(c.n, c.n);
            inflight.pop_front();
            --inflight_drafts;
          }
        }
        commit(x);
      } else {
        if (sent > 0) {
          ++epoch;  // the cloud voids the oldest chunk in flight (and drops the later ones as stale)
          // That chunk's drafts were tested up to this one: its matched ones accepted, this one rejected.
          if (!inflight.empty()) count_round(inflight.front().prefilled + 1, inflight.front().prefilled);
        }
        if (!spec.empty()) {
          ++m.rollbacks;
          drop_spec();
          es.drafter_->rollback(pos);
        }
        es.drafter_->append(x);
        commit(x);
      }
      if (done) return;
    }
  }

  void on_tokens(const wire::Tokens& t) {
    if (t.start_position != prompt.size() + committed.size()) protocol_error("Tokens out of order");
    for (Token x : t.tokens) {
      if (x < 0 || static_cast<std::uint32_t>(x) >= vocab) protocol_error("token outside the vocabulary");
      commit(x);
      if (done) return;
    }
    if (t.done) {
      done = true;
      finish = (!committed.empty() && stop_info.is_eog(committed.back())) ? FinishReason::eos
               : committed.size() < gp.max_tokens                           ? FinishReason::length
                                                                           : FinishReason::max_tokens;
    }
  }

  void handle(Event&& ev) {
    if (auto* f = std::get_if<IoFailure>(&ev)) {
      if (f->lost) throw CloudLost{"EdgeSession: " + f->message};
      throw Error("EdgeSession: " + f->message);
    }
    auto& msg = std::get<wire::Message>(ev);
    if (auto* e = std::get_if<wire::ErrorMessage>(&msg.body)) {
      std::string what = "EdgeSession: cloud error (" + std::string(wire::to_string(e->code)) + "): " + e->message;
      // The session's context is full (the target's, or the cloud's per-session limit): a `length` stop.
      if (e->code == wire::ErrorCode::context_full) throw ContextFull{};
      // A verifier that ran out of context another way (a resume's re-prefill refused by Verifier::begin, a
      // backend's own limit), told by its message: a `length` stop too -- unless the prompt itself did not fit
      // (the first Prefill): an error.
      if (e->message.find("context length") != std::string::npos ||
          (e->code == wire::ErrorCode::too_large && e->message.find("context") != std::string::npos)) {
        if (resumes == 0 && e->message.find("::begin") != std::string::npos) throw Error(what);
        throw ContextFull{};
      }
      if (e->code == wire::ErrorCode::unknown_session) throw CloudLost{std::move(what)};  // e.g. a restarted cloud
      throw Error(what);
    }
    if (auto* v = std::get_if<wire::Verdict>(&msg.body)) {
      if (plan.mode == PipelineMode::cloud_ar) protocol_error("Verdict in cloud-ar mode");
      on_verdict(msg.header, *v);
      return;
    }
    if (auto* t = std::get_if<wire::Tokens>(&msg.body)) {
      if (fill) {
        on_fill(*t);
        return;
      }
      if (plan.mode != PipelineMode::cloud_ar) protocol_error("Tokens outside cloud-ar mode");
      on_tokens(*t);
      return;
    }
    if (std::holds_alternative<wire::Bye>(msg.body) || std::holds_alternative<wire::Cancel>(msg.body))
      throw CloudLost{"EdgeSession: the cloud ended the session"};
    protocol_error("unexpected " + std::string(wire::to_string(msg.type())));
  }

  // Waits for one event (counted as idle time); throws on timeout.
  void wait_event() {
    const auto t0 = Clock::now();
    auto ev = next_event(es.options_.response_timeout);
    idle_ms += ms_between(t0, Clock::now());
    if (!ev) {
      if (cancelled.load()) return;
      throw CloudLost{"EdgeSession: no answer from the cloud within " +
                      std::to_string(es.options_.response_timeout.count()) + " ms" + transport_problem()};
    }
    handle(std::move(*ev));
  }

  // ------------------------------------------------------------------------------------------- phases
  // Returns false when cancel() came before the Welcome.
  bool handshake() {
    wire::Hello hello;
    hello.draft = wire::fingerprint(es.drafter_->info());
    hello.sampling = gp.sampling;
    hello.rejection = plan.rejection;
    hello.pipeline = plan.mode;
    hello.codec = plan.codec;
    hello.topk_k = gp.topk_k;
    hello.candidates_m = gp.candidates_m;
    hello.seed = gp.seed;
    hello.gamma = gp.gamma;
    hello.max_new_tokens = limit - static_cast<std::uint32_t>(committed.size());  // a resume asks for the rest
    const auto t0 = Clock::now();
    send(std::move(hello));
    auto ev = next_event(es.options_.response_timeout);
    idle_ms += ms_between(t0, Clock::now());
    if (!ev) {
      if (cancelled.load()) return false;
      throw CloudLost{"EdgeSession: no Welcome from the cloud" + transport_problem()};
    }
    if (auto* f = std::get_if<IoFailure>(&*ev)) {
      if (f->lost) throw CloudLost{"EdgeSession: " + f->message};
      throw Error("EdgeSession: " + f->message);
    }
    auto& msg = std::get<wire::Message>(*ev);
    if (auto* e = std::get_if<wire::ErrorMessage>(&msg.body))
      throw Error("EdgeSession: cloud refused the session (" + std::string(wire::to_string(e->code)) +
                  "): " + e->message);
    const auto* w = std::get_if<wire::Welcome>(&msg.body);
    if (!w) protocol_error("expected Welcome");
    if (w->target.vocab_size != vocab) throw Error("EdgeSession: the cloud's vocabulary differs");
    if (msg.header.session_id == 0) protocol_error("Welcome without a session id");
    session_id = msg.header.session_id;
    welcomed = true;
    rtt_est_ms = ms_between(t0, Clock::now());
    return true;
  }

  void run_edge_only() {
    es.drafter_->begin(prompt);
    edge_only_loop(0);
  }

  // Draws and commits tokens from the drafter alone (its distribution under gp.sampling), keyed by
  // (draft_sample, position, key_epoch), until done or cancelled; the drafter holds prompt + committed.
  void edge_only_loop(std::uint32_t key_epoch) {
    const std::uint32_t ctx = es.drafter_->info().context_length;
    while (!done && !cancelled.load()) {
      if (ctx != 0 && es.drafter_->length() >= ctx) {  // no room for the next token (only after a cloud-ar loss)
        done = true;
        finish = FinishReason::length;
        break;
      }
      const auto t0 = Clock::now();
      const std::size_t pos = es.drafter_->length();
      const auto logits = es.drafter_->next_logits();
      Token t;
      if (gp.sampling.greedy()) {
        t = argmax(logits);
      } else {
        std::vector<float> row = take_row();
        logits_to_probs(logits, gp.sampling, row, ws);
        t = sample_from(row, uniform(gp.seed, Purpose::draft_sample, pos, key_epoch));
        give_row(std::move(row));
      }
      es.drafter_->append(t);
      ++m.drafted;
      m.draft_ms += ms_between(t0, Clock::now());
      commit(t);
    }
  }

  void send_bye() noexcept {
    try {
      wire::Header h;
      h.session_id = session_id;
      h.epoch = epoch;
      h.seq = seq++;
      (void)es.transport_->send(wire::encode(h, wire::Bye{}));
    } catch (...) {  // the transport may already be closed
    }
  }

  // Runs the cloud generation; on a loss, resumes (GenerateParams::resume_attempts) or applies on_cloud_loss.
  void run_cloud() {
    std::uint32_t attempts_left = es.options_.reconnect ? gp.resume_attempts : 0;
    for (;;) {
      try {
        run_cloud_inner();
        return;
      } catch (const ContextFull&) {
        if (session_id != 0) send_bye();
        drop_spec();
        done = true;
        finish = FinishReason::length;
        m.stale_dropped += foreign_dropped;
        return;
      } catch (const CloudLost& l) {
        if (session_id != 0) send_bye();  // in case the cloud is still there (silent, not gone)
        if (done) {  // nothing was left to do
          m.stale_dropped += foreign_dropped;
          return;
        }
        lost = true;
        loss_message = l.message;
        m.stale_dropped += foreign_dropped;
        foreign_dropped = 0;
        bool resumed = false;
        // Resume only a session the cloud once accepted (a cloud never reached is not retried: no waiting twice).
        while (welcomed && attempts_left > 0 && !resumed && !cancelled.load()) {  // a failed factory call is one attempt
          --attempts_left;
          if (backoff_interrupted()) break;
          resumed = reconnect();
        }
        if (!resumed) break;
        ++resumes;
      } catch (...) {
        if (session_id != 0) send_bye();  // let the cloud free the session (and stop a cloud-ar loop)
        throw;
      }
    }
    // The cloud is lost for good.
    reset_session_state();
    if (cancelled.load()) return;
    switch (gp.on_cloud_loss) {
      case CloudLoss::raise:
        throw Error(loss_message);
      case CloudLoss::stop:
        done = true;
        finish = FinishReason::cloud_lost;
        return;
      case CloudLoss::edge_only: {
        const std::uint32_t ctx = es.drafter_->info().context_length;
        if (ctx != 0 && pf_length() > ctx) {  // cloud-ar went past the draft model's context
          done = true;
          finish = FinishReason::length;
          return;
        }
        es.drafter_->begin(context_now());
        const std::size_t before = committed.size();
        // Keys of an epoch the lost session never reached, so no draw repeats one made for a draft sent up.
        edge_only_loop(epoch + 1);
        edge_only_tokens = committed.size() - before;
        return;
      }
    }
  }

  // Sleeps EdgeOptions::resume_backoff in short steps; true when cancel() came meanwhile.
  bool backoff_interrupted() {
    const auto until = Clock::now() + es.options_.resume_backoff;
    while (Clock::now() < until) {
      if (cancelled.load()) return true;
      std::this_thread::sleep_for(std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(10)));
    }
    return cancelled.load();
  }

  // Forgets the lost session: speculative tokens, chunks in flight, branches, the receive order and the ids.
  void reset_session_state() {
    drop_spec();
    clear_lines();
    awaiting_more = false;
    chunk_closed = false;
    released.clear();
    order = detail::SeqOrder<wire::Message>{};
    hello_answered = false;
    session_id = 0;
    epoch = 0;
    seq = 0;
  }

  // Replaces the transport with a fresh one from EdgeOptions::reconnect (the old one is closed and its I/O thread
  // joined first). False (loss_message updated) when the factory throws or returns null.
  bool reconnect() {
    reset_session_state();
    std::unique_ptr<Io> old;
    {
      std::lock_guard lk(es.run_mu_);  // cancel() reads io_ under it
      old = std::move(es.io_);
    }
    old.reset();  // closes the old transport, joins its thread
    const TransportStats s = es.transport_->stats();
    stats_done.bytes_sent += s.bytes_sent - stats_before.bytes_sent;
    stats_done.bytes_received += s.bytes_received - stats_before.bytes_received;
    stats_done.frames_sent += s.frames_sent - stats_before.frames_sent;
    stats_done.frames_received += s.frames_received - stats_before.frames_received;
    stats_before = TransportStats{};
    std::unique_ptr<Transport> fresh;
    try {
      fresh = es.options_.reconnect();
    } catch (const std::exception& e) {
      loss_message += "; reconnect failed: " + std::string(e.what());
      return false;
    }
    if (!fresh) {
      loss_message += "; reconnect gave no transport";
      return false;
    }
    es.transport_ = std::move(fresh);
    return true;
  }

  void run_cloud_inner() {
    hello_seq = static_cast<std::uint32_t>(es.generations_);
    if (!es.io_) {
      auto io = std::make_unique<Io>(*es.transport_, es.options_);
      std::lock_guard lk(es.run_mu_);  // cancel() reads io_ under it
      es.io_ = std::move(io);
    }
    if (!handshake()) {  // cancelled before the Welcome: nothing to say goodbye to (a late Welcome is dropped)
      done = true;
      finish = FinishReason::cancelled;
      m.stale_dropped += foreign_dropped;
      return;
    }
    wire::Prefill pf;
    pf.tokens = context_now();  // a resume re-prefills what it has
    send(std::move(pf));
    if (plan.uses_drafter) {
      const auto t0 = Clock::now();
      es.drafter_->begin(context_now());  // a resume starts from prompt + committed
        m.draft_ms += ms_between(t0, Clock::now());
      detail::PolicyConfig cfg;
      cfg.sampling = gp.sampling;
      cfg.seed = gp.seed;
      cfg.vocab = vocab;
      cfg.codec = plan.codec;
      cfg.topk_k = gp.topk_k;
      cfg.candidates_m = gp.candidates_m;
      cfg.topk_fallback = gp.topk_fallback;
      cfg.branch_heads = plan.pipelined ? gp.branch_heads : 0;
      cfg.want_top_q = gp.draft_p_min > 0.0f;
      policy = detail::make_edge_policy(plan.rejection, cfg);
    }
    while (!done) {
      if (cancelled.load()) {
        done = true;
        finish = FinishReason::cancelled;
        break;
      }
      // Handle whatever has arrived, then draft if allowed, else wait.
      while (!done) {
        auto ev = next_event(Clock::duration::zero());
        if (!ev) break;
        handle(std::move(*ev));
      }
      if (done) break;
      if (plan.uses_drafter) {
        maybe_send();
        if (can_draft()) {
          draft_one();
          maybe_send();
          continue;
        }
        if (idle_branch_step()) continue;
        if (inflight.empty() && !awaiting_more && spec.size() == sent && spec.empty() && draft_blocked())
          protocol_error("nothing in flight and nothing to draft");
      }
      wait_event();
    }
    send_bye();  // the cloud frees the session
    m.stale_dropped += foreign_dropped;
  }

  [[nodiscard]] std::size_t pf_length() const noexcept { return prompt.size() + committed.size(); }
  [[nodiscard]] std::vector<Token> context_now() const {
    std::vector<Token> ctx(prompt);
    ctx.insert(ctx.end(), committed.begin(), committed.end());
    return ctx;
  }

  GenerateResult execute() {
    if (gp.max_tokens == 0) throw Error("generate: max_tokens must be >= 1");
    if (gp.gamma == 0 || gp.gamma > 4096) throw Error("generate: gamma must be in [1, 4096]");
    if (gp.depth == 0 || gp.depth > 64) throw Error("generate: depth must be in [1, 64]");
    if (prompt.empty()) throw Error("generate: empty prompt");
    plan = plan_mode(gp.mode, gp.sampling, gp.rejection, gp.sparse_codec);
    if (plan.rejection == RejectionMode::candidates && gp.candidates_m == 0)
      throw Error("generate: candidates_m must be >= 1");
    if (plan.rejection == RejectionMode::topk && gp.topk_k == 0) throw Error("generate: topk_k must be >= 1");
    if (gp.branch_heads > 16) throw Error("generate: branch_heads must be in [0, 16]");
    if (!(gp.draft_p_min >= 0.0f && gp.draft_p_min <= 1.0f)) throw Error("generate: draft_p_min must be in [0, 1]");
    chunk_len = gp.gamma;
    if (gp.branch_length > 4096) throw Error("generate: branch_length must be in [0, 4096]");
    if (gp.cloud_fill) {
      if (!plan.speculative || !draft_invariant(plan.rejection))
        throw Error("generate: cloud_fill needs a speculative mode with greedy sampling or rejection 'coupled'");
      if (gp.branch_heads != 0) throw Error("generate: cloud_fill and branch_heads cannot be combined");
      fill = true;
    }
    if (gp.branch_heads != 0 && !es.drafter_->info().batch_invariant)
      throw Error("generate: branches need a batch-invariant drafter (ModelInfo::batch_invariant)");
    vocab = es.drafter_->info().vocab_size;
    stop_info.eos = es.drafter_->info().eos;
    stop_info.eog = es.drafter_->info().eog;
    if (plan.uses_cloud && !es.transport_) throw Error("generate: this mode needs a transport");
    // The draft model's context bounds what the edge can draft (and, edge-only, generate): a `length` stop there.
    limit = gp.max_tokens;
    if (const std::uint32_t ctx = es.drafter_->info().context_length; ctx != 0 && plan.uses_drafter) {
      if (prompt.size() >= ctx)
        throw Error("generate: the prompt of " + std::to_string(prompt.size()) +
                    " tokens leaves no room in the draft model's context of " + std::to_string(ctx));
      limit = static_cast<std::uint32_t>(std::min<std::size_t>(limit, ctx - prompt.size()));
    }

    m.mode = std::string(to_string(plan.mode));
    m.rejection = plan.speculative ? std::string(to_string(plan.rejection)) : "none";
    m.backend = es.options_.label_backend;
    m.profile = es.options_.label_profile;
    m.link = !es.options_.label_link.empty() ? es.options_.label_link
                                             : (es.transport_ && plan.uses_cloud ? es.transport_->describe() : "none");
    m.gamma = plan.speculative ? gp.gamma : 0;
    m.depth = plan.pipelined ? gp.depth : 0;

    stats_before = es.transport_ ? es.transport_->stats() : TransportStats{};
    t_start = Clock::now();
    if (plan.uses_cloud)
      run_cloud();
    else
      run_edge_only();
    if (cancelled.load() && finish != FinishReason::eos && committed.size() < gp.max_tokens)
      finish = FinishReason::cancelled;
    const auto t_end = Clock::now();

    const TransportStats after = es.transport_ ? es.transport_->stats() : TransportStats{};
    m.bytes_up = stats_done.bytes_sent + after.bytes_sent - stats_before.bytes_sent;
    m.bytes_down = stats_done.bytes_received + after.bytes_received - stats_before.bytes_received;
    m.frames_up = stats_done.frames_sent + after.frames_sent - stats_before.frames_sent;
    m.frames_down = stats_done.frames_received + after.frames_received - stats_before.frames_received;
    m.tokens = committed.size();
    m.wall_ms = ms_between(t_start, t_end);
    m.ttft_ms = have_first ? ms_between(t_start, t_first) : -1.0;
    m.edge_idle_pct = m.wall_ms > 0 ? 100.0 * idle_ms / m.wall_ms : 0.0;
    m.finalize();
    GenerateResult res;
    res.tokens = std::move(committed);
    res.finish = finish;
    res.cloud_lost = lost;
    res.resumes = resumes;
    res.edge_only_tokens = edge_only_tokens;
    res.error = std::move(loss_message);
    res.metrics = std::move(m);
    return res;
  }
};

EdgeSession::EdgeSession(std::unique_ptr<Drafter> drafter, std::unique_ptr<Transport> transport,
                         EdgeOptions options)
    : drafter_(std::move(drafter)), transport_(std::move(transport)), options_(std::move(options)) {
  if (!drafter_) throw Error("EdgeSession: null drafter");
  if (options_.event_queue == 0) throw Error("EdgeSession: event_queue must be >= 1");
}

EdgeSession::~EdgeSession() {
  io_.reset();  // closes the transport and joins the I/O thread before the transport is destroyed
}

GenerateResult EdgeSession::generate(std::span<const Token> prompt, const GenerateParams& params,
                                     const TokenCallback& on_token) {
  validate(params.sampling);  // local check of what the cloud would refuse, before anything is sent
  if (busy_.exchange(true)) throw Error("EdgeSession::generate: already running");
  struct Busy {
    EdgeSession* s;
    ~Busy() { s->busy_ = false; }
  } busy_guard{this};
  Run run(*this, prompt, params, on_token);
  struct Registered {  // declared after `run`, so run_ is cleared before `run` is destroyed
    EdgeSession* s;
    Run* r;
    Registered(EdgeSession* session, Run* run_ptr) : s(session), r(run_ptr) {
      std::lock_guard lk(s->run_mu_);
      s->run_ = r;
    }
    ~Registered() {
      std::lock_guard lk(s->run_mu_);
      s->run_ = nullptr;
    }
    Registered(const Registered&) = delete;
    Registered& operator=(const Registered&) = delete;
  } registered(this, &run);
  ++generations_;
  return run.execute();
}

void EdgeSession::cancel() noexcept {
  std::lock_guard lk(run_mu_);
  if (run_) {
    run_->cancelled = true;
    run_->wake();
  }
}

}  // namespace picospec
