"""bench/gpu/run.sh, the script a GPU machine runs, compiles here: the bench,
the runtime it links (without LLVM or MLIR), and the C programs of the C API
(`--build-only` runs nothing). Needs the CUDA toolkit's headers and cuBLAS."""
import os
import subprocess

import pytest

from conftest import ROOT

CUDA_HOME = os.environ.get("CUDA_HOME", "/usr/local/cuda")


@pytest.mark.skipif(not os.path.exists(os.path.join(CUDA_HOME, "include", "cublas_v2.h")),
                    reason="no CUDA toolkit")
def test_gpu_bench_builds(llq_compile, tmp_path):
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
