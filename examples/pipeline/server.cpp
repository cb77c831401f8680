// picospec-server: the cloud half. Loads a target GGUF model and serves edge sessions on a ZeroMQ ROUTER socket
// until SIGINT/SIGTERM.
//
//   picospec-server -m target.gguf [--bind tcp://0.0.0.0:5555] [--workers N] [-t N] [--max-sessions N]
//                   [--curve-secret-file FILE] [--allowed-clients FILE] [--curve-keygen]
//                   [--max-batch N] [--metrics-port PORT [--metrics-host ADDR]]   (--help lists them)
//
// Each session gets its own KV cache (LmVerifier over LlamaModel); weights are shared. With a CURVE secret
// (--curve-secret-file FILE, or the PICOSPEC_CURVE_SECRET environment variable; never on the command line, where
// every user could read it) the socket requires CURVE: edges must know the matching public key (--curve-keygen
// prints a fresh pair). --allowed-clients FILE admits only the client public keys listed there (refusals are
// logged with the client's key). SIGINT/SIGTERM while the model loads exit at once with a message.
// Threads: each session's model runs its own pool of --threads threads; at most --workers sessions compute at
// once, so the default --threads is max(1, cores / workers) and the busy threads stay near the core count.
// The chunks of up to --max-batch sessions that are ready together are verified in one batched forward.
// --metrics-port PORT serves the server's counters over HTTP on 127.0.0.1 (--metrics-host to change it):
// GET /metrics (Prometheus text exposition), GET /metrics.json.

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "common/cli.hpp"
#include "common/keys.hpp"
#include "common/metrics_http.hpp"
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
  std::size_t max_batch = 32;
  bool no_fill = false;
  bool unpaced_fill = false;
  bool no_coalesce = false;
  std::size_t max_context = 0;
  int metrics_port = -1;  // -1: no metrics endpoint
  std::string metrics_host = "127.0.0.1";
  std::string curve_secret_argv;  // the removed --curve-secret: refused with a pointer to the alternatives
  std::string curve_secret_file;
  std::string allowed_clients;
  bool keygen = false;
};

