"""bench/gpu/run.sh, the script a GPU machine runs, compiles here: the bench,
the runtime it links (without LLVM or MLIR), and the C programs of the C API
(`--build-only` runs nothing). Needs the CUDA toolkit's headers and cuBLAS.
The C programs then run here on the stand-in libcuda, which emulates the
GPU kernels, as they will on the GPU machine: the C API smoke test, and the
whole-model check of a GPU artifact against the host library."""
import os
import subprocess

import pytest

from conftest import ROOT, fake_cuda_library

CUDA_HOME = os.environ.get("CUDA_HOME", "/usr/local/cuda")


@pytest.mark.skipif(not os.path.exists(os.path.join(CUDA_HOME, "include", "cublas_v2.h")),
                    reason="no CUDA toolkit")
def test_gpu_bench_builds(llq_compile, llq_opt, tiny, tmp_path):
    kernels = tmp_path / "kernels"
    subprocess.run([llq_compile, "--kernels=w4-g128:64x256,w8a8-g256:64x256",
                    "--target=cuda-sm80", "-o", str(kernels)], check=True,
                   capture_output=True)
    env = dict(os.environ, BUILD_DIR=str(tmp_path / "bench"))
    r = subprocess.run([os.path.join(ROOT, "bench", "gpu", "run.sh"), str(kernels),
                        "--build-only"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    for prog in ("qgemm_bench", "capi_smoke", "model_check"):
        assert os.access(tmp_path / "bench" / prog, os.X_OK)

    # capi_smoke on the first 4-bit decode kernel, as run.sh runs it.
    emitted = tmp_path / "kernels.mlir"
    emitted.write_text(subprocess.run(
        [llq_compile, "--kernels=w4-g128:64x256,w8a8-g256:64x256", "--target=cuda-sm80",
         "--emit=mlir"], check=True, capture_output=True, text=True).stdout)
    decode = next(line.split() for line in (kernels / "kernels.txt").read_text().splitlines()
                  if line.startswith("kernel ") and " kind=decode " in line
                  and " bits=4 " in line and " mtile=1 " in line)
    fields = dict(kv.split("=") for kv in decode[2:])
    fake = dict(os.environ, LLQ_CUDA_DRIVER=fake_cuda_library(),
                LLQ_FAKE_CUDA_MLIR=str(emitted))
    r = subprocess.run([str(tmp_path / "bench" / "capi_smoke"), str(kernels), decode[1],
                        fields["n"], fields["k"], fields["group"]],
                       capture_output=True, text=True, env=fake)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]

    # model_check: a GPU artifact vs the host library, graphs on and off.
    q = tmp_path / "model.q.mlir"
    subprocess.run([llq_opt, str(tiny), "--quantize=rtn-w4-g32", "-o", str(q),
                    "--quantize-report=none"], check=True)
    gpu_args = [llq_compile, str(q), "--target=cuda-sm90,cuda-sm80", "--max-context=64"]
    subprocess.run(gpu_args + ["-o", str(tmp_path / "gpu")], check=True, capture_output=True)
    subprocess.run([llq_compile, str(q), "--target=cpu", "--max-context=64", "-o",
                    str(tmp_path / "cpu")], check=True, capture_output=True)
    model = tmp_path / "model.mlir"
    model.write_text(subprocess.run(gpu_args + ["--emit=mlir"], check=True,
                                    capture_output=True, text=True).stdout)
    for graphs in ("1", "0"):
        env = dict(fake, LLQ_FAKE_CUDA_MLIR=str(model), LLQ_CUDA_GRAPHS=graphs)
        r = subprocess.run([str(tmp_path / "bench" / "model_check"), str(tmp_path / "gpu"),
                            str(tmp_path / "cpu"), "6"] + [str(t) for t in range(1, 30, 3)],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
