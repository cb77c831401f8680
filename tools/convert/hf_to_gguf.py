#!/usr/bin/env python3
"""Hugging Face checkpoint -> GGUF, for picospec's tests (Python 3 + NumPy only).

    python3 tools/convert/hf_to_gguf.py MODEL_DIR -o OUT.gguf [--vocab-only] [--outtype f32|f16|q8_0]

MODEL_DIR holds config.json, *.safetensors (parsed here by hand), tokenizer.json and tokenizer_config.json.
With --vocab-only only the tokenizer metadata is written, and MODEL_DIR may hold just the two tokenizer files.

Writes what llama.cpp's convert_hf_to_gguf.py writes for three families:
  LlamaForCausalLM  -> general.architecture "llama"; Q/K projection rows permuted for the interleaved rotation;
                       Llama 3.1/3.2 "llama3" RoPE scaling as a rope_freqs.weight tensor of per-frequency factors
  Qwen2ForCausalLM  -> "qwen2" (Q/K/V biases; rows as in the checkpoint, rotated NEOX-style by the runtime)
  Qwen3ForCausalLM  -> "qwen3" (per-head Q/K RMSNorm weights attn_q_norm / attn_k_norm; head_dim from config)
Tied embeddings (no lm_head.weight in the checkpoint) write no output.weight.
The tokenizer is byte-level BPE ("gpt2"): tokens in the byte alphabet, token types (control for special added
tokens, user-defined for other added tokens, unused for ids the tokenizer does not define), merges, pre-tokenizer
name ("llama-bpe" or "qwen2", recognised from tokenizer.json's Split regex), special ids and add_bos_token as
gguf-py's SpecialVocab derives them, and the chat template.
--outtype: f32 (default), f16 or q8_0 for 2-D weights; 1-D tensors (norms, biases, rope factors) stay F32.
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np

GGUF_MAGIC = 0x46554747
GGUF_VERSION = 3
ALIGNMENT = 32

# GGUF value types
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STRING, T_ARRAY, T_U64, T_I64, T_F64 = range(13)
# ggml tensor types
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8
# token types
TOK_NORMAL, TOK_UNKNOWN, TOK_CONTROL, TOK_USER_DEFINED, TOK_UNUSED, TOK_BYTE = 1, 2, 3, 4, 5, 6
# llama.cpp file types (general.file_type)
FTYPE = {"f32": 0, "f16": 1, "q8_0": 7}

# tokenizer.json Split regexes -> llama.cpp pre-tokenizer names
PRE_TOKENIZERS = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",
}

ARCHS = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "Qwen3ForCausalLM": "qwen3"}


class ConvertError(Exception):
    pass


# ----------------------------------------------------------------------------------------------------------------
# GGUF writing
# ----------------------------------------------------------------------------------------------------------------

class GgufWriter:
    def __init__(self):
        self.kv = []       # (key, bytes of type + value)
        self.tensors = []  # (name, dims innermost first, ggml type, raw bytes)

    @staticmethod
    def _str(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def _add(self, key, vtype, payload):
        if any(k == key for k, _ in self.kv):
            raise ConvertError(f"duplicate key {key}")
        self.kv.append((key, struct.pack("<I", vtype) + payload))

    def u32(self, key, v):
        self._add(key, T_U32, struct.pack("<I", int(v)))

    def f32(self, key, v):
        self._add(key, T_F32, struct.pack("<f", float(v)))

    def boolean(self, key, v):
        self._add(key, T_BOOL, struct.pack("<B", 1 if v else 0))

    def string(self, key, v):
        self._add(key, T_STRING, self._str(v))

    def string_array(self, key, values):
        self._add(key, T_ARRAY, struct.pack("<IQ", T_STRING, len(values)) + b"".join(self._str(s) for s in values))

    def i32_array(self, key, values):
        self._add(key, T_ARRAY, struct.pack("<IQ", T_I32, len(values)) + np.asarray(values, "<i4").tobytes())

    def f32_array(self, key, values):
        self._add(key, T_ARRAY, struct.pack("<IQ", T_F32, len(values)) + np.asarray(values, "<f4").tobytes())

    def tensor(self, name, array, ggml_type):
        a = np.ascontiguousarray(array, dtype=np.float32)
        dims = list(reversed(a.shape))  # ggml: innermost first
        if ggml_type == GGML_F32:
            raw = a.astype("<f4").tobytes()
        elif ggml_type == GGML_F16:
            raw = a.astype("<f2").tobytes()
        elif ggml_type == GGML_Q8_0:
            raw = quantize_q8_0(a)
        else:
            raise ConvertError(f"unsupported tensor type {ggml_type}")
        self.tensors.append((name, dims, ggml_type, raw))

    def write(self, path):
        out = bytearray()
        out += struct.pack("<IIQQ", GGUF_MAGIC, GGUF_VERSION, len(self.tensors), len(self.kv))
        for key, payload in self.kv:
            out += self._str(key) + payload
        offset = 0
        offsets = []
        for name, dims, ggml_type, raw in self.tensors:
            offsets.append(offset)
            out += self._str(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
            out += struct.pack("<IQ", ggml_type, offset)
            offset += len(raw)
            offset += (-offset) % ALIGNMENT
        out += b"\0" * ((-len(out)) % ALIGNMENT)
        for (name, dims, ggml_type, raw), off in zip(self.tensors, offsets):
            out += raw
            out += b"\0" * ((-len(raw)) % ALIGNMENT)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(out)
        os.replace(tmp, path)


def quantize_q8_0(a):
    """ggml's Q8_0: blocks of 32 values, an F16 scale d = max|x| / 127, int8 q = round(x / d)."""
    if a.shape[-1] % 32 != 0:
        raise ConvertError(f"q8_0 needs rows that are a multiple of 32 (got {a.shape[-1]})")
    blocks = a.reshape(-1, 32).astype(np.float32)
    amax = np.abs(blocks).max(axis=1, keepdims=True)
    d = amax / 127.0
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(d == 0, 0.0, 1.0 / d)
    x = (blocks * inv.astype(np.float32)).astype(np.float32)
    q = (np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))).astype(np.int8)  # roundf: half away from zero
    rec = np.zeros(blocks.shape[0], dtype=[("d", "<f2"), ("q", "i1", (32,))])
    rec["d"] = d[:, 0].astype(np.float16)
    rec["q"] = q
    return rec.tobytes()


