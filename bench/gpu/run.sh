#!/usr/bin/env bash
# Builds and runs the quantized GEMM benchmark (qgemm_bench.cpp) on a machine
# with an NVIDIA GPU and the CUDA toolkit; no LLVM/MLIR needed. See README.md.
#
#   bench/gpu/run.sh [KERNEL_DIR] [--build-only] [qgemm_bench options...]
#
# KERNEL_DIR (default build/gpu-kernels) is what
# `llq-compile --kernels=... -o KERNEL_DIR` wrote on a machine with the llq
# build (scripts/gpu-kernels.sh makes the default set). The script compiles
# the bench and the runtime with the host compiler, checks the C API on a
# PTX-only copy of the kernels (the driver's JIT path), then checks and times
# every kernel against the CPU reference and cuBLAS, and, when
# KERNEL_DIR/model-cuda and KERNEL_DIR/model-cpu hold a whole compiled model
# (scripts/gpu-kernels.sh writes them), runs it on the GPU and on the host
# library and compares the logits (model_check.c).
# Environment: CUDA_HOME (default /usr/local/cuda), CXX (default g++),
# BUILD_DIR (default build/gpu-bench).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
CXX="${CXX:-g++}"
BUILD_DIR="${BUILD_DIR:-build/gpu-bench}"
mkdir -p "$BUILD_DIR"

