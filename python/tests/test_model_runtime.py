"""Whole models through llq-compile and the deployable runtime.

A small LLaMA (grouped-query heads, tied embeddings) is built with the same
ONNX builder as the default model, imported, optionally quantized, compiled
with `llq-compile --target=cpu` and run by runtime/cuda's ModelEngine on the
host library (`llq-run DIR --device cpu`). Its logits at every position,
its chunked prefill and its greedy continuation must match the CPU
interpreter (`llq-run model.mlir`) on the same IR: the kernels compute
activations in f16, so they agree to about 1e-3 of the largest logit.
The GPU runs the same kernels and launch sequence (bench/gpu/run.sh checks
it against this host library on a GPU machine).
"""
import re
import subprocess

import numpy as np
import pytest

from conftest import fake_cuda_library
from test_import_oracle import relative_error, run_llq

TOKENS = [1, 17, 42, 5, 99, 3, 128, 64, 250, 7, 7, 31]


def compile_cpu(llq_compile, ir, out, *extra):
    subprocess.run([llq_compile, str(ir), "--target=cpu", "-o", str(out), *extra],
                   check=True, capture_output=True)
    return out


def quantize(llq_opt, ir, spec, tmp_path):
    """`llq-opt --quantize=spec` (calibrated methods on random tokens)."""
    out = tmp_path / "model.q.mlir"
    args = [llq_opt, str(ir), f"--quantize={spec}", "-o", str(out), "--quantize-report=none"]
    if spec.startswith(("awq", "smoothquant", "pbllm", "billm", "quip")):
        calib = tmp_path / "calib.txt"
        calib.write_text(" ".join(map(str, np.random.default_rng(1).integers(0, 300, 2048))))
        args += [f"--calib={calib}", "--calib-samples=4", "--calib-seqlen=64"]
    subprocess.run(args, check=True)
    return out


def run_artifact(llq_run, art, tokens, *extra):
    args = [llq_run, str(art), "--device", "cpu", "--tokens", ",".join(map(str, tokens)),
            *extra]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


# PB-LLM, BiLLM, DB-LLM and NF4 layers keep their formats (bit planes,
# salient int8 codes, residual signs, NF4 codes) and run GEMVs of their own. SmoothQuant's W8A8 layers quantize activations that the runtime holds in
# f16 and the interpreter in f32, so an activation code can move by one: the
# logits agree to a few percent rather than to f16 rounding.
@pytest.mark.parametrize("spec,tolerance", [("float", 5e-3), ("rtn-w4-g32", 5e-3),
                                            ("rtn-w8", 5e-3), ("awq-w4-g32", 5e-3),
                                            ("pbllm-w2", 5e-3), ("billm", 5e-3),
                                            ("dbllm-w2-g64", 5e-3), ("nf4-g64", 5e-3),
                                            ("nf4-icq", 5e-3), ("quip-w4", 5e-3),
                                            ("quip-w2-g64", 5e-3),
                                            ("smoothquant-w8a8", 5e-2)])
def test_every_position_matches_the_interpreter(llq_opt, llq_compile, llq_run, tiny, tmp_path,
                                                spec, tolerance):
    ir = tiny if spec == "float" else quantize(llq_opt, tiny, spec, tmp_path)
    art = compile_cpu(llq_compile, ir, tmp_path / "art", "--max-context=64")
    model = (art / "model.txt").read_text()
    assert "model hidden=64 heads=4 kv_heads=2 head_dim=16" in model
    assert model.count("\nblock ") == 2
    want, _ = run_llq(llq_run, ir, TOKENS)
    text = run_artifact(llq_run, art, TOKENS, "--print-logits")
    got = np.array([[float(x) for x in r.split()] for r in text.splitlines()], np.float32)
    assert got.shape == want.shape
    assert relative_error(got, want) < tolerance
    if spec.startswith("smoothquant"):
        assert "act_bits=8" in (art / "layers.txt").read_text()
    if spec.startswith(("pbllm", "billm", "dbllm", "nf4", "quip")):  # own kernels
        fmt = spec.split("-")[0]
        assert (art / "layers.txt").read_text().count(f"format={fmt}") == 14


def test_chunked_prefill_and_decode_match(llq_opt, llq_compile, llq_run, tiny, tmp_path):
    q = tmp_path / "model.q.mlir"
    subprocess.run([llq_opt, str(tiny), "--quantize=rtn-w4-g32", "-o", str(q),
                    "--quantize-report=none"], check=True)
    # Three rows a step: the 12-token prompt runs in four chunks.
    art = compile_cpu(llq_compile, q, tmp_path / "art", "--prefill-rows=3",
                      "--max-context=32")
    want, want_gen = run_llq(llq_run, q, TOKENS, generate=6)
    text = run_artifact(llq_run, art, TOKENS, "--top-k", "5", "--generate", "6")
    lines = text.splitlines()
    top = [(int(a), float(b)) for a, b in (line.split() for line in lines[:5])]
    order = np.argsort(-want[-1])[:5]
    assert [t for t, _ in top] == list(order)
    for t, v in top:
        assert abs(v - want[-1][t]) < 5e-3 * np.max(np.abs(want[-1]))
    assert lines[5] == "generated: " + " ".join(map(str, want_gen))


