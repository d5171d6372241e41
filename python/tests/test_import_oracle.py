"""Imported models run by llq match ONNX Runtime (and transformers).

Every fixture in test/Fixtures/onnx (tiny LLaMA-architecture models exported
by torch.onnx and by onnxruntime-genai's builder; python/tools/
export_fixtures.py regenerates them) is imported with llq-import, run with
llq-run on the CPU path, and compared with ONNX Runtime on the same token
ids: prefill logits and, for models with a KV cache, each greedy decode
step. The error measure is max |llq - ort| / max |ort| over the logits.
"""

import os
import subprocess

import numpy as np
import pytest

from llq.ortref import OrtLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "test", "Fixtures", "onnx")
TOKENS = [1, 17, 42, 5, 99, 3, 128, 64]
TOLERANCE = 1e-4

MODELS = [  # (fixture path, head_dim for symbolic cache dims)
    ("llama3-gqa.onnx", None),
    ("llama3-gqa-ext.onnx", None),
    ("llama3-gqa-kv.onnx", None),
    ("smol-tied.onnx", None),
    ("smol-tied-kv.onnx", None),
    ("llama3-gqa-genai-fp32/model.onnx", 16),
    ("llama3-gqa-genai-int4/model.onnx", 16),
]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A model from llq.onnx_llama (no value_info, repeat_kv, additive mask):
    exercises shape inference and attention raising."""
    from llq import onnx_llama
    cfg = onnx_llama.LlamaConfig(vocab_size=160, hidden_size=96, intermediate_size=128,
                                 num_hidden_layers=2, num_attention_heads=6,
                                 num_key_value_heads=2, rope_theta=500000.0)
    path = tmp_path_factory.mktemp("synthetic") / "model.onnx"
    onnx_llama.build(cfg, onnx_llama.random_weights(cfg, seed=7), str(path))
    return str(path)


def test_synthetic_prefill_and_decode(llq_import, llq_run, tmp_path, synthetic):
    out = tmp_path / "model.mlir"
    subprocess.run([llq_import, synthetic, "-o", str(out)], check=True)
    ir = out.read_text()
    assert ir.count("llq.attention") == 2 and ir.count("llq.rotary") == 4
    got, generated = run_llq(llq_run, out, TOKENS, generate=3)
    ref = OrtLM(synthetic)
    want = ref.forward(TOKENS)[0]
    assert relative_error(got, want) <= TOLERANCE
    expect, logits = [], want[None]
    for _ in range(3):
        expect.append(int(np.argmax(logits[0, -1])))
        logits = ref.forward([expect[-1]])
    assert generated == expect


def relative_error(got, want):
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))


def import_model(llq_import, name, tmp_path):
    out = tmp_path / "model.mlir"
    subprocess.run([llq_import, os.path.join(FIXTURES, name), "-o", str(out)],
                   check=True)
    return out


def run_llq(llq_run, ir, tokens, generate=0):
    args = [llq_run, str(ir), "--tokens", ",".join(map(str, tokens)),
            "--print-logits"]
    if generate:
        args += ["--generate", str(generate)]
    text = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    rows = [line for line in text.splitlines() if not line.startswith("generated")]
    logits = np.array([[float(x) for x in r.split()] for r in rows], np.float32)
    gen = [line for line in text.splitlines() if line.startswith("generated")]
    return logits, [int(t) for t in gen[0].split()[1:]] if gen else []


@pytest.mark.parametrize("name,head_dim", MODELS)
def test_prefill_matches_onnxruntime(llq_import, llq_run, tmp_path, name, head_dim):
    ir = import_model(llq_import, name, tmp_path)
    got, _ = run_llq(llq_run, ir, TOKENS)
    want = OrtLM(os.path.join(FIXTURES, name), head_dim).forward(TOKENS)[0]
    assert got.shape == want.shape
    err = relative_error(got, want)
    assert err <= TOLERANCE, f"{name}: relative error {err:.2e}"


@pytest.mark.parametrize("name,head_dim", [m for m in MODELS if "kv" in m[0] or "genai" in m[0]])
def test_decode_with_cache_matches_onnxruntime(llq_import, llq_run, tmp_path, name, head_dim):
    """Greedy decoding through the KV cache picks the same tokens as ORT."""
    ir = import_model(llq_import, name, tmp_path)
    _, generated = run_llq(llq_run, ir, TOKENS, generate=4)
    ref = OrtLM(os.path.join(FIXTURES, name), head_dim)
    logits = ref.forward(TOKENS)
    want = []
    for _ in range(4):
        nxt = int(np.argmax(logits[0, -1]))
        want.append(nxt)
        logits = ref.forward([nxt])
    assert generated == want


@pytest.mark.parametrize("name", ["llama3-gqa", "smol-tied"])
def test_matches_transformers(llq_import, llq_run, tmp_path, name):
    """The exporter's source model (transformers) agrees as well."""
    ref = np.load(os.path.join(FIXTURES, f"{name}.ref.npz"))
    ir = import_model(llq_import, f"{name}.onnx", tmp_path)
    got, _ = run_llq(llq_run, ir, ref["tokens"].tolist())
    err = relative_error(got, ref["logits"][0])
    assert err <= TOLERANCE, f"{name}: relative error {err:.2e}"
