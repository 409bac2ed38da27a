#!/usr/bin/env bash
# First runs of the opt-in kernels in one device call (bench/gpu/NOTES.md): build with CUDA, then
# for the tiled int4 kernel (LLMACCEL_W4_TILED) and the sm_90a wgmma kernels of gemm_w8a8
# (LLMACCEL_W8A8_WGMMA=1), gemm_w4a16 (LLMACCEL_W4_WGMMA=all: every M, the decode range in
# 16- and 32-row x blocks too) and gemm_w8a16 (LLMACCEL_W8_WGMMA=all): their tests,
# compute-sanitizer
# on sanitize_case.py with them on, bench_gpu with each off and on in the M range it is meant
# for, the wgmma launch variants (programmatic launch off, clusters of 2 sharing x), two raster
# group sizes and x-row counts, and an ncu report of each wgmma kernel at M = 4096. The log lands
# in $OUT/optin.log (and is printed); bench_gpu's full reports in $OUT/optin_bench.md, ncu's in
# $OUT/ncu_*.txt.
# All of it takes longer than one device call (600 s): STEPS picks the parts, and a warm machine
# keeps the build (SKIP_BUILD=1). In order of what decides the most, one call each:
# STEPS="smoke tests sanitize", then with SKIP_BUILD=1 STEPS="w4a16", STEPS="w8a8 w8a16",
# STEPS="launch", STEPS="tiled group ncu". The next session's first call (2026-11-23):
# STEPS="trace xcopy" (where a call's time goes, from inside the kernels; who issues the copies,
# at large M), then with SKIP_BUILD=1 STEPS="xcheck", STEPS="xsan xsan2", STEPS="race",
# STEPS="quick".
#   OUT=/tmp/x STEPS="smoke tests" bash bench/gpu/optin_iter.sh
set -u
source "$(dirname "$0")/_iter_env.sh"
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null \
  | head -n 1)
log=$OUT/optin.log
STEPS=" ${STEPS:-smoke tests sanitize tiled w8a8 w4a16 w8a16 launch group ncu} "
step() { [[ $STEPS == *" $1 "* ]]; }

