// peer_helper: a separate process that plays an edge to be killed (tests/transport/test_peer_lifetime.cpp).
// Usage: peer_helper ENDPOINT FRAME_FILE COUNT
// Connects a ZmqClientTransport to ENDPOINT, sends the bytes of FRAME_FILE.0 .. FRAME_FILE.<COUNT-1>, waits (at most 10 s) for
// COUNT replies, prints "ready <replies>" on stdout, then sleeps until killed (exits by itself after 60 s).
// Usage: peer_helper --server SECONDS
// An echo server on tcp://127.0.0.1:* for SECONDS: prints "endpoint <ep>", then the transport's log lines.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

#include "picospec/zmq/zmq_transport.hpp"

namespace {
int serve(int seconds) {
  picospec::zmq::ZmqOptions o;
  o.log = [](const std::string& line) {
    std::printf("log %s\n", line.c_str());
    std::fflush(stdout);
  };
  picospec::zmq::ZmqServerTransport server("tcp://127.0.0.1:*", o);
  std::printf("endpoint %s\n", server.endpoint().c_str());
  std::fflush(stdout);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    auto r = server.recv(std::chrono::milliseconds(100));
    if (r.ok()) (void)server.send(r.peer, std::move(r.frame));
    (void)server.take_disconnected();
  }
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--server") return serve(std::atoi(argv[2]));
  if (argc != 4) {
    std::fprintf(stderr, "usage: peer_helper ENDPOINT FRAME_FILE COUNT\n");
    return 2;
  }
  const int count = std::atoi(argv[3]);
  if (count <= 0 || count > 1000) return 2;
  picospec::zmq::ZmqClientTransport t(argv[1]);
  for (int i = 0; i < count; ++i) {
    std::ifstream in(std::string(argv[2]) + "." + std::to_string(i), std::ios::binary);
    const picospec::Frame frame((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (frame.empty()) return 2;
    if (!t.send(frame)) return 3;
  }
  int replies = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (replies < count && std::chrono::steady_clock::now() < deadline)
    if (t.recv(std::chrono::milliseconds(100)).ok()) ++replies;
  std::printf("ready %d\n", replies);
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::seconds(60));
  return 0;
}
