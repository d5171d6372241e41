import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))


def tool(name):
    build = os.environ.get("LLQ_BUILD_DIR", os.path.join(ROOT, "build"))
    path = os.path.join(build, "bin", name)
    if not os.path.exists(path):
        path = shutil.which(name)
    if not path:
        pytest.fail(f"{name} is not built; run scripts/setup.sh first")
    return path


@pytest.fixture(scope="session")
def llq_opt():
    return tool("llq-opt")


@pytest.fixture(scope="session")
def llq_import():
    return tool("llq-import")


@pytest.fixture(scope="session")
def llq_run():
    return tool("llq-run")


@pytest.fixture(scope="session")
def llq_compile():
    return tool("llq-compile")


@pytest.fixture(scope="session")
def tiny(llq_import, tmp_path_factory):
    """A small LLaMA (grouped-query heads, tied embeddings), imported."""
    from llq import onnx_llama
    out = tmp_path_factory.mktemp("tiny")
    cfg = onnx_llama.LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=192,
                                 num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, tie_word_embeddings=True)
    onnx_llama.build(cfg, onnx_llama.random_weights(cfg, seed=3), str(out / "tiny.onnx"))
    subprocess.run([llq_import, str(out / "tiny.onnx"), "-o", str(out / "model.mlir")],
                   check=True)
    return out / "model.mlir"


def fake_cuda_library():
    """The stand-in libcuda that runs GPU kernels in the emulator."""
    build = os.environ.get("LLQ_BUILD_DIR", os.path.join(ROOT, "build"))
    path = os.path.join(build, "lib", "libllq-fake-cuda.so")
    if not os.path.exists(path):
        pytest.fail("libllq-fake-cuda.so is not built; run scripts/setup.sh first")
    return path
