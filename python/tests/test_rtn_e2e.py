"""End to end: llq-opt --quantize=rtn-* against an independent numpy RTN.

The compiler quantizes the built-in example; this test reads back the packed
archive it wrote, unpacks and dequantizes it with the numpy reference, and
compares codes, scales, zero points and reconstruction error with RTN
computed here from the original weights.
"""

import os
import re
import subprocess

import numpy as np
import pytest

from llq import example, reference, safetensors

SPECS = [  # (spec, bits, group, sym)
    ("rtn-w4-g128", 4, 128, False),
    ("rtn-w3-g128", 3, 128, False),
    ("rtn-w2-g64", 2, 64, False),
    ("rtn-w8", 8, 0, False),
    ("rtn-w4-g128-sym", 4, 128, True),
    ("rtn-w3-sym", 3, 0, True),
]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("example")
    example.write(str(out), layers=1, seed=3)
    return out


@pytest.mark.parametrize("spec,bits,group,sym", SPECS)
def test_rtn_matches_numpy(llq_opt, model, tmp_path, spec, bits, group, sym):
    out_ir = tmp_path / "model.q.mlir"
    subprocess.run([llq_opt, str(model / "model.mlir"), f"--quantize={spec}",
                    "-o", str(out_ir), "--quantize-report=none"], check=True)
    ir = out_ir.read_text()
    assert "llq.linear" not in ir
    assert len(re.findall(r"llq\.qlinear", ir)) == len(example.PROJECTIONS)

    original = safetensors.load(str(model / "model.safetensors"))
    packed = safetensors.load(str(tmp_path / "model.q.safetensors"))
    ties = total = 0
    for name, w in original.items():
        layer = name[: -len(".weight")]
        n, k = w.shape
        codes, scales, zeros = reference.rtn_quantize(w, bits, group, sym)

        got_codes = reference.unpack_bitstream(packed[layer + ".qweight"].view(np.uint32), k, bits)
        got_scales = packed[layer + ".scales"]
        assert packed[layer + ".qweight"].shape == (n, -(-k * bits // 32))
        np.testing.assert_array_equal(got_scales.view(np.uint16), scales.view(np.uint16))
        if sym:
            assert layer + ".qzeros" not in packed
            got_zeros = None
        else:
            got_zeros = packed[layer + ".qzeros"].view(np.uint8)
            np.testing.assert_array_equal(got_zeros, zeros)

        # Codes agree except on float32 rounding ties, by one step at most.
        diff = np.abs(got_codes.astype(int) - codes.astype(int))
        assert diff.max() <= 1
        ties += int((diff != 0).sum())
        total += diff.size

        # Reconstruction: half a step, plus what rounding the zero point and
        # the f16 scale (relative 2^-11 over maxq steps) can cost at the ends.
        deq = reference.dequantize(got_codes, got_scales, got_zeros, bits, group)
        size = k if group == 0 else group
        s = got_scales.astype(np.float32)[:, np.arange(k) // size]
        err = np.abs(deq - w)
        bound = s * (0.5 + ((1 << bits) - 1) / 2048) * (1 + 1e-3) + 1e-7
        assert np.all(err <= bound), spec
        # Inside the grid the error is at most half a step.
        lo = (0 - (zeros.astype(np.float32)[:, np.arange(k) // size] if not sym
                   else np.float32(1 << (bits - 1)))) * s
        hi = lo + ((1 << bits) - 1) * s
        inside = (w >= lo) & (w <= hi)
        assert inside.mean() > 0.9
        assert np.all(err[inside] <= s[inside] * 0.5 * (1 + 1e-3) + 1e-7), spec
    assert ties <= total * 1e-4, f"{ties} of {total} codes differ"


def test_error_falls_with_bits(llq_opt, model, tmp_path):
    """Relative RMS error of the reconstruction shrinks as bits grow."""
    original = safetensors.load(str(model / "model.safetensors"))
    errors = []
    for bits in (2, 3, 4, 8):
        d = tmp_path / f"w{bits}"
        d.mkdir()
        subprocess.run([llq_opt, str(model / "model.mlir"),
                        f"--quantize=rtn-w{bits}-g128", "-o", str(d / "q.mlir"),
                        "--quantize-report=none"], check=True)
        packed = safetensors.load(str(d / "q.safetensors"))
        num = den = 0.0
        for name, w in original.items():
            layer = name[: -len(".weight")]
            k = w.shape[1]
            codes = reference.unpack_bitstream(packed[layer + ".qweight"].view(np.uint32), k, bits)
            deq = reference.dequantize(codes, packed[layer + ".scales"],
                                       packed[layer + ".qzeros"].view(np.uint8), bits, 128)
            num += float(((deq - w) ** 2).sum())
            den += float((w ** 2).sum())
        errors.append(np.sqrt(num / den))
    # Each bit roughly halves the error: 2 -> 3 -> 4 bits, then 4 more.
    ratios = [errors[0] / errors[1], errors[1] / errors[2], errors[2] / errors[3]]
    assert ratios[0] > 1.5 and ratios[1] > 1.5 and ratios[2] > 8, errors


def test_bogus_spec_fails_cleanly(llq_opt, model, tmp_path):
    out = tmp_path / "out.mlir"
    r = subprocess.run([llq_opt, str(model / "model.mlir"), "--quantize=bogus",
                        "-o", str(out)], capture_output=True, text=True)
    assert r.returncode != 0
    assert "unknown method 'bogus'" in r.stderr and "valid methods: rtn" in r.stderr
    assert not out.exists() and not (tmp_path / "out.safetensors").exists()
