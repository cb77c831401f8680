#!/usr/bin/env python3
"""Export a model trained by tools/train/train.py to GGUF, with Python and NumPy only.

    python3 tools/train/export_gguf.py CKPT_DIR -o OUT.gguf [--outtype q8_0|f16|f32] [--name NAME]

CKPT_DIR holds what train.py writes for one model:
  weights.npz     float32 arrays named as GGUF names them, in PyTorch's [out, in] layout:
                  token_embd.weight [vocab, dim], output_norm.weight [dim], output.weight (absent when tied),
                  blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}.weight
  config.json     {"dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "vocab_size", "context_length",
                   "rope_base", "rms_eps", "tied"}
  tokenizer.json  {"pieces": [...], "scores": [...], "types": [...], "bos": 1, "eos": 2, "unk": 0}
                  (SentencePiece's vocabulary; types as GGUF's token_type: 1 normal, 2 unknown, 3 control, 6 byte)

The model uses the interleaved rotary layout (pairs 2i, 2i+1), the layout GGUF `llama` files use, so Q and K are
written as trained, with no row permutation. Matrices take --outtype; 1-D norm weights stay F32.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_writer import FILE_TYPES, GGUFWriter  # noqa: E402

LAYER_TENSORS = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]


def expected_shapes(c: dict) -> dict[str, tuple[int, ...]]:
    hd = c["dim"] // c["n_heads"]
    kv = c["n_kv_heads"] * hd
    s = {"token_embd.weight": (c["vocab_size"], c["dim"]), "output_norm.weight": (c["dim"],)}
    if not c.get("tied", False):
        s["output.weight"] = (c["vocab_size"], c["dim"])
    for l in range(c["n_layers"]):
        p = "blk.%d." % l
        s.update({p + "attn_norm.weight": (c["dim"],), p + "ffn_norm.weight": (c["dim"],),
                  p + "attn_q.weight": (c["dim"], c["dim"]), p + "attn_k.weight": (kv, c["dim"]),
                  p + "attn_v.weight": (kv, c["dim"]), p + "attn_output.weight": (c["dim"], c["dim"]),
                  p + "ffn_gate.weight": (c["ffn_dim"], c["dim"]), p + "ffn_up.weight": (c["ffn_dim"], c["dim"]),
                  p + "ffn_down.weight": (c["dim"], c["ffn_dim"])})
    return s


def export(ckpt: str, out: str, outtype: str = "q8_0", name: str | None = None) -> None:
    with open(os.path.join(ckpt, "config.json")) as f:
        c = json.load(f)
    with open(os.path.join(ckpt, "tokenizer.json")) as f:
        tok = json.load(f)
    weights = np.load(os.path.join(ckpt, "weights.npz"))
    shapes = expected_shapes(c)
    missing = sorted(set(shapes) - set(weights.files))
    extra = sorted(set(weights.files) - set(shapes))
    if missing or extra:
        raise SystemExit("export_gguf: %s: missing tensors %s, unexpected tensors %s" % (ckpt, missing, extra))
    for k, shp in shapes.items():
        if tuple(weights[k].shape) != shp:
            raise SystemExit("export_gguf: tensor %s has shape %s, expected %s" % (k, weights[k].shape, shp))
    if len(tok["pieces"]) != c["vocab_size"]:
        raise SystemExit("export_gguf: tokenizer has %d pieces, model vocab is %d" % (len(tok["pieces"]), c["vocab_size"]))

    w = GGUFWriter()
    w.add_string("general.architecture", "llama")
    w.add_string("general.name", name or c.get("name", os.path.basename(os.path.normpath(ckpt))))
    w.add_u32("general.file_type", FILE_TYPES[outtype])
    w.add_u32("llama.context_length", c["context_length"])
    w.add_u32("llama.embedding_length", c["dim"])
    w.add_u32("llama.feed_forward_length", c["ffn_dim"])
    w.add_u32("llama.block_count", c["n_layers"])
    w.add_u32("llama.attention.head_count", c["n_heads"])
    w.add_u32("llama.attention.head_count_kv", c["n_kv_heads"])
    w.add_u32("llama.rope.dimension_count", c["dim"] // c["n_heads"])
    w.add_f32("llama.rope.freq_base", float(c["rope_base"]))
    w.add_f32("llama.attention.layer_norm_rms_epsilon", float(c["rms_eps"]))
    w.add_u32("llama.vocab_size", c["vocab_size"])
    w.add_string("tokenizer.ggml.model", "llama")
    w.add_string_array("tokenizer.ggml.tokens", tok["pieces"])
    w.add_f32_array("tokenizer.ggml.scores", tok["scores"])
    w.add_i32_array("tokenizer.ggml.token_type", tok["types"])
    w.add_u32("tokenizer.ggml.bos_token_id", tok["bos"])
    w.add_u32("tokenizer.ggml.eos_token_id", tok["eos"])
    w.add_u32("tokenizer.ggml.unknown_token_id", tok["unk"])
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_bool("tokenizer.ggml.add_eos_token", False)
    for k in shapes:  # a fixed order: embeddings, output, then layer by layer
        w.add_tensor(k, weights[k], outtype)
    w.write(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt", help="folder with weights.npz, config.json, tokenizer.json")
    ap.add_argument("-o", "--out", required=True, help="output .gguf")
    ap.add_argument("--outtype", choices=["f32", "f16", "q8_0"], default="q8_0")
    ap.add_argument("--name", default=None, help="general.name (default: config's name)")
    a = ap.parse_args()
    export(a.ckpt, a.out, a.outtype, a.name)
    print("export_gguf: wrote %s (%.2f MB)" % (a.out, os.path.getsize(a.out) / 1e6))


if __name__ == "__main__":
    main()
