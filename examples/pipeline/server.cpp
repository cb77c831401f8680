// picospec-server: the cloud half. Loads a target GGUF model and serves edge sessions on a ZeroMQ ROUTER socket
// until SIGINT/SIGTERM.
//
//   picospec-server -m target.gguf [--bind tcp://0.0.0.0:5555] [--workers N] [-t N] [--max-sessions N]
//                   [--curve-secret KEY] [--curve-keygen]        (picospec-server --help lists them)
//
// Each session gets its own KV cache (LmVerifier over LlamaModel); weights are shared. With --curve-secret the
// socket requires CURVE: edges must know the matching public key (--curve-keygen prints a fresh pair).
// Threads: each session's model runs its own pool of --threads threads; at most --workers sessions compute at
// once, so the default --threads is max(1, cores / workers) and the busy threads stay near the core count.

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "common/cli.hpp"
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
  std::size_t threads = 0;  // 0: max(1, cores / workers)
  std::size_t max_sessions = 64;
  std::string curve_secret;
  bool keygen = false;
};

/// Default threads per session model: the cores split between the workers that can verify at once.
std::size_t default_threads(std::size_t workers) {
  return std::max<std::size_t>(1, examples::hardware_threads() / std::max<std::size_t>(1, workers));
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"picospec-server: the cloud half. Loads a target GGUF model and serves picospec-edge sessions over "
               "ZeroMQ until SIGINT/SIGTERM.",
               "picospec-server"};
  examples::Cli cli(app);
  app.add_option("-m,--model", o.model, "target model (GGUF, llama architecture); required unless --curve-keygen");
  app.add_option("--bind", o.bind, "ZeroMQ endpoint to bind (tcp://HOST:PORT; port * = ephemeral, printed)");
  app.add_option("--workers", o.workers, "verify worker threads (sessions computing at once)")
      ->check(examples::range(std::size_t{1}, std::size_t{256}));
  examples::add_threads(app, o.threads,
                        "per session's model. Each session's model has its own pool and at most --workers sessions "
                        "compute at once, so the default 0 means max(1, cores / workers) = " +
                            std::to_string(default_threads(o.workers)) + " with 1 worker on this machine (" +
                            std::to_string(examples::hardware_threads()) + " cores)");
  app.add_option("--max-sessions", o.max_sessions, "sessions open at once; more are refused (busy)")
      ->check(examples::range(std::size_t{1}, std::size_t{100000}));
  app.add_option("--curve-secret", o.curve_secret, "CURVE secret key (Z85): require encrypted, authenticated edges");
  app.add_flag("--curve-keygen", o.keygen, "print a fresh CURVE key pair (public, secret) and exit");
  return cli.run(argc, argv, [&]() -> int {
    if (!o.keygen && o.model.empty()) throw UsageError("-m target.gguf is required");
    if (o.threads == 0) o.threads = default_threads(o.workers);
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

    examples::Progress progress("loading " + o.model);
    const auto weights = llama::LlamaWeights::load(o.model);
    progress.done();
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
    std::printf("picospec-server: serving %s on %s%s (%zu workers x %zu threads; Ctrl-C to stop)\n", o.model.c_str(),
                endpoint.c_str(), o.curve_secret.empty() ? "" : " with CURVE", o.workers, o.threads);
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