# ----------------------------------------------------------------------------------------------------------------
# safetensors
# ----------------------------------------------------------------------------------------------------------------

def read_safetensors(path):
    """Tensors of one .safetensors file as float32 arrays (F32, F16, BF16)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ConvertError(f"{path}: too short for a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ConvertError(f"{path}: header length {n} beyond the file")
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (b, e) = info["dtype"], info["shape"], info["data_offsets"]
        if not (0 <= b <= e <= len(data) - base):
            raise ConvertError(f"{path}: tensor {name} data outside the file")
        raw = data[base + b:base + e]
        if dtype == "F32":
            a = np.frombuffer(raw, "<f4")
        elif dtype == "F16":
            a = np.frombuffer(raw, "<f2").astype(np.float32)
        elif dtype == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ConvertError(f"{path}: tensor {name} has unsupported dtype {dtype}")
        if a.size != math.prod(shape):
            raise ConvertError(f"{path}: tensor {name} has {a.size} values for shape {shape}")
        out[name] = a.reshape(shape)
    return out


def load_checkpoint(model_dir):
    files = sorted(f for f in os.listdir(model_dir) if f.endswith(".safetensors"))
    if not files:
        raise ConvertError(f"{model_dir}: no .safetensors files")
    tensors = {}
    for f in files:
        tensors.update(read_safetensors(os.path.join(model_dir, f)))
    return tensors


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------------------------

def load_json(path, required=True):
    if not os.path.isfile(path):
        if required:
            raise ConvertError(f"{path}: missing")
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def pre_tokenizer_name(tok):
    pre = tok.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    for p in parts:
        if p.get("type") == "Split":
            regex = p.get("pattern", {}).get("Regex")
            if regex in PRE_TOKENIZERS:
                return PRE_TOKENIZERS[regex]
            raise ConvertError(f"unknown pre-tokenizer regex {regex!r} (known: llama-bpe, qwen2)")
    raise ConvertError("tokenizer.json has no Split pre-tokenizer (not a Llama 3 / Qwen2 byte-level BPE tokenizer)")


def add_vocab(w, model_dir, config):
    tok = load_json(os.path.join(model_dir, "tokenizer.json"))
    tcfg = load_json(os.path.join(model_dir, "tokenizer_config.json"), required=False) or {}
    model = tok.get("model", {})
    if model.get("type") != "BPE":
        raise ConvertError("tokenizer.json: only BPE models are supported")
    vocab = dict(model["vocab"])
    added = {a["content"]: a for a in tok.get("added_tokens", [])}
    for content, a in added.items():
        vocab[content] = a["id"]
    reverse = {i: t for t, i in vocab.items()}
    n_vocab = config.get("vocab_size") if config else None
    if n_vocab is None:
        n_vocab = max(reverse) + 1
    if max(reverse) >= n_vocab:
        raise ConvertError(f"token id {max(reverse)} >= vocab_size {n_vocab}")
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(TOK_UNUSED)
            continue
        t = reverse[i]
        if t in added and added[t]["id"] == i:
            types.append(TOK_CONTROL if added[t].get("special") else TOK_USER_DEFINED)
        else:
            types.append(TOK_NORMAL)
        tokens.append(t)

    merges = model.get("merges") or []
    if merges and isinstance(merges[0], list):  # new format: pairs; spaces inside a piece become U+0120
        merges = [" ".join("".join(chr(ord(c) + 256) if c == " " else c for c in part) for part in pair)
                  for pair in merges]

    w.string("tokenizer.ggml.model", "gpt2")
    w.string("tokenizer.ggml.pre", pre_tokenizer_name(tok))
    w.string_array("tokenizer.ggml.tokens", tokens)
    w.i32_array("tokenizer.ggml.token_type", types)
    w.string_array("tokenizer.ggml.merges", merges)

    # Special ids as gguf-py's SpecialVocab: tokenizer_config's *_token matched against the added tokens, then
    # config.json's *_token_id for the ones still missing.
    ids = {}
    for typ in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        entry = tcfg.get(f"{typ}_token")
        content = entry.get("content") if isinstance(entry, dict) else entry
        if isinstance(content, str):
            hit = next((a["id"] for a in tok.get("added_tokens", []) if a["content"] == content), None)
            if isinstance(hit, int) and typ not in ids:
                ids[typ] = hit
    for typ in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        v = (config or {}).get(f"{typ}_token_id")
        if isinstance(v, int) and v >= 0 and v < n_vocab and typ not in ids:
            ids[typ] = v
    key = {"bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id", "sep": "seperator_token_id",
           "pad": "padding_token_id", "cls": "cls_token_id", "mask": "mask_token_id"}
    for typ, v in ids.items():
        w.u32(f"tokenizer.ggml.{key[typ]}", v)
    for typ in ("bos", "eos"):
        if isinstance(tcfg.get(f"add_{typ}_token"), bool):
            w.boolean(f"tokenizer.ggml.add_{typ}_token", tcfg[f"add_{typ}_token"])
    if isinstance(tcfg.get("chat_template"), str):
        w.string("tokenizer.chat_template", tcfg["chat_template"])
    return n_vocab


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------

def permute(w, n_head, n_head_kv):
    """llama.cpp's LlamaModel.permute: HF's half-split rotation order -> ggml's interleaved pairs."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rope_settings(cfg):
    """(rope_theta, scaling dict or None) from transformers 4 (rope_theta, rope_scaling) or 5 (rope_parameters)."""
    rp = cfg.get("rope_parameters") or {}
    theta = cfg.get("rope_theta", rp.get("rope_theta"))
    rs = cfg.get("rope_scaling") or rp
    kind = str(rs.get("rope_type", rs.get("type", "default"))).lower() if rs else "default"
    return theta, (rs if kind != "default" else None)


