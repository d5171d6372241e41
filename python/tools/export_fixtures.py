"""Regenerates the ONNX fixtures in test/Fixtures/onnx (the optional tier).

Tiny LLaMA-architecture models with random weights, exported through the
real exporters, so that llq's importer and CPU path are checked against what
users feed it:

- torch.onnx (dynamo) exports of transformers' LlamaForCausalLM, without and
  with a KV cache, for a LLaMA3-style config (grouped-query attention, RoPE
  theta 500000 with llama3 frequency scaling, untied embeddings) and a
  SmolLM2-style one (3:1 GQA, tied embeddings);
- an external-data copy of the first;
- onnxruntime-genai builder exports (GroupQueryAttention, RotaryEmbedding,
  SkipSimplifiedLayerNormalization; fp32 and int4 MatMulNBits) when the
  builder is installed.

Each fixture comes with reference logits from transformers (float64 is not
needed: the references only seed the ONNX Runtime comparison) in
<name>.ref.npz. Needs torch, transformers, onnx, onnxscript and onnxruntime:
scripts/setup-oracle.sh creates an environment with them.

    python python/tools/export_fixtures.py [OUT_DIR]
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.cache_utils import DynamicCache

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "test", "Fixtures", "onnx")

CONFIGS = {
    "llama3-gqa": dict(
        vocab_size=256, hidden_size=64, intermediate_size=160,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0,
                         "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 64}),
    "smol-tied": dict(
        vocab_size=192, hidden_size=48, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=3, num_key_value_heads=1,
        max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 100000.0}),
}

TOKENS = [1, 17, 42, 5, 99, 3, 128, 64]


class NoCache(LlamaForCausalLM):
    """Logits only, so that module paths stay model.layers.N...."""

    def forward(self, input_ids):
        return super().forward(input_ids=input_ids, use_cache=False).logits


class WithCache(LlamaForCausalLM):
    """Flat past/present key-value tensors around transformers' cache."""

    def forward(self, input_ids, attention_mask, position_ids, *past):
        cache = DynamicCache(config=self.config)
        for i in range(0, len(past), 2):
            cache.update(past[i], past[i + 1], i // 2)
        out = super().forward(input_ids=input_ids, attention_mask=attention_mask,
                              position_ids=position_ids, past_key_values=cache,
                              use_cache=True)
        present = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)


def randomize(model, seed):
    """Random weights everywhere (norms too), so no two tensors coincide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=g))


def make(cls, cfg, seed):
    model = cls(LlamaConfig(**cfg)).eval()
    randomize(model, seed)
    return model


def export_nocache(name, cfg, seed, out):
    model = make(NoCache, cfg, seed)
    ids = torch.tensor([TOKENS[:5], TOKENS[2:7]])
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    with torch.no_grad():
        prog = torch.onnx.export(model, (ids,), dynamo=True,
                                 input_names=["input_ids"], output_names=["logits"],
                                 dynamic_shapes={"input_ids": {0: batch, 1: seq}})
    path = os.path.join(out, f"{name}.onnx")
    prog.save(path)
    with torch.no_grad():
        ref = model(torch.tensor([TOKENS])).numpy()
    np.savez(os.path.join(out, f"{name}.ref.npz"), tokens=np.array(TOKENS), logits=ref)
    return model, path


def export_cache(name, cfg, seed, out):
    model = make(WithCache, cfg, seed)
    c = LlamaConfig(**cfg)
    head_dim = c.hidden_size // c.num_attention_heads
    batch, seq, past = 2, 3, 4
    ids = torch.randint(0, c.vocab_size, (batch, seq))
    mask = torch.ones(batch, past + seq, dtype=torch.int64)
    pos = torch.arange(past, past + seq).repeat(batch, 1)
    kv = [torch.randn(batch, c.num_key_value_heads, past, head_dim)
          for _ in range(2 * c.num_hidden_layers)]
    D = torch.export.Dim.DYNAMIC
    dyn = {"input_ids": {0: D, 1: D}, "attention_mask": {0: D, 1: D},
           "position_ids": {0: D, 1: D}, "past": tuple({0: D, 2: D} for _ in kv)}
    names = []
    for i in range(c.num_hidden_layers):
        names += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
    outs = ["logits"] + [n.replace("past_key_values", "present") for n in names]
    with torch.no_grad():
        prog = torch.onnx.export(model, (ids, mask, pos, *kv), dynamo=True,
                                 input_names=["input_ids", "attention_mask",
                                              "position_ids"] + names,
                                 output_names=outs, dynamic_shapes=dyn)
    path = os.path.join(out, f"{name}-kv.onnx")
    prog.save(path)
    return path


def external_copy(src, out, name):
    m = onnx.load(src)
    dst = os.path.join(out, f"{name}.onnx")
    data = os.path.join(out, f"{name}.onnx.data")
    if os.path.exists(data):  # onnx.save appends to an existing data file
        os.remove(data)
    onnx.save(m, dst, save_as_external_data=True, all_tensors_to_one_file=True,
              location=f"{name}.onnx.data", size_threshold=256)
    return dst


def save_tokenizer(ckpt, vocab_size):
    """A word-level tokenizer of `vocab_size` entries: the builder insists on
    saving one beside the model, and none is downloadable here."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast
    vocab = {f"t{i}": i for i in range(vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="t0"))
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="t0").save_pretrained(ckpt)


def genai_export(model, cfg, out, name, precision):
    """onnxruntime-genai's builder, from a saved checkpoint, if installed."""
    try:
        import onnxruntime_genai.models.builder  # noqa: F401
    except Exception as e:  # pragma: no cover - optional
        print(f"skipping {name}: onnxruntime-genai builder unavailable ({e})")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "ckpt")
        base = LlamaForCausalLM(LlamaConfig(**cfg))
        base.load_state_dict(model.state_dict())
        base.save_pretrained(ckpt)
        save_tokenizer(ckpt, cfg["vocab_size"])
        dst = os.path.join(tmp, "out")
        cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder",
               "-i", ckpt, "-o", dst, "-p", precision, "-e", "cpu",
               "-c", os.path.join(tmp, "cache")]
        subprocess.run(cmd, check=True)
        target = os.path.join(out, name)
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(target)
        for f in os.listdir(dst):
            if f.endswith((".onnx", ".onnx.data", "genai_config.json")):
                shutil.copy(os.path.join(dst, f), target)
    return target


def main():
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else OUT)
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    manifest = {}
    for seed, (name, cfg) in enumerate(CONFIGS.items()):
        model, path = export_nocache(name, cfg, seed, out)
        manifest[name] = {"config": cfg}
        export_cache(name, cfg, seed, out)
        if name == "llama3-gqa":
            external_copy(path, out, f"{name}-ext")
            genai_export(model, cfg, out, f"{name}-genai-fp32", "fp32")
            genai_export(model, cfg, out, f"{name}-genai-int4", "int4")
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
