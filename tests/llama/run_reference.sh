#!/bin/sh
# Runs the NumPy reference on a model, then the C++ reference test against its fresh output.
# Usage: run_reference.sh SCRIPT MODEL OUT TEST_BINARY. Exits 77 (skip) without python3+numpy or without the model.
script=$1 model=$2 out=$3 test=$4
if [ ! -f "$model" ]; then echo "SKIPPED: $model not found"; exit 77; fi
py=""
for cand in python3 /usr/bin/python3; do
  if "$cand" -c "import numpy" >/dev/null 2>&1; then py=$cand; break; fi
done
if [ -z "$py" ]; then echo "SKIPPED: no python3 with numpy (install python3-numpy)"; exit 77; fi
"$py" "$script" --model "$model" --steps 200 --rows 4 --prompt-ids 1,403,407,261,378 --out "$out" || exit 1
PICOSPEC_LLAMA_GOLDEN="$out" "$test"
