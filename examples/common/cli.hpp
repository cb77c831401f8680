#pragma once
// The command-line setup every example program shares (CLI11): a generated --help, range-checked values, one-line
// errors and the exit statuses below, the llama.cpp-style multi-letter single-dash flags (-md) that CLI11 cannot
// name itself, the common option groups (sampling, seed, threads) and a progress line for slow steps.
//
//   CLI::App app{"what the program does", "picospec-foo"};
//   examples::Cli cli(app, {{"-md", "--draft"}});      // "-md FILE" is read as "--draft FILE"
//   app.add_option("--draft", draft, "draft model (GGUF)")->required();
//   examples::add_sampling(app, params.sampling);
//   return cli.run(argc, argv, [&] { ...; return 0; });
//
// Exit status: 0 after --help or success; 2 on a usage error (unknown flag, missing or out-of-range value, or a
// UsageError thrown by the body), with one line "picospec-foo: message (try --help)" on stderr; 1 when the body
// throws anything else, with one line "picospec-foo: message" on stderr. Command-line arguments are untrusted input.
//
// Also here: examples::range(lo, hi) (a strict number check; use it instead of CLI::Range), parsed_by(f) (a check
// from a parser that throws), hardware_threads(), and Progress (a status line while loading, only on a terminal).
// CMake: link picospec_examples_common (examples/CMakeLists.txt), which brings CLI11 and this folder.
// An alias is rewritten wherever it appears as a whole argument, so a value that is exactly "-md" cannot be given.

#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <initializer_list>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/usage_error.hpp"
#include "picospec/types.hpp"

namespace picospec::examples {

/// A multi-letter single-dash flag (llama.cpp's -md) and the long name it stands for.
struct FlagAlias {
  std::string from;  ///< e.g. "-md"
  std::string to;    ///< e.g. "--draft"
};

namespace detail {

/// One line: newlines become spaces (CLI11 messages are normally one line already).
inline std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

/// --help shows the alias in front of the long name it stands for ("-md,--draft TEXT").
class AliasFormatter : public CLI::Formatter {
 public:
  explicit AliasFormatter(std::vector<FlagAlias> aliases) : aliases_(std::move(aliases)) {}
  std::string make_option_name(const CLI::Option* opt, bool is_positional) const override {
    std::string name = CLI::Formatter::make_option_name(opt, is_positional);
    for (const FlagAlias& a : aliases_)
      if (!is_positional && opt->check_name(a.to)) name = a.from + "," + name;
    return name;
  }

 private:
  std::vector<FlagAlias> aliases_;
};

}  // namespace detail

/// The shared CLI11 setup of one program's App: defaults shown in --help, aliases, and run().
class Cli {
 public:
  explicit Cli(CLI::App& app, std::vector<FlagAlias> aliases = {}) : app_(app), aliases_(std::move(aliases)) {
    app_.option_defaults()->always_capture_default();
    auto fmt = std::make_shared<detail::AliasFormatter>(aliases_);
    fmt->column_width(32);
    app_.formatter(fmt);
  }

  /// Parses argv, then runs body() (returning the exit status); see the header comment for statuses and output.
  template <class Body>
  int run(int argc, char** argv, Body&& body) {
    const std::string prog = app_.get_name();
    try {
      std::vector<std::string> args;
      for (int i = argc - 1; i >= 1; --i) args.push_back(rewrite(argv[i]));  // CLI11 wants them reversed
      app_.parse(args);
    } catch (const CLI::CallForHelp&) {
      std::fputs(app_.help().c_str(), stdout);
      return 0;
    } catch (const CLI::ParseError& e) {
      std::fprintf(stderr, "%s: %s (try --help)\n", prog.c_str(), detail::one_line(e.what()).c_str());
      return 2;
    }
    try {
      return body();
    } catch (const UsageError& e) {
      std::fprintf(stderr, "%s: %s (try --help)\n", prog.c_str(), detail::one_line(e.what()).c_str());
      return 2;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: %s\n", prog.c_str(), detail::one_line(e.what()).c_str());
      return 1;
    }
  }

