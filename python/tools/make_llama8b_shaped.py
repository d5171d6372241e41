"""Writes a LLaMA3-8B-shaped ONNX graph whose weights take no disk space.

Two decoder layers with the real 8B dimensions (hidden 4096, 32 query / 8
key-value heads, SwiGLU 14336, vocabulary 128256, untied lm_head, llama3
RoPE scaling), exported by torch.onnx from a model on the meta device, so
nothing is allocated. The ~1.5e9 parameters are then declared as external
data in a sparse file of the right size (zeros, no blocks on disk). It is
for checking that import and shape handling scale without reading weights,
not for numbers. Needs torch and transformers (scripts/setup-oracle.sh).

    python python/tools/make_llama8b_shaped.py OUT.onnx
"""

import os
import sys

import onnx
import torch
from onnx import TensorProto
from transformers import LlamaConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_fixtures import NoCache  # noqa: E402

CONFIG = dict(
    vocab_size=128256, hidden_size=4096, intermediate_size=14336,
    num_hidden_layers=2, num_attention_heads=32, num_key_value_heads=8,
    max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=False,
    rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0,
                     "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192})

DTYPES = {torch.float32: TensorProto.FLOAT, torch.float16: TensorProto.FLOAT16,
          torch.int64: TensorProto.INT64}


def main(out):
    with torch.device("meta"):
        model = NoCache(LlamaConfig(**CONFIG)).eval()
    ids = torch.zeros((2, 5), dtype=torch.int64)
    dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("seq")}
    prog = torch.onnx.export(model, (ids,), dynamo=True, optimize=False,
                             input_names=["input_ids"], output_names=["logits"],
                             dynamic_shapes={"input_ids": dims})
    prog.save(out, include_initializers=False)
    m = onnx.load(out)
    tensors = dict(model.named_parameters())
    tensors.update(dict(model.named_buffers()))
    defined = {i.name for i in m.graph.input} | {
        o for n in m.graph.node for o in n.output}
    used = {i for n in m.graph.node for i in n.input if i}
    location = os.path.basename(out) + ".data"
    offset = 0
    for name in sorted(used - defined):
        t = tensors[name]
        size = t.numel() * t.element_size()
        init = TensorProto(name=name, data_type=DTYPES[t.dtype],
                           dims=list(t.shape))
        init.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", str(offset)),
                     ("length", str(size))):
            entry = init.external_data.add()
            entry.key, entry.value = k, v
        m.graph.initializer.append(init)
        offset += (size + 4095) // 4096 * 4096
    onnx.save(m, out)
    with open(os.path.join(os.path.dirname(os.path.abspath(out)), location), "wb") as f:
        f.truncate(offset)  # sparse: reads as zeros, takes no blocks
    print(f"{out}: {len(m.graph.node)} nodes, {len(m.graph.initializer)} "
          f"weights, {offset / 2**30:.1f} GiB of (sparse) external data")


if __name__ == "__main__":
    main(sys.argv[1])
