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
  # The machine goes back 30 s after a call: the next call may find it bare. The built module
  # comes back in $OUT (copy it to .gpubuild/ here, carry .gpubuild), so gpu_restore can skip
  # a rebuild of the same native sources.
  local site; site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  tar czf "$OUT/gpubuild.tgz" -C "$site" llmaccel && echo "built module saved: gpubuild.tgz"
}

# gpu_restore: the module of an earlier call's gpu_build (.gpubuild/gpubuild.tgz) with this
# tree's Python files over it, when the machine no longer has one.
gpu_restore() {
  "$PY" -c "import llmaccel._C as c; assert hasattr(c, 'cuda_gemm_w8a8_wgmma')" 2>/dev/null && return 0
  [[ -f .gpubuild/gpubuild.tgz ]] || { echo "no build here and none carried"; gpu_build; return; }
  local site; site=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  tar xzf .gpubuild/gpubuild.tgz -C "$site" && cp -r python/llmaccel/. "$site/llmaccel/"
  echo "== restored the carried build $(date +%T)"
}
