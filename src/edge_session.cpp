// EdgeSession (see include/picospec/edge_session.hpp and docs/pipeline.md).
#include "picospec/edge_session.hpp"

#include <condition_variable>
#include <deque>
#include <thread>
#include <utility>
#include <variant>

#include "picospec/protocol.hpp"
#include "picospec/rng.hpp"
#include "picospec/sampling.hpp"
#include "picospec/sparse_codec.hpp"
#include "seq_order.hpp"

namespace picospec {
namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct IoFailure {
  std::string message;
};
using Event = std::variant<wire::Message, IoFailure>;

// One speculative (drafted, not yet committed) token.
struct Spec {
  Token token = kNoToken;
  float q = 0.0f;                    // q(d) as sampled (candidates / topk / sparse_draft)
  std::vector<float> row;            // q row (candidates / topk), pooled
  std::vector<std::uint8_t> frame;   // encoded q (full / sparse_draft)
};

struct Chunk {
  std::uint32_t start = 0;
  std::uint32_t n = 0;        // tokens in the Draft
  std::uint32_t n_fixed = 0;  // leading fixed tokens (correction)
  [[nodiscard]] std::uint32_t drafts() const noexcept { return n - n_fixed; }
};

}  // namespace

std::string_view to_string(FinishReason r) noexcept {
  switch (r) {
    case FinishReason::max_tokens: return "max_tokens";
    case FinishReason::eos: return "eos";
    case FinishReason::cancelled: return "cancelled";
  }
  return "?";
}

struct EdgeSession::Run {
  Run(EdgeSession& session, std::span<const Token> prompt_in, const GenerateParams& params,
      const TokenCallback& callback)
      : es(session), gp(params), cb(callback), prompt(prompt_in.begin(), prompt_in.end()) {}

  ~Run() { stop_io(); }

  EdgeSession& es;
  const GenerateParams& gp;
  const TokenCallback& cb;
  std::vector<Token> prompt;
  ModePlan plan;
  std::uint32_t vocab = 0;
  Token eos = kNoToken;

  // Event queue (I/O thread -> drafting thread).
  std::mutex qmu;
  std::condition_variable qcv;
  std::deque<Event> queue;
  bool io_stop = false;
  std::atomic<bool> cancelled{false};
  std::thread io;
  std::atomic<std::uint64_t> session_id{0};
  std::atomic<std::uint64_t> foreign_dropped{0};
  detail::SeqOrder<wire::Message> order;  // I/O thread only
  bool hello_answered = false;            // I/O thread only: the Welcome / Error for this Hello was pushed

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
  bool awaiting_more = false;
  std::size_t rej_position = 0;
  std::uint32_t rej_epoch = 0;
  std::vector<float> rej_row;
  std::vector<std::vector<float>> row_pool;
  std::unique_ptr<SparseCodec> uplink_codec, topk_codec;
  SamplingWorkspace ws;

  Clock::time_point t_start{}, t_first{};
  bool have_first = false;
  double idle_ms = 0.0;
  Metrics m;

