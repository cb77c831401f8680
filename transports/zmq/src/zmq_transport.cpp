// ZeroMQ transports: DEALER (edge) and ROUTER (cloud) behind the Transport interfaces.
//
// ZeroMQ sockets must not be used from two threads at once, yet the Transport contract allows send() and recv()
// concurrently. SocketCore solves this with a leader/follower scheme: the first caller that needs the socket
// becomes the leader and drives it (sends pending frames, reads incoming frames into a bounded queue, sleeps in
// zmq_poll on the socket + an eventfd); other callers wait on a condition variable for their own condition
// (frame sent, frame available, closed, or the leader slot free). A caller arriving while a leader sleeps writes
// the eventfd so the leader wakes and serves it. In the common single-caller case there is no thread hand-off:
// the calling thread talks to libzmq directly.
#include "picospec/zmq/zmq_transport.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <optional>
#include <functional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>
#include <zmq.hpp>

namespace picospec::zmq {

namespace {
using Clock = std::chrono::steady_clock;

Clock::time_point deadline_after(Millis timeout) {
  return Clock::now() + std::clamp(timeout, Millis(0), Millis(std::int64_t{1} << 40));
}

void check_key(const std::string& key, const char* what) {
  if (key.size() != 40) throw Error(std::string("zmq CURVE: ") + what + " must be a 40-character Z85 key");
}

std::atomic<std::uint64_t> g_monitor_counter{0};

/// The port of a tcp:// endpoint ("tcp://host:port", "tcp://[::1]:port"), or "" for other transports.
std::string tcp_port(const std::string& endpoint) {
  if (endpoint.rfind("tcp://", 0) != 0) return {};
  const auto colon = endpoint.rfind(':');
  return colon == std::string::npos || colon < 6 ? std::string() : endpoint.substr(colon + 1);
}

/// libzmq parses a tcp port with a wrap-around (":99999" binds 34463): refuse anything but "*", "0" or 1..65535.
/// Returns the requested port, 0 for an ephemeral one.
unsigned parse_bind_port(const std::string& endpoint) {
  const std::string port = tcp_port(endpoint);
  if (port.empty() && endpoint.rfind("tcp://", 0) == 0) throw Error("zmq: cannot bind " + endpoint + ": no port");
  if (port.empty() || port == "*") return 0;
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    throw Error("zmq: cannot bind " + endpoint + ": port '" + port + "' is not a number in 0..65535");
  const unsigned long v = std::stoul(port);
  if (v > 65535) throw Error("zmq: cannot bind " + endpoint + ": port " + port + " is out of range 0..65535");
  return static_cast<unsigned>(v);
}

/// Frames at least this large are handed to libzmq without a copy: the vector moves to the heap and the message's
/// free function deletes it once libzmq is done (possibly on its I/O thread). Smaller ones are copied, which is
/// cheaper than the extra allocation (and frames up to 33 bytes live inside the message itself).
constexpr std::size_t kZeroCopyMinBytes = 4096;

/// Server: id_of_ maps a departed routing id to this for kGraveyardTime (then the entry is erased).
constexpr PeerId kDepartedPeer = 0;
constexpr auto kGraveyardTime = std::chrono::seconds(2);

// ThreadSanitizer cannot see libzmq's hand-offs (the distro's libzmq is not instrumented): a buffer written here and
// read by the receiving thread (inproc passes the same buffer) or freed on libzmq's I/O thread would be reported as
// a race. Release on the buffer before the hand-off, acquire on it after: the happens-before libzmq provides.
#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
void handoff_release(const void* p) { __tsan_release(const_cast<void*>(p)); }
void handoff_acquire(const void* p) { __tsan_acquire(const_cast<void*>(p)); }
#else
void handoff_release(const void*) {}
void handoff_acquire(const void*) {}
#endif

::zmq::message_t to_message(Frame&& frame) {
  if (frame.size() < kZeroCopyMinBytes) {
    ::zmq::message_t m(frame.data(), frame.size());
    handoff_release(m.data());
    return m;
  }
  auto* owned = new Frame(std::move(frame));
  try {
    ::zmq::message_t m(
        owned->data(), owned->size(),
        [](void* data, void* hint) noexcept {
          handoff_acquire(data);
          delete static_cast<Frame*>(hint);
        },
        owned);
    handoff_release(m.data());
    return m;
  } catch (...) {
    delete owned;
    throw;
  }
}

/// The one copy on the receive side (a std::vector cannot adopt libzmq's buffer). Uninitialised growth: assign()
/// from the message's bytes writes each byte once.
Frame to_frame(const ::zmq::message_t& part) {
  handoff_acquire(part.data());
  const auto* p = static_cast<const std::uint8_t*>(part.data());
  return Frame(p, p + part.size());
}
}  // namespace

bool curve_available() { return zmq_has("curve") != 0; }

CurveKeyPair generate_curve_keypair() {
  if (!curve_available()) throw Error("zmq: this libzmq has no CURVE support");
  char pub[41] = {};
  char sec[41] = {};
  if (zmq_curve_keypair(pub, sec) != 0) throw Error(std::string("zmq_curve_keypair: ") + zmq_strerror(zmq_errno()));
  return CurveKeyPair{std::string(pub, 40), std::string(sec, 40)};
}

// ---------------------------------------------------------------------------------------------------------
// ZAP (ZeroMQ Authentication Protocol, RFC 27) handler: one per context, started by the first server socket with
// an allow-list. libzmq asks it about every CURVE handshake on that context's server sockets; each such socket has
// its own ZAP domain, mapped here to its allow-list. Unknown domains (servers without an allow-list) are accepted,
// so adding one listed server to a context changes nothing for the others.
class ZapHandler {
 public:
  struct Domain {
    std::unordered_set<std::string> allowed;  // Z85 public keys
    std::function<void(const std::string&)> log;
    std::shared_ptr<std::atomic<std::uint64_t>> refused;
  };

