#!/usr/bin/env python3
"""Builds the training and held-out text of our model pair from ../shared/data/corpus (Python standard library only).

    python3 tools/train/prepare_data.py [--corpus ../shared/data/corpus] [--out .train/data]

Sources: TinyStories (validation file), Tiny Shakespeare, and the Project Gutenberg books under gutenberg/ with their
"*** START OF ..." / "*** END OF ..." header and footer stripped (where present) and their hard-wrapped paragraphs
joined into single lines. Every source is cut into paragraphs (blank-line separated), and consecutive paragraphs are
grouped into documents of at least --doc-chars characters. Documents are numbered per source; document i of source s
is held out when crc32("s/i") % 20 == 0 (5%, the same split for every model and every run).

Writes to --out: train.jsonl and heldout.jsonl (one JSON object per document: {"source", "text"}) and heldout.txt
(the held-out documents joined by blank lines: the file the model card's perplexities are measured on).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import zlib

HELDOUT_MOD = 20  # 1 in 20 documents = 5%


def strip_gutenberg(text: str) -> str:
    start = re.search(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", text, re.M | re.I)
    if start:
        text = text[start.end():]
    end = re.search(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", text, re.M | re.I)
    if end:
        text = text[:end.start()]
    return text


def paragraphs(text: str, unwrap: bool) -> list[str]:
    out = []
    for p in re.split(r"\n[ \t]*\n", text):
        if unwrap:
            p = re.sub(r"\s+", " ", p).strip()
        else:
            p = "\n".join(line.rstrip() for line in p.strip("\n").split("\n"))
        if p.strip():
            out.append(p)
    return out


def documents(paras: list[str], min_chars: int) -> list[str]:
    docs, cur, n = [], [], 0
    for p in paras:
        cur.append(p)
        n += len(p)
        if n >= min_chars:
            docs.append("\n\n".join(cur))
            cur, n = [], 0
    if cur:
        docs.append("\n\n".join(cur))
    return docs


def read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")


def build(corpus: str, doc_chars: int) -> list[tuple[str, str]]:
    """[(source, document)] in a fixed order."""
    out = []
    sources = [("tinystories", os.path.join(corpus, "tinystories_val.txt"), False, False),
               ("shakespeare", os.path.join(corpus, "tinyshakespeare.txt"), False, False)]
    gdir = os.path.join(corpus, "gutenberg")
    for name in sorted(os.listdir(gdir)) if os.path.isdir(gdir) else []:
        if name.endswith(".txt"):
            sources.append(("gutenberg/" + name[:-4], os.path.join(gdir, name), True, True))
    for src, path, gutenberg, unwrap in sources:
        text = read(path)
        if gutenberg:
            text = strip_gutenberg(text)
        for doc in documents(paragraphs(text, unwrap), doc_chars):
            out.append((src, doc))
    return out


def split(docs: list[tuple[str, str]]) -> tuple[list[dict], list[dict]]:
    train, held, idx = [], [], {}
    for src, doc in docs:
        i = idx.get(src, 0)
        idx[src] = i + 1
        (held if zlib.crc32(("%s/%d" % (src, i)).encode()) % HELDOUT_MOD == 0 else train).append(
            {"source": src, "text": doc})
    return train, held


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=os.path.join(here, "..", "..", "..", "shared", "data", "corpus"))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", ".train", "data"))
    ap.add_argument("--doc-chars", type=int, default=1000)
    a = ap.parse_args()
    if not os.path.isdir(a.corpus):
        raise SystemExit("prepare_data: no corpus folder at %s (pass --corpus)" % a.corpus)
    train, held = split(build(a.corpus, a.doc_chars))
    os.makedirs(a.out, exist_ok=True)
    for name, docs in (("train.jsonl", train), ("heldout.jsonl", held)):
        with open(os.path.join(a.out, name), "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
    with open(os.path.join(a.out, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(d["text"] for d in held) + "\n")
    chars = lambda ds: sum(len(d["text"]) for d in ds)  # noqa: E731
    print("prepare_data: %d train documents (%d chars), %d held-out documents (%d chars, %.1f%%) -> %s" %
          (len(train), chars(train), len(held), chars(held), 100.0 * chars(held) / max(1, chars(train) + chars(held)),
           a.out))


if __name__ == "__main__":
    main()
