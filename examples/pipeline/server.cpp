// picospec-server: the cloud half. Loads a target GGUF model and serves edge sessions on a ZeroMQ ROUTER socket
// until SIGINT/SIGTERM.
//
//   picospec-server -m target.gguf [--bind tcp://0.0.0.0:5555] [--workers N] [--threads N] [--max-sessions N]
//                   [--curve-secret KEY] [--curve-keygen]
//
// Each session gets its own KV cache (LmVerifier over LlamaModel); weights are shared. With --curve-secret the
// socket requires CURVE: edges must know the matching public key (--curve-keygen prints a fresh pair).

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "common/args.hpp"
#include "picospec/cloud_server.hpp"
#include "picospec/llama/model.hpp"
#include "picospec/lm_adapters.hpp"
#include "picospec/zmq/zmq_transport.hpp"

namespace {

using namespace picospec;
using examples::UsageError;

struct Options {
  std::string model;
  std::string bind = "tcp://127.0.0.1:5555";
  std::size_t workers = 1;
  std::size_t threads = 1;
  std::size_t max_sessions = 64;
  std::string curve_secret;
  bool keygen = false;
};

Options parse(int argc, char** argv) {
  Options o;
  examples::Args args(argc, argv);
  std::string f;
  while (args.next(f)) {
    if (f == "-m" || f == "--model") o.model = args.value();
    else if (f == "--bind") o.bind = args.value();
    else if (f == "--workers") o.workers = args.integer(1, 256);
    else if (f == "--threads") o.threads = args.integer(1, 1024);
    else if (f == "--max-sessions") o.max_sessions = args.integer(1, 100000);
    else if (f == "--curve-secret") o.curve_secret = args.value();
    else if (f == "--curve-keygen") o.keygen = true;
    else if (f == "-h" || f == "--help") {
      std::printf("usage: picospec-server -m target.gguf [--bind ENDPOINT] [--workers N] [--threads N]\n"
                  "                       [--max-sessions N] [--curve-secret KEY] [--curve-keygen]\n");
      std::exit(0);
    } else args.unknown();
  }
  if (!o.keygen && o.model.empty()) throw UsageError("-m target.gguf is required");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  return examples::run_main("picospec-server", [&] { return parse(argc, argv); }, [](const Options& o) -> int {
    if (o.keygen) {
      if (!zmq::curve_available()) throw Error("this libzmq has no CURVE support");
      const auto kp = zmq::generate_curve_keypair();
      std::printf("public %s\nsecret %s\n", kp.public_key.c_str(), kp.secret_key.c_str());
      return 0;
    }
    // Block the stop signals before any thread starts, so only sigwait() below receives them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    const auto weights = llama::LlamaWeights::load(o.model);
    zmq::ZmqOptions zo;
    zo.max_message_bytes = std::size_t{64} << 20;  // vanilla mode uploads dense draft distributions
    if (!o.curve_secret.empty()) {
      zo.curve.enabled = true;
      zo.curve.server_secret_key = o.curve_secret;
    }
    auto transport = std::make_unique<zmq::ZmqServerTransport>(o.bind, zo);
    const std::string endpoint = transport->endpoint();
    CloudOptions co;
    co.workers = o.workers;
    co.max_sessions = o.max_sessions;
    const std::size_t threads = o.threads;
    CloudServer server(
        [weights, threads] {
          return std::make_unique<LmVerifier>(std::make_unique<llama::LlamaModel>(weights, llama::LlamaParams{.threads = threads}));
        },
        std::move(transport), co);
    server.start();
    std::printf("picospec-server: serving %s on %s%s (Ctrl-C to stop)\n", o.model.c_str(), endpoint.c_str(),
                o.curve_secret.empty() ? "" : " with CURVE");
    std::fflush(stdout);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    server.stop();
    const CloudStats s = server.stats();
    std::printf("picospec-server: stopped; %llu sessions, %llu chunks verified, %llu/%llu drafts accepted, %llu "
                "cloud-ar tokens\n",
                static_cast<unsigned long long>(s.sessions_opened), static_cast<unsigned long long>(s.chunks_verified),
                static_cast<unsigned long long>(s.drafts_accepted), static_cast<unsigned long long>(s.drafts_tested),
                static_cast<unsigned long long>(s.cloud_ar_tokens));
    return 0;
  });
}