  explicit ZapHandler(::zmq::context_t& ctx) : ctx_(ctx) {
    rep_ = ::zmq::socket_t(ctx_, ::zmq::socket_type::rep);
    rep_.set(::zmq::sockopt::linger, 0);
    try {
      rep_.bind("inproc://zeromq.zap.01");
    } catch (const ::zmq::error_t& e) {
      throw Error(std::string("zmq: cannot start the ZAP handler (another one runs on this context?): ") + e.what());
    }
    const std::string ctl = "inproc://picospec-zap-ctl-" + std::to_string(g_monitor_counter.fetch_add(1));
    ctl_in_ = ::zmq::socket_t(ctx_, ::zmq::socket_type::pair);
    ctl_in_.set(::zmq::sockopt::linger, 0);
    ctl_in_.bind(ctl);
    ctl_out_ = ::zmq::socket_t(ctx_, ::zmq::socket_type::pair);
    ctl_out_.set(::zmq::sockopt::linger, 0);
    ctl_out_.connect(ctl);
    thread_ = std::thread([this] { loop(); });
  }
  ~ZapHandler() {
    {
      std::lock_guard lk(ctl_mu_);
      (void)ctl_out_.send(::zmq::str_buffer("stop"), ::zmq::send_flags::none);
    }
    thread_.join();
    ctl_out_.close();
  }
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  void add(const std::string& domain, Domain d) {
    std::lock_guard lk(mu_);
    domains_[domain] = std::move(d);
  }
  void remove(const std::string& domain) {
    std::lock_guard lk(mu_);
    domains_.erase(domain);
  }

 private:
  void loop() {
    while (true) {
      zmq_pollitem_t items[2] = {{rep_.handle(), 0, ZMQ_POLLIN, 0}, {ctl_in_.handle(), 0, ZMQ_POLLIN, 0}};
      if (zmq_poll(items, 2, -1) < 0) {
        if (zmq_errno() == EINTR) continue;
        break;
      }
      if (items[1].revents & ZMQ_POLLIN) break;
      if (items[0].revents & ZMQ_POLLIN) serve_one();
    }
    rep_.close();
    ctl_in_.close();
  }
  void serve_one() {
    // Request: version, request id, domain, address, identity, mechanism, credentials...
    std::vector<::zmq::message_t> req;
    try {
      do {
        req.emplace_back();
        if (!rep_.recv(req.back(), ::zmq::recv_flags::none)) return;
      } while (req.back().more() && req.size() < 16);
      while (req.back().more()) {  // ignore surplus parts
        ::zmq::message_t extra;
        (void)rep_.recv(extra, ::zmq::recv_flags::none);
      }
    } catch (const ::zmq::error_t&) {
      return;
    }
    auto str = [&](std::size_t i) { return i < req.size() ? req[i].to_string() : std::string(); };
    const std::string domain = str(2), address = str(3), mechanism = str(5);
    std::string key_z85;
    if (mechanism == "CURVE" && req.size() > 6 && req[6].size() == 32) {
      char z85[41] = {};
      if (zmq_z85_encode(z85, static_cast<const std::uint8_t*>(req[6].data()), 32)) key_z85.assign(z85, 40);
    }
    bool ok = true;
    std::function<void(const std::string&)> log;
    {
      std::lock_guard lk(mu_);
      const auto it = domains_.find(domain);
      if (it != domains_.end()) {
        ok = mechanism == "CURVE" && !key_z85.empty() && it->second.allowed.count(key_z85) != 0;
        if (!ok) {
          it->second.refused->fetch_add(1, std::memory_order_relaxed);
          log = it->second.log;
        }
      }
    }
    if (!ok && log)
      log("zmq: refused " + (mechanism.empty() ? std::string("a") : mechanism) + " client " +
          (key_z85.empty() ? std::string("(no key)") : key_z85) + " from " + address + ": not in allowed_clients");
    try {
      rep_.send(::zmq::str_buffer("1.0"), ::zmq::send_flags::sndmore);
      rep_.send(::zmq::buffer(str(1)), ::zmq::send_flags::sndmore);
      rep_.send(ok ? ::zmq::str_buffer("200") : ::zmq::str_buffer("400"), ::zmq::send_flags::sndmore);
      rep_.send(ok ? ::zmq::str_buffer("OK") : ::zmq::str_buffer("client key not allowed"), ::zmq::send_flags::sndmore);
      rep_.send(::zmq::buffer(ok ? key_z85 : std::string()), ::zmq::send_flags::sndmore);  // user id: the key
      rep_.send(::zmq::message_t(), ::zmq::send_flags::none);                                // no metadata
    } catch (const ::zmq::error_t&) {
    }
  }