KERNEL_DIR=build/gpu-kernels
if [[ $# -gt 0 && "$1" != -* ]]; then
  KERNEL_DIR="$1"
  shift
fi
# --build-only: compile the bench and the C programs, run nothing (what the
# test suite checks on machines without a GPU).
BUILD_ONLY=0
if [[ $# -gt 0 && "$1" == --build-only ]]; then
  BUILD_ONLY=1
  shift
fi
if [[ ! -f "$KERNEL_DIR/kernels.txt" ]]; then
  echo "run.sh: $KERNEL_DIR/kernels.txt not found; generate the kernels with" >&2
  echo "  scripts/gpu-kernels.sh $KERNEL_DIR" >&2
  echo "on a machine with the llq build (see bench/gpu/README.md)" >&2
  exit 2
fi

SOURCES=(
  runtime/cuda/CApi.cpp
  runtime/cuda/CudaDriver.cpp
  runtime/cuda/KernelLibrary.cpp
  runtime/cuda/KernelManifest.cpp
  runtime/cuda/ModelEngine.cpp
  lib/Archive/DType.cpp
  lib/Archive/MappedFile.cpp
  lib/Archive/SafeTensors.cpp
  lib/Support/Text.cpp
  lib/Support/Utf8.cpp
  lib/Quant/GpuLayout.cpp
  lib/Quant/Half.cpp
  lib/Quant/Packing.cpp
  bench/gpu/qgemm_bench.cpp
)
CXXFLAGS=(-std=c++17 -O2 -march=native -Iinclude -Iruntime/cuda/include
          -I"$CUDA_HOME/include")

echo "== compiling qgemm_bench ($CXX, ${#SOURCES[@]} sources, 16 jobs)"
pids=()
objs=()
for src in "${SOURCES[@]}"; do
  obj="$BUILD_DIR/$(echo "$src" | tr / _).o"
  objs+=("$obj")
  "$CXX" "${CXXFLAGS[@]}" -c "$src" -o "$obj" &
  pids+=($!)
  while [[ $(jobs -rp | wc -l) -ge 16 ]]; do sleep 0.1; done
done
for pid in "${pids[@]}"; do wait "$pid"; done
"$CXX" "${objs[@]}" -o "$BUILD_DIR/qgemm_bench" \
  -L"$CUDA_HOME/lib64" -Wl,-rpath,"$CUDA_HOME/lib64" \
  -lcublas -lcudart -ldl -lpthread

# The runtime without the bench: what the C programs link.
runtime_objs=()
for obj in "${objs[@]}"; do
  [[ $obj == *runtime_cuda_* || $obj == *lib_Archive_* ||
     $obj == *lib_Support_* ]] && runtime_objs+=("$obj")
done

if [[ $BUILD_ONLY == 1 ]]; then
  for prog in capi_smoke model_check; do
    "${CC:-gcc}" -std=c99 -O2 -Wall -Werror -Iruntime/cuda/include \
      -c "bench/gpu/$prog.c" -o "$BUILD_DIR/$prog.o"
    "$CXX" "$BUILD_DIR/$prog.o" "${runtime_objs[@]}" -o "$BUILD_DIR/$prog" \
      -ldl -lm -lpthread
  done
  echo "== built $BUILD_DIR/qgemm_bench, capi_smoke, model_check"
  exit 0
fi

# The C API, compiled as C, on a PTX-only copy of the kernels (driver JIT),
# with the first 4-bit decode kernel for one row.
SMOKE_RC=0
smoke=$(awk '$1 == "kernel" && / kind=decode / && / bits=4 / && / mtile=1 / {
  for (i = 3; i <= NF; ++i) { split($i, kv, "="); v[kv[1]] = kv[2] }
  print $2, v["n"], v["k"], v["group"]; exit }' "$KERNEL_DIR/kernels.txt")
if [[ -n $smoke ]]; then
  PTX_DIR="$BUILD_DIR/ptx-only"
  mkdir -p "$PTX_DIR"
  cp "$KERNEL_DIR/kernels.ptx" "$PTX_DIR/"
  grep -v '^module sm_' "$KERNEL_DIR/kernels.txt" > "$PTX_DIR/kernels.txt"
  "${CC:-gcc}" -std=c99 -O2 -Iruntime/cuda/include \
    -c bench/gpu/capi_smoke.c -o "$BUILD_DIR/capi_smoke.o"
  "$CXX" "$BUILD_DIR/capi_smoke.o" "${runtime_objs[@]}" \
    -o "$BUILD_DIR/capi_smoke" -ldl
  echo "== C API on $PTX_DIR: $smoke"
  # shellcheck disable=SC2086
  "$BUILD_DIR/capi_smoke" "$PTX_DIR" $smoke || SMOKE_RC=$?
fi

# Whole models: GPU vs host library, through the C API (model-*: the AWQ
# model, and model-w8a8-*: SmoothQuant W8A8, whose 8-token prompt runs the
# int8 tensor-core prefill on the GPU and 4-row decode kernels on the host).
MODEL_RC=0
MODEL_CHECK_BUILT=0
for prefix in model model-w8a8; do
  if [[ -f "$KERNEL_DIR/$prefix-cuda/model.txt" && -f "$KERNEL_DIR/$prefix-cpu/model.txt" ]]; then
    if [[ $MODEL_CHECK_BUILT == 0 ]]; then
      MODEL_CHECK_BUILT=1
      "${CC:-gcc}" -std=c99 -O2 -Iruntime/cuda/include \
        -c bench/gpu/model_check.c -o "$BUILD_DIR/model_check.o"
      "$CXX" "$BUILD_DIR/model_check.o" "${runtime_objs[@]}" \
        -o "$BUILD_DIR/model_check" -ldl -lm -lpthread
    fi
    echo "== whole model: $KERNEL_DIR/$prefix-cuda vs $KERNEL_DIR/$prefix-cpu"
    "$BUILD_DIR/model_check" "$KERNEL_DIR/$prefix-cuda" "$KERNEL_DIR/$prefix-cpu" \
      32 1 504 3458 282 253 1345 30 2 || MODEL_RC=$?
    # Decode steps replay a CUDA graph by default; once more kernel by kernel.
    echo "== whole model, LLQ_CUDA_GRAPHS=0 (no graph): $KERNEL_DIR/$prefix-cuda"
    LLQ_CUDA_GRAPHS=0 "$BUILD_DIR/model_check" "$KERNEL_DIR/$prefix-cuda" \
      "$KERNEL_DIR/$prefix-cpu" 32 1 504 3458 282 253 1345 30 2 || MODEL_RC=$?
  fi
done

echo "== running $BUILD_DIR/qgemm_bench $KERNEL_DIR $*"
BENCH_RC=0
"$BUILD_DIR/qgemm_bench" "$KERNEL_DIR" "$@" || BENCH_RC=$?
if [[ $BENCH_RC != 0 ]]; then exit $BENCH_RC; fi
if [[ $MODEL_RC != 0 ]]; then exit $MODEL_RC; fi
exit $SMOKE_RC