  // ------------------------------------------------------------------------------------------- I/O
  void start_io() {
    io = std::thread([this] { io_loop(); });
  }
  void stop_io() {
    {
      std::lock_guard lk(qmu);
      io_stop = true;
    }
    qcv.notify_all();
    if (io.joinable()) io.join();
  }
  void push(Event ev) {
    std::unique_lock lk(qmu);
    qcv.wait(lk, [&] { return io_stop || queue.size() < es.options_.event_queue; });
    if (io_stop) return;
    queue.push_back(std::move(ev));
    lk.unlock();
    qcv.notify_all();
  }
  void io_loop() {
    wire::DecodeLimits limits;
    limits.max_frame_bytes = es.options_.max_frame_bytes;
    limits.max_q_frame_bytes = es.options_.max_frame_bytes;
    for (;;) {
      {
        std::lock_guard lk(qmu);
        if (io_stop) return;
      }
      Received r;
      try {
        r = es.transport_->recv(Millis(20));
      } catch (const std::exception& e) {
        push(IoFailure{std::string("transport error: ") + e.what()});
        return;
      }
      if (r.status == RecvStatus::closed) {
        push(IoFailure{"transport closed" + transport_problem()});
        return;
      }
      if (r.status != RecvStatus::ok) continue;
      auto d = wire::try_decode(r.frame, limits);
      if (!d.ok()) {
        push(IoFailure{"malformed frame from the cloud: " + d.reason});
        return;
      }
      const std::uint64_t sid = session_id.load();
      const auto type = d.message->type();
      // Before the Welcome only the answer to this generation's Hello counts; after it, only this session's frames.
      const bool accept = sid == 0 ? (type == wire::MessageType::welcome || type == wire::MessageType::error) &&
                                         d.message->header.seq == hello_seq
                                   : d.message->header.session_id == sid;
      if (!accept) {
        ++foreign_dropped;  // a frame of an earlier generation
        continue;
      }
      if (sid == 0 ? std::exchange(hello_answered, true) : release_in_order(std::move(*d.message))) {
        if (sid == 0) ++foreign_dropped;  // a second answer to the Hello: a duplicate (faulty link)
        continue;
      }
      push(std::move(*d.message));
    }
  }
  // " (connection refused ...)" when the transport can tell why nothing arrives (Transport::problem), else "".
  std::string transport_problem() const {
    std::string p = es.transport_->problem();
    return p.empty() ? p : " (" + p + ")";
  }

  // After the Welcome, the session's frames are pushed in seq order, each once (src/seq_order.hpp): duplicates
  // and stale copies (a faulty link, a late Welcome) are dropped and counted. Errors skip the order. I/O thread.
  bool release_in_order(wire::Message&& msg) {
    if (msg.type() == wire::MessageType::error) return false;
    std::vector<wire::Message> ready;
    const auto o = msg.type() == wire::MessageType::welcome
                       ? detail::SeqOrder<wire::Message>::Outcome::duplicate
                       : order.offer(msg.header.seq, std::move(msg), ready);
    if (o == detail::SeqOrder<wire::Message>::Outcome::duplicate ||
        o == detail::SeqOrder<wire::Message>::Outcome::dropped)
      ++foreign_dropped;
    for (auto& next : ready) push(std::move(next));
    return true;
  }

  // Pops one event; waits at most `timeout` (0 = do not wait). nullopt on timeout or cancel.
  std::optional<Event> pop(Clock::duration timeout) {
    std::unique_lock lk(qmu);
    if (timeout > Clock::duration::zero())
      qcv.wait_for(lk, timeout, [&] { return !queue.empty() || cancelled.load(); });
    if (queue.empty()) return std::nullopt;
    Event ev = std::move(queue.front());
    queue.pop_front();
    lk.unlock();
    qcv.notify_all();
    return ev;
  }
  void wake() {
    { std::lock_guard lk(qmu); }  // `cancelled` was set outside qmu: sync with a waiter between check and block
    qcv.notify_all();
  }

