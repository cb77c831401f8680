// picospec-loadtest: N edge clients against one CloudServer over ZeroMQ tcp on 127.0.0.1, synthetic backend.
//
//   picospec-loadtest [--clients N] [--requests R] [--tokens T] [--profile P] [--time-scale S] [--alpha A]
//                     [--workers W] [--max-batch B] [--mode M] [--temp T] [--time-limit SEC] [--json]
//
// The cloud is ONE emulated accelerator (synthetic::Device shared by every session's target): forwards run one
// at a time, and a batch of chunks from different sessions costs a + b * (all their tokens), the profile's
// latency (see synthetic.hpp). The N-client run is done twice, unbatched (--max-batch 1: one session's chunk per
// evaluation) and batched (--max-batch B), so the batching gain is measured in the same run.
// Defaults: profile llama-paper at --time-scale 0.05 (a batch of N tokens: 6.97 + 0.33 N ms), --vocab 256 (V replaces
// the profile's vocabulary, 0 keeps it: synthetic rows cost O(V) CPU each, so with a 128k vocabulary and 64 clients
// on a small machine the run measures that machine's CPU, not the server; the latencies stay as stated),
// 2 requests x 64 tokens per client.
//
// Each client is a thread with its own EdgeSession and ZmqClientTransport (one connection each) that runs R
// generations of T tokens one after the other. Bounded: N <= 256, R <= 1000, T <= 4096, and the whole run stops
// at --time-limit (clients cancel their generation; unfinished work is reported, not waited for).
// Reported: aggregate committed tokens/s over the wall time, per-token latency (gap between consecutive committed
// tokens of one generation, and time to first token) p50/p99 over all clients, errors (exceptions, and with
// greedy sampling any generation whose tokens differ from the others': all clients use the same prompt),
// and the cloud's session counters. The baseline printed beside it in the same run: one client alone
// (--clients 1 pass first), so the ratio says what sharing one server costs or gains.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "picospec/cloud_server.hpp"
#include "picospec/edge_session.hpp"
#include "picospec/synthetic/synthetic.hpp"
#include "picospec/zmq/zmq_transport.hpp"

using namespace picospec;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  int clients = 8;
  int requests = 2;
  int tokens = 64;
  // The paper's llama pair at 1/20 of its latencies: a batch of N tokens costs 6.97 + 0.33 N ms on the cloud's one
  // device (a memory-bound accelerator: the fixed cost dominates); vocabulary 256 (see --vocab).
  std::string profile = "llama-paper";
  double time_scale = 0.05;
  double alpha = 0.8;
  int workers = 2;
  int max_batch = 32;
  int vocab = 256;  // 0 = the profile's
  std::string mode = "picospec";
  float temp = 0.0f;
  std::string rejection;  // empty = the mode's default
  bool fill = false;      // GenerateParams::cloud_fill (greedy, or --rejection coupled)
  bool fill_paced = true;  // CloudOptions::fill_paced
  double time_limit_s = 60.0;
  bool json = false;
};

[[noreturn]] void usage(const std::string& msg) {
  std::fprintf(stderr,
               "picospec-loadtest: %s\n"
               "usage: picospec-loadtest [--clients N<=256] [--requests R<=1000] [--tokens T<=4096] [--profile P]\n"
               "                         [--time-scale S] [--alpha A] [--workers W<=64] [--max-batch B<=256] [--mode M]\n"
               "                         [--temp T] [--vocab V (0 = the profile's)] [--rejection R] [--fill 0|1]\n"
               "                         [--fill-paced 0|1]\n"
               "                         [--time-limit SEC<=3600] [--json]\n",
               msg.c_str());
  std::exit(2);
}

