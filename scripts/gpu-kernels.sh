#!/usr/bin/env bash
# Generates the kernel set bench/gpu/run.sh checks and times: the LLaMA3-8B
# layer shapes (q/o 4096x4096, k/v 1024x4096, gate/up 14336x4096, down
# 4096x14336, lm_head 128256x4096) at W4 g128, and W8 / W2 g128 on two of
# them, W8A8 (per-channel) on three; decode kernels for M = 1 (CUDA cores)
# and M <= 8, 16, 64 (tensor cores; integer activations: up to 4 rows), and
# the tensor-core prefill kernels (int8 for W8A8), for sm_90 and sm_80 (PTX
# fallback from sm_80). Also whole models (see below) for the GPU
# (OUT_DIR/model-cuda, model-w8a8-cuda) and for the host (model-cpu,
# model-w8a8-cpu), which bench/gpu/run.sh compares.
#
#   scripts/gpu-kernels.sh [OUT_DIR]     (default build/gpu-kernels)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LLQ_BUILD_DIR:-$root/build}"
out="${1:-$build/gpu-kernels}"
shapes=w4-g128:4096x4096,w4-g128:1024x4096,w4-g128:14336x4096
shapes+=,w4-g128:4096x14336,w4-g128:128256x4096
shapes+=,w8-g128:4096x4096,w8-g128:14336x4096
shapes+=,w2-g128:4096x4096,w2-g128:14336x4096
# SmoothQuant W8A8 (per-channel weights, per-token activations).
shapes+=,w8a8-g4096:4096x4096,w8a8-g4096:14336x4096,w8a8-g14336:4096x14336
"$build/bin/llq-compile" --kernels="$shapes" --decode-rows=1,8,16,64 \
  --target=cuda-sm90,cuda-sm80 -o "$out"
# Whole models for bench/gpu/run.sh's GPU-vs-host check. By default a
# small random-weight LLaMA (4 blocks, hidden 256, GQA 8/4 heads, vocab
# 4096) quantized with AWQ w4-g128 and SmoothQuant W8A8 on random tokens:
# its artifacts stay a few MB, so they travel to a GPU machine with the
# kernels. MODEL / MODEL_W8A8 name other quantized models (e.g. the quick
# study's SmolLM2, about 200 MB per artifact).
model="${MODEL:-}"
w8a8="${MODEL_W8A8:-}"
if [[ -z $model || -z $w8a8 ]]; then
  python="${PYTHON:-python3}"
  check="$build/gpu-check-model"
  mkdir -p "$check"
  PYTHONPATH="$root/python" "$python" - "$check" <<'PY'
import sys
import numpy as np
from llq import onnx_llama
out = sys.argv[1]
cfg = onnx_llama.LlamaConfig(vocab_size=4096, hidden_size=256, intermediate_size=768,
                             num_hidden_layers=4, num_attention_heads=8,
                             num_key_value_heads=4, tie_word_embeddings=True)
onnx_llama.build(cfg, onnx_llama.random_weights(cfg, seed=7), f"{out}/check.onnx")
rng = np.random.default_rng(7)
with open(f"{out}/calib.txt", "w") as f:
    f.write(" ".join(map(str, rng.integers(0, 4096, 4096))))
PY
  "$build/bin/llq-import" "$check/check.onnx" -o "$check/model.mlir"
  for spec in awq-w4-g128 smoothquant-w8a8; do
    "$build/bin/llq-opt" "$check/model.mlir" --quantize="$spec" \
      --calib="$check/calib.txt" --calib-samples=8 --calib-seqlen=128 \
      --quantize-report=none -o "$check/$spec.q.mlir"
  done
  model="${model:-$check/awq-w4-g128.q.mlir}"
  w8a8="${w8a8:-$check/smoothquant-w8a8.q.mlir}"
fi
if [[ -f "$model" ]]; then
  "$build/bin/llq-compile" "$model" --target=cuda-sm90,cuda-sm80 \
    --decode-rows=1,16 -o "$out/model-cuda"
  "$build/bin/llq-compile" "$model" --target=cpu -o "$out/model-cpu"
fi
if [[ -f "$w8a8" ]]; then
  "$build/bin/llq-compile" "$w8a8" --target=cuda-sm90,cuda-sm80 \
    --decode-rows=1 -o "$out/model-w8a8-cuda"
  "$build/bin/llq-compile" "$w8a8" --target=cpu -o "$out/model-w8a8-cpu"
fi
