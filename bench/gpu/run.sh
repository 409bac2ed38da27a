#!/usr/bin/env bash
# One call on a fresh GPU machine, from the repo root: bench/gpu/run.sh
#
#   env        nvidia-smi, nvcc, cmake, torch                                      → $OUT/env.log
#   build      pip install . with CUDA on (archs: LLMACCEL_CUDA_ARCHS, default 90a),
#              then an import check of the installed package from outside the repo → build.log
#   pytest     CUDA tests: tests/ops + tests/nn -k cuda, tests/**/test_cuda*.py   → pytest.log
#   sanitize   bench/gpu/sanitize_case.py plain, then under compute-sanitizer memcheck and
#              racecheck                                                            → sanitizer.log
#   bench      bench/gpu/bench_gpu.py --out $OUT $BENCH_GPU_ARGS
#                                                → bench.log, <date>_gpu_<gpu>.{json,md}
#
# Every step runs under a time limit inside one run budget (RUN_BUDGET_S, default 560 s: the
# device tool stops a command at 600 s); the sanitizers only take time the benchmark does not
# need (BENCH_RESERVE_S). A failed step does not stop the later ones; the exit status is 1 if
# any failed.
# The last lines printed are the benchmark's summary and the step table (the reply carries only
# the end of stdout). $OUT receives 8 files (the most the device tool brings back): 5 logs,
# summary.txt, and the benchmark's json and md.
#
# Env: OUT (default bench/results/gpu_run), PYTHON (python3), LLMACCEL_CUDA_ARCHS (90a),
#      BENCH_GPU_ARGS (e.g. "--quick"), SKIP_SANITIZER=1, SKIP_RACECHECK=1,
#      SANITIZER_TOOLS ("memcheck racecheck"), RUN_BUDGET_S (560), BENCH_RESERVE_S (200).
set -u

cd "$(dirname "$0")/../.." || exit 2
ROOT=$PWD
OUT=${OUT:-bench/results/gpu_run}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd) || exit 2
PY=${PYTHON:-python3}
ARCHS=${LLMACCEL_CUDA_ARCHS:-90a}
BUDGET=${RUN_BUDGET_S:-560}
BENCH_RESERVE=${BENCH_RESERVE_S:-200}
T0=$(date +%s)
export ROOT OUT PY ARCHS
# No network there: nothing may wait on an index, a version check or the Hugging Face hub.
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
       PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}

# The toolkit's bin/ may be off PATH (nvcc for CMake, compute-sanitizer).
for d in /usr/local/cuda/bin /usr/local/cuda-13.0/bin; do
  [[ -d $d && ":$PATH:" != *":$d:"* ]] && PATH="$PATH:$d"