double number(const char* flag, const char* v, double lo, double hi) {
  char* end = nullptr;
  const double x = std::strtod(v, &end);
  if (!end || *end != '\0' || !std::isfinite(x) || x < lo || x > hi)
    usage(std::string(flag) + " wants a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) usage(f + " needs a value");
      return argv[++i];
    };
    if (f == "--clients") o.clients = static_cast<int>(number("--clients", val(), 1, 256));
    else if (f == "--requests") o.requests = static_cast<int>(number("--requests", val(), 1, 1000));
    else if (f == "--tokens") o.tokens = static_cast<int>(number("--tokens", val(), 1, 4096));
    else if (f == "--profile") o.profile = val();
    else if (f == "--time-scale") o.time_scale = number("--time-scale", val(), 0, 100);
    else if (f == "--alpha") o.alpha = number("--alpha", val(), 0.01, 1);
    else if (f == "--workers") o.workers = static_cast<int>(number("--workers", val(), 1, 64));
    else if (f == "--vocab") {
      o.vocab = static_cast<int>(number("--vocab", val(), 0, 262144));
      if (o.vocab != 0 && o.vocab < 16) usage("--vocab wants 0 (the profile's) or 16..262144");
    }
    else if (f == "--max-batch") o.max_batch = static_cast<int>(number("--max-batch", val(), 1, 256));
    else if (f == "--mode") o.mode = val();
    else if (f == "--temp") o.temp = static_cast<float>(number("--temp", val(), 0, 10));
    else if (f == "--rejection") o.rejection = val();
    else if (f == "--fill") o.fill = number("--fill", val(), 0, 1) == 1.0;
    else if (f == "--fill-paced") o.fill_paced = number("--fill-paced", val(), 0, 1) == 1.0;
    else if (f == "--time-limit") o.time_limit_s = number("--time-limit", val(), 0.1, 3600);
    else if (f == "--json") o.json = true;
    else usage("unknown flag " + f);
  }
  return o;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const auto k = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size()))) ;
  return v[std::min(v.size() - 1, k == 0 ? 0 : k - 1)];
}

struct RunResult {
  int clients = 0;
  int max_batch = 1;
  double wall_s = 0.0;
  std::uint64_t tokens = 0, generations = 0, errors = 0, mismatches = 0, unfinished = 0;
  double tok_per_s = 0.0, gap_p50_ms = 0.0, gap_p99_ms = 0.0, ttft_p50_ms = 0.0, ttft_p99_ms = 0.0;
  std::string first_error;
  CloudStats cloud;
};

RunResult run(const Options& o, int n_clients, int max_batch) {
  synthetic::PairParams pair;
  pair.target_device = std::make_shared<synthetic::Device>();  // one cloud accelerator for every session
  pair.profile = synthetic::profile(o.profile);
  if (o.vocab != 0) pair.profile.vocab_size = static_cast<std::uint32_t>(o.vocab);
  pair.alpha = o.alpha;
  pair.time_scale = o.time_scale;
  pair.world_seed = 7;

  zmq::ZmqOptions zo;
  zo.max_message_bytes = std::size_t{64} << 20;  // vanilla mode uploads dense rows
  auto st = std::make_unique<zmq::ZmqServerTransport>("tcp://127.0.0.1:*", zo);
  const std::string endpoint = st->endpoint();
  CloudOptions co;
  co.workers = static_cast<std::size_t>(o.workers);
  co.max_sessions = static_cast<std::size_t>(n_clients) + 8;
  co.max_sessions_per_peer = 8;
  co.max_batch = static_cast<std::size_t>(max_batch);
  co.fill_paced = o.fill_paced;
  CloudServer cloud([pair] { return synthetic::make_verifier(pair); }, std::move(st), co);
  cloud.start();

  GenerateParams gp;
  gp.mode = parse_pipeline_mode(o.mode);
  gp.sampling.temperature = o.temp;
  gp.max_tokens = static_cast<std::uint32_t>(o.tokens);
  if (!o.rejection.empty()) gp.rejection = parse_rejection_mode(o.rejection);
  gp.cloud_fill = o.fill;
  std::vector<Token> prompt{3, 14, 15, 92, 65, 35, 89, 79};
  for (auto& t : prompt) t %= static_cast<Token>(pair.profile.vocab_size);

  std::mutex mu;
  RunResult res;
  res.clients = n_clients;
  res.max_batch = max_batch;
  std::vector<double> gaps, ttfts;
  std::vector<Token> first_tokens;
  bool have_first = false;
  std::atomic<bool> stop{false};
  const auto t0 = Clock::now();
  const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.time_limit_s));
  auto ctx = std::make_shared<zmq::Context>(2);

  std::vector<std::thread> threads;
  std::vector<EdgeSession*> live(static_cast<std::size_t>(n_clients), nullptr);
  for (int c = 0; c < n_clients; ++c) {
    threads.emplace_back([&, c] {
      std::vector<double> my_gaps, my_ttfts;
      std::uint64_t my_tokens = 0, my_gens = 0, my_errors = 0, my_unfinished = 0;
      std::string my_error;
      std::vector<std::vector<Token>> outputs;
      try {
        EdgeOptions eo;
        eo.response_timeout = std::chrono::milliseconds(30000);
        EdgeSession edge(synthetic::make_drafter(pair), std::make_unique<zmq::ZmqClientTransport>(endpoint, zo, ctx),
                         eo);
        {
          std::lock_guard lk(mu);
          live[static_cast<std::size_t>(c)] = &edge;
        }
        for (int r = 0; r < o.requests && !stop.load(); ++r) {
          auto g = gp;
          g.seed = static_cast<std::uint64_t>(r);  // the same seeds on every client: comparable outputs
          const auto start = Clock::now();
          auto last = start;
          bool first = true;
          try {
            auto out = edge.generate(prompt, g, [&](Token) {
              const auto now = Clock::now();
              const double ms = std::chrono::duration<double, std::milli>(now - last).count();
              (first ? my_ttfts : my_gaps).push_back(ms);
              first = false;
              last = now;
            });
            my_tokens += out.tokens.size();
            if (out.finish == FinishReason::cancelled) ++my_unfinished;
            else ++my_gens;
            if (out.finish != FinishReason::cancelled) outputs.push_back(std::move(out.tokens));
          } catch (const std::exception& e) {
            ++my_errors;
            if (my_error.empty()) my_error = e.what();
          }
        }
        std::lock_guard lk(mu);
        live[static_cast<std::size_t>(c)] = nullptr;
      } catch (const std::exception& e) {
        ++my_errors;
        if (my_error.empty()) my_error = e.what();
        std::lock_guard lk(mu);
        live[static_cast<std::size_t>(c)] = nullptr;
      }
      std::lock_guard lk(mu);
      gaps.insert(gaps.end(), my_gaps.begin(), my_gaps.end());
      ttfts.insert(ttfts.end(), my_ttfts.begin(), my_ttfts.end());
      res.tokens += my_tokens;
      res.generations += my_gens;
      res.errors += my_errors;
      res.unfinished += my_unfinished;
      if (res.first_error.empty()) res.first_error = my_error;
      if (o.temp == 0.0f && !outputs.empty()) {  // greedy: every generation of every client must agree
        if (!have_first) {
          first_tokens = outputs.front();
          have_first = true;
        }
        for (auto& out : outputs) res.mismatches += out != first_tokens;
      }
    });
  }
  // Watchdog: at the time limit, cancel what still runs (bounded run).
  std::thread watchdog([&] {
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (Clock::now() >= deadline) {
        stop = true;
        std::lock_guard lk(mu);
        for (auto* e : live)
          if (e) e->cancel();
      }
    }
  });
  for (auto& t : threads) t.join();
  stop = true;
  watchdog.join();
  res.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  res.cloud = cloud.stats();
  cloud.stop();
  res.errors += res.mismatches;
  res.tok_per_s = static_cast<double>(res.tokens) / std::max(1e-9, res.wall_s);
  res.gap_p50_ms = percentile(gaps, 0.50);
  res.gap_p99_ms = percentile(gaps, 0.99);
  res.ttft_p50_ms = percentile(ttfts, 0.50);
  res.ttft_p99_ms = percentile(ttfts, 0.99);
  return res;
}