  ::zmq::context_t& ctx_;
  ::zmq::socket_t rep_, ctl_in_, ctl_out_;  // rep_, ctl_in_: handler thread only
  std::mutex ctl_mu_;
  std::mutex mu_;
  std::unordered_map<std::string, Domain> domains_;
  std::thread thread_;
};

struct Context::Impl {
  explicit Impl(int io_threads) : ctx(io_threads) {}
  ~Impl() { zap.reset(); }  // its sockets close before the context terminates
  ::zmq::context_t ctx;
  std::mutex zap_mu;
  std::unique_ptr<ZapHandler> zap;
  ZapHandler& zap_handler() {
    std::lock_guard lk(zap_mu);
    if (!zap) zap = std::make_unique<ZapHandler>(ctx);
    return *zap;
  }
};

Context::Context(int io_threads) : impl_(std::make_unique<Impl>(std::max(1, io_threads))) {}
Context::~Context() = default;
void* Context::native() noexcept { return &impl_->ctx; }

// ---------------------------------------------------------------------------------------------------------
namespace detail {

struct SocketCore {
  enum class Kind { client, server };
  struct Inbound {
    PeerId peer = 0;
    Frame frame;
  };
  enum class OutState { pending, in_flight, sent, failed };
  struct Outgoing {
    PeerId peer = 0;
    ::zmq::message_t msg;  // owns the payload (zero-copy for large frames, see to_message)
    OutState state = OutState::pending;
  };

  SocketCore(Kind kind, std::shared_ptr<Context> ctx, const std::string& endpoint, const ZmqOptions& opt);
  ~SocketCore();

  bool send(PeerId peer, Frame& frame);
  RecvStatus recv(Inbound& out, Millis timeout);
  void close();
  std::uint64_t take_dropped() { return dropped_.exchange(0, std::memory_order_relaxed); }
  std::string last_endpoint() const { return last_endpoint_; }
  std::size_t peer_count() {
    std::lock_guard lk(mu_);
    return rid_of_.size();
  }
  std::string problem() {
    std::unique_lock lk(mu_);
    if (!leader_ && !closed_) {  // nobody drives the socket: read pending connection events once, right now
      monitor_ready_ = true;
      lead(lk, [] { return true; }, Clock::now());
    }
    return problem_;
  }
  std::uint64_t refused() const { return refused_->load(std::memory_order_relaxed); }
  std::vector<PeerId> take_departed() {
    std::lock_guard lk(mu_);
    return std::exchange(departed_, {});
  }

 private:
  enum class TryResult { done, again, failed };
  template <class Pred>
  void lead(std::unique_lock<std::mutex>& lk, Pred satisfied, std::optional<Clock::time_point> deadline);
  TryResult try_send(Outgoing& o);               // socket owner only, no lock held
  bool try_recv(std::optional<Inbound>& out);    // socket owner only; false = nothing to read
  void drain_monitor();                          // socket owner only; updates flags under lock
  void forget_peer_locked(PeerId peer);
  void on_client_event_locked(std::uint16_t event, std::int32_t value);
  // Server, socket owner, mu_ held. Out of file descriptors, libzmq's listener would retry accept() in a busy loop
  // (100% CPU, and no descriptor frees itself that way): stop listening for a while instead, and log it.
  void pause_accepting_locked(int err);
  void resume_accepting_locked(Clock::time_point now);
  void bury_locked(Clock::time_point now) {  // server, mu_ held: routing ids departed long enough ago are erased
    while (!graveyard_.empty() && graveyard_.front().first <= now) {
      if (const auto it = id_of_.find(graveyard_.front().second); it != id_of_.end() && it->second == kDepartedPeer)
        id_of_.erase(it);
      graveyard_.pop_front();
    }
  }
  void start_monitor(::zmq::context_t& zctx, int events);          // server, mu_ held: drop the routing entry, report it departed
  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }
  void clear_wake() {
    std::uint64_t v = 0;
    [[maybe_unused]] auto n = ::read(wake_fd_, &v, sizeof v);
  }