done
export PATH
CSAN=$(command -v compute-sanitizer 2>/dev/null)
if [[ -z $CSAN ]]; then
  for c in /usr/local/cuda/compute-sanitizer/compute-sanitizer \
           /usr/local/cuda*/bin/compute-sanitizer \
           /opt/nvidia/*/compute-sanitizer/compute-sanitizer; do
    [[ -x $c ]] && { CSAN=$c; break; }
  done
fi
export CSAN

# ---- step bookkeeping ------------------------------------------------------------------------
NAMES=() STATES=() SECS=()
stamp() { date +%H:%M:%S; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
record() { NAMES+=("$1"); STATES+=("$2"); SECS+=("$3"); }

# step NAME CAP RESERVE LOG CMD...: runs CMD, output appended to LOG, for at most CAP seconds
# and never into the last RESERVE seconds of the budget (kept for later steps).
step() {
  local name=$1 cap=$2 reserve=$3 log=$4; shift 4
  local lim s rc d
  lim=$(( $(left) - reserve - 10 ))
  (( lim > cap )) && lim=$cap
  if (( lim < 15 )); then
    if (( reserve > 0 )); then record "$name" "skip (time kept for bench)" 0
    else record "$name" "FAIL (run budget spent)" 0; fi
    echo "[$(stamp)] $name: ${STATES[-1]}"
    return 1
  fi
  echo "[$(stamp)] $name: start, limit ${lim}s"
  printf '\n=== [%s] %s: %s\n' "$(stamp)" "$name" "$*" >>"$log"
  s=$(date +%s)
  timeout -k 10 "$lim" "$@" >>"$log" 2>&1
  rc=$?
  d=$(( $(date +%s) - s ))
  if (( rc == 0 )); then record "$name" ok "$d"
  elif (( rc == 124 || rc == 137 )); then record "$name" "FAIL (timeout ${lim}s)" "$d"
  else record "$name" "FAIL (rc $rc)" "$d"; fi
  echo "[$(stamp)] $name: ${STATES[-1]} in ${d}s"
  return "$rc"
}

# ---- the steps' bodies (exported: timeout runs them in a child bash) -------------------------
env_info() {
  echo "date: $(date -Is)  host: $(hostname)  kernel: $(uname -r)  cpus: $(nproc)"
  nvidia-smi
  nvidia-smi --format=csv --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,\
clocks.mem,power.limit,temperature.gpu
  echo "nvcc: $(command -v nvcc)"; nvcc --version
  echo "compute-sanitizer: ${CSAN:-not found}"; [[ -n $CSAN ]] && "$CSAN" --version
  cmake --version | head -n 1; echo "ninja $(ninja --version)"
  "$PY" - <<'EOF'
import importlib, sys
import torch
print("python", sys.version.split()[0], sys.executable)
print("torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available())
for m in ("pybind11", "scikit_build_core", "pytest", "pytest_timeout"):
    try:
        print(m, getattr(importlib.import_module(m), "__version__", "?"))
    except ImportError:
        print(m, "missing")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, f"sm_{p.major}{p.minor}", p.multi_processor_count, "SMs, L2",
          getattr(p, "L2_cache_size", "?"), "B")
sys.exit(0 if torch.cuda.is_available() else 1)
EOF
}

build() {
  cd "$ROOT" || return 2
  # A failed build must not leave an older llmaccel importable.
  "$PY" -m pip uninstall -y llmaccel
  # -v: the compiler's output (warnings, resource reports) goes to build.log.
  LLMACCEL_CUDA=ON \
    CMAKE_ARGS="-DLLMACCEL_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$ARCHS ${CMAKE_ARGS:-}" \
    "$PY" -m pip install --no-build-isolation --no-deps --no-index -v .
}

import_check() {
  cd / || return 2  # not the repo: the installed package, not a source tree, must be imported
  "$PY" - <<'EOF'
import os, sys
import torch
import llmaccel
info = llmaccel.cuda_info()
print("llmaccel", llmaccel.__file__, info)
dev = info.get("devices", info.get("device_count", 0))
n = len(dev) if isinstance(dev, (list, tuple)) else int(dev or 0)
root = os.path.realpath(os.environ["ROOT"])
installed = not os.path.realpath(llmaccel.__file__).startswith(root + os.sep)
has_cuda = {}
for op in ("gemm_w4a16", "gemm_w8a16", "gemm_w8a8", "dequant_w4", "dequant_w8",
           "quantize_act_int8"):
    try:
        has_cuda[op] = torch._C._dispatch_has_kernel_for_dispatch_key(f"llmaccel::{op}", "CUDA")
    except Exception as e:  # noqa: BLE001 - informative only
        has_cuda[op] = f"? ({type(e).__name__})"
print("CUDA kernels registered:", has_cuda)
print("cuda_path:", getattr(llmaccel.ops, "cuda_path", None)
      or getattr(sys.modules["llmaccel.ops.gemm"], "cuda_path", None))
ok = bool(info.get("built")) and n >= 1 and installed
print("import check:", "ok" if ok else
      f"FAIL (built={info.get('built')}, devices={n}, installed copy={installed})")
sys.exit(0 if ok else 1)
EOF
}

pytest_cuda() {
  cd "$ROOT" || return 2
  local extra=() to=() rc
  mapfile -t extra < <(find tests -name 'test_cuda*.py' -not -path 'tests/ops/*' \
                         -not -path 'tests/nn/*' | sort)
  "$PY" -c 'import pytest_timeout' 2>/dev/null && to=(--timeout=120)
  "$PY" -m pytest -q --maxfail=40 -p no:cacheprovider "${to[@]}" -k cuda tests/ops tests/nn "${extra[@]}"
  rc=$?
  (( rc == 5 )) && echo "pytest: no test matched -k cuda"
  return "$rc"
}
export -f env_info build import_check pytest_cuda

# ---- run -------------------------------------------------------------------------------------
echo "[$(stamp)] bench/gpu/run.sh in $ROOT, OUT=$OUT, budget ${BUDGET}s, CUDA archs $ARCHS"

step env 60 0 "$OUT/env.log" bash -c env_info
grep -E "^(torch|device|python) |release|^compute-sanitizer" "$OUT/env.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null

if step build 300 0 "$OUT/build.log" bash -c build; then
  tail -n 2 "$OUT/build.log"
else
  grep -n -m 15 -E "error|Error|ERROR" "$OUT/build.log"; tail -n 8 "$OUT/build.log"
fi
step import 60 0 "$OUT/build.log" bash -c import_check
tail -n 3 "$OUT/build.log"

step pytest 180 0 "$OUT/pytest.log" bash -c pytest_cuda
tail -n 15 "$OUT/pytest.log"

step sanitize 90 0 "$OUT/sanitizer.log" "$PY" bench/gpu/sanitize_case.py
tail -n 2 "$OUT/sanitizer.log"
if [[ ${SKIP_SANITIZER:-0} == 1 ]]; then
  record sanitizer "skip (SKIP_SANITIZER=1)" 0
elif [[ -z $CSAN ]]; then
  record sanitizer "FAIL (compute-sanitizer not found)" 0
else
  for tool in ${SANITIZER_TOOLS:-memcheck racecheck}; do
    if [[ $tool == racecheck && ${SKIP_RACECHECK:-0} == 1 ]]; then
      record racecheck "skip (SKIP_RACECHECK=1)" 0; continue
    fi
    # Without the caching allocator every tensor is its own cudaMalloc, so memcheck sees an
    # access past a tensor's end instead of landing silently in a neighbour.
    step "$tool" 150 "$BENCH_RESERVE" "$OUT/sanitizer.log" \
      env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$CSAN" --tool "$tool" --error-exitcode 1 \
      --print-limit 20 "$PY" bench/gpu/sanitize_case.py
    tail -n 3 "$OUT/sanitizer.log"
  done
fi

read -r -a BARGS <<<"${BENCH_GPU_ARGS:-}"
BLIM=$(( $(left) - 10 )); (( BLIM > 360 )) && BLIM=360
BBUDGET=$(( BLIM - 45 )); (( BBUDGET < 10 )) && BBUDGET=10  # time to write the report after
step bench 360 0 "$OUT/bench.log" \
  "$PY" bench/gpu/bench_gpu.py --out "$OUT" --budget-s "$BBUDGET" "${BARGS[@]}"
if grep -q "^=== summary" "$OUT/bench.log" 2>/dev/null; then
  sed -n '/^=== summary/,$p' "$OUT/bench.log"
else
  tail -n 30 "$OUT/bench.log" 2>/dev/null
fi

# ---- summary ---------------------------------------------------------------------------------
FAILED=0
{
  echo
  echo "=== run.sh: $(( $(date +%s) - T0 )) s in all (budget ${BUDGET} s), logs in $OUT"
  for i in "${!NAMES[@]}"; do
    printf '  %-10s %-32s %5ss\n' "${NAMES[$i]}" "${STATES[$i]}" "${SECS[$i]}"
    [[ ${STATES[$i]} == FAIL* ]] && FAILED=1
  done
  (( FAILED )) && echo "=== some steps FAILED" || echo "=== all steps ok"
} > "$OUT/summary.txt"
cat "$OUT/summary.txt"
exit "$FAILED"