std::string escaped(const std::string& s) {  // for a JSON string: quotes, backslashes, control characters
  std::string out;
  for (char ch : s.substr(0, 300)) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += static_cast<unsigned char>(ch) < 0x20 ? ' ' : ch;
  }
  return out;
}

double mean_batch(const RunResult& r) {
  return r.cloud.verify_batches == 0
             ? 0.0
             : static_cast<double>(r.cloud.verify_batch_items) / static_cast<double>(r.cloud.verify_batches);
}

std::string hist_json(const RunResult& r) {  // {"1":n,"2":n,"3-4":n,...}
  static const char* names[] = {"1", "2", "3-4", "5-8", "9-16", "17-32", "33-64", "65+"};
  std::string out = "{";
  for (std::size_t i = 0; i < r.cloud.batch_size_hist.size(); ++i) {
    if (i) out += ",";
    out += '"';
    out += names[i];
    out += "\":";
    out += std::to_string(r.cloud.batch_size_hist[i]);
  }
  return out + "}";
}

std::string json_of(const RunResult& r) {
  char buf[2048];
  std::snprintf(buf, sizeof buf,
                "{\"clients\":%d,\"wall_s\":%.3f,\"tokens\":%llu,\"generations\":%llu,\"unfinished\":%llu,"
                "\"errors\":%llu,\"mismatches\":%llu,\"tokens_per_s\":%.1f,\"token_gap_p50_ms\":%.3f,"
                "\"token_gap_p99_ms\":%.3f,\"ttft_p50_ms\":%.3f,\"ttft_p99_ms\":%.3f,\"cloud_sessions_opened\":%llu,"
                "\"cloud_sessions_refused\":%llu,\"cloud_busy_ms\":%.1f,\"max_batch\":%d,\"batches\":%llu,"
                "\"mean_batch\":%.2f,\"max_batch_seen\":%llu,\"batch_size_hist\":%s,\"first_error\":\"%s\"}",
                r.clients, r.wall_s, static_cast<unsigned long long>(r.tokens),
                static_cast<unsigned long long>(r.generations), static_cast<unsigned long long>(r.unfinished),
                static_cast<unsigned long long>(r.errors), static_cast<unsigned long long>(r.mismatches), r.tok_per_s,
                r.gap_p50_ms, r.gap_p99_ms, r.ttft_p50_ms, r.ttft_p99_ms,
                static_cast<unsigned long long>(r.cloud.sessions_opened),
                static_cast<unsigned long long>(r.cloud.sessions_refused), r.cloud.busy_ms, r.max_batch,
                static_cast<unsigned long long>(r.cloud.verify_batches), mean_batch(r),
                static_cast<unsigned long long>(r.cloud.max_batch_seen), hist_json(r).c_str(),
                escaped(r.first_error).c_str());
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    (void)synthetic::profile(o.profile);
    (void)parse_pipeline_mode(o.mode);
    if (!o.rejection.empty()) (void)parse_rejection_mode(o.rejection);
  } catch (const std::exception& e) {
    usage(e.what());
  }
  try {
    const RunResult base = run(o, 1, 1);  // the baseline: one client alone on the same server setup
    const RunResult unbatched = o.clients == 1 ? base : run(o, o.clients, 1);
    const RunResult load = run(o, o.clients, o.max_batch);  // batched
    const double ratio = load.tok_per_s / std::max(1e-9, base.tok_per_s);
    const double gain = load.tok_per_s / std::max(1e-9, unbatched.tok_per_s);
    const synthetic::Profile prof = synthetic::profile(o.profile);
    if (o.json) {
      std::printf("{\"profile\":\"%s\",\"time_scale\":%g,\"target_a_ms\":%g,\"target_b_ms\":%g,\"mode\":\"%s\","
                  "\"workers\":%d,\"tokens\":%d,\"requests\":%d,\"baseline\":%s,\"unbatched\":%s,\"load\":%s,"
                  "\"throughput_ratio\":%.3f,\"batched_vs_unbatched\":%.3f}\n",
                  o.profile.c_str(), o.time_scale, prof.target.a_ms, prof.target.b_ms, o.mode.c_str(), o.workers,
                  o.tokens, o.requests, json_of(base).c_str(), json_of(unbatched).c_str(), json_of(load).c_str(),
                  ratio, gain);
    } else {
      std::printf("picospec-loadtest: profile %s x%g (one cloud device, batch of N tokens costs %g + %g N ms), mode %s,\n"
                  "%d workers, %d requests x %d tokens per client\n",
                  o.profile.c_str(), o.time_scale, prof.target.a_ms * o.time_scale, prof.target.b_ms * o.time_scale,
                  o.mode.c_str(), o.workers, o.requests, o.tokens);
      std::printf("%-10s %8s %6s %9s %10s %12s %12s %12s %12s %10s %7s %10s\n", "run", "clients", "batch", "tokens",
                  "tok/s", "gap p50 ms", "gap p99 ms", "ttft p50 ms", "ttft p99 ms", "mean batch", "errors",
                  "unfinished");
      for (const auto* r : {&base, &unbatched, &load}) {
        if (r == &unbatched && o.clients == 1) continue;
        std::printf("%-10s %8d %6d %9llu %10.1f %12.2f %12.2f %12.2f %12.2f %10.2f %7llu %10llu\n",
                    r == &base ? "baseline" : r == &unbatched ? "unbatched" : "batched", r->clients, r->max_batch,
                    static_cast<unsigned long long>(r->tokens), r->tok_per_s, r->gap_p50_ms, r->gap_p99_ms,
                    r->ttft_p50_ms, r->ttft_p99_ms, mean_batch(*r), static_cast<unsigned long long>(r->errors),
                    static_cast<unsigned long long>(r->unfinished));
      }
      std::printf("aggregate throughput: batched %.2fx unbatched, %.2fx the single-client baseline, with %d clients\n",
                  gain, ratio, o.clients);
      if (!load.first_error.empty()) std::printf("first error: %s\n", load.first_error.c_str());
      if (!unbatched.first_error.empty()) std::printf("first error (unbatched): %s\n", unbatched.first_error.c_str());
    }
    return load.errors == 0 && base.errors == 0 && unbatched.errors == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "picospec-loadtest: %s\n", e.what());
    return 1;
  }
}
