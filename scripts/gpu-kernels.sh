#!/usr/bin/env bash
# Generates the kernel set bench/gpu/run.sh checks and times: the LLaMA3-8B
# layer shapes (q/o 4096x4096, k/v 1024x4096, gate/up 14336x4096, down
# 4096x14336, lm_head 128256x4096) at W4 g128, and W8 / W2 g128 on two of
# them; decode kernels for M = 1 (CUDA cores) and M <= 8, 16, 64 (tensor
# cores), and the tensor-core prefill kernel, for sm_90 and sm_80 (PTX
# fallback from sm_80).
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