# sanitize NAME ENV...: memcheck, racecheck and synccheck of sanitize_case.py under ENV.
sanitize() {
  local name=$1; shift
  for tool in memcheck racecheck synccheck; do
    env "$@" PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 120 "$CSAN" --tool $tool --error-exitcode 1 \
      --print-limit 10 "$PY" bench/gpu/sanitize_case.py >"/tmp/san_${name}_$tool.log" 2>&1
    echo "$name $tool: rc $? $(tail -n 2 "/tmp/san_${name}_$tool.log" | tr '\n' ' ')"
  done
}
# bench KERNEL VAR "VALUES" M_LIST SHAPES [BUDGET_S]: bench_gpu's table rows with VAR at each
# value (bench_gpu skips what does not fit its budget, 60 s unless given).
bench() {
  local kernel=$1 var=$2 values=$3 ms=$4 shapes=$5 budget=${6:-60}
  for v in $values; do
    echo "-- $var=$v"
    rm -rf "/tmp/optin_$var$v"
    env "$var=$v" timeout $((budget + 90)) "$PY" bench/gpu/bench_gpu.py --kernels "$kernel" \
      --out "/tmp/optin_$var$v" --shapes "$shapes" --m "$ms" --budget-s "$budget" 2>&1 \
      | grep -E '^ +[0-9]+ \||^correctness|^ceilings'
    # the full reports, one file for all runs (the device tool brings back at most 8 files)
    for f in /tmp/optin_$var$v/*.md; do
      [[ -f $f ]] && { echo "# $var=$v ($kernel)"; cat "$f"; echo; } >>"$OUT/optin_bench.md"
    done
  done
}

# ncu_m1 NAME NCU_ARGS...: ncu of the 16-bit wgmma kernels (every M on them) at M = 1 on
# 4096→14336, one report per op in $OUT/NAME_<op>.txt.
ncu_m1() {
  local name=$1; shift
  for op in gemm_w4a16 gemm_w8a16; do
    echo "== ncu $name $op M=1 (wgmma) $(date +%T)"
    LLMACCEL_W4_WGMMA=all LLMACCEL_W8_WGMMA=all timeout 200 "$NCU" --kernel-name regex:wgmma \
      --launch-skip 2 --launch-count 1 "$@" "$PY" bench/gpu/profile_case.py --op $op --k 4096 \
      --n 14336 --m 1 --calls 3 >"$OUT/${name}_$op.txt" 2>&1
  done
}

# The trace step: where a call's time goes, from inside the kernels (bench/gpu/trace_probe.cu:
# the kernels compiled with their trace points, launched through the library's launchers; no
# Python build needed, so it runs while the module builds). Builds: the traced probe, the
# control without trace points (the library's kernels: its event times against the traced
# build's show what the trace points cost), and the main loop's pipeline experiments
# (gemm_wgmma.cuh: LLMACCEL_WGMMA_DEPTH, _CHAINS) and two blocks per SM at ≤ 64 x rows for
# int4 weights, ≤ 32 for int8 (LLMACCEL_WGMMA_SMALL_BPS=2, built without trace points: its times
# against the control's). Runs: every case traced and in the control; the x warp with two
# weights warps on the wgmma cases; the K-slice kernel's cluster reduction; the small-M wgmma
# cases under each variant. Reports in $OUT/trace.md, the raw records in $OUT/traces.tgz. A probe
# run takes ~10-40 s: the timeouts stop a hang early, and a default run that hangs skips the rest.
PROBES=("traced:" "control:-DLLMACCEL_PROBE_NO_TRACE" "depth3:-DLLMACCEL_WGMMA_DEPTH=3"
        "chains2:-DLLMACCEL_WGMMA_CHAINS=2"
        "depth3chains2:-DLLMACCEL_WGMMA_DEPTH=3 -DLLMACCEL_WGMMA_CHAINS=2"
        "bps2:-DLLMACCEL_PROBE_NO_TRACE -DLLMACCEL_WGMMA_SMALL_BPS=2")
probe_builds_start() {
  probe_builds=()
  local v
  for v in "${PROBES[@]}"; do
    (nvcc -std=c++17 -O2 -gencode=arch=compute_90a,code=sm_90a -Icsrc ${v#*:} \
      bench/gpu/trace_probe.cu -o "/tmp/trace_probe_${v%%:*}" >"/tmp/trace_probe_${v%%:*}.log" \
      2>&1 || { echo "trace_probe ${v%%:*} did not compile"; tail -n 20 \
      "/tmp/trace_probe_${v%%:*}.log"; }) &
    probe_builds+=($!)
  done
}
# probe DIR BINARY TIMEOUT CASES... (the knobs as env before it): one run, its report appended.
probe() {
  local dir=/tmp/tr/$1 bin=/tmp/trace_probe_$2 limit=$3 rc=0; shift 3
  [[ -x $bin ]] || return 0
  mkdir -p "$dir"
  timeout "$limit" "$bin" "$dir" "$@" || rc=$?
  { echo "# ${dir##*/}"; "$PY" bench/gpu/trace_report.py "$dir" 2>&1; } >>"$OUT/trace.md"
  return $rc
}
trace_step() {
  echo "== kernel traces $(date +%T)"
  rm -rf /tmp/tr && mkdir -p /tmp/tr && : >"$OUT/trace.md"
  wait "${probe_builds[@]}"
  local small="w4a16_m1_4096x14336 w4a16_m64_4096x14336 w8a16_m1_4096x14336"
  local bps="w4a16_m1_4096x14336 w4a16_m16_4096x14336 w4a16_m32_4096x14336 w4a16_m64_4096x14336
    w4a16_m32_8192x8192
    w8a16_m1_4096x14336 w8a16_m32_4096x14336 w8a16_m1_8192x8192"
  probe traced traced 90
  if [[ $? != 124 ]]; then
    probe control control 90
    probe bps2 bps2 60 $bps
    LLMACCEL_WGMMA_XCOPY=warp LLMACCEL_WGMMA_WWARPS=2 probe xwarp traced 60 w4a16 w8a16 w8a8
    LLMACCEL_KS_REDUCE=cluster probe ksclu traced 60 ks
    probe depth3 depth3 60 $small
    probe chains2 chains2 60 $small
    probe depth3chains2 depth3chains2 60 $small
  fi
  grep -E '^(# |\| (case|ks|sw|w))' "$OUT/trace.md"
  "$PY" bench/gpu/trace_report.py --compare /tmp/tr | tee -a "$OUT/trace.md"
  tar czf "$OUT/traces.tgz" -C /tmp tr && du -h "$OUT/traces.tgz"
}

