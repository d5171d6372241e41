"""Binarization, NF4 and QuIP end to end: packed formats that really run.

Each method quantizes the llama3-gqa fixture through llq-opt into
llq.packed_linear ops, and the tests check, against code written here from
the documented formats (include/llq/Quant/PackedLayer.h) rather than the
compiler's:

* the archive holds every layer's parts, and the report's bytes and bits per
  weight are exactly what was written;
* a numpy decoder of the billm, pbllm, dbllm and nf4 parts gives weights
  that, put back into the float model, reproduce llq-run's logits on the
  packed model (so the CPU path executes the packed representation);
* each method beats its baseline of the same storage class on the errors
  it minimizes (output error for calibrated methods, weight error for the
  data-free ones);
* a LoRA adapter written here is merged before quantization.
"""

import re
import subprocess

import numpy as np
import pytest

from llq import reference, safetensors
from test_import_oracle import TOKENS, relative_error, run_llq
from test_quantized_execution import imported  # noqa: F401 (fixture)

NF4_LEVELS = np.array([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634,
    0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0], np.float32)

CALIBRATED = ("billm", "pbllm", "quip")


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "tokens.txt"
    path.write_text(" ".join(map(str, np.random.default_rng(2).integers(0, 256, 8192))))
    return path


def quantize(llq_opt, ir, spec, calib, out_dir, extra=()):
    out = out_dir / f"{spec}.mlir"
    report = out_dir / f"{spec}.md"
    args = [llq_opt, str(ir), f"--quantize={spec}", "-o", str(out),
            f"--quantize-report={report}", *extra]
    if spec.split("-")[0] in CALIBRATED:
        args += [f"--calib={calib}", "--calib-samples=8", "--calib-seqlen=128"]
    subprocess.run(args, check=True)
    return out, parse_report(report.read_text())