  // ------------------------------------------------------------------------------------------- sending
  void send(wire::Body body) {
    wire::Header h;
    h.session_id = session_id.load();
    h.epoch = epoch;
    h.seq = std::holds_alternative<wire::Hello>(body) ? hello_seq : seq++;
    if (!es.transport_->send(wire::encode(h, std::move(body))))
      throw Error("EdgeSession: transport closed" + transport_problem());
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
    if (gp.stop_at_eos && eos != kNoToken && t == eos) {
      done = true;
      finish = FinishReason::eos;
    } else if (committed.size() >= gp.max_tokens) {
      done = true;
      finish = FinishReason::max_tokens;
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
  }

  // ------------------------------------------------------------------------------------------- drafting
  [[nodiscard]] bool draft_blocked() const {
    if (committed.size() + spec.size() >= gp.max_tokens) return true;
    if (gp.stop_at_eos && eos != kNoToken && !spec.empty() && spec.back().token == eos) return true;
    return false;
  }
  [[nodiscard]] bool can_draft() const {
    if (done || awaiting_more || draft_blocked()) return false;
    if (!plan.pipelined && inflight_drafts > 0) return false;
    return spec.size() - sent < gp.gamma;
  }

  void draft_one() {
    const auto t0 = Clock::now();
    Drafter& d = *es.drafter_;
    const std::size_t pos = d.length();
    const auto logits = d.next_logits();
    Spec s;
    const double u = uniform(gp.seed, Purpose::draft_sample, pos, epoch);
    switch (plan.rejection) {
      case RejectionMode::greedy:
        s.token = argmax(logits);
        s.q = 1.0f;
        break;
      case RejectionMode::candidates:
      case RejectionMode::topk:
        s.row = take_row();
        logits_to_probs(logits, gp.sampling, s.row, ws);
        s.token = sample_from(s.row, u);
        s.q = s.row[static_cast<std::size_t>(s.token)];
        break;
      case RejectionMode::full: {
        std::vector<float> row = take_row();
        logits_to_probs(logits, gp.sampling, row, ws);
        s.token = sample_from(row, u);
        s.q = row[static_cast<std::size_t>(s.token)];
        uplink_codec->encode(row, s.frame);
        give_row(std::move(row));
        break;
      }
      case RejectionMode::sparse_draft: {
        std::vector<float> row = take_row();
        logits_to_probs(logits, gp.sampling, row, ws);
        uplink_codec->encode(row, s.frame);
        const SparseDist q_hat = uplink_codec->decode(s.frame, vocab, Normalization::normalize);
        s.token = sample_from(q_hat, u);
        s.q = q_hat.prob(s.token);
        give_row(std::move(row));
        break;
      }
    }
    d.append(s.token);
    spec.push_back(std::move(s));
    ++m.drafted;
    m.draft_ms += ms_between(t0, Clock::now());
  }

  void send_unsent() {
    const std::size_t n = spec.size() - sent;
    if (n == 0) return;
    wire::Draft dr;
    dr.start_position = static_cast<std::uint32_t>(prompt.size() + committed.size() + sent);
    dr.n_fixed = 0;
    const bool scalars = plan.rejection == RejectionMode::candidates || plan.rejection == RejectionMode::topk;
    const bool frames = plan.rejection == RejectionMode::full || plan.rejection == RejectionMode::sparse_draft;
    for (std::size_t i = sent; i < spec.size(); ++i) {
      dr.tokens.push_back(spec[i].token);
      if (scalars) dr.q_scalars.push_back(spec[i].q);
      if (frames) dr.q_frames.push_back(std::move(spec[i].frame));
    }
    inflight.push_back(Chunk{dr.start_position, static_cast<std::uint32_t>(n), 0});
    ++inflight_drafts;
    sent = spec.size();
    m.sent_drafts += n;
    send(std::move(dr));
  }

  void maybe_send() {
    const std::size_t unsent = spec.size() - sent;
    if (unsent == 0 || done) return;
    const bool ready = unsent >= gp.gamma || draft_blocked();
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
    if (plan.rejection == RejectionMode::candidates || plan.rejection == RejectionMode::topk) dr.q_scalars = {1.0f};
    inflight.push_back(Chunk{dr.start_position, 1, 1});
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
    if (edge_decided && !done) send_fixed(c, pos);
  }

  void on_candidates(const wire::Verdict& v) {
    CandidateStream stream = decode_candidates(v.payload, vocab);
    if (stream.first_index != v.first_candidate_index || stream.size() == 0)
      protocol_error("candidate stream index mismatch");
    if (auto pick = pick_candidate(stream, rej_row, gp.seed, rej_position, rej_epoch)) {
      awaiting_more = false;
      give_row(std::move(rej_row));
      rej_row = {};
      apply_correction(*pick, rej_position, true);
      return;
    }
    awaiting_more = true;
    ++m.more_candidates;
    wire::MoreCandidates mc;
    mc.position = static_cast<std::uint32_t>(rej_position);
    mc.next_index = stream.first_index + static_cast<std::uint32_t>(stream.size());
    send(mc);
  }

  void on_verdict(const wire::Header& h, const wire::Verdict& v) {
    if (h.epoch < epoch) {
      ++m.stale_dropped;
      return;
    }
    if (awaiting_more) {
      if (v.kind != wire::VerdictKind::candidates || v.start_position != rej_position || h.epoch != epoch)
        protocol_error("expected more candidates");
      on_candidates(v);
      return;
    }
    if (inflight.empty()) protocol_error("verdict with no chunk in flight");
    const Chunk c = inflight.front();
    if (v.start_position != c.start) protocol_error("verdict for an unknown chunk");
    inflight.pop_front();
    if (c.drafts() > 0) --inflight_drafts;
    if (v.accepted < c.n_fixed || v.accepted > c.n) protocol_error("accepted count out of range");
    const std::uint32_t acc = v.accepted - c.n_fixed;
    const bool all = v.kind == wire::VerdictKind::all_accepted;
    if (all != (acc == c.drafts())) protocol_error("verdict kind does not match the accepted count");
    if (all && h.epoch != epoch) protocol_error("epoch changed without a rejection");
    if (c.drafts() > 0) {
      ++m.rounds;
      m.accepted += acc;
      const std::uint32_t tested = all ? acc : acc + 1;
      if (m.position_tested.size() < c.drafts()) {
        m.position_tested.resize(c.drafts(), 0);
        m.position_accepted.resize(c.drafts(), 0);
      }
      for (std::uint32_t j = 0; j < tested; ++j) ++m.position_tested[j];
      for (std::uint32_t j = 0; j < acc; ++j) ++m.position_accepted[j];
    }
    // The chunk's drafts are the oldest spec tokens.
    if (acc > spec.size() || acc > sent) protocol_error("verdict accepts tokens never sent");
    for (std::uint32_t j = 0; j < acc; ++j) {
      commit(spec.front().token);
      give_row(std::move(spec.front().row));
      spec.pop_front();
      --sent;
    }
    if (all) return;
    // Rejection at position pos: everything speculative is void.
    const std::size_t pos = c.start + v.accepted;
    if (pos != prompt.size() + committed.size() && !done) protocol_error("rejection position mismatch");
    const std::uint32_t old_epoch = epoch;
    epoch = h.epoch;
    ++m.rollbacks;
    if (v.kind == wire::VerdictKind::correction_token) {
      drop_spec();
      if (!done) apply_correction(v.correction, pos, false);
      return;
    }
    if (spec.empty()) protocol_error("rejection without a rejected draft");
    std::vector<float> row = std::move(spec.front().row);
    drop_spec();
    if (done) return;
    if (row.size() != vocab) protocol_error("no draft distribution kept for the rejected token");
    if (v.kind == wire::VerdictKind::topk) {
      if (!topk_codec) protocol_error("Top-K verdict outside topk mode");
      const SparseDist p_topk = topk_codec->decode(v.payload, vocab, Normalization::raw);
      const Token cor = residual_topk(p_topk, row, uniform(gp.seed, Purpose::topk_residual, pos, old_epoch),
                                      gp.topk_fallback);
      give_row(std::move(row));
      apply_correction(cor, pos, true);
      return;
    }
    if (v.kind != wire::VerdictKind::candidates) protocol_error("unknown verdict kind");
    rej_position = pos;
    rej_epoch = old_epoch;
    rej_row = std::move(row);
    es.drafter_->rollback(pos);
    on_candidates(v);
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
      finish = (eos != kNoToken && !committed.empty() && committed.back() == eos) ? FinishReason::eos
                                                                                  : FinishReason::max_tokens;
    }
  }

