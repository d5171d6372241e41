"""GPTQ, AWQ and SmoothQuant end to end on an imported model.

Each method quantizes the llama3-gqa fixture with calibration data through
llq-opt (block by block on the CPU path), the result runs with llq-run,
and the per-layer report shows the method beating round-to-nearest on the
output error of the calibration activations (the measure GPTQ and AWQ
minimize).
"""

import re
import subprocess

import numpy as np
import pytest

from test_import_oracle import TOKENS, relative_error, run_llq
from test_quantized_execution import imported  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "tokens.txt"
    path.write_text(" ".join(map(str, np.random.default_rng(1).integers(0, 256, 8192))))
    return path


def quantize(llq_opt, ir, spec, calib, tmp_path, samples=8, seqlen=256):
    out = tmp_path / f"{spec}.mlir"
    report = tmp_path / f"{spec}.md"
    subprocess.run([llq_opt, str(ir), f"--quantize={spec}", f"--calib={calib}",
                    f"--calib-samples={samples}", f"--calib-seqlen={seqlen}",
                    "-o", str(out), f"--quantize-report={report}"], check=True)
    return out, report.read_text()


def mean_errors(report):
    """(method, rtn) mean relative output errors from the report's total row."""
    m = re.search(r"\| total .*\| ([0-9.e+-]+) \(mean\) \| ([0-9.e+-]+) \(mean\) \|", report)
    return float(m.group(1)), float(m.group(2))


@pytest.mark.parametrize("spec", ["gptq-w4-g32", "gptq-w3-g32", "gptq-w4-g32-act",
                                  "awq-w4-g32", "awq-w3-g32"])
def test_beats_rtn_on_output_error(llq_opt, llq_run, imported, calib, tmp_path, spec):
    out, report = quantize(llq_opt, imported, spec, calib, tmp_path)
    method, rtn = mean_errors(report)
    assert method < rtn, f"{spec}: {method:.3e} vs RTN {rtn:.3e}"
    logits, _ = run_llq(llq_run, out, TOKENS)
    assert np.isfinite(logits).all()


def test_smoothquant_w8a8_close_to_float(llq_opt, llq_run, imported, calib, tmp_path):
    base, _ = run_llq(llq_run, imported, TOKENS)
    errors = {}
    for spec in ("smoothquant-w8a8", "smoothquant-w4a4"):
        out, _ = quantize(llq_opt, imported, spec, calib, tmp_path, samples=4, seqlen=128)
        got, _ = run_llq(llq_run, out, TOKENS)
        errors[spec] = relative_error(got, base)
    assert errors["smoothquant-w8a8"] < 0.05, errors
    assert errors["smoothquant-w4a4"] > errors["smoothquant-w8a8"], errors


def test_calibration_is_deterministic(llq_opt, imported, calib, tmp_path):
    """Same data and seed, same packed weights, byte for byte."""
    packed = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        quantize(llq_opt, imported, "gptq-w4-g32", calib, tmp_path / run)
        packed.append((tmp_path / run / "gptq-w4-g32.safetensors").read_bytes())
    assert packed[0] == packed[1]
