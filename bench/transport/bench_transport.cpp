// bench_transport: round-trip latency and throughput per transport, beside its baselines in the same run:
//  * raw memcpy of the frame (the floor for any in-process hand-off),
//  * raw cppzmq DEALER/ROUTER ping-pong without picospec's layer (same context settings, same endpoints).
// Each iteration is one round trip of a `size`-byte frame: edge send -> cloud echo thread -> edge recv.
// After the Google Benchmark table, a summary prints our/raw ratios; the bars are zmq-tcp 64 B < 2.0x raw and
// zmq-tcp 512 KiB <= 1.5x raw (frames >= 4 KiB are handed to libzmq without a copy).
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <zmq.hpp>

#include "picospec/loopback/loopback.hpp"
#include "picospec/zmq/zmq_transport.hpp"

using namespace std::chrono_literals;
namespace pz = picospec::zmq;
using picospec::Frame;
using Clock = std::chrono::steady_clock;

namespace {

std::mutex g_mu;
std::map<std::pair<std::string, std::int64_t>, double> g_rtt_us;  // (case, size) -> mean round trip, us

void record(const std::string& name, std::int64_t size, Clock::duration total, std::int64_t iters) {
  if (iters <= 0) return;
  std::lock_guard lk(g_mu);
  g_rtt_us[{name, size}] = std::chrono::duration<double, std::micro>(total).count() / static_cast<double>(iters);
}

std::string ipc_path(const char* tag) {
  return std::string("ipc:///tmp/picospec-bench-") + tag + "-" + std::to_string(::getpid());
}

// ---------------------------------------------------------------------------------------------------------
void BM_memcpy(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<std::uint8_t> a(size, 1), b(size);
  const auto t0 = Clock::now();
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), size);  // there and back
    std::memcpy(a.data(), b.data(), size);
    benchmark::ClobberMemory();
  }
  record("memcpy", state.range(0), Clock::now() - t0, state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0) * 2);
}

// ---------------------------------------------------------------------------------------------------------
// Raw cppzmq: DEALER (bench thread) <-> ROUTER (echo thread).
void raw_zmq(benchmark::State& state, const std::string& kind) {
  const auto size = static_cast<std::size_t>(state.range(0));
  ::zmq::context_t ctx(1);
  ::zmq::socket_t router(ctx, ::zmq::socket_type::router);
  router.set(::zmq::sockopt::linger, 0);
  router.set(::zmq::sockopt::rcvtimeo, 50);
  std::string ep = kind == "tcp" ? "tcp://127.0.0.1:*" : kind == "ipc" ? ipc_path("raw") : "inproc://raw-bench";
  router.bind(ep);
  ep = router.get(::zmq::sockopt::last_endpoint);
  std::atomic<bool> stop{false};
  std::thread echo([&] {
    ::zmq::message_t id, payload;
    while (!stop.load(std::memory_order_relaxed)) {
      if (!router.recv(id)) continue;
      (void)router.recv(payload);
      router.send(id, ::zmq::send_flags::sndmore);
      router.send(payload, ::zmq::send_flags::none);
    }
  });
  ::zmq::socket_t dealer(ctx, ::zmq::socket_type::dealer);
  dealer.set(::zmq::sockopt::linger, 0);
  dealer.connect(ep);
  std::vector<std::uint8_t> frame(size, 7), out;
  ::zmq::message_t reply;
  const auto t0 = Clock::now();
  for (auto _ : state) {
    dealer.send(::zmq::buffer(frame), ::zmq::send_flags::none);  // copies, like our layer
    (void)dealer.recv(reply);
    out.assign(static_cast<const std::uint8_t*>(reply.data()),
               static_cast<const std::uint8_t*>(reply.data()) + reply.size());
  }
  record("raw-zmq-" + kind, state.range(0), Clock::now() - t0, state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0) * 2);
  stop = true;
  echo.join();
}
void BM_raw_zmq_tcp(benchmark::State& s) { raw_zmq(s, "tcp"); }
void BM_raw_zmq_ipc(benchmark::State& s) { raw_zmq(s, "ipc"); }
void BM_raw_zmq_inproc(benchmark::State& s) { raw_zmq(s, "inproc"); }