{
  if step trace; then probe_builds_start; fi
  if [[ ${SKIP_BUILD:-0} == 1 ]]; then
    gpu_restore
  elif step trace; then
    gpu_build &  # its failure (exit 1 in the background) is collected after the traces
    build_job=$!
  else
    gpu_build
  fi
  if step trace; then trace_step; fi
  if [[ -n ${build_job:-} ]]; then wait "$build_job" || exit 1; fi
  # A kernel that has never run may hang (an mbarrier phase never completing): every step is
  # under a timeout, so a hang costs minutes, not the call. First one pass of sanitize_case.py
  # per kernel (its M = 70 and 300 cases take the opt-in paths; with LLMACCEL_W4_WGMMA=all the
  # int4 M = 1, 3, 12 too), errors against the reference.
  if step smoke; then
    echo "== smoke $(date +%T)"
    for cfg in LLMACCEL_W4_TILED=4096 LLMACCEL_W8A8_WGMMA=1 LLMACCEL_W4_WGMMA=all \
        LLMACCEL_W8_WGMMA=all; do
      env "$cfg" timeout 60 "$PY" bench/gpu/sanitize_case.py 2>&1 \
        | grep -E 'w4a16|w8a8|w8a16|MISMATCH|Error|error|^OK' | sed "s/^/$cfg: /"
    done
  fi
  if step tests; then
    echo "== tests $(date +%T)"
    # default paths changed without a GPU first: the quantization kernel's vector path (w8a8,
    # quantize_act_int8) and the int4 dequantization's single LOP3 (the swapped w4a16 kernel)
    timeout 200 "$PY" -m pytest -q -p no:cacheprovider tests/ops/test_cuda_dequant_quant.py \
      tests/ops/test_cuda_gemm.py tests/ops/test_cuda_gemm_decode.py \
      -k "w8a8 or w4a16 or quant" 2>&1 | tail -n 3
    timeout 300 "$PY" -m pytest -q -p no:cacheprovider -x tests/ops/test_cuda_gemm_w4_tiled.py \
      tests/ops/test_cuda_gemm_wgmma.py 2>&1 | tail -n 12
  fi
  if step sanitize; then
    echo "== sanitizers $(date +%T)"
    sanitize tiled LLMACCEL_W4_TILED=4096
    sanitize wgmma LLMACCEL_W8A8_WGMMA=1 LLMACCEL_W4_WGMMA=all LLMACCEL_W8_WGMMA=all
  fi
  if step tiled; then
    echo "== tiled int4, M 17-1024 $(date +%T)"
    bench w4a16 LLMACCEL_W4_TILED "0 4096" 17,32,64,128,256,512,1024 4096x14336
  fi
  if step w8a8; then
    echo "== wgmma int8 (gemm_w8a8), M 128-4096 $(date +%T)"
    bench w8a8 LLMACCEL_W8A8_WGMMA "0 1" 128,512,2048,4096 4096x14336,8192x8192
  fi
  if step w4a16; then
    echo "== wgmma int4 (gemm_w4a16), M 1-4096 $(date +%T)"
    bench w4a16 LLMACCEL_W4_WGMMA "0 all" 1,8,16,17,32,64,128,512,1024,2048,4096 \
      4096x14336,8192x8192 150
  fi
  if step w8a16; then
    echo "== wgmma int8 weights (gemm_w8a16), M 1-4096 $(date +%T)"
    bench w8a16 LLMACCEL_W8_WGMMA "0 all" 1,16,64,512,4096 4096x14336,8192x8192 90
  fi
  if step group; then
    echo "== wgmma raster group (LLMACCEL_WGMMA_GROUP: weight blocks per group, 16 by default)"
    (export LLMACCEL_W8A8_WGMMA=1; bench w8a8 LLMACCEL_WGMMA_GROUP "4 32" 4096 4096x14336)
    echo "== wgmma x rows per block (LLMACCEL_WGMMA_N; by default 128 under two waves)"
    (export LLMACCEL_W4_WGMMA=1; bench w4a16 LLMACCEL_WGMMA_N "128 256" 256,512,1024 4096x14336)
    echo "== wgmma one block per tile instead of one per SM (LLMACCEL_WGMMA_PERSISTENT=0)"
    (export LLMACCEL_W8A8_WGMMA=1; bench w8a8 LLMACCEL_WGMMA_PERSISTENT "0" 2048,4096 4096x14336)
  fi
  if step launch; then
    echo "== wgmma launched plainly, not overlapping the x image kernel (LLMACCEL_WGMMA_PDL=0)"
    (export LLMACCEL_W4_WGMMA=all; bench w4a16 LLMACCEL_WGMMA_PDL "0" 1,16,64 4096x14336)
    echo "== wgmma in clusters of 2 sharing x by multicast (LLMACCEL_WGMMA_CLUSTER=2)"
    timeout 200 "$PY" -m pytest -q -p no:cacheprovider tests/ops/test_cuda_gemm_wgmma.py \
      -k clusters 2>&1 | tail -n 3
    sanitize cluster LLMACCEL_W8A8_WGMMA=1 LLMACCEL_W4_WGMMA=all LLMACCEL_W8_WGMMA=all \
      LLMACCEL_WGMMA_CLUSTER=2
    (export LLMACCEL_W8A8_WGMMA=1; bench w8a8 LLMACCEL_WGMMA_CLUSTER "2" 2048,4096 4096x14336)
    (export LLMACCEL_W4_WGMMA=1; bench w4a16 LLMACCEL_WGMMA_CLUSTER "2" 1024,4096 4096x14336)
  fi
  if step ncusmall && [[ -n $NCU ]]; then
    # the 16-bit wgmma kernels at M = 1: where their time goes (stall reasons, issue rate)
    ncu_m1 ncu_m1 --section SpeedOfLight --section MemoryWorkloadAnalysis \
      --section WarpStateStats --section Occupancy --section LaunchStats \
      --section SchedulerStats --section ComputeWorkloadAnalysis --section InstructionStats
    for op in gemm_w4a16 gemm_w8a16; do
      grep -E "Duration|DRAM Throughput|Compute \(SM\) Throughput|Registers Per|Grid Size|Block Size|Cluster|Waves Per|Achieved Occupancy|Warp Cycles Per Issued|Issued Ipc|Executed Instructions  |Dynamic Shared" \
        "$OUT/ncu_m1_$op.txt" | head -n 20
    done
  fi
  if step stalls && [[ -n $NCU ]]; then
    # why a consumer warp issues only every ~7 cycles at M = 1: the stall reasons, per issue
    ncu_m1 stalls \
      --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio|smsp__inst_executed\.sum|sm__cycles_active\.avg"
    for op in gemm_w4a16 gemm_w8a16; do
      grep -E "stalled|inst_executed|cycles_active" "$OUT/stalls_$op.txt" \
        | awk '$NF+0 >= 0.05 || /inst|cycles/' | sed 's/smsp__average_warps_issue_stalled_//'
    done
  fi
  if step source && [[ -n $NCU ]]; then
    # per SASS instruction: executions and sampled stall reasons (CSV)
    ncu_m1 source --section SourceCounters --section WarpStateStats --page source \
      --print-source sass --csv
    wc -l "$OUT"/source_*.txt
  fi
  if step race && [[ -n $CSAN ]]; then
    # racecheck's report on the w8a16 kernel's 256-row variant (NOTES.md, 2026-11-23): rings
    # that wrap (3 slots with and without a partial last stage, the int8 kernel's 3 slots, 4
    # slots), each with slots handed back by lane 0 (the default) and by every consumer thread
    # (LLMACCEL_WGMMA_RELEASE=lanes); the counts should be multiples of 31 lanes' reads
    echo "== racecheck on rings that wrap $(date +%T)"
    for release in warp lanes; do
      for c in "256 gemm_w8a16 300 1000 72" "256 gemm_w8a16 300 1024 72" \
          "256 gemm_w8a8 600 1000 72" "128 gemm_w8a16 300 1000 72" "256 gemm_w4a16 300 1000 72"; do
        read -r rows args <<<"$c"
        echo "[$release $c] $(LLMACCEL_WGMMA_RELEASE=$release LLMACCEL_WGMMA_N=$rows \
          PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 90 "$CSAN" --tool racecheck --print-limit 1 \
          "$PY" bench/gpu/race_probe.py $args 2>&1 | grep -E "hazards\]|RACECHECK SUMMARY" \
          | tr '\n' ' ' | cut -c1-400)"
      done
      sanitize "race_$release" LLMACCEL_WGMMA_RELEASE=$release
    done
  fi
  if step quick; then
    echo "== wgmma tests and the decode-range timings $(date +%T)"
    timeout 300 "$PY" -m pytest -q -p no:cacheprovider -x tests/ops/test_cuda_gemm_wgmma.py 2>&1 \
      | tail -n 4
    LLMACCEL_W4_WGMMA=all LLMACCEL_W8_WGMMA=all timeout 150 "$PY" bench/gpu/bench_gpu.py \
      --kernels w4a16,w8a16 --out /tmp/quick --shapes 4096x14336,8192x8192 --m 1,16,64,128,256 \
      --budget-s 60 2>&1 | grep -E '^ +[0-9]+ \||^correctness'
    LLMACCEL_W8A8_WGMMA=1 timeout 100 "$PY" bench/gpu/bench_gpu.py --kernels w8a8 --out /tmp/q8 \
      --shapes 4096x14336 --m 512,4096 --budget-s 30 2>&1 | grep -E '^ +[0-9]+ \||^correctness'
    echo "-- gemm_w8a8 at M <= 64 on the wgmma kernel (64-row blocks) against the swapped kernel"
    for v in 1 all; do
      LLMACCEL_W8A8_WGMMA=$v timeout 100 "$PY" bench/gpu/bench_gpu.py --kernels w8a8 \
        --out /tmp/q8s$v --shapes 4096x14336,8192x8192 --m 16,17,32,64 --budget-s 30 2>&1 \
        | grep -E '^ +[0-9]+ \||^correctness'
    done
    echo "-- slots handed back by every consumer thread (LLMACCEL_WGMMA_RELEASE=lanes)"
    LLMACCEL_WGMMA_RELEASE=lanes LLMACCEL_W4_WGMMA=all LLMACCEL_W8_WGMMA=all timeout 150 \
      "$PY" bench/gpu/bench_gpu.py --kernels w4a16,w8a16,w8a8 --out /tmp/qlanes \
      --shapes 4096x14336 --m 1,64,4096 --budget-s 60 2>&1 | grep -E '^ +[0-9]+ \||^correctness'
  fi
  if step xcopy; then
    # The large-M stage time (~950 ns where the tensor cores need ~560, NOTES.md 2026-11-23):
    # first the copy path alone (bulk_copy_probe part 2: the kernels' stage with the x copy from
    # the weights' warp, from its own warp, in pieces, two weights warps), then the GEMMs with
    # the same choices (LLMACCEL_WGMMA_XCOPY=warp, _XPIECES, _WWARPS). Their tests and racecheck:
    # the xcheck step.
    echo "== x copies: the probe $(date +%T)"
    nvcc -std=c++17 -O2 -gencode=arch=compute_90a,code=sm_90a -Icsrc bench/gpu/bulk_copy_probe.cu \
      -o /tmp/bulk_copy_probe && timeout 120 /tmp/bulk_copy_probe | tee "$OUT/bulk_copy_probe.txt"
    echo "== x copies: the GEMMs, 4096→14336 $(date +%T)"
    all3="LLMACCEL_WGMMA_WWARPS=2 LLMACCEL_WGMMA_XCOPY=warp LLMACCEL_WGMMA_XPIECES=4"
    # the most decisive first: a call cut at its limit keeps what ran (trace_probe's per-stage
    # waits say which knob should matter before these times do)
    for cfg in "" "LLMACCEL_WGMMA_XCOPY=warp" "$all3" "LLMACCEL_W8A8_DEEP=1 $all3" \
        "LLMACCEL_WGMMA_XTMA=1 $all3" "LLMACCEL_WGMMA_WWARPS=2" \
        "LLMACCEL_WGMMA_XCOPY=warp LLMACCEL_WGMMA_XPIECES=4" "LLMACCEL_WGMMA_XTMA=1" \
        "LLMACCEL_W8A8_DEEP=1"; do
      echo "-- ${cfg:-default: one x copy per stage, from the weight copies warp}"
      env $cfg LLMACCEL_W4_WGMMA=all LLMACCEL_W8_WGMMA=all LLMACCEL_W8A8_WGMMA=1 timeout 120 \
        "$PY" bench/gpu/bench_gpu.py --kernels w4a16,w8a16,w8a8 --out "/tmp/xc${cfg//[ =]/_}" \
        --shapes 4096x14336 --m 1,128,512,2048,4096 --budget-s 45 2>&1 \
        | grep -E '^ +[0-9]+ \||^correctness'
    done
  fi
  if step xcheck; then
    # the copy knobs, gemm_w8a8's 4-stage ring (LLMACCEL_W8A8_DEEP=1) and the evict-first
    # weight copies (LLMACCEL_EVICT_FIRST=1: a cache-hint form of the bulk copy never run
    # before), under the tests and the sanitizers
    echo "== x copies and evict-first: tests and sanitizers $(date +%T)"
    timeout 200 "$PY" -m pytest -q -p no:cacheprovider tests/ops/test_cuda_gemm_optin.py 2>&1 \
      | tail -n 4
    LLMACCEL_WGMMA_WWARPS=2 LLMACCEL_WGMMA_XCOPY=warp LLMACCEL_WGMMA_XPIECES=4 timeout 300 \
      "$PY" -m pytest -q -p no:cacheprovider -x tests/ops/test_cuda_gemm_wgmma.py 2>&1 | tail -n 4
    bench w4a16 LLMACCEL_EVICT_FIRST "0 1" 1,16,32 4096x14336 30
    echo "== the K-slice kernel at M = 9-16 on 3 blocks per SM (LLMACCEL_KS_VARIANT=4)"
    bench w4a16 LLMACCEL_KS_VARIANT "0 4" 9,12,16 4096x14336,8192x8192 30
  fi
  if step xsan; then
    echo "== the copy knobs, the x tensor map, the deep ring and evict-first under the sanitizers"
    sanitize xcopy LLMACCEL_WGMMA_WWARPS=2 LLMACCEL_WGMMA_XCOPY=warp LLMACCEL_WGMMA_XPIECES=4 \
      LLMACCEL_EVICT_FIRST=1
    sanitize xtma LLMACCEL_WGMMA_XTMA=1 LLMACCEL_WGMMA_XCOPY=warp
    sanitize deep LLMACCEL_W8A8_DEEP=1 LLMACCEL_WGMMA_N=256  # every wgmma call in 256-row blocks
  fi
  if step xsan2; then
    # (the session 10 review) x pieces of a cluster's multicast share, and two weights warps on
    # 3-slot rings (w8a8's 256-row blocks), where a slot's owner alternates from pass to pass
    sanitize xclust LLMACCEL_WGMMA_CLUSTER=2 LLMACCEL_WGMMA_XPIECES=4 LLMACCEL_WGMMA_WWARPS=2
    sanitize xring3 LLMACCEL_WGMMA_WWARPS=2 LLMACCEL_WGMMA_XCOPY=warp LLMACCEL_WGMMA_N=256
  fi
  if step cross; then
    echo "== where the 16-bit wgmma kernels stop winning (M 128-512) $(date +%T)"
    bench w4a16 LLMACCEL_W4_WGMMA "0 all" 96,128,192,256,384 4096x14336,8192x8192 60
    bench w8a16 LLMACCEL_W8_WGMMA "0 all" 96,128,192,256,384 4096x14336,8192x8192 60
  fi
  if step rows256; then
    echo "== 16-bit wgmma with 256-row x blocks above M = 128 (LLMACCEL_WGMMA_N=256) $(date +%T)"
    (export LLMACCEL_W4_WGMMA=all; bench w4a16 LLMACCEL_WGMMA_N "256" 192,256,384,512,1024 \
      4096x14336,8192x8192 60)
    (export LLMACCEL_W8_WGMMA=all; bench w8a16 LLMACCEL_WGMMA_N "256" 192,256,384,512,1024 \
      4096x14336,8192x8192 60)
  fi
  if step ncu && [[ -n $NCU ]]; then
    for op in gemm_w8a8 gemm_w4a16; do
      echo "== ncu $op M=4096 4096→14336 (wgmma) $(date +%T)"
      LLMACCEL_W8A8_WGMMA=1 LLMACCEL_W4_WGMMA=1 timeout 150 "$NCU" \
        --kernel-name regex:wgmma_kernel --launch-skip 2 --launch-count 1 \
        --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats \
        --section Occupancy --section LaunchStats \
        "$PY" bench/gpu/profile_case.py --op $op --k 4096 --n 14336 --m 4096 --calls 3 \
        >"$OUT/ncu_$op.txt" 2>&1
      grep -E "Duration|DRAM Throughput|L2 Cache Throughput|Compute \(SM\) Throughput|Registers Per|Achieved Occupancy|Warp Cycles Per Issued|Dynamic Shared" \
        "$OUT/ncu_$op.txt" | head -n 12
    done
  fi
  echo "== end $(date +%T)"
} >"$log" 2>&1
cat "$log"
