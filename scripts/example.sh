#!/usr/bin/env bash
# The main job on the built-in example: write the small LLaMA-shaped model,
# quantize it with RTN w4-g128 and print the per-layer summary.
#
#   scripts/setup.sh && scripts/example.sh [SPEC]      (default rtn-w4-g128)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LLQ_BUILD_DIR:-$root/build}"
python="${PYTHON:-python3}"
spec="${1:-rtn-w4-g128}"
out="$build/example"

PYTHONPATH="$root/python" "$python" -m llq.example "$out"
echo "model:     $out/model.mlir (+ model.safetensors)"
echo "quantize:  llq-opt model.mlir --quantize=$spec -o model.q.mlir"
echo
"$build/bin/llq-opt" "$out/model.mlir" --quantize="$spec" \
  -o "$out/model.q.mlir" --quantize-report=- 2>&1
echo
echo "wrote $out/model.q.mlir and $out/model.q.safetensors"
