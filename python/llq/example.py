"""Writes the built-in example: the projections of a small LLaMA-shaped model.

The weights are random but shaped like real ones: SmolLM2-135M's widths
(hidden 576, 9 query / 3 key-value heads of 64, SwiGLU 1536), normally
distributed with heavy tails and a few outlier input channels, as trained
LLaMA layers have. 576-wide layers at group 128 have a short fifth group.

    python -m llq.example OUT_DIR [--layers 2] [--seed 0]

writes OUT_DIR/model.mlir and OUT_DIR/model.safetensors.
"""

import argparse
import os

import numpy as np

from llq import safetensors

HIDDEN, INTER, HEAD_DIM, HEADS, KV_HEADS = 576, 1536, 64, 9, 3

PROJECTIONS = [  # (name, out features, in features)
    ("self_attn.q_proj", HEADS * HEAD_DIM, HIDDEN),
    ("self_attn.k_proj", KV_HEADS * HEAD_DIM, HIDDEN),
    ("self_attn.v_proj", KV_HEADS * HEAD_DIM, HIDDEN),
    ("self_attn.o_proj", HIDDEN, HEADS * HEAD_DIM),
    ("mlp.gate_proj", INTER, HIDDEN),
    ("mlp.up_proj", INTER, HIDDEN),
    ("mlp.down_proj", HIDDEN, INTER),
]


def make_weight(rng, n, k):
    """A LLaMA-like weight: Student-t(5) noise, a few loud input channels."""
    w = rng.standard_t(5, size=(n, k)).astype(np.float32) * np.float32(0.02)
    loud = rng.choice(k, size=max(1, k // 100), replace=False)
    w[:, loud] *= np.float32(8.0)
    return w


def block_ir(i):
    """The projections of decoder block i, wired as the block uses them.

    Attention and the SwiGLU nonlinearity are not expressed here; the
    example exists to be quantized, and the imported models carry the rest.
    """
    p = f"model.layers.{i}"
    t = {name: f"tensor<{n}x{k}xf32>" for name, n, k in PROJECTIONS}
    act = lambda n: f"tensor<?x?x{n}xf32>"
    lines = [f"  func.func @block{i}(%h: {act(HIDDEN)}) -> "
             f"({act(HIDDEN)}, {act(KV_HEADS * HEAD_DIM)}, "
             f"{act(KV_HEADS * HEAD_DIM)}) {{"]
    for name, n, k in PROJECTIONS:
        var = name.split(".")[1]
        lines.append(f"    %{var}_w = llq.weight @weights[\"{p}.{name}.weight\"]"
                     f" : {t[name]}")

    def linear(out, x, name, n, k):
        var = name.split(".")[1]
        lines.append(f"    %{out} = llq.linear %{x}, %{var}_w : {act(k)}, "
                     f"{t[name]} -> {act(n)}")

    dims = {name: (n, k) for name, n, k in PROJECTIONS}
    linear("q", "h", "self_attn.q_proj", *dims["self_attn.q_proj"])
    linear("k", "h", "self_attn.k_proj", *dims["self_attn.k_proj"])
    linear("v", "h", "self_attn.v_proj", *dims["self_attn.v_proj"])
    linear("attn", "q", "self_attn.o_proj", *dims["self_attn.o_proj"])
    linear("gate", "attn", "mlp.gate_proj", *dims["mlp.gate_proj"])
    linear("up", "attn", "mlp.up_proj", *dims["mlp.up_proj"])
    linear("mlp", "up", "mlp.down_proj", *dims["mlp.down_proj"])
    lines.append(f"    return %mlp, %k, %v : {act(HIDDEN)}, "
                 f"{act(KV_HEADS * HEAD_DIM)}, {act(KV_HEADS * HEAD_DIM)}")
    lines.append("  }")
    return lines


def write(out_dir, layers=2, seed=0):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    tensors = {}
    for i in range(layers):
        for name, n, k in PROJECTIONS:
            tensors[f"model.layers.{i}.{name}.weight"] = make_weight(rng, n, k)
    safetensors.save(os.path.join(out_dir, "model.safetensors"), tensors,
                     {"producer": "llq.example", "seed": seed})
    ir = ["// The projections of a small LLaMA-shaped model (llq.example).",
          "module {",
          '  llq.archive @weights safetensors "model.safetensors"']
    for i in range(layers):
        ir += block_ir(i)
    ir.append("}")
    with open(os.path.join(out_dir, "model.mlir"), "w") as f:
        f.write("\n".join(ir) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write(args.out_dir, args.layers, args.seed)


if __name__ == "__main__":
    main()
