#!/usr/bin/env bash
# Installs the Debian packages picospec needs to build, test and benchmark. Idempotent: packages already
# present are skipped; `apt-get update` runs only when something is missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libeigen3-dev xtensor-dev cppzmq-dev libzmq3-dev nlohmann-json3-dev
      catch2 libbenchmark-dev python3-numpy gnuplot-nox libcli11-dev libpcre2-dev libicu-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "bootstrap: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "bootstrap: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