// ---------------------------------------------------------------------------------------------------------
// picospec transports: edge Transport (bench thread) <-> ServerTransport (echo thread).
void ours(benchmark::State& state, const std::string& kind) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::shared_ptr<pz::Context> ctx;
  std::unique_ptr<picospec::ServerTransport> server;
  std::unique_ptr<picospec::Transport> edge;
  if (kind == "loopback") {
    auto hub = std::make_unique<picospec::loopback::LoopbackHub>();
    edge = hub->connect();
    server = std::move(hub);
  } else {
    std::string ep = kind == "zmq-tcp" ? "tcp://127.0.0.1:*" : kind == "zmq-ipc" ? ipc_path("ours") : "inproc://ours-bench";
    if (kind == "zmq-inproc") ctx = std::make_shared<pz::Context>(1);
    auto srv = std::make_unique<pz::ZmqServerTransport>(ep, pz::ZmqOptions{}, ctx);
    edge = std::make_unique<pz::ZmqClientTransport>(srv->endpoint(), pz::ZmqOptions{}, ctx);
    server = std::move(srv);
  }
  std::thread echo([&] {
    while (true) {
      picospec::PeerReceived r = server->recv(1000ms);
      if (r.status == picospec::RecvStatus::closed) return;
      if (r.ok()) (void)server->send(r.peer, std::move(r.frame));
    }
  });
  Frame frame(size, 7);
  const auto t0 = Clock::now();
  for (auto _ : state) {
    if (!edge->send(frame)) state.SkipWithError("send failed");
    picospec::Received r = edge->recv(5000ms);
    if (!r.ok()) state.SkipWithError("recv failed");
    benchmark::DoNotOptimize(r.frame.data());
  }
  record(kind, state.range(0), Clock::now() - t0, state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0) * 2);
  server->close();
  echo.join();
  edge->close();
}
void BM_loopback(benchmark::State& s) { ours(s, "loopback"); }
void BM_zmq_inproc(benchmark::State& s) { ours(s, "zmq-inproc"); }
void BM_zmq_ipc(benchmark::State& s) { ours(s, "zmq-ipc"); }
void BM_zmq_tcp(benchmark::State& s) { ours(s, "zmq-tcp"); }

// ---------------------------------------------------------------------------------------------------------
// The bar, measured paired: each iteration does one raw cppzmq round trip and one through our transport, both over
// tcp on 127.0.0.1, alternating, so load changes on a shared machine hit both sides alike.
void BM_bar_pair_tcp(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  ::zmq::context_t ctx(1);
  ::zmq::socket_t router(ctx, ::zmq::socket_type::router);
  router.set(::zmq::sockopt::linger, 0);
  router.set(::zmq::sockopt::rcvtimeo, 50);
  router.bind("tcp://127.0.0.1:*");
  std::atomic<bool> stop{false};
  std::thread raw_echo([&] {
    ::zmq::message_t id, payload;
    while (!stop.load(std::memory_order_relaxed)) {
      if (!router.recv(id)) continue;
      (void)router.recv(payload);
      router.send(id, ::zmq::send_flags::sndmore);
      router.send(payload, ::zmq::send_flags::none);
    }
  });
  ::zmq::socket_t dealer(ctx, ::zmq::socket_type::dealer);
  dealer.set(::zmq::sockopt::linger, 0);
  dealer.connect(router.get(::zmq::sockopt::last_endpoint));

  pz::ZmqServerTransport server("tcp://127.0.0.1:*");
  pz::ZmqClientTransport edge(server.endpoint());
  std::thread echo([&] {
    while (true) {
      picospec::PeerReceived r = server.recv(1000ms);
      if (r.status == picospec::RecvStatus::closed) return;
      if (r.ok()) (void)server.send(r.peer, std::move(r.frame));
    }
  });

  std::vector<std::uint8_t> frame(size, 7), out;
  ::zmq::message_t reply;
  Clock::duration raw_total{}, ours_total{};
  for (auto _ : state) {
    auto t0 = Clock::now();
    dealer.send(::zmq::buffer(frame), ::zmq::send_flags::none);
    (void)dealer.recv(reply);
    out.assign(static_cast<const std::uint8_t*>(reply.data()),
               static_cast<const std::uint8_t*>(reply.data()) + reply.size());
    auto t1 = Clock::now();
    if (!edge.send(Frame(frame))) state.SkipWithError("send failed");
    picospec::Received r = edge.recv(5000ms);
    if (!r.ok()) state.SkipWithError("recv failed");
    auto t2 = Clock::now();
    raw_total += t1 - t0;
    ours_total += t2 - t1;
  }
  const double n = static_cast<double>(std::max<std::int64_t>(1, state.iterations()));
  const double raw_us = std::chrono::duration<double, std::micro>(raw_total).count() / n;
  const double ours_us = std::chrono::duration<double, std::micro>(ours_total).count() / n;
  state.counters["raw_us"] = raw_us;
  state.counters["ours_us"] = ours_us;
  state.counters["ratio"] = ours_us / raw_us;
  record("pair-ours-tcp", state.range(0), ours_total, state.iterations());
  record("pair-raw-tcp", state.range(0), raw_total, state.iterations());
  server.close();
  echo.join();
  stop = true;
  raw_echo.join();
}
BENCHMARK(BM_bar_pair_tcp)->Arg(64)->Arg(4096)->Arg(512 * 1024)->UseRealTime()->Unit(benchmark::kMicrosecond);