// SIGINT/SIGTERM while the model loads (the stop signals are blocked only once the server starts): a message, exit.
extern "C" void stop_while_loading(int sig) {
  static const char msg[] = "picospec-server: interrupted while loading the model\n";
  (void)!::write(STDERR_FILENO, msg, sizeof msg - 1);
  ::_exit(128 + sig);
}

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
  app.add_flag("--no-fill", o.no_fill,
               "ignore the edges' request for cloud fill (fill spends one-token passes on waits; for a cloud "
               "saturated by many sessions)");
  app.add_flag("--unpaced-fill", o.unpaced_fill,
               "run fill passes whenever a session waits, even when its edge's next chunk is due (default: "
               "paced by each session's measured redraft time)");
  app.add_flag("--no-coalesce", o.no_coalesce,
               "verify each picospec Draft in a pass of its own instead of joining the queued ones into one pass");
  app.add_option("--max-batch", o.max_batch, "sessions' chunks verified together in one batched forward (1 = one at a time)")
      ->check(examples::range(std::size_t{1}, std::size_t{1024}));
  app.add_option("--max-context", o.max_context, "tokens a session may hold (0 = the model's context length)")
      ->check(examples::range(std::size_t{0}, std::size_t{1} << 24));
  app.add_option("--metrics-port", o.metrics_port,
                 "serve GET /metrics (Prometheus text) and /metrics.json on this TCP port (0 = ephemeral, printed)")
      ->check(examples::range(0, 65535));
  app.add_option("--metrics-host", o.metrics_host, "IPv4 address the metrics endpoint listens on")
      ->capture_default_str();
  app.add_option("--curve-secret-file", o.curve_secret_file,
                 "file with the CURVE secret key (a 'secret KEY' line as --curve-keygen prints, or the key alone): "
                 "require encrypted, authenticated edges; or set PICOSPEC_CURVE_SECRET");
  app.add_option("--allowed-clients", o.allowed_clients,
                 "file of client CURVE public keys, one per line ('#' comments): admit only these edges");
  app.add_option("--curve-secret", o.curve_secret_argv)
      ->group("");  // removed (hidden, refused below): a secret on the command line is readable by every user
  app.add_flag("--curve-keygen", o.keygen, "print a fresh CURVE key pair (public, secret) and exit");
  return cli.run(argc, argv, [&]() -> int {
    if (!o.curve_secret_argv.empty())
      throw UsageError("--curve-secret is removed: a secret on the command line is visible to every user (ps, "
                       "/proc); use --curve-secret-file FILE or the PICOSPEC_CURVE_SECRET environment variable");
    if (!o.keygen && o.model.empty()) throw UsageError("-m target.gguf is required");
    if (o.threads == 0) o.threads = default_threads(o.workers);
    if (o.keygen) {
      if (!zmq::curve_available()) throw Error("this libzmq has no CURVE support");
      const auto kp = zmq::generate_curve_keypair();
      std::printf("public %s\nsecret %s\n", kp.public_key.c_str(), kp.secret_key.c_str());
      return 0;
    }
    // The CURVE secret: a file or the environment, never argv.
    std::string curve_secret;
    if (!o.curve_secret_file.empty())
      curve_secret = examples::read_secret_file(o.curve_secret_file);
    else if (auto env = examples::secret_from_env("PICOSPEC_CURVE_SECRET"))
      curve_secret = *env;
    std::vector<std::string> allowed;
    if (!o.allowed_clients.empty()) {
      if (curve_secret.empty())
        throw examples::UsageError("--allowed-clients needs CURVE: --curve-secret-file FILE or PICOSPEC_CURVE_SECRET");
      allowed = examples::read_allowed_clients(o.allowed_clients);
    }
    if (!curve_secret.empty() && !zmq::curve_available()) throw Error("this libzmq has no CURVE support");
    // A FIFO or device as the model would block the load (open() waits for a writer): refuse it up front.
    struct stat st {};
    if (::stat(o.model.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) throw Error(o.model + ": not a regular file");

    // Loading may be slow: the stop signals end it at once (with a message) instead of waiting for sigwait().
    std::signal(SIGINT, stop_while_loading);
    std::signal(SIGTERM, stop_while_loading);
    examples::Progress progress("loading " + o.model);
    const auto weights = llama::LlamaWeights::load(o.model);
    progress.done();
    // Block the stop signals before any server thread starts, so only sigwait() below receives them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);

    zmq::ZmqOptions zo;
    zo.max_message_bytes = std::size_t{64} << 20;  // vanilla mode uploads dense draft distributions
    if (!curve_secret.empty()) {
      zo.curve.enabled = true;
      zo.curve.server_secret_key = curve_secret;
      zo.curve.allowed_clients = allowed;
      zo.log = [](const std::string& line) {
        std::fprintf(stderr, "picospec-server: %s\n", line.c_str());
        std::fflush(stderr);
      };
    }
    auto transport = std::make_unique<zmq::ZmqServerTransport>(o.bind, zo);
    const std::string endpoint = transport->endpoint();
    CloudOptions co;
    co.workers = o.workers;
    co.max_sessions = o.max_sessions;
    co.max_batch = o.max_batch;
    co.cloud_fill = !o.no_fill;
    co.fill_paced = !o.unpaced_fill;
    co.coalesce_drafts = !o.no_coalesce;
    co.max_context = o.max_context;
    const std::size_t threads = o.threads;
    CloudServer server(
        [weights, threads] {
          return std::make_unique<LmVerifier>(std::make_unique<llama::LlamaModel>(weights, llama::LlamaParams{.threads = threads}));
        },
        std::move(transport), co);
    server.start();
    std::unique_ptr<examples::MetricsHttp> metrics;
    if (o.metrics_port >= 0) {
      metrics = std::make_unique<examples::MetricsHttp>(
          o.metrics_host, o.metrics_port, [&server](const std::string& path) -> std::pair<std::string, std::string> {
            const CloudStats cs = server.stats();
            if (path == "/metrics.json") return {"application/json", to_json(cs) + "\n"};
            return {"text/plain; version=0.0.4", to_prometheus(cs)};
          });
      std::printf("picospec-server: metrics on http://%s:%d/metrics\n", o.metrics_host.c_str(), metrics->port());
    }
    std::printf("picospec-server: serving %s on %s%s (%zu workers x %zu threads; Ctrl-C to stop)\n", o.model.c_str(),
                endpoint.c_str(),
                curve_secret.empty() ? "" : (allowed.empty() ? " with CURVE" : " with CURVE and a client allow-list"),
                o.workers, o.threads);
    std::fflush(stdout);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    metrics.reset();
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
