#pragma once
// A minimal HTTP endpoint for metrics (picospec-server --metrics-port): one thread, one connection at a time,
// GET /metrics -> the Prometheus text exposition, GET /metrics.json -> JSON, anything else -> 404.
// Bounded: a request is read for at most 2 s and 8 KiB; the answer is written and the connection closed. It binds
// 127.0.0.1 unless told otherwise (the metrics say how busy the server is: expose them deliberately).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

namespace picospec::examples {

class MetricsHttp {
 public:
  /// `render(path)` returns {content type, body} for "/metrics" and "/metrics.json". Throws std::runtime_error
  /// when the address cannot be bound. port 0 = ephemeral (port() says which).
  MetricsHttp(const std::string& host, int port,
              std::function<std::pair<std::string, std::string>(const std::string&)> render)
      : render_(std::move(render)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error(std::string("metrics: socket: ") + std::strerror(errno));
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
      ::close(fd_);
      throw std::runtime_error("metrics: not an IPv4 address: " + host);
    }
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 8) != 0) {
      const std::string why = std::strerror(errno);
      ::close(fd_);
      throw std::runtime_error("metrics: cannot listen on " + host + ":" + std::to_string(port) + ": " + why);
    }
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~MetricsHttp() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  MetricsHttp(const MetricsHttp&) = delete;
  MetricsHttp& operator=(const MetricsHttp&) = delete;

  [[nodiscard]] int port() const noexcept { return port_; }

 private:
  void loop() {
    while (!stop_.load()) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (errno == EMFILE || errno == ENFILE) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      serve(c);
      ::close(c);
    }
  }

  void serve(int c) {
    std::string req;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    char buf[1024];
    while (req.find("\r\n\r\n") == std::string::npos && req.find("\n\n") == std::string::npos && req.size() < 8192) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return;
      pollfd p{c, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return;
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      req.append(buf, static_cast<std::size_t>(n));
    }
    std::string status = "200 OK", type, body;
    const auto sp1 = req.find(' '), sp2 = sp1 == std::string::npos ? sp1 : req.find(' ', sp1 + 1);
    const std::string method = req.substr(0, sp1);
    const std::string path = sp2 == std::string::npos ? "" : req.substr(sp1 + 1, sp2 - sp1 - 1);
    if (method != "GET") {
      status = "405 Method Not Allowed";
      type = "text/plain";
      body = "GET only\n";
    } else if (path == "/metrics" || path == "/metrics.json") {
      std::tie(type, body) = render_(path);
    } else {
      status = "404 Not Found";
      type = "text/plain";
      body = "try /metrics or /metrics.json\n";
    }
    const std::string out = "HTTP/1.0 " + status + "\r\nContent-Type: " + type +
                            "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    std::size_t sent = 0;
    while (sent < out.size()) {
      const ssize_t n = ::send(c, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<std::size_t>(n);
    }
  }

  std::function<std::pair<std::string, std::string>(const std::string&)> render_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace picospec::examples
