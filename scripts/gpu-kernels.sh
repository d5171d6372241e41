#!/usr/bin/env bash
# Generates the kernel set bench/gpu/run.sh checks and times: the LLaMA3-8B
# layer shapes (q/o 4096x4096, k/v 1024x4096, gate/up 14336x4096, down
# 4096x14336, lm_head 128256x4096) at W4 g128, and W8 / W2 g128 on two of
# them; decode kernels for M = 1 (CUDA cores) and M <= 8, 16, 64 (tensor
# cores), and the tensor-core prefill kernel, for sm_90 and sm_80 (PTX
# fallback from sm_80). With a quantized model (MODEL, default the AWQ
# w4-g128 SmolLM2 of the quick study, when it exists), also the whole model
# for the GPU (OUT_DIR/model-cuda) and for the host (OUT_DIR/model-cpu),
# which bench/gpu/run.sh compares.
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
"$build/bin/llq-compile" --kernels="$shapes" --decode-rows=1,8,16,64 \
  --target=cuda-sm90,cuda-sm80 -o "$out"
model="${MODEL:-$build/study/quick/awq-w4-g128/model.q.mlir}"
if [[ -f "$model" ]]; then
  "$build/bin/llq-compile" "$model" --target=cuda-sm90,cuda-sm80 \
    --decode-rows=1,16 -o "$out/model-cuda"
  "$build/bin/llq-compile" "$model" --target=cpu -o "$out/model-cpu"
fi