def llama3_rope_factors(cfg, head_dim):
    base, rs = rope_settings(cfg)
    base = base if base is not None else 10000.0
    freqs = 1.0 / (base ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    factor = rs.get("factor", 8.0)
    low = rs.get("low_freq_factor", 1.0)
    high = rs.get("high_freq_factor", 4.0)
    old_ctx = rs.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def add_model(w, cfg, tensors, outtype):
    archs = cfg.get("architectures") or []
    if not archs or archs[0] not in ARCHS:
        raise ConvertError(f"config.json architectures {archs} not supported (known: {', '.join(ARCHS)})")
    arch = ARCHS[archs[0]]
    n_layer = cfg["num_hidden_layers"]
    n_embd = cfg["hidden_size"]
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_head)
    head_dim = cfg.get("head_dim") or n_embd // n_head
    w.string("general.architecture", arch)
    w.string("general.name", cfg.get("_name_or_path") or archs[0])
    w.u32(f"{arch}.block_count", n_layer)
    w.u32(f"{arch}.context_length", cfg["max_position_embeddings"])
    w.u32(f"{arch}.embedding_length", n_embd)
    w.u32(f"{arch}.feed_forward_length", cfg["intermediate_size"])
    w.u32(f"{arch}.attention.head_count", n_head)
    w.u32(f"{arch}.attention.head_count_kv", n_kv)
    theta, scaling = rope_settings(cfg)
    if theta is not None:
        w.f32(f"{arch}.rope.freq_base", theta)
    w.f32(f"{arch}.attention.layer_norm_rms_epsilon", cfg["rms_norm_eps"])
    if cfg.get("head_dim") is not None:
        w.u32(f"{arch}.attention.key_length", cfg["head_dim"])
        w.u32(f"{arch}.attention.value_length", cfg["head_dim"])
    w.u32("general.file_type", FTYPE[outtype])
    if arch == "llama":
        w.u32("llama.vocab_size", cfg["vocab_size"])
        w.u32("llama.rope.dimension_count", head_dim)

    def mat_type(a):
        if a.ndim != 2 or outtype == "f32":
            return GGML_F32
        if outtype == "f16":
            return GGML_F16
        return GGML_Q8_0 if a.shape[-1] % 32 == 0 else GGML_F16

    def put(name, a):
        w.tensor(name, a, mat_type(a))

    used = set()

    def get(name):
        if name not in tensors:
            raise ConvertError(f"checkpoint has no tensor {name}")
        used.add(name)
        return tensors[name]

    if scaling is not None:
        kind = str(scaling.get("rope_type", scaling.get("type", ""))).lower()
        if arch == "llama" and kind == "llama3":
            w.tensor("rope_freqs.weight", llama3_rope_factors(cfg, head_dim), GGML_F32)
        elif arch == "llama" and kind == "linear":
            w.string("llama.rope.scaling.type", "linear")
            w.f32("llama.rope.scaling.factor", scaling["factor"])
        else:
            raise ConvertError(f"RoPE scaling '{kind}' for {arch} is not supported (known: llama3 and linear for llama)")
    put("token_embd.weight", get("model.embed_tokens.weight"))
    w.tensor("output_norm.weight", get("model.norm.weight"), GGML_F32)
    if "lm_head.weight" in tensors and not cfg.get("tie_word_embeddings", False):
        put("output.weight", get("lm_head.weight"))
    else:
        used.add("lm_head.weight")
    for l in range(n_layer):
        p, o = f"model.layers.{l}.", f"blk.{l}."
        w.tensor(o + "attn_norm.weight", get(p + "input_layernorm.weight"), GGML_F32)
        q, k = get(p + "self_attn.q_proj.weight"), get(p + "self_attn.k_proj.weight")
        if arch == "llama":
            q, k = permute(q, n_head, n_head), permute(k, n_head, n_kv)
        put(o + "attn_q.weight", q)
        put(o + "attn_k.weight", k)
        put(o + "attn_v.weight", get(p + "self_attn.v_proj.weight"))
        put(o + "attn_output.weight", get(p + "self_attn.o_proj.weight"))
        for hf, gg in (("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v")):
            if p + f"self_attn.{hf}.bias" in tensors:
                b = get(p + f"self_attn.{hf}.bias")
                if arch == "llama" and hf != "v_proj":
                    b = permute(b, n_head, n_head if hf == "q_proj" else n_kv)
                w.tensor(o + f"{gg}.bias", b, GGML_F32)
        if arch == "qwen3":
            w.tensor(o + "attn_q_norm.weight", get(p + "self_attn.q_norm.weight"), GGML_F32)
            w.tensor(o + "attn_k_norm.weight", get(p + "self_attn.k_norm.weight"), GGML_F32)
        w.tensor(o + "ffn_norm.weight", get(p + "post_attention_layernorm.weight"), GGML_F32)
        put(o + "ffn_gate.weight", get(p + "mlp.gate_proj.weight"))
        put(o + "ffn_up.weight", get(p + "mlp.up_proj.weight"))
        put(o + "ffn_down.weight", get(p + "mlp.down_proj.weight"))
    left = sorted(set(tensors) - used)
    if left:
        raise ConvertError(f"checkpoint tensors not converted: {', '.join(left[:5])}")


