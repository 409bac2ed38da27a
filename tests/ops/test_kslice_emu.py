"""The sm_90 K-slice decode kernel's own source (csrc/gemm/gemm_decode_kslice.cuh) run on the CPU by
the SIMT emulator (test_wgmma_emu.py says what it models and what it cannot see), against the
reference: its K chunks through the workspace and the cluster, its blocks' passes, and its plan
for the issue's shapes on an H100.
"""

import subprocess

import pytest
import torch

from llmaccel import formats

from ..helpers import make_bias, make_w4, make_x
from .test_wgmma_emu import _as_float, _check_w4, _run


# gemm_decode_kslice.cuh (the sm_90 decode kernel, measured on an H100; its cluster reduction is
# opt-in and not yet run there): M = 1-16 with K over one and several K chunks of 1024 columns.
KSLICE_CASES = [(1, 4096, 128, 128, True), (5, 2048, 100, 128, False), (12, 2048, 72, -1, True),
                (1, 1024, 300, 128, True), (3, 8192, 40, 256, False)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("m,k,n,group,symmetric", KSLICE_CASES,
                         ids=[f"M{c[0]}-K{c[1]}-N{c[2]}-g{c[3]}" for c in KSLICE_CASES])
def test_emulated_kslice(emu, tmp_path, m, k, n, group, symmetric, dtype):
    """Against the reference (_check_w4), K chunks reduced through the workspace (the last block
    to arrive) and through the cluster's shared memory (LLMACCEL_KS_REDUCE=cluster): the same
    bits either way, the chunk order being the same."""
    p = make_w4(n, k, group, symmetric, seed=m + 3, source="codes")
    words = formats.to_cuda_int4(p.qweight)
    n_tiles, nk = words.shape[:2]
    ng = p.scales.shape[1]
    x = make_x((m, k), dtype, seed=n + 3)
    bias = make_bias(n, seed=k)
    files = {"x.bin": x.view(torch.int16), "w.bin": words, "scales.bin": p.scales,
             "bias.bin": bias}
    if p.zeros is not None:
        files["zeros.bin"] = p.zeros
    outs = []
    for cluster in (0, 1):
        raw = _run(emu, tmp_path, "kslice", [m, n, k, n_tiles, nk, dtype == torch.bfloat16, 1,
                                             nk * 32 // ng, ng, p.zeros is not None, 132,
                                             cluster], files)
        plan = (tmp_path / "stdout.txt").read_text().split()  # kchunks K ranges R cluster C
        assert int(plan[5]) == (cluster and 1 < int(plan[1]) <= 8), plan
        outs.append(_as_float(raw, dtype, (m, n)).double())
    _check_w4(outs[0], x, p, bias)
    assert torch.equal(outs[0], outs[1])


# A block's tiles in passes (KsPlan::pass): the warps' sums of a pass's tiles are added into the
# block's sums before the next pass overwrites them; a pass is whole trips around the ring (NB:
# 3 for M <= 8 symmetric, 6 for M <= 4 with zero points, 4 for M = 9-16). The emulator's shared
# memory is an H100 block's most, so the cases cap the pass (the driver's `pass` argument) to
# reach several, the last one partial, over one K chunk (the sums written directly), several
# (the workspace's last block, and the cluster) and the zero-point configurations.
KSLICE_PASS_CASES = [  # m, k, n, group, symmetric, sms (few: many tiles per block), pass
    (16, 2048, 592, 128, False, 4, 4),   # 10 tiles per block, passes 4 4 2 (last block: 4 3)
    (5, 1024, 368, 128, True, 1, 3),     # one chunk: 6 tiles per block, passes 3 3 (3 2)
    (12, 3072, 304, -1, True, 2, 4),     # 3 chunks (a partial gather batch), 19 tiles: 4 4 4 4 3
    (3, 2048, 200, 256, False, 1, 6),    # 13 tiles on a 6-slot ring: 6 6 1
    (2, 5120, 80, 128, True, 1, 3),      # 5 chunks: a second gather batch, partial; 3 2
]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("m,k,n,group,symmetric,sms,pass_", KSLICE_PASS_CASES,
                         ids=[f"M{c[0]}-K{c[1]}-N{c[2]}-pass{c[6]}" for c in KSLICE_PASS_CASES])
def test_emulated_kslice_passes(emu, tmp_path, m, k, n, group, symmetric, sms, pass_, dtype):
    """Against the reference, and bit for bit against the plan's own (longer) passes (every pass
    adds the warps in the same order) and through the cluster's shared memory."""
    p = make_w4(n, k, group, symmetric, seed=m + 11, source="codes")
    words = formats.to_cuda_int4(p.qweight)
    n_tiles, nk = words.shape[:2]
    ng = p.scales.shape[1]
    x = make_x((m, k), dtype, seed=n + 11)
    bias = make_bias(n, seed=k + 1)
    files = {"x.bin": x.view(torch.int16), "w.bin": words, "scales.bin": p.scales,
             "bias.bin": bias}
    if p.zeros is not None:
        files["zeros.bin"] = p.zeros
    outs, plans = [], []
    for cluster, cap in ((0, pass_), (1, pass_), (0, 0)):
        raw = _run(emu, tmp_path, "kslice", [m, n, k, n_tiles, nk, dtype == torch.bfloat16, 1,
                                             nk * 32 // ng, ng, p.zeros is not None, sms,
                                             cluster, cap], files)
        words_out = (tmp_path / "stdout.txt").read_text().split()
        plans.append(dict(zip(words_out[::2], map(int, words_out[1::2]))))
        outs.append(_as_float(raw, dtype, (m, n)).double())
    capped, _, whole = plans
    assert capped["pass"] == pass_ < capped["tpb"], capped  # the passes were reached
    assert whole["pass"] > pass_, whole  # the plan's own passes: longer (or one)
    _check_w4(outs[0], x, p, bias)
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


# The plan on an H100 (132 SMs) for the shapes: every block of the grid resident at once
# (one wave: before passes, M = 16 took 2.3-2.6 waves, M = 8 on 8192→8192 1.1), in the shared
# memory MINB blocks leave; M ≤ 8 symmetric: 4 blocks of 3 slots, M = 9-16: 2 blocks of 4
# (launch_kslice_gu's configurations).
@pytest.mark.parametrize("k,n", [(4096, 14336), (14336, 4096), (8192, 8192)],
                         ids=["4096-14336", "14336-4096", "8192-8192"])
@pytest.mark.parametrize("m", [1, 8, 12, 16])
def test_kslice_plan_one_wave(emu, tmp_path, k, n, m):
    minb, nb = (2, 4) if m > 8 else (4, 3)
    (tmp_path / "params.txt").write_text(f"{m} {n // 16} {k // 32} 132 {minb} {nb} 0")
    done = subprocess.run([str(emu), "ksplan", str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    plan = dict(zip(words[::2], map(int, words[1::2])))
    assert plan["ranges"] * plan["kchunks"] <= 132 * minb, plan
    assert plan["ranges"] * plan["tpb"] >= n // 16, plan
    assert plan["pass"] == plan["tpb"] or (plan["pass"] % nb == 0 and plan["pass"] < plan["tpb"])
    assert plan["smem"] <= plan["limit"], plan
