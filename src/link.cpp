// Link emulator: delays frames by latency + size/bandwidth, serialized per direction, with seeded jitter.
#include "picospec/link.hpp"

#include <charconv>
#include <cmath>
#include <sstream>
#include <vector>

namespace picospec {

namespace {

using std::chrono::nanoseconds;

nanoseconds ns_from_ms(double ms, double scale) {
  return nanoseconds(static_cast<std::int64_t>(std::llround(ms * scale * 1e6)));
}

nanoseconds tx_time(std::size_t bytes, double mbit, double scale) {
  if (mbit <= 0.0) return nanoseconds(0);
  const double seconds = static_cast<double>(bytes) * 8.0 / (mbit * 1e6);
  return nanoseconds(static_cast<std::int64_t>(std::llround(seconds * scale * 1e9)));
}

double parse_number(std::string_view s, std::string_view spec) {
  double v = 0.0;
  const auto* first = s.data();
  const auto* last = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(first, last, v);
  if (s.empty() || ec != std::errc() || ptr != last || !std::isfinite(v) || v < 0.0)
    throw Error("LinkProfile::parse: bad number \"" + std::string(s) + "\" in \"" + std::string(spec) +
                "\" (expected a profile name or rtt_ms:up_mbit:down_mbit[:jitter_ms], non-negative numbers)");
  return v;
}

// splitmix64: small, seeded, good enough for delay noise and fault draws. Uniform in [0, 1).
double splitmix_uniform(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

std::string fmt_num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// LinkProfile

LinkProfile LinkProfile::none() { return LinkProfile{}; }
LinkProfile LinkProfile::lan() {
  LinkProfile p;
  p.name = "lan";
  p.rtt_ms = 1.0;
  p.up_mbit = 1000.0;
  p.down_mbit = 1000.0;
  return p;
}
LinkProfile LinkProfile::wan() {
  LinkProfile p;
  p.name = "wan";
  p.rtt_ms = 50.0;
  p.up_mbit = 20.0;
  p.down_mbit = 100.0;
  return p;
}
LinkProfile LinkProfile::paper_wan() {
  LinkProfile p;
  p.name = "paper-wan";
  p.rtt_ms = 20.0;
  p.up_mbit = 100.0;
  p.down_mbit = 100.0;
  return p;
}
LinkProfile LinkProfile::cellular() {
  LinkProfile p;
  p.name = "cellular";
  p.rtt_ms = 80.0;
  p.up_mbit = 5.0;
  p.down_mbit = 20.0;
  p.jitter_ms = 10.0;
  return p;
}

namespace {
LinkProfile parse_base(std::string_view spec);  // "name" or "rtt:up:down[:jitter]", below
}

LinkProfile LinkProfile::parse(std::string_view full_spec) {
  // Faults: ",key=value" suffixes after the base profile.
  const auto comma = full_spec.find(',');
  LinkProfile p = parse_base(full_spec.substr(0, comma));
  std::string_view rest = comma == std::string_view::npos ? std::string_view() : full_spec.substr(comma + 1);
  while (comma != std::string_view::npos) {
    const auto next = rest.find(',');
    const std::string_view item = rest.substr(0, next);
    const auto eq = item.find('=');
    if (eq == std::string_view::npos)
      throw Error("LinkProfile::parse: \"" + std::string(item) + "\" in \"" + std::string(full_spec) +
                  "\" is not key=value (keys: loss, dup, reorder, reorder_ms, seed)");
    const std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
    auto probability = [&] {
      const double v = parse_number(value, full_spec);
      if (v > 1.0) throw Error("LinkProfile::parse: " + std::string(key) + " must be a probability in [0, 1]");
      return v;
    };
    if (key == "loss") p.loss = probability();
    else if (key == "dup") p.duplicate = probability();
    else if (key == "reorder") p.reorder = probability();
    else if (key == "reorder_ms") p.reorder_delay_ms = parse_number(value, full_spec);
    else if (key == "seed") p.fault_seed = static_cast<std::uint64_t>(parse_number(value, full_spec));
    else
      throw Error("LinkProfile::parse: unknown fault \"" + std::string(key) + "\" in \"" + std::string(full_spec) +
                  "\" (keys: loss, dup, reorder, reorder_ms, seed)");
    if (next == std::string_view::npos) break;
    rest = rest.substr(next + 1);
  }
  if (comma != std::string_view::npos) p.name = std::string(full_spec);
  return p;
}

namespace {
LinkProfile parse_base(std::string_view spec) {
  if (spec == "none") return LinkProfile::none();
  if (spec == "lan") return LinkProfile::lan();
  if (spec == "wan") return LinkProfile::wan();
  if (spec == "paper-wan" || spec == "paper_wan") return LinkProfile::paper_wan();
  if (spec == "cellular") return LinkProfile::cellular();
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const auto colon = spec.find(':', start);
    parts.push_back(spec.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  if (parts.size() != 3 && parts.size() != 4)
    throw Error("LinkProfile::parse: \"" + std::string(spec) +
                "\" is neither a profile name (none, lan, wan, paper-wan, cellular) nor rtt_ms:up_mbit:down_mbit[:jitter_ms]");
  LinkProfile p;
  p.name = std::string(spec);
  p.rtt_ms = parse_number(parts[0], spec);
  p.up_mbit = parse_number(parts[1], spec);
  p.down_mbit = parse_number(parts[2], spec);
  if (parts.size() == 4) p.jitter_ms = parse_number(parts[3], spec);
  return p;
}
}  // namespace

nanoseconds LinkProfile::uplink_tx_time(std::size_t bytes) const noexcept { return tx_time(bytes, up_mbit, time_scale); }
nanoseconds LinkProfile::downlink_tx_time(std::size_t bytes) const noexcept {
  return tx_time(bytes, down_mbit, time_scale);
}
nanoseconds LinkProfile::one_way_delay() const noexcept { return ns_from_ms(rtt_ms / 2.0, time_scale); }

std::string LinkProfile::describe() const {
  auto bw = [](double m) { return m <= 0.0 ? std::string("unlimited") : fmt_num(m) + " Mbit/s"; };
  std::string s = name + " (rtt " + fmt_num(rtt_ms) + " ms, up " + bw(up_mbit) + ", down " + bw(down_mbit);
  if (jitter_ms > 0.0) s += ", jitter " + fmt_num(jitter_ms) + " ms";
  if (loss > 0.0) s += ", loss " + fmt_num(loss);
  if (duplicate > 0.0) s += ", dup " + fmt_num(duplicate);
  if (reorder > 0.0) s += ", reorder " + fmt_num(reorder) + " by " + fmt_num(reorder_delay_ms) + " ms";
  if (time_scale != 1.0) s += ", time x" + fmt_num(time_scale);
  return s + ")";
}

// ---------------------------------------------------------------------------------------------------------
// LinkTransport

LinkTransport::LinkTransport(std::unique_ptr<Transport> inner, LinkProfile profile)
    : inner_(std::move(inner)), profile_(std::move(profile)) {
  if (!inner_) throw Error("LinkTransport: inner transport is null");
  auto bad = [](double v) { return !std::isfinite(v) || v < 0.0; };
  if (bad(profile_.rtt_ms) || bad(profile_.up_mbit) || bad(profile_.down_mbit) || bad(profile_.jitter_ms) ||
      bad(profile_.time_scale) || bad(profile_.reorder_delay_ms) || bad(profile_.close_linger_ms))
    throw Error("LinkTransport: profile values must be finite and >= 0: " + profile_.describe());
  auto bad_p = [](double v) { return !(v >= 0.0 && v <= 1.0); };
  if (bad_p(profile_.loss) || bad_p(profile_.duplicate) || bad_p(profile_.reorder))
    throw Error("LinkTransport: loss, duplicate and reorder must be probabilities in [0, 1]: " + profile_.describe());
  fault_state_ = profile_.fault_seed;
  if (profile_.queue_frames == 0) throw Error("LinkTransport: queue_frames must be >= 1");
  rng_state_ = profile_.seed;
  up_thread_ = std::thread([this] { uplink_loop(); });
  try {
    down_thread_ = std::thread([this] { downlink_loop(); });
  } catch (...) {
    close();
    throw;
  }
}

LinkTransport::~LinkTransport() { close(); }

std::string LinkTransport::describe() const { return "link " + profile_.describe() + " over " + inner_->describe(); }

nanoseconds LinkTransport::jitter_locked() {
  if (profile_.jitter_ms <= 0.0) return nanoseconds(0);
  const double u = splitmix_uniform(rng_state_);
  return ns_from_ms((2.0 * u - 1.0) * profile_.jitter_ms, profile_.time_scale);
}

double LinkTransport::fault_uniform_locked() { return splitmix_uniform(fault_state_); }

LinkFaultStats LinkTransport::faults() const {
  std::lock_guard lk(mu_);
  return faults_;
}

void LinkTransport::schedule_locked(std::deque<InFlight>& q, Frame frame, Clock::time_point& free_at,
                                    Clock::time_point& last, nanoseconds tx) {
  // Draw all three faults for every frame (when any is enabled), so one fault's probability does not shift the
  // others' sequence.
  bool lose = false, dup = false, late = false;
  if (profile_.has_faults()) {
    lose = fault_uniform_locked() < profile_.loss;
    dup = fault_uniform_locked() < profile_.duplicate;
    late = fault_uniform_locked() < profile_.reorder;
  }
  const auto now = Clock::now();
  const auto start = std::max(now, free_at);
  free_at = start + tx;  // a lost frame still used the transmitter
  if (lose) {
    ++faults_.lost;
    return;
  }
  auto deliver = free_at + std::max(nanoseconds(0), profile_.one_way_delay() + jitter_locked());
  deliver = std::max(deliver, last);  // jitter never reorders
  if (late) {
    ++faults_.reordered;  // held back; frames sent after it are not (`last` stays), so they overtake it
    deliver += ns_from_ms(profile_.reorder_delay_ms, profile_.time_scale);
  } else {
    last = deliver;
  }
  auto insert = [&](Frame f, Clock::time_point at) {
    auto pos = q.end();  // due order (stable): almost always the back
    while (pos != q.begin() && std::prev(pos)->deliver_at > at) --pos;
    q.insert(pos, InFlight{std::move(f), at});
  };
  if (dup) {
    ++faults_.duplicated;
    insert(frame, deliver);
  }
  insert(std::move(frame), deliver);
}

bool LinkTransport::do_send(Frame frame) {
  std::unique_lock lk(mu_);
  up_room_.wait(lk, [&] { return closed_ || closing_ || up_q_.size() < profile_.queue_frames; });
  if (closed_ || closing_) {
    count_dropped();
    return false;
  }
  const auto tx = profile_.uplink_tx_time(frame.size());
  schedule_locked(up_q_, std::move(frame), up_free_, up_last_, tx);
  up_cv_.notify_one();
  return true;
}

void LinkTransport::uplink_loop() {
  std::unique_lock lk(mu_);
  while (!closed_) {
    if (up_q_.empty()) {
      up_cv_.wait(lk);
      continue;
    }
    const auto due = up_q_.front().deliver_at;
    if (Clock::now() < due) {
      up_cv_.wait_until(lk, due);
      continue;
    }
    Frame f = std::move(up_q_.front().frame);
    up_q_.pop_front();
    up_room_.notify_one();
    up_sending_ = true;
    lk.unlock();
    bool sent = false;
    try {
      sent = inner_->send(std::move(f));  // may block on a full inner queue; close() unblocks it
    } catch (...) {
      // e.g. a frame above the inner transport's size limit: this thread has no caller to report to, so the
      // frame is dropped and counted (check sizes before send() when that matters).
      sent = false;
    }
    if (!sent) count_dropped();
    lk.lock();
    up_sending_ = false;
    drained_.notify_all();
  }
}

void LinkTransport::downlink_loop() {
  while (true) {
    // Blocks inside the inner transport; close() closes the inner transport, which wakes this call.
    Received r;
    try {
      r = inner_->recv(Millis(1000));
    } catch (...) {
      r.status = RecvStatus::closed;  // an inner transport that throws is treated as closed
    }
    std::unique_lock lk(mu_);
    if (closed_) {
      if (r.ok()) count_dropped();
      return;
    }
    if (r.status == RecvStatus::closed) {
      inner_closed_ = true;
      down_cv_.notify_all();
      return;
    }
    if (!r.ok()) continue;
    down_room_.wait(lk, [&] { return closed_ || down_q_.size() < profile_.queue_frames; });
    if (closed_) {
      count_dropped();
      return;
    }
    const auto tx = profile_.downlink_tx_time(r.frame.size());
    schedule_locked(down_q_, std::move(r.frame), down_free_, down_last_, tx);
    down_cv_.notify_all();
  }
}

Received LinkTransport::do_recv(Millis timeout) {
  const auto now0 = Clock::now();
  // Saturate huge timeouts (Millis::max()) instead of overflowing the time point.
  const auto capped = std::min<Millis>(std::max<Millis>(timeout, Millis(0)), Millis(std::int64_t{1} << 40));
  const auto deadline = now0 + capped;
  std::unique_lock lk(mu_);
  while (true) {
    if (closed_) return Received{RecvStatus::closed, {}};
    const auto now = Clock::now();
    if (!down_q_.empty()) {
      const auto due = down_q_.front().deliver_at;
      if (now >= due) {
        Received r{RecvStatus::ok, std::move(down_q_.front().frame)};
        down_q_.pop_front();
        down_room_.notify_one();
        return r;
      }
      if (now >= deadline) return Received{RecvStatus::timeout, {}};
      down_cv_.wait_until(lk, std::min(due, deadline));
      continue;
    }
    if (inner_closed_) return Received{RecvStatus::closed, {}};
    if (now >= deadline) return Received{RecvStatus::timeout, {}};
    down_cv_.wait_until(lk, deadline);
  }
}

void LinkTransport::do_close() {
  std::uint64_t dropped = 0;
  {
    std::unique_lock lk(mu_);
    if (!closed_ && !closing_) {
      // Linger: hand over the uplink frames due within close_linger_ms (e.g. the edge's Bye), in their due order.
      closing_ = true;
      up_room_.notify_all();  // blocked senders fail now
      const auto limit = Clock::now() + ns_from_ms(profile_.close_linger_ms, 1.0);
      drained_.wait_until(lk, limit, [&] {
        return closed_ || (!up_sending_ && (up_q_.empty() || up_q_.front().deliver_at > limit));
      });
    }
    if (!closed_) {
      closed_ = true;
      dropped = up_q_.size() + down_q_.size();
      up_q_.clear();
      down_q_.clear();
    }
    up_cv_.notify_all();
    up_room_.notify_all();
    down_cv_.notify_all();
    down_room_.notify_all();
  }
  if (dropped) count_dropped(dropped);
  inner_->close();
  std::lock_guard jl(join_mu_);
  if (up_thread_.joinable()) up_thread_.join();
  if (down_thread_.joinable()) down_thread_.join();
}

}  // namespace picospec