def test_runtime_errors_are_diagnosed(llq_compile, llq_run, tiny, tmp_path):
    art = compile_cpu(llq_compile, tiny, tmp_path / "art", "--max-context=8")

    def fails(tokens, *extra):
        r = subprocess.run([llq_run, str(art), "--tokens", ",".join(map(str, tokens)), *extra],
                           capture_output=True, text=True)
        assert r.returncode != 0
        return r.stderr

    assert "context is full" in fails(list(range(9)), "--device", "cpu")
    assert "outside the vocabulary" in fails([1, 300], "--device", "cpu")
    # The host artifact has no GPU module, and this machine may have no driver.
    assert "cuda" in fails([1], "--device", "cuda").lower()
    assert "unknown device" in fails([1], "--device", "tpu")
    (art / "model.txt").write_text("model hidden=64\n")
    assert "model.txt:1: missing" in fails([1], "--device", "cpu")


def test_non_llama_graphs_are_refused(llq_compile, tiny, tmp_path):
    text = tiny.read_text()
    # Cut the first block's residual add: the plan no longer matches.
    broken = tmp_path / "broken.mlir"
    i = text.index("llq.binary <add>")
    broken.write_text(text[:i] + "llq.binary <sub>" + text[i + len("llq.binary <add>"):])
    archive = tiny.parent / "tiny.onnx.data"
    if archive.exists():
        (tmp_path / archive.name).symlink_to(archive)
    (tmp_path / "tiny.onnx").symlink_to(tiny.parent / "tiny.onnx")
    r = subprocess.run([llq_compile, str(broken), "--target=cpu", "-o", str(tmp_path / "out")],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "as a whole model" in r.stderr
    assert "residual add" in r.stderr
    assert not (tmp_path / "out").exists()


def test_gpu_artifact_has_the_whole_model(llq_opt, llq_compile, tiny, tmp_path):
    q = tmp_path / "model.q.mlir"
    subprocess.run([llq_opt, str(tiny), "--quantize=rtn-w4-g32", "-o", str(q),
                    "--quantize-report=none"], check=True)
    out = tmp_path / "gpu"
    subprocess.run([llq_compile, str(q), "--target=cuda-sm90,cuda-sm80", "-o", str(out)],
                   check=True, capture_output=True)
    manifest = (out / "kernels.txt").read_text()
    ops = {line.split(" op=")[1].split()[0] for line in manifest.splitlines()
           if " kind=model " in line}
    # GPU artifacts add the split attention of decode steps; greedy
    # sampling runs on the device.
    assert ops == {"embed", "add_sumsq", "rmsnorm", "rope", "scores", "softmax", "values",
                   "swiglu", "values_split", "attn_out", "argmax"}
    assert " kind=hgemv " in manifest  # the tied LM head stays f16
    model = (out / "model.txt").read_text()
    for name in [line.split()[1] for line in manifest.splitlines()
                 if line.startswith("kernel ") and " kind=model " in line]:
        assert name in model
    # The model kernels and the f16 GEMV keep everything in registers.
    ours = [line.split()[1] for line in manifest.splitlines()
            if " kind=model " in line or " kind=hgemv " in line]
    for chip in ("sm_90", "sm_80"):
        spills = ptxas_spills((out / f"kernels.{chip}.ptxas.txt").read_text())
        for name in ours:
            assert spills.get(name) == "0", (chip, name)


def ptxas_spills(report):
    """{kernel: spilled bytes} from a ptxas -v report."""
    return dict(re.findall(r"Function properties for (\S+)\n.*?(\d+) bytes spill stores",
                           report))


def test_gpu_artifact_prefills_integer_layers_on_tensor_cores(llq_opt, llq_compile, tiny,
                                                              tmp_path):
    # SmoothQuant's per-channel W8A8 layers get the int8 mma prefill kernel
    # and the activation-quantization nests it reads; the decode kernels stay
    # at up to 4 rows. K = 64 and 192 are not multiples of the kernel's K
    # step of 128: the short step is zero-filled.
    q = quantize(llq_opt, tiny, "smoothquant-w8a8", tmp_path)
    out = tmp_path / "gpu"
    subprocess.run([llq_compile, str(q), "--target=cuda-sm90,cuda-sm80", "-o", str(out)],
                   check=True, capture_output=True)
    manifest = (out / "kernels.txt").read_text()
    kernels = {line.split()[1]: line for line in manifest.splitlines()
               if line.startswith("kernel ")}
    layers = [line for line in (out / "layers.txt").read_text().splitlines()
              if line.startswith("layer ") and "act_bits=8" in line]
    assert len(layers) == 14
    for line in layers:
        prefill = re.search(r" prefill=(\S+)", line).group(1)
        assert prefill.startswith("llq_qgemm_w8a8_")
        entry = kernels[prefill]
        quant = re.search(r" act_quant=(\S+)", entry).group(1)
        amax = re.search(r" act_amax=(\S+)", entry).group(1)
        assert " op=act_quant " in kernels[quant] and " op=act_amax " in kernels[amax]
        assert "decode16=" not in line
    for chip in ("sm_90", "sm_80"):
        spills = ptxas_spills((out / f"kernels.{chip}.ptxas.txt").read_text())
        for name in kernels:
            if name.startswith(("llq_qgemm_", "llq_act_")):
                assert spills.get(name) == "0", (chip, name)
    # The host library has no tensor cores: its W8A8 layers take 4 rows at a
    # time, as before.
    cpu = compile_cpu(llq_compile, q, tmp_path / "cpu", "--max-context=32")
    assert " prefill=" not in (cpu / "layers.txt").read_text()


@pytest.mark.parametrize("spec,graphs", [("rtn-w4-g32", "1"), ("rtn-w4-g32", "0"),
                                         ("rtn-w4-g32", "fail"), ("quip-w4", "1"),
                                         ("smoothquant-w8a8", "1")])
def test_cuda_backend_with_a_stand_in_driver(llq_opt, llq_compile, llq_run, tiny, tmp_path,
                                             spec, graphs):
    # The CUDA backend (stream, asynchronous copies, the decode step recorded
    # once as a graph and replayed) runs against a stand-in libcuda that
    # emulates the GPU artifact's own kernels (their gpu.funcs, from
    # --emit=mlir): its logits at every position must be the host
    # backend's, to the f16 arithmetic the GPU kernels add. Each prompt row
    # runs as a decode step: the split attention kernels of decode steps.
    import os
    q = quantize(llq_opt, tiny, spec, tmp_path)
    cpu = compile_cpu(llq_compile, q, tmp_path / "cpu", "--max-context=32")
    gpu = tmp_path / "gpu"
    args = [llq_compile, str(q), "--target=cuda-sm80", "--decode-rows=1,4",
            "--max-context=32"]
    subprocess.run(args + ["-o", str(gpu)], check=True, capture_output=True)
    kernels = tmp_path / "kernels.mlir"
    kernels.write_text(subprocess.run(args + ["--emit=mlir"], check=True,
                                      capture_output=True, text=True).stdout)
    assert "values_split=" in (gpu / "model.txt").read_text()
    want = run_artifact(llq_run, cpu, TOKENS, "--print-logits")
    env = dict(os.environ, LLQ_CUDA_DRIVER=fake_cuda_library(),
               LLQ_FAKE_CUDA_MLIR=str(kernels), LLQ_FAKE_CUDA_LOG="1",
               LLQ_CUDA_GRAPHS="0" if graphs == "0" else "1",
               LLQ_FAKE_CUDA_FAIL_CAPTURE="1" if graphs == "fail" else "0")
    got = subprocess.run([llq_run, str(gpu), "--device", "cuda", "--tokens",
                          ",".join(map(str, TOKENS)), "--print-logits"],
                         check=True, capture_output=True, text=True, env=env)
    logits = lambda text: np.array([[float(x) for x in r.split()]
                                    for r in text.splitlines()], np.float32)
    assert relative_error(logits(got.stdout), logits(want)) < 5e-3
    launches, replays = map(int, re.search(r"fake cuda: (\d+) launches, (\d+) graph launches",
                                           got.stderr).groups())
    # --print-logits feeds the tokens one by one: each step is a replay of
    # the sequence recorded at the first when graphs are on and recording
    # works (the recording itself runs nothing).
    assert replays == (len(TOKENS) if graphs == "1" else 0)
    assert launches > 0
    # A prompt and a greedy continuation through the same backend.
    gen = subprocess.run([llq_run, str(gpu), "--device", "cuda", "--tokens",
                          ",".join(map(str, TOKENS)), "--generate", "5"],
                         check=True, capture_output=True, text=True, env=env).stdout
    assert gen == run_artifact(llq_run, cpu, TOKENS, "--generate", "5")


@pytest.mark.parametrize("spec", ["rtn-w4-g32", "smoothquant-w8a8"])
def test_gpu_kernels_emulated_through_the_cuda_backend(llq_opt, llq_compile, llq_run, tiny,
                                                       tmp_path, spec):
    # The GPU artifact as built for a GPU (tensor-core prefill, tensor-core
    # decode for 2..16 rows, the int8 prefill of SmoothQuant's layers), run
    # by the CUDA backend on the stand-in driver, which emulates the
    # artifact's own kernels (their gpu.funcs, from --emit=mlir): its top
    # logits and greedy continuation are the host library's, for a prompt
    # on the prefill kernel and one on the tensor-core decode kernel.
    import os
    q = quantize(llq_opt, tiny, spec, tmp_path)
    cpu = compile_cpu(llq_compile, q, tmp_path / "cpu", "--max-context=64")
    gpu = tmp_path / "gpu"
    args = [llq_compile, str(q), "--target=cuda-sm80", "--max-context=64"]
    subprocess.run(args + ["-o", str(gpu)], check=True, capture_output=True)
    kernels = tmp_path / "kernels.mlir"
    kernels.write_text(subprocess.run(args + ["--emit=mlir"], check=True,
                                      capture_output=True, text=True).stdout)
    manifest = (gpu / "kernels.txt").read_text()
    assert "kind=prefill" in manifest
    env = dict(os.environ, LLQ_CUDA_DRIVER=fake_cuda_library(),
               LLQ_FAKE_CUDA_MLIR=str(kernels), LLQ_FAKE_CUDA_LOG="1")
    rng = np.random.default_rng(5)
    for length in (40, 10):
        tokens = [int(t) for t in rng.integers(0, 300, length)]
        want = run_artifact(llq_run, cpu, tokens, "--top-k", "5", "--generate", "4")
        got = subprocess.run([llq_run, str(gpu), "--device", "cuda", "--tokens",
                              ",".join(map(str, tokens)), "--top-k", "5", "--generate", "4"],
                             check=True, capture_output=True, text=True, env=env)
        assert "launches" in got.stderr
        w, g = want.splitlines(), got.stdout.splitlines()
        assert g[5] == w[5]  # the greedy continuation
        top_w = [(int(a), float(b)) for a, b in (line.split() for line in w[:5])]
        top_g = [(int(a), float(b)) for a, b in (line.split() for line in g[:5])]
        assert [t for t, _ in top_g] == [t for t, _ in top_w]
        scale = max(abs(v) for _, v in top_w)
        for (_, a), (_, b) in zip(top_g, top_w):
            assert abs(a - b) <= 2e-2 * scale


def test_gpu_artifact_of_a_quip_model(llq_opt, llq_compile, tiny, tmp_path):
    # QuIP layers: Q' on the ordinary kernels (tensor-core prefill included)
    # between the Hadamard transforms' nests, which keep to registers.
    q = quantize(llq_opt, tiny, "quip-w4", tmp_path)
    out = tmp_path / "gpu"
    subprocess.run([llq_compile, str(q), "--target=cuda-sm90,cuda-sm80", "-o", str(out)],
                   check=True, capture_output=True)
    manifest = (out / "kernels.txt").read_text()
    layers = (out / "layers.txt").read_text()
    assert layers.count("format=quip") == 14 and layers.count(" prefill=llq_qgemm_w4_") == 14
    rht = [line.split()[1] for line in manifest.splitlines()
           if " op=rht_stage " in line or " op=rht_finish " in line]
    assert any("_t_" in name for name in rht) and any("_f_" in name for name in rht)
    for chip in ("sm_90", "sm_80"):
        spills = ptxas_spills((out / f"kernels.{chip}.ptxas.txt").read_text())
        for name in rht:
            assert spills.get(name) == "0", (chip, name)


def test_contexts_longer_than_a_block_of_threads(llq_compile, llq_run, tiny, tmp_path):
    # 300 positions: each attention thread scores several keys, and the
    # prompt runs in chunks of 64 rows.
    tokens = [int(t) for t in np.random.default_rng(4).integers(0, 300, 300)]
    art = compile_cpu(llq_compile, tiny, tmp_path / "art", "--max-context=320")
    want, _ = run_llq(llq_run, tiny, tokens)
    lines = run_artifact(llq_run, art, tokens, "--top-k", "300").splitlines()
    got = np.zeros(300, np.float32)
    for line in lines:
        t, v = line.split()
        got[int(t)] = float(v)
    assert relative_error(got, want[-1]) < 5e-3


def test_layers_without_kernels_are_diagnosed(llq_opt, llq_compile, tiny, tmp_path):
    """2-bit codes in groups of 32 do not fill the kernels' 128-bit chunks of
    64 codes: a diagnostic per layer naming the limit, exit 1, and no output
    directory."""
    q = quantize(llq_opt, tiny, "rtn-w2-g32", tmp_path)
    out = tmp_path / "gpu"
    r = subprocess.run([llq_compile, str(q), "--target=cpu", "-o", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.count("group 32 is not a multiple of the 64 codes") == 14
    assert "cannot compile" in r.stderr
    assert not out.exists()
