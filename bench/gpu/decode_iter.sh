#!/usr/bin/env bash
# Iterating on the decode kernels in one device call (bench/gpu/NOTES.md): build with CUDA, the
# decode tests, sanitizers, decode_compare.py on the issue's shapes plus one single-K-chunk
# shape, a sweep of the K-slice kernel's ring variants (LLMACCEL_KS_VARIANT), its SASS by opcode,
# and an ncu report of one M=1 call. Everything lands in $OUT as at most 6 files (the device tool
# brings back 8). The opt-in kernels' first runs are bench/gpu/optin_iter.sh.
#   OUT=/tmp/x bash bench/gpu/decode_iter.sh
set -u
source "$(dirname "$0")/_iter_env.sh"
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
log=$OUT/iter.log
{
  gpu_build
  echo "== tests $(date +%T)"
  "$PY" -m pytest -q -p no:cacheprovider tests/ops/test_cuda_gemm.py tests/ops/test_cuda_gemm_decode.py \
    -k "w4a16" 2>&1 | tail -n 8
  echo "== sanitizers $(date +%T)"
  for tool in memcheck racecheck synccheck; do
    PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 120 "$CSAN" --tool $tool --error-exitcode 1 \
      --print-limit 10 "$PY" bench/gpu/sanitize_case.py >/tmp/san_$tool.log 2>&1
    echo "$tool: rc $? $(tail -n 2 /tmp/san_$tool.log | tr '\n' ' ')"
  done
  echo "== compare $(date +%T)"
  "$PY" bench/gpu/decode_compare.py --out "$OUT" \
    --shapes "${SHAPES:-4096x14336,14336x4096,8192x8192,1024x57344}" --m "${MS:-1,4,8,12,16}"
  echo "== scaling at M=1: time against bytes $(date +%T)"
  "$PY" bench/gpu/decode_compare.py --out /tmp/decode_scaling \
    --shapes 4096x3584,4096x7168,4096x28672,4096x57344 --m 1 2>&1 | grep '^K'
  echo "== LLMACCEL_KS_REDUCE=cluster (K chunks in a cluster's shared memory) $(date +%T)"
  LLMACCEL_KS_REDUCE=cluster "$PY" bench/gpu/decode_compare.py --out /tmp/decode_cluster \
    --shapes 4096x14336,8192x8192,4096x4096 --m 1,8,16 2>&1 | grep '^K'
  for v in ${VARIANTS:-1 3}; do
    echo "== LLMACCEL_KS_VARIANT=$v $(date +%T)"
    LLMACCEL_KS_VARIANT=$v "$PY" bench/gpu/decode_compare.py --out /tmp/decode_sweep \
      --shapes ${VSHAPES:-4096x14336,8192x8192} --m ${VMS:-1,8} 2>&1 | grep '^K'
  done
  echo "== end $(date +%T)"
} >"$log" 2>&1
cat "$log"
SO=$("$PY" -c 'import llmaccel._C as c; print(c.__file__)' 2>/dev/null)
SASS_FN=${SASS_FN:-_ZN8llmaccel4cuda28gemm_decode_kslice_w4_kernelI13__nv_bfloat16Lb0ELi1ELi0ELi6ELi3EEEvNS0_12SwapAbParamsENS0_6KsPlanEi}
if command -v cuobjdump >/dev/null && [[ -n $SO ]]; then
  cuobjdump -sass -fun "$SASS_FN" "$SO" >"$OUT/sass.txt" 2>&1
  echo "SASS of $SASS_FN: $(grep -cE '^\s+/\*[0-9a-f]{4}\*/' "$OUT/sass.txt") instructions; by opcode:"
  grep -oE '^\s+/\*[0-9a-f]{4}\*/\s+(@!?U?P[0-9T] )?[A-Z0-9_]+' "$OUT/sass.txt" | awk '{print $NF}' \
    | sort | uniq -c | sort -rn | head -n 25 | tr '\n' ' '; echo
fi
if [[ -n $NCU && ${SKIP_NCU:-0} != 1 ]]; then
  for kern in ${NCU_KERNELS:-kslice}; do
    LLMACCEL_DECODE_KERNEL=$kern timeout 150 "$NCU" --kernel-name regex:gemm_decode --launch-skip 3 \
      --launch-count 1 --section SpeedOfLight --section Occupancy --section LaunchStats \
      --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis \
      --section InstructionStats \
      --metrics 'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' \
      "$PY" bench/gpu/profile_case.py --op gemm_w4a16 --k 4096 --n 14336 --m 1 \
      >"$OUT/ncu_$kern.txt" 2>&1
    grep -E "Duration|DRAM Throughput|Issued Ipc|Issued Warp|Achieved Occupancy|Registers Per|Warp Cycles Per Issued|Executed Instructions  " "$OUT/ncu_$kern.txt" | head -n 12
    grep -E "issue_stalled" "$OUT/ncu_$kern.txt" | awk '$NF+0 > 0.3' | sed 's/smsp__average_warps_issue_stalled_//'
  done
else
  echo "ncu: not found"
fi
