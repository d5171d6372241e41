"""Small helpers for the test suite.

    python -m llq.testing weights OUT.safetensors NAME:SHAPE[:DTYPE] ...

writes deterministic random tensors, e.g. `w:16x40` (f32) or `s:8:f16`.
The values of a tensor depend only on its name and shape, so tests can
recompute them.
"""

import sys
import zlib

import numpy as np

from llq import safetensors


def tensor_for(name, shape, dtype="f32"):
    """Deterministic values for `name`: normal(0, 1) with a few outliers."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = rng.standard_normal(shape).astype(np.float32)
    if x.size:
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, max(1, flat.size // 50))] *= 6
    return x.astype({"f32": np.float32, "f16": np.float16,
                     "f64": np.float64, "i32": np.int32}[dtype])


def parse_spec(spec):
    parts = spec.split(":")
    shape = [int(d) for d in parts[1].split("x")] if parts[1] else []
    return parts[0], shape, parts[2] if len(parts) > 2 else "f32"


def main(argv):
    if len(argv) < 2 or argv[0] != "weights":
        print(__doc__, file=sys.stderr)
        return 2
    tensors = {}
    for spec in argv[2:]:
        name, shape, dtype = parse_spec(spec)
        tensors[name] = tensor_for(name, shape, dtype)
    safetensors.save(argv[1], tensors)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
