# Sourced by the device-call scripts (decode_iter.sh, optin_iter.sh): the repository root as the
# working folder, $OUT, $PY, the CUDA tools on PATH ($CSAN: compute-sanitizer), and gpu_build,
# which installs this tree with the CUDA kernels (sm_90a unless LLMACCEL_CUDA_ARCHS says
# otherwise) and stops the script with the build log's tail when that fails.
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
OUT=${OUT:-bench/results/gpu_run}; mkdir -p "$OUT"
PY=${PYTHON:-python3}
for d in /usr/local/cuda/bin /usr/local/cuda-13.0/bin; do [[ -d $d ]] && PATH="$PATH:$d"; done
export PATH PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
CSAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null \
  | head -n 1)

gpu_build() {
  echo "== build $(date +%T)"
  "$PY" -m pip uninstall -y llmaccel >/dev/null
  LLMACCEL_CUDA=ON \
    CMAKE_ARGS="-DLLMACCEL_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=${LLMACCEL_CUDA_ARCHS:-90a}" \
    "$PY" -m pip install --no-build-isolation --no-deps --no-index . >"$OUT/build.log" 2>&1 \
    || { tail -n 30 "$OUT/build.log"; exit 1; }
}
