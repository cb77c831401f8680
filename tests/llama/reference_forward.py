#!/usr/bin/env python3
"""Independent NumPy reference for picospec's LLaMA backend.

Parses a GGUF file itself (no `gguf` package), runs the LLaMA forward pass in float64 with a plain per-token
KV cache, and writes JSON with:
  - greedy: the token ids of greedy decoding from BOS (`--steps` tokens, BOS excluded) and their text,
  - logits: full logits rows for the first `--rows` positions of that greedy sequence (BOS first),
  - prompt_logits: full logits rows for the tokens of `--prompt-ids` (when given).

Written from the LLaMA description (RMSNorm, RoPE on adjacent pairs (2i, 2i+1) as GGUF llama models store
Q/K, grouped-query attention, SwiGLU), not from picospec's C++ code.

Usage (the command that produced tests/llama/golden/stories260K.json):
  python3 tests/llama/reference_forward.py --model ../shared/models/stories260K.gguf --steps 200 --rows 4 \
      --out tests/llama/golden/stories260K.json
Needs only Python 3 and NumPy (Debian: python3-numpy). Exits 77 when NumPy or the model is missing.
"""
import argparse
import json
import os
import struct
import sys

try:
    import numpy as np
except ImportError:  # visible skip under ctest
    print("SKIPPED: numpy is not installed")
    sys.exit(77)

SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class Reader:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt):
        n = struct.calcsize(fmt)
        if self.pos + n > len(self.buf):
            raise ValueError("truncated")
        v = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.unpack("<Q")
        s = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return s.decode("utf-8", "surrogateescape")

    def value(self, t):
        if t in SCALAR:
            return self.unpack(SCALAR[t])
        if t == 8:
            return self.string()
        if t == 9:
            et = self.unpack("<I")
            n = self.unpack("<Q")
            return [self.value(et) for _ in range(n)]
        raise ValueError("unknown value type %d" % t)


def f16_to_f32(raw):
    return np.frombuffer(raw, dtype="<f2").astype(np.float64)


def load_gguf(path):
    buf = open(path, "rb").read()
    r = Reader(buf)
    if buf[:4] != b"GGUF":
        raise ValueError("bad magic")
    r.pos = 4
    version = r.unpack("<I")
    assert version in (2, 3), version
    n_tensors = r.unpack("<Q")
    n_kv = r.unpack("<Q")
    meta = {}
    for _ in range(n_kv):
        k = r.string()
        t = r.unpack("<I")
        meta[k] = r.value(t)
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        nd = r.unpack("<I")
        dims = [r.unpack("<Q") for _ in range(nd)]
        typ = r.unpack("<I")
        off = r.unpack("<Q")
        infos.append((name, dims, typ, off))
    align = meta.get("general.alignment", 32)
    data_start = (r.pos + align - 1) // align * align
    tensors = {}
    for name, dims, typ, off in infos:
        n = int(np.prod(dims))
        start = data_start + off
        if typ == 0:  # F32
            arr = np.frombuffer(buf, dtype="<f4", count=n, offset=start).astype(np.float64)
        elif typ == 1:  # F16
            arr = f16_to_f32(buf[start:start + 2 * n])
        elif typ == 30:  # BF16
            u = np.frombuffer(buf, dtype="<u2", count=n, offset=start).astype(np.uint32) << 16
            arr = u.view(np.float32).astype(np.float64)
        elif typ == 8:  # Q8_0: blocks of (f16 scale, 32 x int8)
            nb = n // 32
            raw = np.frombuffer(buf, dtype=np.uint8, count=nb * 34, offset=start).reshape(nb, 34)
            d = f16_to_f32(raw[:, :2].tobytes()).reshape(nb, 1)
            q = raw[:, 2:].view(np.int8).astype(np.float64)
            arr = (d * q).reshape(-1)
        else:
            raise ValueError("tensor %s: unsupported type %d" % (name, typ))
        # GGUF dims are innermost first; numpy shape is the reverse.
        tensors[name] = arr.reshape(list(reversed(dims)))
    return meta, tensors