  void handle(Event&& ev) {
    if (auto* f = std::get_if<IoFailure>(&ev)) throw Error("EdgeSession: " + f->message);
    auto& msg = std::get<wire::Message>(ev);
    if (auto* e = std::get_if<wire::Error>(&msg.body))
      throw Error("EdgeSession: cloud error (" + std::string(wire::to_string(e->code)) + "): " + e->message);
    if (auto* v = std::get_if<wire::Verdict>(&msg.body)) {
      if (plan.mode == PipelineMode::cloud_ar) protocol_error("Verdict in cloud-ar mode");
      on_verdict(msg.header, *v);
      return;
    }
    if (auto* t = std::get_if<wire::Tokens>(&msg.body)) {
      if (plan.mode != PipelineMode::cloud_ar) protocol_error("Tokens outside cloud-ar mode");
      on_tokens(*t);
      return;
    }
    if (std::holds_alternative<wire::Bye>(msg.body) || std::holds_alternative<wire::Cancel>(msg.body))
      throw Error("EdgeSession: the cloud ended the session");
    protocol_error("unexpected " + std::string(wire::to_string(msg.type())));
  }

  // Waits for one event (counted as idle time); throws on timeout.
  void wait_event() {
    const auto t0 = Clock::now();
    auto ev = pop(es.options_.response_timeout);
    idle_ms += ms_between(t0, Clock::now());
    if (!ev) {
      if (cancelled.load()) return;
      throw Error("EdgeSession: no answer from the cloud within " +
                  std::to_string(es.options_.response_timeout.count()) + " ms");
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
    hello.pipeline = static_cast<wire::PipelineMode>(plan.mode);
    hello.codec = plan.codec;
    hello.topk_k = gp.topk_k;
    hello.candidates_m = gp.candidates_m;
    hello.seed = gp.seed;
    hello.gamma = gp.gamma;
    hello.max_new_tokens = gp.max_tokens;
    send(std::move(hello));
    const auto t0 = Clock::now();
    auto ev = pop(es.options_.response_timeout);
    idle_ms += ms_between(t0, Clock::now());
    if (!ev) {
      if (cancelled.load()) return false;
      throw Error("EdgeSession: no Welcome from the cloud" + transport_problem());
    }
    if (auto* f = std::get_if<IoFailure>(&*ev)) throw Error("EdgeSession: " + f->message);
    auto& msg = std::get<wire::Message>(*ev);
    if (auto* e = std::get_if<wire::Error>(&msg.body))
      throw Error("EdgeSession: cloud refused the session (" + std::string(wire::to_string(e->code)) +
                  "): " + e->message);
    const auto* w = std::get_if<wire::Welcome>(&msg.body);
    if (!w) protocol_error("expected Welcome");
    if (w->target.vocab_size != vocab) throw Error("EdgeSession: the cloud's vocabulary differs");
    if (msg.header.session_id == 0) protocol_error("Welcome without a session id");
    session_id = msg.header.session_id;
    return true;
  }

  void run_edge_only() {
    es.drafter_->begin(prompt);
    while (!done && !cancelled.load()) {
      const auto t0 = Clock::now();
      const std::size_t pos = es.drafter_->length();
      const auto logits = es.drafter_->next_logits();
      Token t;
      if (gp.sampling.greedy()) {
        t = argmax(logits);
      } else {
        std::vector<float> row = take_row();
        logits_to_probs(logits, gp.sampling, row, ws);
        t = sample_from(row, uniform(gp.seed, Purpose::draft_sample, pos, 0));
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
      h.session_id = session_id.load();
      h.epoch = epoch;
      h.seq = seq++;
      (void)es.transport_->send(wire::encode(h, wire::Bye{}));
    } catch (...) {  // the transport may already be closed
    }
  }

  void run_cloud() {
    try {
      run_cloud_inner();
    } catch (...) {
      if (session_id.load() != 0) send_bye();  // let the cloud free the session (and stop a cloud-ar loop)
      throw;
    }
  }

  void run_cloud_inner() {
    hello_seq = static_cast<std::uint32_t>(es.generations_);  // set before the I/O thread starts reading it
    start_io();
    if (!handshake()) {  // cancelled before the Welcome: nothing to say goodbye to (a late Welcome is dropped)
      done = true;
      finish = FinishReason::cancelled;
      stop_io();
      m.stale_dropped += foreign_dropped.load();
      return;
    }
    wire::Prefill pf;
    pf.tokens = prompt;
    send(std::move(pf));
    if (plan.uses_drafter) {
      const auto t0 = Clock::now();
      es.drafter_->begin(prompt);
      m.draft_ms += ms_between(t0, Clock::now());
      if (plan.codec.size()) uplink_codec = make_codec(plan.codec);
      if (plan.rejection == RejectionMode::topk) topk_codec = make_codec("topk_f32:" + std::to_string(gp.topk_k));
    }
    while (!done) {
      if (cancelled.load()) {
        done = true;
        finish = FinishReason::cancelled;
        break;
      }
      // Handle whatever has arrived, then draft if allowed, else wait.
      while (!done) {
        auto ev = pop(Clock::duration::zero());
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
        if (inflight.empty() && !awaiting_more && spec.size() == sent && spec.empty() && draft_blocked())
          protocol_error("nothing in flight and nothing to draft");
      }
      wait_event();
    }
    send_bye();  // the cloud frees the session
    stop_io();
    m.stale_dropped += foreign_dropped.load();
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
    vocab = es.drafter_->info().vocab_size;
    eos = es.drafter_->info().eos;
    if (plan.uses_cloud && !es.transport_) throw Error("generate: this mode needs a transport");

    m.mode = std::string(to_string(plan.mode));
    m.rejection = plan.speculative ? std::string(to_string(plan.rejection)) : "none";
    m.backend = es.options_.label_backend;
    m.profile = es.options_.label_profile;
    m.link = !es.options_.label_link.empty() ? es.options_.label_link
                                             : (es.transport_ && plan.uses_cloud ? es.transport_->describe() : "none");
    m.gamma = plan.speculative ? gp.gamma : 0;
    m.depth = plan.pipelined ? gp.depth : 0;

    const TransportStats before = es.transport_ ? es.transport_->stats() : TransportStats{};
    t_start = Clock::now();
    if (plan.uses_cloud)
      run_cloud();
    else
      run_edge_only();
    if (cancelled.load() && finish != FinishReason::eos && committed.size() < gp.max_tokens)
      finish = FinishReason::cancelled;
    const auto t_end = Clock::now();

    const TransportStats after = es.transport_ ? es.transport_->stats() : TransportStats{};
    m.bytes_up = after.bytes_sent - before.bytes_sent;
    m.bytes_down = after.bytes_received - before.bytes_received;
    m.frames_up = after.frames_sent - before.frames_sent;
    m.frames_down = after.frames_received - before.frames_received;
    m.tokens = committed.size();
    m.wall_ms = ms_between(t_start, t_end);
    m.ttft_ms = have_first ? ms_between(t_start, t_first) : -1.0;
    m.edge_idle_pct = m.wall_ms > 0 ? 100.0 * idle_ms / m.wall_ms : 0.0;
    m.finalize();
    GenerateResult res;
    res.tokens = std::move(committed);
    res.finish = finish;
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

EdgeSession::~EdgeSession() = default;

GenerateResult EdgeSession::generate(std::span<const Token> prompt, const GenerateParams& params,
                                     const TokenCallback& on_token) {
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