  Kind kind_;
  ZmqOptions opt_;
  std::shared_ptr<Context> ctx_;  // declared before the sockets: destroyed after them
  ::zmq::socket_t sock_;
  std::optional<::zmq::socket_t> monitor_;
  int wake_fd_ = -1;
  std::string last_endpoint_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool leader_ = false;
  bool closed_ = false;
  bool sockets_closed_ = false;
  bool established_ = false;  // client: a connection completed its handshake
  bool peer_lost_ = false;    // client: an established connection was lost
  bool handshake_failed_ = false;  // client: a definitive handshake failure (fail_on_handshake_error)
  bool refused_seen_ = false;      // client: a definitive handshake failure was seen (libzmq may drop the pipe)
  std::string problem_;       // client: why no connection is established (empty once one is)
  bool attempt_connected_ = false;  // client: the current connection attempt reached the server (TCP)
  std::optional<Clock::time_point> accept_paused_until_;  // server: not listening until then (fd exhaustion)
  Millis accept_backoff_{250};
  std::string zap_domain_;    // server with an allow-list: its ZAP domain
  std::shared_ptr<std::atomic<std::uint64_t>> refused_ = std::make_shared<std::atomic<std::uint64_t>>(0);
  bool monitor_ready_ = true; // the monitor socket may have events to read
  std::deque<Inbound> inbound_;
  std::deque<Outgoing*> pending_;
  std::atomic<std::uint64_t> dropped_{0};
  // server: routing id <-> PeerId (guarded by mu_)
  std::unordered_map<std::string, PeerId> id_of_;
  std::unordered_map<PeerId, std::string> rid_of_;
  // server: the connection (file descriptor) each peer's first frame came through, so that the monitor's
  // DISCONNECTED(fd) event names the peer (tcp/ipc; inproc has no fd and no disconnect events).
  std::unordered_map<int, PeerId> peer_of_fd_;
  std::unordered_map<PeerId, int> fd_of_peer_;
  std::vector<PeerId> departed_;  // server: peers whose connection ended, not yet taken
  std::deque<std::pair<Clock::time_point, std::string>> graveyard_;  // server: departed routing ids, expiry order
  PeerId next_peer_ = 1;
};

SocketCore::SocketCore(Kind kind, std::shared_ptr<Context> ctx, const std::string& endpoint, const ZmqOptions& opt)
    : kind_(kind), opt_(opt), ctx_(ctx ? std::move(ctx) : std::make_shared<Context>(1)) {
  if (opt_.max_message_bytes == 0) throw Error("zmq: max_message_bytes must be > 0");
  auto& zctx = *static_cast<::zmq::context_t*>(ctx_->native());
  try {
    sock_ = ::zmq::socket_t(zctx, kind == Kind::client ? ::zmq::socket_type::dealer : ::zmq::socket_type::router);
    sock_.set(::zmq::sockopt::linger, opt_.linger_ms);
    sock_.set(::zmq::sockopt::sndhwm, opt_.send_hwm);
    sock_.set(::zmq::sockopt::rcvhwm, opt_.recv_hwm);
    sock_.set(::zmq::sockopt::heartbeat_ivl, opt_.heartbeat_ivl_ms);
    sock_.set(::zmq::sockopt::heartbeat_timeout, opt_.heartbeat_timeout_ms);
    sock_.set(::zmq::sockopt::heartbeat_ttl, opt_.heartbeat_ttl_ms);
    sock_.set(::zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(opt_.max_message_bytes));
    sock_.set(::zmq::sockopt::immediate, opt_.immediate ? 1 : 0);
    if (opt_.curve.enabled) {
      if (!curve_available()) throw Error("zmq: CURVE requested but this libzmq has no CURVE support");
      if (kind == Kind::server) {
        check_key(opt_.curve.server_secret_key, "server_secret_key");
        sock_.set(::zmq::sockopt::curve_server, 1);
        sock_.set(::zmq::sockopt::curve_secretkey, opt_.curve.server_secret_key);
        if (!opt_.curve.allowed_clients.empty()) {
          ZapHandler::Domain d;
          for (const auto& k : opt_.curve.allowed_clients) {
            check_key(k, "an allowed_clients key");
            d.allowed.insert(k);
          }
          d.log = opt_.log;
          d.refused = refused_;
          zap_domain_ = "picospec-" + std::to_string(g_monitor_counter.fetch_add(1));
          sock_.set(::zmq::sockopt::zap_domain, zap_domain_);
          ctx_->impl_->zap_handler().add(zap_domain_, std::move(d));
        }
      } else {
        check_key(opt_.curve.server_public_key, "server_public_key");
        CurveKeyPair mine{opt_.curve.client_public_key, opt_.curve.client_secret_key};
        if (mine.public_key.empty() && mine.secret_key.empty()) mine = generate_curve_keypair();
        check_key(mine.public_key, "client_public_key");
        check_key(mine.secret_key, "client_secret_key");
        sock_.set(::zmq::sockopt::curve_serverkey, opt_.curve.server_public_key);
        sock_.set(::zmq::sockopt::curve_publickey, mine.public_key);
        sock_.set(::zmq::sockopt::curve_secretkey, mine.secret_key);
      }
    }
    if (kind == Kind::server) {
      sock_.set(::zmq::sockopt::router_mandatory, 1);
      start_monitor(zctx, ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_ACCEPT_FAILED);  // before bind: none goes unseen
      const unsigned asked_port = parse_bind_port(endpoint);
      sock_.bind(endpoint);
      last_endpoint_ = sock_.get(::zmq::sockopt::last_endpoint);
      // Bound exactly what was asked, or not at all (an operator's firewall rules name that port).
      const std::string got = tcp_port(last_endpoint_);
      if (asked_port != 0 && got != std::to_string(asked_port))
        throw Error("zmq: cannot bind " + endpoint + ": bound " + last_endpoint_ + " instead");
    } else {
      sock_.set(::zmq::sockopt::reconnect_ivl, opt_.reconnect_ivl_ms);
      // Connection events: lost connections (closed_on_disconnect) and why none completes (problem()).
      start_monitor(zctx, ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CONNECTED |
                              ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                              ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
      problem_ = "no answer from " + endpoint + " yet";
      sock_.connect(endpoint);
      last_endpoint_ = endpoint;
    }
  } catch (const ::zmq::error_t& e) {
    throw Error("zmq: cannot " + std::string(kind == Kind::server ? "bind " : "connect ") + endpoint + ": " + e.what());
  }
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw Error(std::string("zmq: eventfd failed: ") + std::strerror(errno));
}

void SocketCore::start_monitor(::zmq::context_t& zctx, int events) {
  const std::string mon = "inproc://picospec-zmq-monitor-" + std::to_string(g_monitor_counter.fetch_add(1));
  if (zmq_socket_monitor(sock_.handle(), mon.c_str(), events) != 0) throw ::zmq::error_t();
  monitor_.emplace(zctx, ::zmq::socket_type::pair);
  monitor_->set(::zmq::sockopt::linger, 0);
  monitor_->connect(mon);
}

void SocketCore::pause_accepting_locked(int err) {
  if (accept_paused_until_ || sockets_closed_) return;  // already paused (events queued before the unbind)
  try {
    sock_.unbind(last_endpoint_);
  } catch (const ::zmq::error_t&) {
  }
  accept_paused_until_ = Clock::now() + accept_backoff_;
  if (opt_.log)
    opt_.log("zmq: out of file descriptors (" + std::string(std::strerror(err)) + ") accepting on " + last_endpoint_ +
             " with " + std::to_string(rid_of_.size()) + " peers: not accepting new connections for " +
             std::to_string(accept_backoff_.count()) + " ms (raise `ulimit -n`?)");
  accept_backoff_ = std::min<Millis>(accept_backoff_ * 2, Millis(8000));
}

void SocketCore::resume_accepting_locked(Clock::time_point now) {
  if (!accept_paused_until_ || now < *accept_paused_until_ || sockets_closed_) return;
  try {
    sock_.bind(last_endpoint_);
    accept_paused_until_.reset();
    if (opt_.log) opt_.log("zmq: accepting new connections on " + last_endpoint_ + " again");
  } catch (const ::zmq::error_t& e) {  // e.g. still out of descriptors: try again later
    accept_paused_until_ = now + accept_backoff_;
    if (opt_.log) opt_.log("zmq: cannot listen on " + last_endpoint_ + " again yet: " + e.what());
  }
}

void SocketCore::forget_peer_locked(PeerId peer) {
  const auto it = rid_of_.find(peer);
  if (it == rid_of_.end()) return;
  // libzmq may still hold frames this connection sent; for a while they are dropped rather than opening a new peer.
  id_of_[it->second] = kDepartedPeer;
  bury_locked(Clock::now());
  graveyard_.emplace_back(Clock::now() + kGraveyardTime, it->second);
  rid_of_.erase(it);
  if (accept_paused_until_) accept_paused_until_ = Clock::now();  // a descriptor was freed: listen again soon
  accept_backoff_ = Millis(250);
  if (const auto f = fd_of_peer_.find(peer); f != fd_of_peer_.end()) {
    if (const auto p = peer_of_fd_.find(f->second); p != peer_of_fd_.end() && p->second == peer) peer_of_fd_.erase(p);
    fd_of_peer_.erase(f);
  }
  departed_.push_back(peer);
  // Frames it sent that are still queued here would reopen sessions for a peer already reported gone.
  const auto n = std::erase_if(inbound_, [&](const Inbound& in) { return in.peer == peer; });
  if (n) dropped_.fetch_add(n, std::memory_order_relaxed);
}

SocketCore::~SocketCore() {
  close();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void SocketCore::close() {
  std::unique_lock lk(mu_);
  closed_ = true;
  wake();
  cv_.notify_all();
  cv_.wait(lk, [&] { return !leader_; });  // the leader notices closed_ at its next step (woken by the eventfd)
  if (!sockets_closed_) {
    sockets_closed_ = true;
    if (!zap_domain_.empty()) ctx_->impl_->zap_handler().remove(zap_domain_);
    if (monitor_) {
      zmq_socket_monitor(sock_.handle(), nullptr, 0);
      monitor_->close();
    }
    sock_.close();
  }
}

SocketCore::TryResult SocketCore::try_send(Outgoing& o) {
  try {
    if (kind_ == Kind::server) {
      std::string rid;
      {
        std::lock_guard lk(mu_);
        auto it = rid_of_.find(o.peer);
        if (it == rid_of_.end()) return TryResult::failed;
        rid = it->second;
      }
      try {
        if (!sock_.send(::zmq::buffer(rid), ::zmq::send_flags::sndmore | ::zmq::send_flags::dontwait))
          return TryResult::again;
      } catch (const ::zmq::error_t& e) {
        if (e.num() != EHOSTUNREACH) throw;
        std::lock_guard lk(mu_);  // the peer is gone: forget it
        forget_peer_locked(o.peer);
        return TryResult::failed;
      }
      // The routing part was accepted, so the pipe has room for the rest of this message.
      if (!sock_.send(o.msg, ::zmq::send_flags::none)) return TryResult::failed;
      return TryResult::done;
    }
    if (!sock_.send(o.msg, ::zmq::send_flags::dontwait)) return TryResult::again;  // msg kept on EAGAIN
    return TryResult::done;
  } catch (const ::zmq::error_t&) {
    return TryResult::failed;  // context terminated or socket unusable
  }
}

bool SocketCore::try_recv(std::optional<Inbound>& out) {
  out.reset();
  ::zmq::message_t part;
  try {
    if (!sock_.recv(part, ::zmq::recv_flags::dontwait)) return false;
    Inbound in;
    std::size_t parts = 1;
    std::string rid;
    int fd = -1;
    if (kind_ == Kind::server) {
      rid.assign(static_cast<const char*>(part.data()), part.size());
      if (!part.more()) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
      (void)sock_.recv(part, ::zmq::recv_flags::none);  // rest of a multipart message is already here
      parts = 1;
      // The connection it came through (the payload part carries it; the routing-id part ROUTER makes up may not).
      // ZMQ_SRCFD is deprecated in libzmq's docs and still supported by 4.3.
      fd = zmq_msg_get(part.handle(), ZMQ_SRCFD);
    }
    in.frame = to_frame(part);
    while (part.more()) {  // we only send single-part frames: drop anything else
      (void)sock_.recv(part, ::zmq::recv_flags::none);
      ++parts;
    }
    if (parts > 1) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    if (kind_ == Kind::server) {
      std::lock_guard lk(mu_);
      auto it = id_of_.find(rid);
      if (it != id_of_.end() && it->second == kDepartedPeer) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
      if (it == id_of_.end()) {
        bury_locked(Clock::now());
        it = id_of_.emplace(rid, next_peer_++).first;
        rid_of_.emplace(it->second, rid);
        if (fd >= 0) {
          // A new connection on a reused descriptor: the old owner's DISCONNECTED was drained before this read.
          if (const auto old = peer_of_fd_.find(fd); old != peer_of_fd_.end()) fd_of_peer_.erase(old->second);
          peer_of_fd_[fd] = it->second;
          fd_of_peer_[it->second] = fd;
        }
      }
      in.peer = it->second;
    }
    out = std::move(in);
    return true;
  } catch (const ::zmq::error_t&) {
    return false;
  }
}

void SocketCore::drain_monitor() {
  if (!monitor_) return;
  ::zmq::message_t ev, addr;
  while (true) {
    try {
      if (!monitor_->recv(ev, ::zmq::recv_flags::dontwait)) return;
      if (ev.more()) (void)monitor_->recv(addr, ::zmq::recv_flags::none);
    } catch (const ::zmq::error_t&) {
      return;
    }
    if (ev.size() < 2) continue;
    std::uint16_t event = 0;
    std::memcpy(&event, ev.data(), sizeof event);
    std::int32_t value = -1;
    if (ev.size() >= 6) std::memcpy(&value, static_cast<const char*>(ev.data()) + 2, sizeof value);
    std::lock_guard lk(mu_);
    if (kind_ == Kind::client) on_client_event_locked(event, value);
    if (kind_ == Kind::server) {
      if (event == ZMQ_EVENT_DISCONNECTED) {
        if (const auto it = peer_of_fd_.find(value); it != peer_of_fd_.end()) forget_peer_locked(it->second);
      }
      if (event == ZMQ_EVENT_ACCEPT_FAILED && (value == EMFILE || value == ENFILE)) pause_accepting_locked(value);
      continue;
    }
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) established_ = true;
    if (event == ZMQ_EVENT_DISCONNECTED && established_ && opt_.closed_on_disconnect) {
      peer_lost_ = true;
      cv_.notify_all();
    }
  }
}

void SocketCore::on_client_event_locked(std::uint16_t event, std::int32_t value) {
  const std::string& ep = last_endpoint_;
  bool fatal = false;
  switch (event) {
    case ZMQ_EVENT_CONNECT_RETRIED:  // a reconnect is scheduled: after a refused connect, or a failed handshake
      if (!established_ && !attempt_connected_)
        problem_ = "connection refused or unreachable: " + ep + " (nothing listening there?); retrying every " +
                   std::to_string(value) + " ms";
      attempt_connected_ = false;
      break;
    case ZMQ_EVENT_CONNECTED:
      attempt_connected_ = true;
      if (!established_) problem_ = "connected to " + ep + ", but no answer to the handshake";
      break;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: problem_.clear(); break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      if (opt_.curve.enabled) {
        problem_ = "the server at " + ep + " closed the connection during the CURVE handshake: wrong server public key?";
        fatal = true;
      } else {
        problem_ = "handshake with " + ep + " failed (" + zmq_strerror(value) + ")";
      }
      break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
        problem_ = std::string("security mismatch with ") + ep +
                   (opt_.curve.enabled ? ": the server does not use CURVE" : ": the server requires CURVE");
        fatal = true;
      } else {
        problem_ = "handshake with " + ep + " failed: protocol error " + std::to_string(value);
      }
      break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      problem_ = "the server at " + ep + " refused this client's key (status " + std::to_string(value) +
                 "): not in its allowed_clients?";
      fatal = true;
      break;
    default: break;
  }
  if (fatal && !established_) refused_seen_ = true;
  if (fatal && opt_.fail_on_handshake_error && !established_) {
    handshake_failed_ = true;
    cv_.notify_all();
  }
}

template <class Pred>
void SocketCore::lead(std::unique_lock<std::mutex>& lk, Pred satisfied, std::optional<Clock::time_point> deadline) {
  leader_ = true;
  while (!closed_) {
    // 1. Hand pending frames to libzmq.
    bool out_blocked = false;
    while (!pending_.empty()) {
      Outgoing* o = pending_.front();
      pending_.pop_front();
      o->state = OutState::in_flight;
      lk.unlock();
      const TryResult r = try_send(*o);
      lk.lock();
      if (r == TryResult::again && kind_ == Kind::client && refused_seen_) {
        // After a refused handshake libzmq may have dropped the DEALER's pipe: the frame would wait forever.
        o->state = OutState::failed;
        cv_.notify_all();
        continue;
      }
      if (r == TryResult::again) {
        o->state = OutState::pending;
        pending_.push_front(o);
        out_blocked = true;
        break;
      }
      o->state = r == TryResult::done ? OutState::sent : OutState::failed;
      cv_.notify_all();
    }
    // 2. Connection events first (only when the monitor socket signalled some): a DISCONNECTED(fd) must be
    //    applied before a frame from a new connection on the same, reused descriptor is read.
    //    The server drains them before every read, not only when the last poll flagged the monitor: the event of
    //    a closed connection is queued before its descriptor can be reused, but it may arrive after that poll.
    if (monitor_ && (monitor_ready_ || kind_ == Kind::server)) {
      monitor_ready_ = false;
      lk.unlock();
      drain_monitor();
      lk.lock();
    }
    // 3. Read what has arrived, up to the queue bound.
    while (inbound_.size() < static_cast<std::size_t>(std::max(1, opt_.recv_hwm))) {
      lk.unlock();
      std::optional<Inbound> in;
      const bool got = try_recv(in);
      lk.lock();
      if (!got) break;
      if (in) {
        inbound_.push_back(std::move(*in));
        cv_.notify_all();
      }
    }
    if (closed_ || satisfied()) break;
    auto now = Clock::now();
    resume_accepting_locked(now);
    if (deadline && now >= *deadline) break;
    // 4. Sleep until the socket, a new caller / close (eventfd), a monitor event, the deadline, or (listening
    //    paused) the time to listen again.
    long timeout_ms = -1;
    if (deadline)
      timeout_ms = static_cast<long>(std::chrono::ceil<std::chrono::milliseconds>(*deadline - now).count());
    if (accept_paused_until_) {
      const auto until = static_cast<long>(
          std::max<std::int64_t>(1, std::chrono::ceil<std::chrono::milliseconds>(*accept_paused_until_ - now).count()));
      timeout_ms = timeout_ms < 0 ? until : std::min(timeout_ms, until);
    }
    const bool room = inbound_.size() < static_cast<std::size_t>(std::max(1, opt_.recv_hwm));
    short sock_events = room ? ZMQ_POLLIN : 0;
    if (out_blocked) {
      // DEALER: POLLOUT means the pipe has room. ROUTER: POLLOUT does not tell which peer has room, so retry soon.
      if (kind_ == Kind::client) sock_events = static_cast<short>(sock_events | ZMQ_POLLOUT);
      else timeout_ms = timeout_ms < 0 ? 1 : std::min<long>(timeout_ms, 1);
      if (kind_ == Kind::client && refused_seen_) timeout_ms = 0;  // step 1 fails the frame on the next pass
    }
    zmq_pollitem_t items[3] = {{sock_.handle(), 0, sock_events, 0}, {nullptr, wake_fd_, ZMQ_POLLIN, 0},
                               {monitor_ ? monitor_->handle() : nullptr, 0, ZMQ_POLLIN, 0}};
    const int n_items = monitor_ ? 3 : 2;
    lk.unlock();
    const int rc = zmq_poll(items, n_items, timeout_ms);
    if (rc > 0 && (items[1].revents & ZMQ_POLLIN)) clear_wake();
    lk.lock();
    if (rc > 0 && n_items == 3 && (items[2].revents & ZMQ_POLLIN)) monitor_ready_ = true;
    if (rc < 0 && zmq_errno() == ETERM) break;
  }
  leader_ = false;
  cv_.notify_all();
}

bool SocketCore::send(PeerId peer, Frame& frame) {
  if (frame.size() > opt_.max_message_bytes)
    throw Error("zmq: frame of " + std::to_string(frame.size()) + " bytes above max_message_bytes " +
                std::to_string(opt_.max_message_bytes));
  Outgoing o{peer, to_message(std::move(frame)), OutState::pending};  // before the lock: may allocate / copy
  std::unique_lock lk(mu_);
  if (closed_) return false;
  if (kind_ == Kind::server && rid_of_.find(peer) == rid_of_.end()) return false;
  pending_.push_back(&o);
  if (leader_) wake();
  while (o.state == OutState::pending || o.state == OutState::in_flight) {
    if (closed_ && o.state == OutState::pending) {
      pending_.erase(std::find(pending_.begin(), pending_.end(), &o));
      return false;
    }
    if (!leader_ && !closed_) {
      lead(lk, [&] { return o.state == OutState::sent || o.state == OutState::failed; }, std::nullopt);
    } else {
      cv_.wait(lk);
    }
  }
  return o.state == OutState::sent;
}

RecvStatus SocketCore::recv(Inbound& out, Millis timeout) {
  const auto deadline = deadline_after(timeout);
  std::unique_lock lk(mu_);
  bool tried = false;
  while (true) {
    if (closed_) return RecvStatus::closed;
    if (!inbound_.empty()) {
      const bool was_full = inbound_.size() >= static_cast<std::size_t>(std::max(1, opt_.recv_hwm));
      out = std::move(inbound_.front());
      inbound_.pop_front();
      if (was_full && leader_) wake();  // the leader stopped reading while the queue was full
      return RecvStatus::ok;
    }
    if (peer_lost_ || handshake_failed_) return RecvStatus::closed;
    if (tried && Clock::now() >= deadline) return RecvStatus::timeout;
    if (!leader_) {
      lead(lk, [&] { return !inbound_.empty() || peer_lost_ || handshake_failed_; }, deadline);
      tried = true;
    } else {
      cv_.wait_until(lk, deadline);
      tried = true;
    }
  }
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------------------
ZmqClientTransport::ZmqClientTransport(std::string endpoint, ZmqOptions options, std::shared_ptr<Context> context)
    : endpoint_(std::move(endpoint)),
      core_(std::make_unique<detail::SocketCore>(detail::SocketCore::Kind::client, std::move(context), endpoint_,
                                                 options)) {}

ZmqClientTransport::~ZmqClientTransport() { close(); }

std::string ZmqClientTransport::describe() const { return "zmq dealer " + endpoint_; }
std::string ZmqClientTransport::problem() const { return core_->problem(); }

bool ZmqClientTransport::do_send(Frame frame) {
  const bool ok = core_->send(0, frame);
  if (!ok) count_dropped();
  return ok;
}

Received ZmqClientTransport::do_recv(Millis timeout) {
  detail::SocketCore::Inbound in;
  const RecvStatus st = core_->recv(in, timeout);
  if (auto n = core_->take_dropped()) count_dropped(n);
  return Received{st, st == RecvStatus::ok ? std::move(in.frame) : Frame{}};
}

void ZmqClientTransport::do_close() { core_->close(); }

ZmqServerTransport::ZmqServerTransport(std::string endpoint, ZmqOptions options, std::shared_ptr<Context> context)
    : endpoint_(std::move(endpoint)),
      core_(std::make_unique<detail::SocketCore>(detail::SocketCore::Kind::server, std::move(context), endpoint_,
                                                 options)) {}

ZmqServerTransport::~ZmqServerTransport() { close(); }

std::string ZmqServerTransport::endpoint() const { return core_->last_endpoint(); }
std::size_t ZmqServerTransport::peer_count() const { return core_->peer_count(); }
std::uint64_t ZmqServerTransport::refused_clients() const { return core_->refused(); }
std::string ZmqServerTransport::describe() const { return "zmq router " + core_->last_endpoint(); }

bool ZmqServerTransport::do_send(PeerId peer, Frame frame) { return core_->send(peer, frame); }

std::vector<PeerId> ZmqServerTransport::do_take_disconnected() { return core_->take_departed(); }

PeerReceived ZmqServerTransport::do_recv(Millis timeout) {
  detail::SocketCore::Inbound in;
  const RecvStatus st = core_->recv(in, timeout);
  if (auto n = core_->take_dropped()) count_dropped(n);
  if (st != RecvStatus::ok) return PeerReceived{st, 0, {}};
  return PeerReceived{st, in.peer, std::move(in.frame)};
}

void ZmqServerTransport::do_close() { core_->close(); }

}  // namespace picospec::zmq