def parse_report(text):
    """{layer: {column: value}} plus 'total', from the markdown table."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = "total" if cells[0].startswith("total") else cells[0]
        rows[name] = dict(zip(header, cells))
    return header, rows


def number(cell):
    return float(cell.split()[0])


def bits(words, count):
    """The first `count` bits of each row of little-endian uint32 words."""
    w = np.ascontiguousarray(words).view(np.uint32)
    if w.ndim == 1:
        w = w[None]
    b = (w[..., None] >> np.arange(32, dtype=np.uint32)) & 1
    return b.reshape(w.shape[0], -1)[:, :count].astype(bool)


def f16(a):
    return np.asarray(a).view(np.float16).astype(np.float32)


def decode(fmt, parts, n, k, attrs):
    """The float weight of a packed layer, from the documented layout."""
    if fmt == "dbllm":
        b1, b2 = bits(parts["first"], k), bits(parts["second"], k)
        group = attrs["group_size"] or k
        p = f16(parts["params"]).reshape(n, -1, 3).astype(np.float64)
        g = np.arange(k) // group
        a1, a2, zeta = p[:, g, 0], p[:, g, 1], p[:, g, 2]
        return (b1 * a1 + a2 * (b2 - zeta)).astype(np.float32)
    if fmt == "nf4":
        block, cg = attrs["group_size"], attrs["constant_group"]
        codes = reference.unpack_bitstream(parts["codes"].view(np.uint32), k, 4)
        absmax = parts["absmax"].view(np.int8).astype(np.float32).reshape(-1)
        scales = parts["absmax_scales"].astype(np.float32)
        mean = parts["absmax_mean"].astype(np.float32)[0]
        a = (absmax.astype(np.float64) * scales[np.arange(absmax.size) // cg] + mean)
        a = a.astype(np.float32).reshape(n, -1)[:, np.arange(k) // block]
        tau = (f16(parts["shifts"]).reshape(n, -1)[:, np.arange(k) // block]
               if "shifts" in parts else np.zeros((n, k), np.float32))
        return (NF4_LEVELS[codes].astype(np.float64) * a + tau).astype(np.float32)
    if fmt == "pbllm":
        signs, salient = bits(parts["signs"], k), bits(parts["salient"], k)
        offsets = parts["row_offsets"].view(np.uint32)
        codes = parts["codes"].view(np.int8).astype(np.float32)
        alpha, step = f16(parts["binary_scales"]), f16(parts["salient_scales"])
        w = np.where(signs, alpha[:, None], -alpha[:, None]).astype(np.float32)
        for r in range(n):
            w[r, salient[r]] = codes[offsets[r]:offsets[r + 1]] * step[r]
        return w
    if fmt == "billm":
        block = attrs["group_size"]
        salient = bits(parts["salient_columns"], k)[0]
        s = int(salient.sum())
        first = bits(parts["signs"], k)
        second = bits(parts["residual_signs"], s)
        sparse = bits(parts["sparse"], k - s)
        alphas = f16(parts["alphas"]).reshape(n, -1, 4)[:, np.arange(k) // block]
        w = np.empty((n, k), np.float32)
        sign = np.where(first, 1.0, -1.0).astype(np.float32)
        a1 = alphas[:, salient, 0] * sign[:, salient]
        a2 = alphas[:, salient, 1] * np.where(second, 1.0, -1.0).astype(np.float32)
        w[:, salient] = a1 + a2
        other = ~salient
        pick = np.where(sparse, alphas[:, other, 3], alphas[:, other, 2])
        w[:, other] = pick * sign[:, other]
        return w
    raise ValueError(fmt)


OP = re.compile(r"(%[\w]+) = llq\.packed_linear (\w+) (%[\w]+) parts\(([^)]*)\) (?:bias %[\w]+ )?"
                r"\{([^}]*)\} : ([^\n]*) -> (tensor<[^>]*>)")
WEIGHT = re.compile(r'(%[\w]+) = llq\.weight @packed\["([^"]+)"\] : tensor<([^>]*)>')


def packed_layers(ir_text, archive):
    """[(match, format, layer, parts, attrs, n, k)] for every packed op."""
    names = {m.group(1): m.group(2) for m in WEIGHT.finditer(ir_text)}
    layers = []
    for m in OP.finditer(ir_text):
        operands = [o.strip() for o in m.group(4).split(",")]
        full = [names[o] for o in operands]
        layer = full[0].rsplit(".", 1)[0]
        parts = {name.rsplit(".", 1)[1]: archive[name] for name in full}
        attrs = {}
        for item in m.group(5).split(", "):
            if "=" in item:
                key, value = item.split(" = ")
                attrs[key] = int(value.split(" ")[0]) if value[0].isdigit() else value
        k = int(m.group(6).split(",")[0].split("x")[-2])
        n = int(m.group(7).split("x")[-2])
        layers.append((m, m.group(2), layer, parts, attrs, n, k))
    return layers


def float_model_from(ir_path):
    """Writes a float model whose linear layers have the numpy-decoded weights
    of the packed model at `ir_path`; returns its IR path and the weights."""
    text = ir_path.read_text()
    archive = safetensors.load(str(ir_path.with_suffix(".safetensors")))
    decoded, pieces, last = {}, [], 0
    for m, fmt, layer, parts, attrs, n, k in packed_layers(text, archive):
        w = decode(fmt, parts, n, k, attrs)
        decoded[layer + ".weight"] = w
        input_type = m.group(6).split(", ")[0]
        result, x = m.group(1), m.group(3)
        pieces.append(text[last:m.start()])
        w_name = "%w" + result[1:]
        pieces.append(f'{w_name} = llq.weight @decoded["{layer}.weight"] : tensor<{n}x{k}xf32>\n'
                      f'    {result} = llq.linear {x}, {w_name} : {input_type}, '
                      f'tensor<{n}x{k}xf32> -> {m.group(7)}')
        last = m.end()
    pieces.append(text[last:])
    out_text = "".join(pieces).replace(
        "llq.archive @packed", 'llq.archive @decoded safetensors "decoded.safetensors"\n'
        "llq.archive @packed", 1)
    # Beside the packed model, so that its relative archive paths hold.
    safetensors.save(str(ir_path.parent / "decoded.safetensors"), decoded)
    out = ir_path.parent / "decoded.mlir"
    out.write_text(out_text)
    return out, decoded


@pytest.mark.parametrize("spec", ["billm", "pbllm-w1.7", "dbllm-w2-g32", "nf4-g64", "nf4-icq"])
def test_cpu_path_executes_the_packed_format(llq_opt, llq_run, imported, calib, tmp_path, spec):
    out, _ = quantize(llq_opt, imported, spec, calib, tmp_path)
    packed_logits, _ = run_llq(llq_run, out, TOKENS)
    float_ir, decoded = float_model_from(out)
    assert len(decoded) == 14
    assert "llq.packed_linear" not in float_ir.read_text()
    want, _ = run_llq(llq_run, float_ir, TOKENS)
    assert relative_error(packed_logits, want) < 1e-5
    base, _ = run_llq(llq_run, imported, TOKENS)
    # ... and that is not the float model's output.
    assert relative_error(packed_logits, base) > 1e-3


@pytest.mark.parametrize("spec,low,high", [
    # The fixture's layers are narrow (K = 64 or 160), so per-row and
    # per-block overheads weigh more than on a real model.
    ("billm", 2.5, 4.0), ("pbllm-w1.7", 2.8, 4.2), ("pbllm-w2", 3.1, 4.5),
    # Two planes plus three f16 per group of 32: exactly 3.5.
    ("dbllm-w2-g32", 3.499, 3.501), ("nf4-g64", 4.12, 4.2), ("nf4-icq", 4.35, 4.5),
    ("quip-w2", 2.5, 3.5), ("quip-w3", 3.5, 4.5), ("quip-w4", 4.5, 5.5)])
def test_effective_bits_are_the_bytes_written(llq_opt, imported, calib, tmp_path, spec, low, high):
    out, (header, rows) = quantize(llq_opt, imported, spec, calib, tmp_path)
    archive = safetensors.load(str(out.with_suffix(".safetensors")))
    total_bytes = total_weights = 0
    for layer, row in rows.items():
        if layer == "total":
            continue
        n, k = map(int, row["shape"].split("x"))
        written = sum(t.nbytes for name, t in archive.items() if name.startswith(layer + "."))
        assert int(row["bytes after"]) == written, layer
        assert abs(number(row["bits/weight"]) - 8 * written / (n * k)) < 5e-4
        total_bytes += written
        total_weights += n * k
    bpw = 8 * total_bytes / total_weights
    assert abs(number(rows["total"]["bits/weight"]) - bpw) < 5e-4
    assert low < bpw < high, bpw


@pytest.mark.parametrize("spec,baseline", [
    ("billm", "sign-g128"), ("pbllm-w1.7", "sign"), ("pbllm-w2", "sign"),
    ("quip-w2", "rtn-w2"), ("quip-w3", "rtn-w3")])
def test_calibrated_methods_beat_their_baseline(llq_opt, llq_run, imported, calib, tmp_path,
                                                spec, baseline):
    out, (header, rows) = quantize(llq_opt, imported, spec, calib, tmp_path)
    assert f"{baseline} rel out err" in header
    total = rows["total"]
    method, base = number(total["rel out err"]), number(total[f"{baseline} rel out err"])
    assert method < base, f"{spec}: {method:.3e} vs {baseline} {base:.3e}"
    logits, _ = run_llq(llq_run, out, TOKENS)
    assert np.isfinite(logits).all()


@pytest.mark.parametrize("spec,baseline", [
    ("dbllm-w2-g32", "rtn-w2-g32"), ("dbllm-w2-g128", "rtn-w2-g128"),
    ("nf4-g64", "rtn-w4-g64-sym"), ("nf4-icq", "rtn-w4-g64-sym")])
def test_data_free_methods_beat_rtn_on_weights(llq_opt, imported, calib, tmp_path, spec, baseline):
    _, (header, rows) = quantize(llq_opt, imported, spec, calib, tmp_path)
    for layer, row in rows.items():
        if layer == "total":
            continue
        method, base = number(row["rel rms err"]), number(row[f"{baseline} rel rms err"])
        # DB-LLM never does worse than its 2-bit start, per group.
        if spec.startswith("dbllm"):
            assert method <= base + 1e-4, layer
    total = rows["total"]
    assert number(total["rel rms err"]) < number(total[f"{baseline} rel rms err"])


def test_lora_adapter_is_merged(llq_opt, imported, calib, tmp_path):
    """W + alpha/r B A is what gets quantized, for the layers it names."""
    rng = np.random.default_rng(5)
    rank, alpha = 4, 8.0
    layer = "model.layers.1.mlp.up_proj"
    n, k = 160, 64
    a = rng.normal(0, 0.2, (rank, k)).astype(np.float32)
    b = rng.normal(0, 0.2, (n, rank)).astype(np.float32)
    adapter = tmp_path / "adapter.safetensors"
    safetensors.save(str(adapter), {
        f"base_model.model.{layer}.lora_A.weight": a,
        f"base_model.model.{layer}.lora_B.weight": b,
    }, metadata={"lora_alpha": str(alpha)})
    delta = (alpha / rank) * (b @ a)

    plain_dir, merged_dir = tmp_path / "plain", tmp_path / "merged"
    plain_dir.mkdir()
    merged_dir.mkdir()
    plain, _ = quantize(llq_opt, imported, "nf4-g64", calib, plain_dir)
    merged, _ = quantize(llq_opt, imported, "nf4-g64", calib, merged_dir,
                         extra=[f"--lora={adapter}"])

    def decoded(ir):
        archive = safetensors.load(str(ir.with_suffix(".safetensors")))
        return {lay: decode(fmt, parts, nn, kk, attrs)
                for _, fmt, lay, parts, attrs, nn, kk in packed_layers(ir.read_text(), archive)}

    p, m = decoded(plain), decoded(merged)
    assert p[layer].shape == (n, k)
    change = m[layer] - p[layer]
    # The change is the adapter's, up to two NF4 roundings.
    assert np.linalg.norm(change - delta) < 0.25 * np.linalg.norm(delta)
    for other in p:
        if other != layer:
            np.testing.assert_array_equal(p[other], m[other])

    # An explicit --lora-alpha overrides the metadata.
    half_dir = tmp_path / "half"
    half_dir.mkdir()
    half, _ = quantize(llq_opt, imported, "nf4-g64", calib, half_dir,
                       extra=[f"--lora={adapter}", f"--lora-alpha={alpha / 2}"])
    h = decoded(half)
    assert np.linalg.norm(h[layer] - p[layer] - delta / 2) < 0.25 * np.linalg.norm(delta / 2)


@pytest.mark.parametrize("tensors,message", [
    ({"model.layers.0.mlp.up_proj.lora_A.weight": np.zeros((4, 64), np.float32)},
     "has no 'model.layers.0.mlp.up_proj.lora_B.weight'"),
    ({"model.layers.0.mlp.up_proj.lora_A.weight": np.zeros((4, 64), np.float32),
      "model.layers.0.mlp.up_proj.lora_B.weight": np.zeros((64, 4), np.float32)},
     "is 4x64 with B 64x4, but model.layers.0.mlp.up_proj is 160x64"),
    ({"lm_head.lora_A.weight": np.zeros((4, 64), np.float32),
      "lm_head.lora_B.weight": np.zeros((256, 4), np.float32)},
     "'lm_head.lora_A.weight' matches no quantized linear layer"),
    ({"something.else": np.zeros((4,), np.float32)}, "has no '<layer>.lora_A.weight' tensors"),
])
def test_bad_lora_adapters_are_rejected(llq_opt, imported, tmp_path, tensors, message):
    adapter = tmp_path / "adapter.safetensors"
    safetensors.save(str(adapter), tensors)
    out = tmp_path / "out.mlir"
    r = subprocess.run([llq_opt, str(imported), "--quantize=nf4-g64", f"--lora={adapter}",
                        "-o", str(out)], capture_output=True, text=True)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert not out.exists()


def test_study_spellings_parse(llq_opt, calib, tmp_path):
    """Every configuration the study lists is a valid --quantize spec (the
    run stops at the missing input, after the spec and calibration checks)."""
    from llq import study
    assert set(study.ULTRA_LOW_BIT) <= set(study.CONFIGS)
    for config in study.CONFIGS:
        if config == "float":
            continue
        r = subprocess.run([llq_opt, str(tmp_path / "missing.mlir"), f"--quantize={config}",
                            f"--calib={calib}", "-o", str(tmp_path / "out.mlir")],
                           capture_output=True, text=True)
        assert r.returncode != 0
        assert "invalid quantization spec" not in r.stderr, r.stderr
        assert "missing.mlir" in r.stderr, r.stderr
    assert study.describe("billm") == ("billm", "1/16/128")
    assert study.describe("pbllm-w1.7") == ("pbllm", "1.7/16/-")
    assert study.describe("nf4-icq") == ("nf4-icq", "4/16/64")
    assert study.describe("dbllm-w2-g128") == ("dbllm", "2/16/128")
