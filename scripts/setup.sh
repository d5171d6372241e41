#!/usr/bin/env bash
# Installs every dependency llq needs (Debian packages, Python packages) and
# builds it. Idempotent: a second run only rebuilds what changed.
#
#   scripts/setup.sh            # install + build into build/
#   LLQ_BUILD_DIR=out scripts/setup.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${LLQ_BUILD_DIR:-$root/build}"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------
apt_packages=(
  cmake ninja-build g++ pkg-config
  llvm-19-dev llvm-19-tools libmlir-19-dev mlir-19-tools
  libgtest-dev libopenblas-dev clang
  python3.11-doc fortunes
)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# --- Python packages -------------------------------------------------------
python="${PYTHON:-python3}"
req="$root/python/requirements.txt"
stamp="$build/.python-requirements"
mkdir -p "$build"
if ! cmp -s "$req" "$stamp" 2>/dev/null; then
  log "installing Python packages from python/requirements.txt"
  "$python" -m pip install -q --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi

# --- Build -----------------------------------------------------------------
if [ ! -f "$build/build.ninja" ]; then
  log "configuring in $build"
  cmake -G Ninja -S "$root" -B "$build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DMLIR_DIR=/usr/lib/llvm-19/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-19/build/utils/lit/lit.py \
    -DPython3_EXECUTABLE="$(command -v "$python")" >/dev/null
fi
log "building (ninja -j${LLQ_JOBS:-2})"
ninja -C "$build" -j"${LLQ_JOBS:-2}" all
log "ready: $build/bin"