def convert(model_dir, out, vocab_only=False, outtype="f32"):
    w = GgufWriter()
    config = load_json(os.path.join(model_dir, "config.json"), required=not vocab_only)
    if vocab_only:
        arch = ARCHS.get(((config or {}).get("architectures") or [""])[0])
        if arch is None:  # from the tokenizer family, as llama.cpp's vocab-only files are named
            tok = load_json(os.path.join(model_dir, "tokenizer.json"))
            arch = "qwen2" if pre_tokenizer_name(tok) == "qwen2" else "llama"
        w.string("general.architecture", arch)
        w.string("general.name", os.path.basename(os.path.abspath(model_dir)))
    else:
        add_model(w, config, load_checkpoint(model_dir), outtype)
    if os.path.isfile(os.path.join(model_dir, "tokenizer.json")):
        add_vocab(w, model_dir, config)
    elif vocab_only:
        raise ConvertError(f"{model_dir}: no tokenizer.json")
    w.write(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("-o", "--outfile", required=True)
    ap.add_argument("--vocab-only", action="store_true")
    ap.add_argument("--outtype", choices=["f32", "f16", "q8_0"], default="f32")
    a = ap.parse_args(argv)
    try:
        convert(a.model_dir, a.outfile, a.vocab_only, a.outtype)
    except (ConvertError, OSError, KeyError, ValueError) as e:
        print(f"hf_to_gguf: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
