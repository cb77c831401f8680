#pragma once
// CURVE key material for the programs, read from files or environment variables, never from the command line
// (arguments are visible to every user in /proc/PID/cmdline and `ps`). Files and variables are untrusted input:
// every key is checked (40 characters of the Z85 alphabet) and a bad line is reported as "FILE:LINE: ...".
//
// Key file (what `picospec-server --curve-keygen` prints; '#' comments and blank lines allowed):
//     public <40-character Z85 key>
//     secret <40-character Z85 key>
// A secret may also be given as a file holding just the key, or in an environment variable.
// Allowed-clients file: one public key per line ("public " in front allowed), '#' comments and blank lines.

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "picospec/types.hpp"

namespace picospec::examples {

/// True for a Z85-encoded 32-byte CURVE key: exactly 40 characters of the Z85 alphabet.
inline bool is_z85_key(const std::string& k) {
  static const std::string alphabet =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  if (k.size() != 40) return false;
  for (char c : k)
    if (alphabet.find(c) == std::string::npos) return false;
  return true;
}

namespace detail {

inline std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

/// The file's lines, each with its 1-based number, comments ('#' at the start) and blank lines left out. Refuses
/// anything but a readable regular file of at most 1 MiB (a FIFO or device would block or never end).
inline std::vector<std::pair<std::size_t, std::string>> key_lines(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw Error(path + ": not a regular file");
  if (st.st_size > (1 << 20)) throw Error(path + ": larger than 1 MiB, not a key file");
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  std::vector<std::pair<std::size_t, std::string>> out;
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    out.emplace_back(n, line);
  }
  return out;
}

}  // namespace detail

/// A key pair file ("public KEY" and "secret KEY" lines). Throws Error naming the file (and line) when a line is
/// neither, a key is malformed, or either key is missing.
inline std::pair<std::string, std::string> read_key_pair(const std::string& path) {
  std::string pub, sec;
  for (const auto& [n, line] : detail::key_lines(path)) {
    const auto sp = line.find_first_of(" \t");
    const std::string word = line.substr(0, sp);
    const std::string key = sp == std::string::npos ? "" : detail::trim(line.substr(sp));
    std::string* dst = word == "public" ? &pub : word == "secret" ? &sec : nullptr;
    if (!dst) throw Error(path + ":" + std::to_string(n) + ": expected 'public KEY' or 'secret KEY'");
    if (!is_z85_key(key)) throw Error(path + ":" + std::to_string(n) + ": not a 40-character Z85 CURVE key");
    *dst = key;
  }
  if (pub.empty() || sec.empty())
    throw Error(path + ": needs a 'public KEY' and a 'secret KEY' line (as picospec-server --curve-keygen prints)");
  return {pub, sec};
}

/// A secret key from a file: a "secret KEY" line (a keygen output file) or a file holding just the key.
inline std::string read_secret_file(const std::string& path) {
  std::string sec;
  for (const auto& [n, line] : detail::key_lines(path)) {
    std::string key = line;
    if (line.rfind("public", 0) == 0) continue;
    if (line.rfind("secret", 0) == 0) key = detail::trim(line.substr(6));
    if (!is_z85_key(key)) throw Error(path + ":" + std::to_string(n) + ": not a 40-character Z85 CURVE key");
    sec = key;
  }
  if (sec.empty()) throw Error(path + ": no secret key in the file");
  return sec;
}

/// A secret from the environment variable `name` (nullopt when unset or empty); throws when it is malformed.
inline std::optional<std::string> secret_from_env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  const std::string key = detail::trim(v);
  if (!is_z85_key(key)) throw Error(std::string("environment variable ") + name + ": not a 40-character Z85 CURVE key");
  return key;
}

/// The allowed-clients file: public keys, one per line. Throws Error "FILE:LINE: ..." on a bad line, and when the
/// file lists no key (an empty allow-list would silently admit every client).
inline std::vector<std::string> read_allowed_clients(const std::string& path) {
  std::vector<std::string> keys;
  for (const auto& [n, line] : detail::key_lines(path)) {
    std::string key = line;
    if (line.rfind("public", 0) == 0 && line.size() > 6 && (line[6] == ' ' || line[6] == '\t'))
      key = detail::trim(line.substr(6));
    if (!is_z85_key(key))
      throw Error(path + ":" + std::to_string(n) + ": not a 40-character Z85 CURVE public key");
    keys.push_back(key);
  }
  if (keys.empty()) throw Error(path + ": no client key in the file");
  return keys;
}

}  // namespace picospec::examples
