"""Reading GGUF model files (llama.cpp's format) with numpy.

Parses the header, the metadata and the tensor table, and dequantizes the
block formats small LLaMA checkpoints ship in (F32, F16, BF16, Q4_0, Q4_1,
Q5_0, Q5_1, Q8_0, Q6_K, Q4_K) to float32. Tensors come back in PyTorch
orientation (GGUF lists dimensions innermost first).
"""

import struct

import numpy as np

_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9

# ggml type -> (elements per block, bytes per block)
_BLOCKS = {0: (1, 4), 1: (1, 2), 30: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22),
           7: (32, 24), 8: (32, 34), 12: (256, 144), 14: (256, 210)}
TYPE_NAMES = {0: "F32", 1: "F16", 30: "BF16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1",
              8: "Q8_0", 12: "Q4_K", 14: "Q6_K"}


class GGUFError(ValueError):
    pass


class _Reader:
    def __init__(self, data, path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n):
        if self.pos + n > len(self.data):
            raise GGUFError(f"{self.path}: truncated at byte {self.pos} (needed {n} more)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def scalar(self, kind):
        fmt = _SCALAR[kind]
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        n = self.scalar(10)
        return bytes(self.take(n)).decode("utf-8", errors="replace")

    def value(self, kind):
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            sub, n = self.scalar(4), self.scalar(10)
            if sub in _SCALAR and sub != 7:
                fmt = np.dtype(_SCALAR[sub])
                return np.frombuffer(self.take(n * fmt.itemsize), fmt).copy()
            return [self.value(sub) for _ in range(n)]
        if kind not in _SCALAR:
            raise GGUFError(f"{self.path}: unknown metadata type {kind}")
        return self.scalar(kind)


class GGUF:
    """A parsed GGUF file: `metadata` (dict) and `tensors` (name -> info)."""

    def __init__(self, path):
        self.path = path
        self.data = np.memmap(path, dtype=np.uint8, mode="r")
        r = _Reader(self.data, path)
        if bytes(r.take(4)) != b"GGUF":
            raise GGUFError(f"{path}: not a GGUF file (bad magic)")
        version = r.scalar(4)
        if version not in (2, 3):
            raise GGUFError(f"{path}: unsupported GGUF version {version}")
        n_tensors, n_kv = r.scalar(10), r.scalar(10)
        self.metadata = {}
        for _ in range(n_kv):
            key = r.string()
            self.metadata[key] = r.value(r.scalar(4))
        self.tensors = {}
        for _ in range(n_tensors):
            name = r.string()
            dims = [r.scalar(10) for _ in range(r.scalar(4))]
            kind, offset = r.scalar(4), r.scalar(10)
            self.tensors[name] = (list(reversed(dims)), kind, offset)
        align = int(self.metadata.get("general.alignment", 32))
        self.base = (r.pos + align - 1) // align * align

    def type_name(self, name):
        return TYPE_NAMES.get(self.tensors[name][1], str(self.tensors[name][1]))

    def tensor(self, name):
        """The tensor `name` as float32 in PyTorch orientation."""
        shape, kind, offset = self.tensors[name]
        if kind not in _BLOCKS:
            raise GGUFError(f"{self.path}: tensor {name} has unsupported type {kind}")
        n = int(np.prod(shape)) if shape else 1
        per, size = _BLOCKS[kind]
        nbytes = n // per * size
        start = self.base + offset
        if n % per or start + nbytes > len(self.data):
            raise GGUFError(f"{self.path}: tensor {name} does not fit the file")
        raw = np.asarray(self.data[start:start + nbytes])
        return _dequantize(kind, raw, n).astype(np.float32, copy=False).reshape(shape)


def _f16(raw, count):
    return raw[:, :2 * count].copy().view(np.float16).astype(np.float32)


def _dequantize(kind, raw, n):
    if kind == 0:
        return raw.view(np.float32).copy()
    if kind == 1:
        return raw.view(np.float16).astype(np.float32)
    if kind == 30:
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    per, size = _BLOCKS[kind]
    b = raw.reshape(-1, size)
    if kind in (2, 3, 6, 7, 8):
        d = _f16(b, 1)
        if kind == 8:
            return (b[:, 2:].view(np.int8).astype(np.float32) * d).reshape(-1)
        m = _f16(b[:, 2:], 1) if kind in (3, 7) else None
        qs = b[:, {2: 2, 3: 4, 6: 6, 7: 8}[kind]:]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int32)
        if kind in (6, 7):  # fifth bits, little-endian u32 before the nibbles
            hbits = b[:, {6: 2, 7: 4}[kind]:{6: 6, 7: 8}[kind]].copy().view(np.uint32)
            high = (hbits[:, None] >> np.arange(32, dtype=np.uint32)) & 1
            q = q | (high.astype(np.int32) << 4)
        if kind in (2, 6):
            q = q - (8 if kind == 2 else 16)
            return (q * d).reshape(-1)
        return (q * d + m).reshape(-1)
    if kind == 14:  # Q6_K: ql[128], qh[64], scales[16] int8, d f16
        ql, qh = b[:, :128].astype(np.int32), b[:, 128:192].astype(np.int32)
        sc = b[:, 192:208].view(np.int8).astype(np.float32)
        d = b[:, 208:210].copy().view(np.float16).astype(np.float32)
        out = np.empty((b.shape[0], 256), np.float32)
        for half in range(2):
            l, h = ql[:, 64 * half:64 * half + 64], qh[:, 32 * half:32 * half + 32]
            s = sc[:, 8 * half:8 * half + 8]
            q1 = (l[:, :32] & 0xF) | ((h & 3) << 4)
            q2 = (l[:, 32:] & 0xF) | (((h >> 2) & 3) << 4)
            q3 = (l[:, :32] >> 4) | (((h >> 4) & 3) << 4)
            q4 = (l[:, 32:] >> 4) | (((h >> 6) & 3) << 4)
            for j, q in enumerate((q1, q2, q3, q4)):
                scale = np.repeat(s[:, 2 * j:2 * j + 2], 16, axis=1)
                out[:, 128 * half + 32 * j:128 * half + 32 * j + 32] = d * scale * (q - 32)
        return out.reshape(-1)
    if kind == 12:  # Q4_K: d, dmin f16, scales[12] (6-bit), qs[128]
        d = _f16(b, 1)
        dmin = _f16(b[:, 2:], 1)
        s = b[:, 4:16].astype(np.int32)
        qs = b[:, 16:].astype(np.int32)
        sc = np.empty((b.shape[0], 8), np.float32)
        mn = np.empty((b.shape[0], 8), np.float32)
        for j in range(8):
            if j < 4:
                sc[:, j], mn[:, j] = s[:, j] & 63, s[:, j + 4] & 63
            else:
                sc[:, j] = (s[:, j + 4] & 0xF) | ((s[:, j - 4] >> 6) << 4)
                mn[:, j] = (s[:, j + 4] >> 4) | ((s[:, j] >> 6) << 4)
        out = np.empty((b.shape[0], 256), np.float32)
        for j in range(4):
            chunk = qs[:, 32 * j:32 * j + 32]
            out[:, 64 * j:64 * j + 32] = d * sc[:, 2 * j:2 * j + 1] * (chunk & 0xF) - dmin * mn[:, 2 * j:2 * j + 1]
            out[:, 64 * j + 32:64 * j + 64] = d * sc[:, 2 * j + 1:2 * j + 2] * (chunk >> 4) - dmin * mn[:, 2 * j + 1:2 * j + 2]
        return out.reshape(-1)
    raise GGUFError(f"unsupported type {kind}")
