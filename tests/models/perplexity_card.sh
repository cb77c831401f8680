#!/bin/sh
# picospec-perplexity reproduces the model card's held-out perplexities (models/README.md) within 1%.
#   perplexity_card.sh PERPLEXITY_BIN SOURCE_DIR SHARED_DIR WORK_DIR CHUNKS TARGET_PPL DRAFT_PPL
# Rebuilds the held-out text from ../shared/data/corpus with tools/train/prepare_data.py (the same split the models
# were trained with); skips (77) without ../shared or python3.
set -u
bin=$1 src=$2 shared=$3 work=$4 chunks=$5 want_target=$6 want_draft=$7
[ -d "$shared/data/corpus" ] || { echo "SKIPPED: no $shared/data/corpus (the held-out text is built from it)"; exit 77; }
command -v python3 > /dev/null || { echo "SKIPPED: no python3"; exit 77; }
python3 "$src/tools/train/prepare_data.py" --corpus "$shared/data/corpus" --out "$work" || exit 1
status=0
for pair in "target $want_target" "draft $want_draft"; do
  set -- $pair
  got=$("$bin" -m "$src/models/$1.gguf" -f "$work/heldout.txt" --chunks "$chunks" -t 2 --json) || exit 1
  echo "$1: $got (model card: $2)"
  python3 -c "import json,sys; g=json.loads(sys.argv[1])['ppl']; w=float(sys.argv[2]); \
sys.exit(0 if abs(g-w) <= 0.01*w else 1)" "$got" "$2" || { echo "FAIL: $1 perplexity differs from the card by more than 1%"; status=1; }
done
exit $status
