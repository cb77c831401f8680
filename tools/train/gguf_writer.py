"""A small GGUF (v3) writer with F32, F16 and Q8_0 tensors, in Python with NumPy only.

Used by export_gguf.py (our own trained models). The format: "GGUF", version 3, tensor count, metadata count,
the metadata key/value pairs, the tensor infos (name, dimensions innermost first, type, offset), padding to the
alignment, then each tensor's data at its offset (each offset a multiple of the alignment).

Q8_0 is ggml's block format: 32 weights per block, an fp16 scale d = max|x| / 127 followed by 32 int8 values
q = round(x / d) (rounding half away from zero), dequantized as d * q.
"""
from __future__ import annotations

import struct
from typing import Iterable

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGNMENT = 32

# metadata value types
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STRING, T_ARRAY, T_U64, T_I64, T_F64 = range(13)
# tensor types (ggml_type)
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8
TYPE_NAMES = {"f32": GGML_F32, "f16": GGML_F16, "q8_0": GGML_Q8_0}
# general.file_type (llama_ftype)
FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7}


def quantize_q8_0(x: np.ndarray) -> np.ndarray:
    """Rows of float32 (last dimension a multiple of 32) -> the Q8_0 bytes, row after row."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[-1] % 32 != 0:
        raise ValueError("q8_0 needs rows whose length is a multiple of 32, got %d" % x.shape[-1])
    blocks = x.reshape(-1, 32)
    amax = np.abs(blocks).max(axis=1)
    d = (amax / np.float32(127.0)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1.0) / d, np.float32(0.0)).astype(np.float32)
    scaled = blocks * inv[:, None]
    q = (np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))).astype(np.int8)
    out = np.empty((blocks.shape[0], 34), dtype=np.uint8)
    out[:, 0:2] = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.reshape(-1)


def dequantize_q8_0(raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of quantize_q8_0 (what a runtime that dequantizes computes with)."""
    b = np.asarray(raw, dtype=np.uint8).reshape(-1, 34)
    d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
    q = b[:, 2:].view(np.int8).astype(np.float32)
    return (d * q).reshape(shape)