#define SIZES ->Arg(64)->Arg(4096)->Arg(512 * 1024)->UseRealTime()->Unit(benchmark::kMicrosecond)
BENCHMARK(BM_memcpy) SIZES;
BENCHMARK(BM_raw_zmq_inproc) SIZES;
BENCHMARK(BM_raw_zmq_ipc) SIZES;
BENCHMARK(BM_raw_zmq_tcp) SIZES;
BENCHMARK(BM_loopback) SIZES;
BENCHMARK(BM_zmq_inproc) SIZES;
BENCHMARK(BM_zmq_ipc) SIZES;
BENCHMARK(BM_zmq_tcp) SIZES;

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::cout.flush();  // the reporter writes to std::cout; keep the summary after its table

  std::printf("\nSummary: mean round trip (us) and ratio to the raw baseline of the same run\n");
  std::printf("%-12s %10s %12s %12s %12s %9s\n", "transport", "size", "ours_us", "baseline", "base_us", "ratio");
  const std::pair<const char*, const char*> pairs[] = {{"zmq-tcp", "raw-zmq-tcp"},
                                                       {"zmq-ipc", "raw-zmq-ipc"},
                                                       {"zmq-inproc", "raw-zmq-inproc"},
                                                       {"loopback", "memcpy"}};
  for (auto [ours_name, base] : pairs)
    for (std::int64_t size : {std::int64_t{64}, std::int64_t{4096}, std::int64_t{512 * 1024}}) {
      auto a = g_rtt_us.find({ours_name, size});
      auto b = g_rtt_us.find({base, size});
      if (a == g_rtt_us.end() || b == g_rtt_us.end()) continue;
      std::printf("%-12s %10lld %12.2f %12s %12.2f %8.2fx\n", ours_name, static_cast<long long>(size), a->second, base,
                  b->second, a->second / b->second);
    }
  // Bars: 64 B (per-token latency: the layer's fixed cost) and 512 KiB (vanilla's full distributions: copies).
  const std::tuple<std::int64_t, const char*, double> bars[] = {{64, "64 B", 2.0}, {512 * 1024, "512 KiB", 1.5}};
  for (auto [size, label, bar] : bars) {
    auto a = g_rtt_us.find({"pair-ours-tcp", size});
    auto b = g_rtt_us.find({"pair-raw-tcp", size});
    if (a == g_rtt_us.end() || b == g_rtt_us.end()) continue;
    const double ratio = a->second / b->second;
    std::printf("%sBAR zmq-tcp %s round trip (paired, alternating): %.2f us vs raw cppzmq %.2f us = %.2fx "
                "(bar <= %.2fx): %s\n", size == 64 ? "\n" : "", label, a->second, b->second, ratio, bar,
                ratio <= bar ? "PASS" : "FAIL");
  }
  return 0;
}
