#!/usr/bin/env python3
"""Trains picospec's own draft/target pair (LLaMA architecture, one SentencePiece tokenizer) and exports it to GGUF.

    python3 tools/train/prepare_data.py --corpus ../shared/data/corpus --out .train/data     # here, stdlib only
    python3 tools/train/train.py --data .train/data --config tools/train/config.json --out OUT   # on a GPU machine

One seeded script, its configuration beside it (config.json). Steps:
  1. SentencePiece BPE tokenizer (byte fallback, identity normalization, a space prefix, no whitespace folding:
     what picospec's `llama` tokenizer reproduces) trained on the training split only.
  2. The target, trained on the training split (next-token cross-entropy); the checkpoint with the lowest
     held-out loss is kept.
  3. Two drafts of the same architecture: one on cross-entropy alone, one distilled from the target
     (forward KL to the target's distribution, plus a small cross-entropy term).
  4. Held-out perplexity (the method of picospec-perplexity and llama.cpp's llama-perplexity) and the pair's
     acceptance estimates (sum_v min(p, q) at temperature T; argmax agreement at T = 0) for both drafts.
  5. Export of all three models to GGUF with tools/train/export_gguf.py (the same exporter runs here with NumPy).
  6. Golden files for picospec's tests, computed from the exported GGUF files read back and dequantized, in
     float64: greedy continuations and logits (tests/models), and SentencePiece ids of held-out lines and hard
     cases (the tokenizer test).
Everything lands in --out: tokenizer.model, tokenizer.json, {target,draft_ce,draft_kd}/ (weights.npz, config.json,
tokenizer.json), *.gguf, report.json, goldens/*.json.

--smoke runs every step with a few training steps on the CPU (to test the script on a machine without a GPU).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from export_gguf import export  # noqa: E402
from gguf_writer import read_gguf_tensors  # noqa: E402

T0 = time.time()


def log(*a) -> None:
    print("[%7.1fs]" % (time.time() - T0), *a, flush=True)


# ------------------------------------------------------------------------------------------------------------
# Model: LLaMA (RMSNorm, rotary embeddings on interleaved pairs, SwiGLU, no biases), as picospec's runtime runs it
# ------------------------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(hd: int, n: int, base: float, device, dtype):
    inv = base ** (-2.0 * np.arange(hd // 2, dtype=np.float64) / hd)  # float64 as the runtime computes it
    ang = np.arange(n, dtype=np.float64)[:, None] * inv[None, :]
    cos = torch.tensor(np.cos(ang).astype(np.float32), device=device, dtype=dtype)
    sin = torch.tensor(np.sin(ang).astype(np.float32), device=device, dtype=dtype)
    return cos, sin


def apply_rope(x, cos, sin):
    # x: [B, T, H, hd]; pairs (2i, 2i+1) rotate by angle pos * inv_freq[i]
    B, T, H, hd = x.shape
    xp = x.reshape(B, T, H, hd // 2, 2)
    x0, x1 = xp[..., 0], xp[..., 1]
    c = cos[:T].view(1, T, 1, hd // 2)
    s = sin[:T].view(1, T, 1, hd // 2)
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).reshape(B, T, H, hd)


class Block(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        dim, hd = c["dim"], c["dim"] // c["n_heads"]
        self.h, self.kvh, self.hd = c["n_heads"], c["n_kv_heads"], hd
        self.attn_norm = RMSNorm(dim, c["rms_eps"])
        self.wq = nn.Linear(dim, self.h * hd, bias=False)
        self.wk = nn.Linear(dim, self.kvh * hd, bias=False)
        self.wv = nn.Linear(dim, self.kvh * hd, bias=False)
        self.wo = nn.Linear(self.h * hd, dim, bias=False)
        self.ffn_norm = RMSNorm(dim, c["rms_eps"])
        self.w_gate = nn.Linear(dim, c["ffn_dim"], bias=False)
        self.w_up = nn.Linear(dim, c["ffn_dim"], bias=False)
        self.w_down = nn.Linear(c["ffn_dim"], dim, bias=False)
        self.drop = c.get("dropout", 0.0)

    def forward(self, x, cos, sin):
        B, T, D = x.shape
        h = self.attn_norm(x)
        q = apply_rope(self.wq(h).view(B, T, self.h, self.hd), cos, sin).transpose(1, 2)
        k = apply_rope(self.wk(h).view(B, T, self.kvh, self.hd), cos, sin).transpose(1, 2)
        v = self.wv(h).view(B, T, self.kvh, self.hd).transpose(1, 2)
        if self.kvh != self.h:
            k = k.repeat_interleave(self.h // self.kvh, dim=1)
            v = v.repeat_interleave(self.h // self.kvh, dim=1)
        p = self.drop if self.training else 0.0
        if hasattr(F, "scaled_dot_product_attention"):
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        else:  # PyTorch < 2.0
            att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            att = F.dropout(att.masked_fill(mask, float("-inf")).softmax(-1), p)
            o = att @ v
        x = x + F.dropout(self.wo(o.transpose(1, 2).reshape(B, T, self.h * self.hd)), p, self.training)
        h = self.ffn_norm(x)
        return x + F.dropout(self.w_down(F.silu(self.w_gate(h)) * self.w_up(h)), p, self.training)


class Llama(nn.Module):
    def __init__(self, c: dict) -> None:
        super().__init__()
        self.c = c
        self.tok = nn.Embedding(c["vocab_size"], c["dim"])
        self.layers = nn.ModuleList(Block(c) for _ in range(c["n_layers"]))
        self.norm = RMSNorm(c["dim"], c["rms_eps"])
        self.out = None if c["tied"] else nn.Linear(c["dim"], c["vocab_size"], bias=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * c["n_layers"]) if name.endswith(("wo.weight", "w_down.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
        self.rope = None

    def forward(self, idx):
        T = idx.shape[1]
        if self.rope is None or self.rope[0].shape[0] < T or self.rope[0].device != idx.device or \
                self.rope[0].dtype != self.tok.weight.dtype:
            self.rope = rope_tables(self.c["dim"] // self.c["n_heads"], max(T, self.c["context_length"]),
                                    self.c["rope_base"], idx.device, self.tok.weight.dtype)
        x = self.tok(idx)
        for layer in self.layers:
            x = layer(x, *self.rope)
        x = self.norm(x)
        return F.linear(x, self.tok.weight if self.out is None else self.out.weight)

    # -- GGUF names (PyTorch's [out, in] layout; the exporter reverses dimensions as GGUF lists them) --
    def gguf_state(self) -> dict[str, np.ndarray]:
        g = lambda t: t.detach().float().cpu().numpy()  # noqa: E731
        s = {"token_embd.weight": g(self.tok.weight), "output_norm.weight": g(self.norm.weight)}
        if self.out is not None:
            s["output.weight"] = g(self.out.weight)
        for i, L in enumerate(self.layers):
            p = "blk.%d." % i
            s.update({p + "attn_norm.weight": g(L.attn_norm.weight), p + "attn_q.weight": g(L.wq.weight),
                      p + "attn_k.weight": g(L.wk.weight), p + "attn_v.weight": g(L.wv.weight),
                      p + "attn_output.weight": g(L.wo.weight), p + "ffn_norm.weight": g(L.ffn_norm.weight),
                      p + "ffn_gate.weight": g(L.w_gate.weight), p + "ffn_up.weight": g(L.w_up.weight),
                      p + "ffn_down.weight": g(L.w_down.weight)})
        return s

    def load_gguf_state(self, s: dict[str, np.ndarray]) -> None:
        t = lambda k: torch.tensor(s[k])  # noqa: E731
        with torch.no_grad():
            self.tok.weight.copy_(t("token_embd.weight"))
            self.norm.weight.copy_(t("output_norm.weight"))
            if self.out is not None:
                self.out.weight.copy_(t("output.weight"))
            for i, L in enumerate(self.layers):
                p = "blk.%d." % i
                for mod, name in ((L.attn_norm, "attn_norm"), (L.wq, "attn_q"), (L.wk, "attn_k"), (L.wv, "attn_v"),
                                  (L.wo, "attn_output"), (L.ffn_norm, "ffn_norm"), (L.w_gate, "ffn_gate"),
                                  (L.w_up, "ffn_up"), (L.w_down, "ffn_down")):
                    mod.weight.copy_(t(p + name + ".weight"))


def model_config(cfg: dict, which: str, vocab: int) -> dict:
    c = dict(cfg[which])
    c.update(vocab_size=vocab, context_length=cfg["context_length"], rope_base=10000.0, rms_eps=1e-5)
    return c


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ------------------------------------------------------------------------------------------------------------
# Tokenizer
# ------------------------------------------------------------------------------------------------------------
def train_tokenizer(cfg: dict, train_docs: list[str], out: str):
    import sentencepiece as spm

    t = cfg["tokenizer"]
    lines = [ln for d in train_docs for ln in d.split("\n") if ln.strip()]
    random.Random(cfg["seed"]).shuffle(lines)
    prefix = os.path.join(out, "tokenizer")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=prefix, model_type=t["model_type"], vocab_size=t["vocab_size"],
        byte_fallback=t["byte_fallback"], split_digits=t["split_digits"], character_coverage=t["character_coverage"],
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
        allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=os.cpu_count() or 1,
        max_sentence_length=1 << 16, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    pieces, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        pieces.append(sp.id_to_piece(i))
        scores.append(float(sp.get_score(i)))
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else
                     5 if sp.is_unused(i) else 1)
    tok = {"pieces": pieces, "scores": scores, "types": types, "bos": sp.bos_id(), "eos": sp.eos_id(),
           "unk": sp.unk_id()}
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tok, f)
    return sp, tok


def encode_stream(sp, docs: list[str]) -> np.ndarray:
    ids = []
    for ids_doc in sp.encode(docs):
        ids.append(sp.bos_id())
        ids.extend(ids_doc)
    return np.asarray(ids, dtype=np.int64)


# ------------------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------------------
def batches_from(stream: np.ndarray, n: int, ctx: int, gen: torch.Generator, device):
    starts = torch.randint(0, len(stream) - ctx - 1, (n,), generator=gen)
    x = torch.stack([torch.from_numpy(stream[s:s + ctx + 1]) for s in starts.tolist()])
    return x[:, :-1].to(device, non_blocking=True), x[:, 1:].to(device, non_blocking=True)


def heldout_windows(stream: np.ndarray, ctx: int, limit: int) -> torch.Tensor:
    n = min(limit, (len(stream) - 1) // ctx)
    return torch.from_numpy(np.stack([stream[i * ctx:i * ctx + ctx + 1] for i in range(n)]))


def autocast(device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def heldout_loss(model, windows, device, bs: int = 32) -> float:
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(windows), bs):
        w = windows[i:i + bs].to(device)
        with autocast(device):
            logits = model(w[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum")
        tot += loss.item()
        n += w[:, 1:].numel()
    model.train()
    return tot / n


def train_model(name: str, c: dict, stream, windows, device, seed: int, steps: int, teacher=None, distill=None):
    torch.manual_seed(seed)
    model = Llama(c).to(device)
    log("%s: %d parameters, %d steps" % (name, n_params(model), steps))
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=c["lr"], betas=(0.9, 0.95),
                            **({"fused": True} if device.type == "cuda" else {}))
    gen = torch.Generator().manual_seed(seed + 1)
    best, best_state, history = float("inf"), None, []
    ctx = c["context_length"]
    for step in range(1, steps + 1):
        lr = c["lr"] * step / c["warmup"] if step <= c["warmup"] else \
            c["min_lr"] + 0.5 * (c["lr"] - c["min_lr"]) * (1 + math.cos(math.pi * (step - c["warmup"]) / max(1, steps - c["warmup"])))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batches_from(stream, c["batch"], ctx, gen, device)
        with autocast(device):
            logits = model(x)
            ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
            if teacher is not None:
                with torch.no_grad():
                    tl = teacher(x).float()
                T = distill["temperature"]
                kl = F.kl_div(F.log_softmax(logits.float() / T, -1).reshape(-1, logits.shape[-1]),
                              F.log_softmax(tl / T, -1).reshape(-1, logits.shape[-1]), log_target=True,
                              reduction="batchmean") * T * T
                loss = kl + distill["ce_weight"] * ce
            else:
                loss = ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % c["eval_every"] == 0 or step == steps:
            hl = heldout_loss(model, windows, device)
            history.append({"step": step, "train_loss": round(loss.item(), 4), "train_ce": round(ce.item(), 4),
                            "heldout_ce": round(hl, 4)})
            log("%s step %d lr %.2e loss %.4f ce %.4f heldout %.4f" % (name, step, lr, loss.item(), ce.item(), hl))
            if hl < best:
                best = hl
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    return model, {"params": n_params(model), "steps": steps, "best_heldout_ce": round(best, 4), "history": history}


# ------------------------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def perplexity(model, tokens: np.ndarray, n_ctx: int, bos: int, device, max_chunks: int | None = None) -> dict:
    """llama-perplexity's method (and picospec-perplexity's): chunks of n_ctx tokens, the first replaced by BOS,
    scored on their second half."""
    n_chunks = len(tokens) // n_ctx if max_chunks is None else min(max_chunks, len(tokens) // n_ctx)
    nll, count, nll2 = 0.0, 0, 0.0
    first = n_ctx // 2
    for i in range(n_chunks):
        w = torch.from_numpy(tokens[i * n_ctx:(i + 1) * n_ctx].copy())
        w[0] = bos
        logits = model(w[None].to(device)).double()[0]
        lp = torch.log_softmax(logits, -1)
        tgt = w[first + 1:].to(device)
        v = -lp[first:n_ctx - 1].gather(1, tgt[:, None])[:, 0]
        nll += v.sum().item()
        nll2 += (v * v).sum().item()
        count += v.numel()
    mean = nll / count
    var = nll2 / count - mean * mean
    err = math.sqrt(max(var, 0.0) / max(1, count - 1))
    return {"ppl": math.exp(mean), "ppl_err": math.exp(mean) * err, "tokens_scored": count, "chunks": n_chunks,
            "n_ctx": n_ctx}


@torch.no_grad()
def acceptance(target, draft, windows, device, temps=(0.8, 1.0), bs: int = 16) -> dict:
    """Per-token acceptance estimates of (draft -> target) on held-out text: E[sum_v min(p_T, q_T)] at each
    temperature T (the chance a draft token drawn from q is accepted), and argmax agreement (T = 0)."""
    agree, mins, n = 0, {t: 0.0 for t in temps}, 0
    for i in range(0, len(windows), bs):
        x = windows[i:i + bs, :-1].to(device)
        tl, dl = target(x).double(), draft(x).double()
        agree += (tl.argmax(-1) == dl.argmax(-1)).sum().item()
        for t in temps:
            mins[t] += torch.minimum(torch.softmax(tl / t, -1), torch.softmax(dl / t, -1)).sum(-1).sum().item()
        n += x.numel()
    out = {"t0_argmax_agreement": agree / n}
    out.update({"t%s_sum_min" % t: mins[t] / n for t in temps})
    return out


@torch.no_grad()
def greedy(model, prompt: list[int], n: int, device, dtype) -> tuple[list[int], list[float]]:
    ids, margins = list(prompt), []
    for _ in range(n):
        logits = model(torch.tensor([ids], device=device))[0, -1].to(dtype)
        top = torch.topk(logits, 2)
        margins.append(float(top.values[0] - top.values[1]))
        ids.append(int(top.indices[0]))
    return ids[len(prompt):], margins


def make_goldens(cfg, sp, gguf_path: str, c: dict, device, out_path: str) -> None:
    """Greedy continuations and logits of the EXPORTED file (read back, dequantized), in float64."""
    m = Llama(c)
    m.load_gguf_state(read_gguf_tensors(gguf_path))
    m = m.to(device=device, dtype=torch.float64).eval()
    cases = []
    for p in cfg["golden"]["prompts"]:
        ids = [sp.bos_id()] + sp.encode(p)
        gen, margins = greedy(m, ids, cfg["golden"]["max_new"], device, torch.float64)
        cases.append({"prompt": p, "prompt_ids": ids, "greedy": gen, "margins": [round(x, 6) for x in margins]})
    ids = cases[0]["prompt_ids"]
    with torch.no_grad():
        logits = m(torch.tensor([ids], device=device))[0].cpu().numpy()
    doc = {"model": os.path.basename(gguf_path), "dtype": "float64 reference (PyTorch) on the dequantized GGUF weights",
           "cases": cases, "logits": {"prompt_ids": ids, "rows": [[round(float(v), 6) for v in r] for r in logits]}}
    with open(out_path, "w") as f:
        json.dump(doc, f)


HARD_CASES = ["Hello world", " leading space", "two  spaces   three", "trailing space ", "\n", "a\nb\n\nc",
              "tabs\tand\ttabs", "numbers 1234567890 and 3.14159", "don't won't I'm you're", "ALL CAPS SHOUTING",
              "caf\u00e9 na\u00efve r\u00e9sum\u00e9", "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0", "emoji \U0001F600\U0001F680",
              "combining e\u0301 and a\u0308", "code: for (int i = 0; i < n; ++i) { x[i] = 0; }", "", " ",
              "\u2581 literal block", "<s> not a control token </s>", "\u00a0non-breaking\u00a0space"]


def tokenizer_goldens(sp, held_docs: list[str], out_path: str) -> None:
    lines = [ln for d in held_docs for ln in d.split("\n") if ln.strip()][:300]
    cases = [{"text": t, "ids": sp.encode(t)} for t in HARD_CASES + lines + held_docs[:10]]
    with open(out_path, "w") as f:
        json.dump({"tokenizer": "SentencePiece (python sentencepiece %s) encode(text), no BOS" %
                   getattr(__import__("sentencepiece"), "__version__", "?"), "cases": cases}, f, ensure_ascii=False)


# ------------------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", ".train", "data"))
    ap.add_argument("--config", default=os.path.join(HERE, "config.json"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true", help="a few steps on the CPU, to test the script")
    a = ap.parse_args()
    with open(a.config) as f:
        cfg = json.load(f)
    os.makedirs(a.out, exist_ok=True)
    shutil.copy(a.config, os.path.join(a.out, "config.json"))
    seed = cfg["seed"]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = torch.device("cuda" if torch.cuda.is_available() and not a.smoke else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 evaluation stays fp32
        torch.backends.cudnn.allow_tf32 = False
    log("torch", torch.__version__, "device", device)

    read = lambda name: [json.loads(l)["text"] for l in open(os.path.join(a.data, name), encoding="utf-8")]  # noqa
    train_docs, held_docs = read("train.jsonl"), read("heldout.jsonl")
    with open(os.path.join(a.data, "heldout.txt"), encoding="utf-8") as f:
        held_text = f.read()
    if a.smoke:
        train_docs = train_docs[:300]
        for k in ("target", "draft"):
            cfg[k].update(steps=6, eval_every=3, batch=2)
        cfg["target"].update(dim=128, n_layers=2, n_heads=4, n_kv_heads=4, ffn_dim=256)
        cfg["context_length"] = 64
        cfg["golden"]["max_new"] = 4
        cfg["golden"]["prompts"] = cfg["golden"]["prompts"][:2]

    sp, tok = train_tokenizer(cfg, train_docs, a.out)
    V = sp.get_piece_size()
    train_stream, held_stream = encode_stream(sp, train_docs), encode_stream(sp, held_docs)
    log("tokenizer: %d pieces; train %d tokens, held-out %d tokens (%.2f chars/token)" %
        (V, len(train_stream), len(held_stream), sum(map(len, train_docs)) / len(train_stream)))
    ctx = cfg["context_length"]
    windows = heldout_windows(held_stream, ctx, 8 if a.smoke else 400)
    report = {"config": cfg, "tokenizer": {"vocab_size": V, "train_tokens": int(len(train_stream)),
                                           "heldout_tokens": int(len(held_stream))}}

    tc, dc = model_config(cfg, "target", V), model_config(cfg, "draft", V)
    target, report["target"] = train_model("target", tc, train_stream, windows, device, seed, cfg["target"]["steps"])
    draft_ce, report["draft_ce"] = train_model("draft_ce", dc, train_stream, windows, device, seed + 10,
                                               cfg["draft"]["steps"])
    draft_kd, report["draft_kd"] = train_model("draft_kd", dc, train_stream, windows, device, seed + 10,
                                               cfg["draft"]["steps"], teacher=target, distill=cfg["distill"])

    held_tokens = np.asarray([sp.bos_id()] + sp.encode(held_text), dtype=np.int64)
    for name, m in (("target", target), ("draft_ce", draft_ce), ("draft_kd", draft_kd)):
        report[name]["heldout_perplexity_torch_fp32"] = perplexity(m.float(), held_tokens, ctx, sp.bos_id(), device,
                                                                   4 if a.smoke else None)
        log(name, "perplexity", report[name]["heldout_perplexity_torch_fp32"])
    for name, d in (("draft_ce", draft_ce), ("draft_kd", draft_kd)):
        report[name]["acceptance_estimates"] = acceptance(target, d, windows[:64], device)
        log(name, "acceptance", report[name]["acceptance_estimates"])

    os.makedirs(os.path.join(a.out, "goldens"), exist_ok=True)
    tokenizer_goldens(sp, held_docs, os.path.join(a.out, "goldens", "tokenizer_sp.json"))
    outtype = cfg["export"]["outtype"]
    for name, m, c in (("target", target, tc), ("draft_ce", draft_ce, dc), ("draft_kd", draft_kd, dc)):
        d = os.path.join(a.out, name)
        os.makedirs(d, exist_ok=True)
        np.savez(os.path.join(d, "weights.npz"), **m.gguf_state())
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(c, f, indent=1)
        shutil.copy(os.path.join(a.out, "tokenizer.json"), os.path.join(d, "tokenizer.json"))
        gguf = os.path.join(a.out, name + ".gguf")
        export(d, gguf, outtype, c["name"] if name != "draft_ce" else c["name"] + "-ce")
        report[name]["gguf_bytes"] = os.path.getsize(gguf)
        make_goldens(cfg, sp, gguf, c, device, os.path.join(a.out, "goldens", name + "_greedy.json"))
        log("exported", gguf, report[name]["gguf_bytes"], "bytes; goldens written")
    report["seconds"] = round(time.time() - T0, 1)
    with open(os.path.join(a.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    log("done")


if __name__ == "__main__":
    main()