class Model:
    def __init__(self, path):
        meta, t = load_gguf(path)
        self.meta = meta
        self.t = t
        self.dim = meta["llama.embedding_length"]
        self.n_layers = meta["llama.block_count"]
        self.n_heads = meta["llama.attention.head_count"]
        self.n_kv = meta.get("llama.attention.head_count_kv", self.n_heads)
        self.hd = self.dim // self.n_heads
        self.rope_dim = meta.get("llama.rope.dimension_count", self.hd)
        self.base = float(meta.get("llama.rope.freq_base", 10000.0))
        self.eps = float(meta["llama.attention.layer_norm_rms_epsilon"])
        self.emb = t["token_embd.weight"]            # [vocab, dim]
        self.out = t.get("output.weight", self.emb)  # [vocab, dim]
        self.kcache = [[] for _ in range(self.n_layers)]
        self.vcache = [[] for _ in range(self.n_layers)]

    def rmsnorm(self, x, w):
        return x / np.sqrt(np.mean(x * x) + self.eps) * w

    def rope(self, v, pos, nh):
        v = v.reshape(nh, self.hd).copy()
        half = self.rope_dim // 2
        i = np.arange(half, dtype=np.float64)
        ang = pos * self.base ** (-2.0 * i / self.rope_dim)
        c, s = np.cos(ang), np.sin(ang)
        x0 = v[:, 0:2 * half:2].copy()
        x1 = v[:, 1:2 * half:2].copy()
        v[:, 0:2 * half:2] = x0 * c - x1 * s
        v[:, 1:2 * half:2] = x0 * s + x1 * c
        return v.reshape(-1)

    def step(self, token):
        pos = len(self.kcache[0])
        x = self.emb[token].copy()
        group = self.n_heads // self.n_kv
        for l in range(self.n_layers):
            p = "blk.%d." % l
            t = self.t
            xn = self.rmsnorm(x, t[p + "attn_norm.weight"])
            q = self.rope(t[p + "attn_q.weight"] @ xn, pos, self.n_heads)
            k = self.rope(t[p + "attn_k.weight"] @ xn, pos, self.n_kv)
            v = t[p + "attn_v.weight"] @ xn
            self.kcache[l].append(k.reshape(self.n_kv, self.hd))
            self.vcache[l].append(v.reshape(self.n_kv, self.hd))
            K = np.stack(self.kcache[l])  # [pos+1, n_kv, hd]
            V = np.stack(self.vcache[l])
            att = np.zeros(self.dim)
            for h in range(self.n_heads):
                g = h // group
                qh = q[h * self.hd:(h + 1) * self.hd]
                sc = K[:, g, :] @ qh / np.sqrt(self.hd)
                sc = np.exp(sc - sc.max())
                sc /= sc.sum()
                att[h * self.hd:(h + 1) * self.hd] = sc @ V[:, g, :]
            x = x + t[p + "attn_output.weight"] @ att
            xn = self.rmsnorm(x, t[p + "ffn_norm.weight"])
            gt = t[p + "ffn_gate.weight"] @ xn
            up = t[p + "ffn_up.weight"] @ xn
            x = x + t[p + "ffn_down.weight"] @ (gt / (1.0 + np.exp(-gt)) * up)
        return self.out @ self.rmsnorm(x, self.t["output_norm.weight"])


def decode(meta, ids):
    toks = meta["tokenizer.ggml.tokens"]
    types = meta.get("tokenizer.ggml.token_type", [1] * len(toks))
    out = b""
    prev_bos = True
    for i in ids:
        piece = toks[i]
        if types[i] == 6:
            out += bytes([int(piece[3:5], 16)])
        elif types[i] == 1:
            s = piece.replace("\u2581", " ")
            if prev_bos and s.startswith(" "):
                s = s[1:]
            out += s.encode("utf-8", "surrogateescape")
        prev_bos = False
    return out.decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--prompt-ids", default="")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if not os.path.exists(a.model):
        print("SKIPPED: model %s not found" % a.model)
        sys.exit(77)
    m = Model(a.model)
    bos = m.meta.get("tokenizer.ggml.bos_token_id", 1)
    tok = bos
    greedy, rows = [], []
    for step in range(a.steps):
        logits = m.step(tok)
        if step < a.rows:
            rows.append([float(np.float32(v)) for v in logits])
        tok = int(np.argmax(logits))
        greedy.append(tok)
    res = {"model": os.path.basename(a.model), "bos": bos, "steps": a.steps, "greedy": greedy,
           "text": decode(m.meta, greedy), "logits": rows}
    if a.prompt_ids:
        ids = [int(x) for x in a.prompt_ids.split(",")]
        m2 = Model(a.model)
        res["prompt_ids"] = ids
        res["prompt_logits"] = [[float(np.float32(v)) for v in m2.step(i)] for i in ids]
    with open(a.out, "w") as f:
        json.dump(res, f)
    print(res["text"])


if __name__ == "__main__":
    main()