 private:
  std::string rewrite(const std::string& arg) const {
    for (const FlagAlias& a : aliases_) {
      if (arg == a.from) return a.to;
      if (arg.size() > a.from.size() && arg.compare(0, a.from.size(), a.from) == 0 && arg[a.from.size()] == '=')
        return a.to + arg.substr(a.from.size());
    }
    return arg;
  }

  CLI::App& app_;
  std::vector<FlagAlias> aliases_;
};

/// A range check for a number option: the whole text must be a number of type T (std::from_chars: no overflow,
/// no sign on unsigned types, no trailing junk) with lo <= value <= hi, so NaN fails too. CLI11's own Range lets
/// NaN through and reads "-1" as 2^64-1 for an unsigned option.
template <class T>
CLI::Validator range(T lo, T hi) {
  auto show = [](T v) {
    std::ostringstream ss;
    ss << +v;
    return ss.str();
  };
  const std::string span = "[" + show(lo) + ", " + show(hi) + "]";
  const std::string kind = std::is_floating_point_v<T> ? "a number" : "an integer";
  return CLI::Validator(
      [lo, hi, span, kind](std::string& text) -> std::string {
        T v{};
        const char* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, v);  // no sign games, overflow is an error
        if (text.empty() || ec != std::errc{} || ptr != end || !(v >= lo && v <= hi))
          return "'" + text + "' is not " + kind + " in " + span;
        return {};
      },
      "in " + span);
}

/// A CLI11 check from a parser that throws on a bad value (e.g. parse_pipeline_mode): its message becomes the
/// usage error. Use as option->check(examples::parsed_by([](const std::string& v) { (void)parse_x(v); })).
template <class Parse>
CLI::Validator parsed_by(Parse parse) {
  return CLI::Validator(
      [parse](std::string& value) -> std::string {
        try {
          parse(value);
          return {};
        } catch (const std::exception& e) {
          return e.what();
        }
      },
      "");
}

/// The machine's core count (at least 1).
inline std::size_t hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

/// --temp, --top-k, --top-p, --min-p into `s` (defaults: whatever `s` holds).
inline void add_sampling(CLI::App& app, SamplingParams& s, const std::string& group = "Sampling") {
  app.add_option("--temp", s.temperature, "temperature; 0 = greedy")->check(range(0.0f, 100.0f))->group(group);
  app.add_option("--top-k", s.top_k, "keep the K most likely tokens; 0 = off")
      ->check(range(0, 1 << 30))
      ->group(group);
  app.add_option("--top-p", s.top_p, "nucleus: smallest set with mass >= P; 1 = off")
      ->check(range(1e-6f, 1.0f))
      ->group(group);
  app.add_option("--min-p", s.min_p, "drop tokens below P x the top probability; 0 = off")
      ->check(range(0.0f, 1.0f))
      ->group(group);
}

/// -s/--seed: the seed of every random draw.
inline CLI::Option* add_seed(CLI::App& app, std::uint64_t& seed, const std::string& group = "Sampling") {
  return app.add_option("-s,--seed", seed, "seed of every random draw")
      ->check(range(std::uint64_t{0}, std::numeric_limits<std::uint64_t>::max()))
      ->group(group);
}

/// -t/--threads with a range check; `what` completes the description (which pool, what the default means).
inline CLI::Option* add_threads(CLI::App& app, std::size_t& threads, const std::string& what) {
  return app.add_option("-t,--threads", threads, "threads " + what)->check(range(std::size_t{0}, std::size_t{1024}));
}

/// A status line on stderr for a step that may take over a second, shown only when stderr is a terminal
/// (so logs and pipes stay clean); the line is erased when the step ends (done() or destruction).
class Progress {
 public:
  explicit Progress(const std::string& what) : on_(::isatty(STDERR_FILENO) == 1) {
    if (on_) {
      std::fprintf(stderr, "\r\033[K%s ...", what.c_str());
      std::fflush(stderr);
    }
  }
  /// Replaces the line's text (e.g. "chunk 3/10").
  void update(const std::string& what) {
    if (on_) {
      std::fprintf(stderr, "\r\033[K%s ...", what.c_str());
      std::fflush(stderr);
    }
  }
  void done() {
    if (on_) {
      std::fputs("\r\033[K", stderr);
      std::fflush(stderr);
      on_ = false;
    }
  }
  ~Progress() { done(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

 private:
  bool on_;
};

}  // namespace picospec::examples
