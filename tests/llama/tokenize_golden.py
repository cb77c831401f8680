#!/usr/bin/env python3
"""picospec-tokenize against the Hugging Face tokenizers goldens, one process per hard case.

Usage: tokenize_golden.py PICOSPEC_TOKENIZE VOCAB_GGUF GOLDEN_JSON
Runs `picospec-tokenize -m VOCAB --ids --no-bos --special TEXT` (and without --special where the goldens differ)
for every hard case and requires the printed JSON array to equal the golden ids. Exits 77 (skip) when the
vocabulary GGUF was not built (npm unreachable), 1 on any mismatch.
"""
import json
import os
import subprocess
import sys


def main():
    exe, gguf, golden = sys.argv[1:4]
    if not os.path.isfile(gguf):
        print(f"SKIPPED: {gguf} was not built (npm unreachable?)")
        return 77
    with open(golden, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    bad = 0
    runs = 0
    for c in cases:
        checks = [(["--special"], c["ids"])]
        if c["ids_nospecial"] != c["ids"]:
            checks.append(([], c["ids_nospecial"]))
        for flags, want in checks:
            out = subprocess.run([exe, "-m", gguf, "--ids", "--no-bos", *flags, c["text"]], capture_output=True)
            runs += 1
            if out.returncode != 0:
                print(f"FAIL {c['text']!r}: exit {out.returncode}: {out.stderr.decode(errors='replace')}")
                bad += 1
                continue
            lines = out.stdout.decode().splitlines()
            got = json.loads(lines[0]) if len(lines) == 1 else None
            if got != want:
                print(f"FAIL {c['text']!r} {flags}: got {got}, want {want}")
                bad += 1
    print(f"picospec-tokenize: {runs - bad}/{runs} runs equal Hugging Face tokenizers ({len(cases)} cases)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
