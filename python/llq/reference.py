"""Independent numpy references for llq's quantizers and packing.

These follow the project's written conventions (docs/ARCHITECTURE.md,
"Numerics"), not the C++ code, so that tests compare two implementations.
All quantizer arithmetic is float32, as in the compiler.
"""

import numpy as np


def num_groups(k, group):
    return 1 if group == 0 else -(-k // group)


def _round_half_away(x):
    t = np.trunc(x)
    f = x - t  # exact in float32
    return t + (f >= 0.5) - (f <= -0.5)


def _f16_scale(s):
    """Rounds scales to float16, then keeps them in [2^-14, 65504]."""
    s16 = np.maximum(s, np.float32(1e-5)).astype(np.float16)
    tiny = np.float16(np.finfo(np.float16).tiny)
    s16 = np.where(np.isnan(s16) | (s16 < tiny), tiny, s16)
    return np.minimum(s16, np.float16(65504))


def rtn_quantize(w, bits, group, sym=False):
    """Round-to-nearest quantization of an N x K float32 matrix.

    Returns (codes uint8 N x K, scales float16 N x G, zeros uint8 N x G or
    None). Groups run along K; the last group may be short.
    """
    w = np.asarray(w, dtype=np.float32)
    n, k = w.shape
    g = num_groups(k, group)
    size = k if group == 0 else group
    codes = np.empty((n, k), np.uint8)
    scales = np.empty((n, g), np.float16)
    zeros = None if sym else np.empty((n, g), np.uint8)
    maxq = (1 << bits) - 1
    for j in range(g):
        cols = slice(j * size, min(k, (j + 1) * size))
        x = w[:, cols]
        if sym:
            half = (1 << (bits - 1))
            s = _f16_scale(np.abs(x).max(axis=1) / np.float32(half - 1))
            q = np.clip(_round_half_away(x / s.astype(np.float32)[:, None]),
                        -half, half - 1) + half
        else:
            # The grid always contains 0.
            mn = np.minimum(x.min(axis=1), np.float32(0))
            mx = np.maximum(x.max(axis=1), np.float32(0))
            s = _f16_scale((mx - mn) / np.float32(maxq))
            s32 = s.astype(np.float32)
            z = np.clip(_round_half_away(-mn / s32), 0, maxq)
            q = np.clip(_round_half_away(x / s32[:, None]) + z[:, None], 0, maxq)
            zeros[:, j] = z
        scales[:, j] = s
        codes[:, cols] = q
    return codes, scales, zeros


def dequantize(codes, scales, zeros, bits, group):
    """(code - zero) * scale per group, as float32."""
    n, k = codes.shape
    size = k if group == 0 else group
    idx = np.arange(k) // size
    s = scales.astype(np.float32)[:, idx]
    z = (np.float32(1 << (bits - 1)) if zeros is None
         else zeros.astype(np.float32)[:, idx])
    return (codes.astype(np.float32) - z) * s


def pack_bitstream(codes, bits):
    """Packs each row of codes into little-endian 32-bit words."""
    n, k = codes.shape
    words = -(-k * bits // 32)
    bitpos = np.arange(k) * bits
    out = np.zeros((n, words), np.uint64)
    c = codes.astype(np.uint64)
    for b in range(bits):
        pos = bitpos + b
        bit = (c >> np.uint64(b)) & np.uint64(1)
        np.add.at(out, (slice(None), pos // 32),
                  bit << (pos % 32).astype(np.uint64))
    return out.astype(np.uint32)


def unpack_bitstream(words, k, bits):
    n = words.shape[0]
    w = words.astype(np.uint64)
    codes = np.zeros((n, k), np.uint64)
    bitpos = np.arange(k) * bits
    for b in range(bits):
        pos = bitpos + b
        bit = (w[:, pos // 32] >> (pos % 32).astype(np.uint64)) & np.uint64(1)
        codes |= bit << np.uint64(b)
    return codes.astype(np.uint8)
