#!/usr/bin/env bash
# The optional oracle tier: torch + transformers (+ onnxscript, the
# onnxruntime-genai builder) in .venv-oracle, for regenerating the ONNX
# fixtures and the transformers comparisons. Not needed for the tests.
#
# PyPI's Linux torch wheel is built against CUDA and refuses to import
# without its CUDA libraries. Only the few it links directly are installed,
# next to the CUDA toolkit's (LD_LIBRARY_PATH), with the toolkit's stub
# libcuda standing in for the driver: CPU execution never calls it.
#
#   scripts/setup-oracle.sh
#   .venv-oracle/run python/tools/export_fixtures.py
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-oracle"
python="${PYTHON:-python3}"
cuda="${CUDA_HOME:-/usr/local/cuda}"

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
"${pip[@]}" --no-deps torch==2.15.0 nvidia-cufile nvidia-cusparselt-cu13==0.8.1 \
  nvidia-nvshmem-cu13==3.7.2 nvidia-nccl-cu13==2.30.7 transformers==5.23.0 \
  onnxscript onnxruntime-genai gguf
"${pip[@]}" filelock typing-extensions 'setuptools>=77' sympy networkx jinja2 fsspec \
  numpy pyyaml 'regex>=2025.10.22' tqdm packaging typer ml_dtypes onnx_ir flatbuffers \
  protobuf 'huggingface_hub>=1.31,<3' 'tokenizers>=0.23.1,<0.24' 'safetensors>=0.8' \
  onnx onnxruntime

mkdir -p "$venv/stubs"
ln -sf "$cuda/lib64/stubs/libcuda.so" "$venv/stubs/libcuda.so.1"
site=$("$venv/bin/python" -c 'import site; print(site.getsitepackages()[0])')
cat > "$venv/run" <<RUN
#!/usr/bin/env bash
export LD_LIBRARY_PATH="$site/nvidia/cu13/lib:$site/nvidia/nccl/lib:$cuda/lib64:$site/nvidia/cusparselt/lib:$site/nvidia/nvshmem/lib:$venv/stubs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PYTHONPATH="$root/python\${PYTHONPATH:+:\$PYTHONPATH}"
if [ "\${1:-}" = python ]; then shift; fi
exec "$venv/bin/python" "\$@"
RUN
chmod +x "$venv/run"
"$venv/run" -c 'import torch, transformers; print("oracle ready: torch", torch.__version__, "transformers", transformers.__version__)'
