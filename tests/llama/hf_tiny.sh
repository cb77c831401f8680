#!/bin/sh
# Converts a small Hugging Face checkpoint to GGUF with tools/convert/hf_to_gguf.py, then runs the architecture test
# against its golden. Usage: hf_tiny.sh CONVERTER MODEL_DIR OUT_GGUF TEST_BINARY [OUTTYPE].
# Exits 77 (skip, with the reason) without python3 + numpy.
conv=$1 dir=$2 out=$3 test=$4 outtype=${5:-f32}
py=""
for cand in python3 /usr/bin/python3; do
  if "$cand" -c "import numpy" >/dev/null 2>&1; then py=$cand; break; fi
done
if [ -z "$py" ]; then echo "SKIPPED: no python3 with numpy (install python3-numpy)"; exit 77; fi
"$py" "$conv" "$dir" --outtype "$outtype" -o "$out" || exit 1
PICOSPEC_HF_GGUF="$out" PICOSPEC_HF_GOLDEN="$dir/golden.json" "$test"