class GGUFWriter:
    def __init__(self) -> None:
        self.kv: list[bytes] = []
        self.tensors: list[tuple[str, tuple[int, ...], int, bytes]] = []

    # -- metadata ------------------------------------------------------------------------------------------
    @staticmethod
    def _str(s: str) -> bytes:
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def _add(self, key: str, vtype: int, payload: bytes) -> None:
        self.kv.append(self._str(key) + struct.pack("<I", vtype) + payload)

    def add_string(self, key: str, v: str) -> None:
        self._add(key, T_STRING, self._str(v))

    def add_u32(self, key: str, v: int) -> None:
        self._add(key, T_U32, struct.pack("<I", v))

    def add_i32(self, key: str, v: int) -> None:
        self._add(key, T_I32, struct.pack("<i", v))

    def add_f32(self, key: str, v: float) -> None:
        self._add(key, T_F32, struct.pack("<f", v))

    def add_bool(self, key: str, v: bool) -> None:
        self._add(key, T_BOOL, struct.pack("<B", 1 if v else 0))

    def add_string_array(self, key: str, items: Iterable[str]) -> None:
        items = list(items)
        self._add(key, T_ARRAY, struct.pack("<IQ", T_STRING, len(items)) + b"".join(self._str(s) for s in items))

    def add_f32_array(self, key: str, items: Iterable[float]) -> None:
        a = np.asarray(list(items), dtype="<f4")
        self._add(key, T_ARRAY, struct.pack("<IQ", T_F32, a.size) + a.tobytes())

    def add_i32_array(self, key: str, items: Iterable[int]) -> None:
        a = np.asarray(list(items), dtype="<i4")
        self._add(key, T_ARRAY, struct.pack("<IQ", T_I32, a.size) + a.tobytes())

    # -- tensors -------------------------------------------------------------------------------------------
    def add_tensor(self, name: str, array: np.ndarray, type_name: str = "f32") -> None:
        """`array` in PyTorch's layout ([rows, cols] for a matrix); GGUF lists dimensions innermost first."""
        a = np.ascontiguousarray(array, dtype=np.float32)
        if a.ndim == 1 or type_name == "f32":
            ttype, data = GGML_F32, a.astype("<f4").tobytes()
        elif type_name == "f16":
            ttype, data = GGML_F16, a.astype("<f2").tobytes()
        elif type_name == "q8_0":
            ttype, data = GGML_Q8_0, quantize_q8_0(a).tobytes()
        else:
            raise ValueError("unknown tensor type " + type_name)
        self.tensors.append((name, tuple(reversed(a.shape)), ttype, data))

    def write(self, path: str) -> None:
        header = GGUF_MAGIC + struct.pack("<IQQ", GGUF_VERSION, len(self.tensors), len(self.kv)) + b"".join(self.kv)
        infos, offset = [], 0
        for name, dims, ttype, data in self.tensors:
            infos.append(self._str(name) + struct.pack("<I", len(dims)) + struct.pack("<%dQ" % len(dims), *dims) +
                         struct.pack("<IQ", ttype, offset))
            offset += (len(data) + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
        head = header + b"".join(infos)
        head += b"\0" * ((-len(head)) % ALIGNMENT)
        with open(path, "wb") as f:
            f.write(head)
            for _, _, _, data in self.tensors:
                f.write(data)
                f.write(b"\0" * ((-len(data)) % ALIGNMENT))


def read_gguf_tensors(path: str) -> dict[str, np.ndarray]:
    """Reads back the tensors of a GGUF file this module wrote (F32, F16, Q8_0) as float32 arrays in PyTorch's
    layout; metadata is parsed only to skip it."""
    with open(path, "rb") as f:
        buf = f.read()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return v if len(v) > 1 else v[0]

    def skip_value(vtype: int) -> None:
        nonlocal pos
        sizes = {T_U8: 1, T_I8: 1, T_U16: 2, T_I16: 2, T_U32: 4, T_I32: 4, T_F32: 4, T_BOOL: 1, T_U64: 8, T_I64: 8,
                 T_F64: 8}
        if vtype == T_STRING:
            n = take("Q")
            pos += n
        elif vtype == T_ARRAY:
            et, n = take("IQ")
            for _ in range(n):
                skip_value(et)
        else:
            pos += sizes[vtype]

    if buf[:4] != GGUF_MAGIC:
        raise ValueError(path + ": not a GGUF file")
    pos = 4
    _version, n_tensors, n_kv = take("IQQ")
    for _ in range(n_kv):
        klen = take("Q")  # key
        pos += klen
        skip_value(take("I"))
    infos = []
    for _ in range(n_tensors):
        n = take("Q")
        name = buf[pos:pos + n].decode()
        pos += n
        nd = take("I")
        dims = [take("Q") for _ in range(nd)]
        ttype, off = take("IQ")
        infos.append((name, dims, ttype, off))
    base = (pos + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
    out = {}
    for name, dims, ttype, off in infos:
        shape = tuple(reversed(dims))
        count = int(np.prod(shape))
        start = base + off
        if ttype == GGML_F32:
            a = np.frombuffer(buf, dtype="<f4", count=count, offset=start).reshape(shape)
        elif ttype == GGML_F16:
            a = np.frombuffer(buf, dtype="<f2", count=count, offset=start).astype(np.float32).reshape(shape)
        elif ttype == GGML_Q8_0:
            a = dequantize_q8_0(np.frombuffer(buf, dtype=np.uint8, count=count // 32 * 34, offset=start), shape)
        else:
            raise ValueError("%s: tensor %s has type %d, which this reader does not handle" % (path, name, ttype))
        out[name] = np.array(a, dtype=np.float32)
    return out
