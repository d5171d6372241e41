"""llq-compile's pack step against an independent numpy reading of the layout.

The compiler quantizes the built-in example, llq-compile repacks every
llq.qlinear for the GPU kernels; this test decodes the k-chunk layout as
include/llq/Quant/GpuLayout.h documents it, here in numpy, and checks the
codes, scales and biases against the row-major bitstream llq-opt wrote.
"""

import re
import subprocess

import numpy as np
import pytest

from llq import example, reference, safetensors


def unpack_kchunk(words, n, k, bits):
    """Codes (n x k) from the k-chunk words, as GpuLayout.h specifies them."""
    chunk = 128 // bits
    per_word = 32 // bits
    words = words.reshape(k // chunk, n, 4).astype(np.uint64)
    codes = np.zeros((n, k), dtype=np.uint8)
    mask = (1 << bits) - 1
    for w in range(4):
        for i in range(per_word):
            shift = (16 if i % 2 else 0) + (i // 2) * bits
            values = (words[:, :, w] >> shift) & mask  # [chunk][n]
            cols = np.arange(k // chunk) * chunk + w * per_word + i
            codes[:, cols] = values.T
    return codes


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("example")
    example.write(str(out), layers=1, seed=5)
    return out


@pytest.mark.parametrize("spec,bits,group,sym", [
    ("rtn-w4-g128", 4, 128, False),
    ("rtn-w3-g128", 3, 128, False),
    ("rtn-w8-g64", 8, 64, False),
    ("rtn-w2-g64-sym", 2, 64, True),
    ("rtn-w4", 4, 0, False),
])
def test_pack_step_matches_bitstream(llq_opt, llq_compile, model, tmp_path,
                                     spec, bits, group, sym):
    q = tmp_path / "model.q.mlir"
    subprocess.run([llq_opt, str(model / "model.mlir"), f"--quantize={spec}",
                    "-o", str(q), "--quantize-report=none"], check=True)
    out = tmp_path / "gpu"
    subprocess.run([llq_compile, str(q), "--target=cuda-sm80", "--emit=artifact",
                    "-o", str(out)], check=True, capture_output=True)
    packed = safetensors.load(str(tmp_path / "model.q.safetensors"))
    gpu = safetensors.load(str(out / "weights.safetensors"))
    table = (out / "layers.txt").read_text()
    manifest = (out / "kernels.txt").read_text()

    layers = [line.split()[1] for line in table.splitlines() if line.startswith("layer ")]
    # 3-bit codes travel in 4-bit containers; the biases keep their zero points.
    container = {1: 2, 2: 2, 3: 4, 4: 4}.get(bits, 8)
    assert len(layers) == len(example.PROJECTIONS)
    for layer in layers:
        qweight = packed[layer + ".qweight"].view(np.uint32)
        n = qweight.shape[0]
        w = gpu[layer + ".w"]
        k = w.shape[0] * (128 // container)
        g = k if group == 0 else group
        groups = -(-k // g)
        np.testing.assert_array_equal(
            unpack_kchunk(w.view(np.uint32), n, k, container),
            reference.unpack_bitstream(qweight, k, bits))
        scales = packed[layer + ".scales"].astype(np.float16)
        np.testing.assert_array_equal(gpu[layer + ".scales"].view(np.uint16),
                                      scales.T.view(np.uint16))
        zeros = (np.full((n, groups), 1 << (bits - 1)) if sym
                 else packed[layer + ".qzeros"].view(np.uint8).astype(np.int64))
        np.testing.assert_array_equal(gpu[layer + ".biases"].astype(np.float64),
                                      (1024.0 + zeros).T)
        line = next(l for l in table.splitlines() if l.startswith(f"layer {layer} "))
        assert f" bits={container} " in line
        assert (f" code_bits={bits} " in line) == (bits != container)
        for key in ("decode1", "decode16", "prefill"):
            kernel = re.search(rf" {key}=(\S+)", line).group(1)
            assert f"kernel {kernel} " in manifest


