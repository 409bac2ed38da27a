"""The kernels' trace points (csrc/cuda/kernel_trace.cuh), which bench/gpu/trace_probe.cu
compiles in to see where a call's time goes on a GPU, run here on the SIMT emulator: the
kernels still compute the reference's products with them on, every block leaves one record in
the layout bench/gpu/trace_report.py reads, each stamp where the kernel's code puts it (the
consumers' waits, work and releases per ring slot, the producer's waits and copies per copy
group, the K-slice kernel's last block per tile range), and the report turns them into
finite figures. The library's build has no trace points (LLMACCEL_TRACE expands to nothing).
"""

import importlib.util
import json
from array import array
from pathlib import Path

import torch

from llmaccel import formats

from ..helpers import make_bias, make_w4, make_x
from .test_wgmma_emu import _as_float, _check_w4, _image_16, _run

REPO = Path(__file__).resolve().parents[2]
HEAD, STAGE = 16, 8  # kTrHeadWords, kTrStageWords
(SM, ENTER, ENTER_CLK, FIRST_FULL, CONSUMED, JOINED, EXIT, EXIT_CLK, LAST, FIRST_FULL_CLK,
 CONSUMED_CLK, JOINED_CLK, RING, GROUP) = range(14)
WAIT_FULL, FULL, ISSUED, RELEASED, WAIT_EMPTY, EMPTY, W_COPIED, X_COPIED = range(8)


def _report_module():
    spec = importlib.util.spec_from_file_location(
        "trace_report", REPO / "bench" / "gpu" / "trace_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _records(tmp: Path, blocks: int, stages: int) -> list[tuple[list[int], list[list[int]]]]:
    words = array("Q")
    words.frombytes((tmp / "trace.bin").read_bytes())
    rec = HEAD + stages * STAGE
    assert len(words) == blocks * rec
    out = []
    for b in range(blocks):
        r = list(words[b * rec:(b + 1) * rec])
        out.append((r[:HEAD], [r[HEAD + i * STAGE:HEAD + (i + 1) * STAGE] for i in range(stages)]))
    return out


def _report(tmp: Path, name: str, kind: str, blocks: int, stages: int, heads: list) -> dict:
    """trace_report's figures for these records, with stamps around the blocks' span."""
    (tmp / f"trace_{name}.bin").write_bytes((tmp / "trace.bin").read_bytes())
    meta = {"name": name, "kind": kind, "m": 1, "k": 1, "n": 1, "weight_bytes": 1,
            "scale_bytes": 0, "blocks": blocks, "stages": stages, "head_words": HEAD,
            "stage_words": STAGE, "sms": 2, "event_us": 1.0, "event_us_traced": 1.0,
            "stamp_before_ns": min(h[ENTER] for h in heads) - 1000,
            "stamp_after_ns": max(h[EXIT] for h in heads) + 1000, "read_floor_us": 2.0,
            "read_warm_us": 1.0, "empty_kernel_us": 1.0, "traced": True}
    (tmp / f"trace_{name}.json").write_text(json.dumps(meta))
    summary, text = _report_module().case_report(tmp / f"trace_{name}.json")
    assert name in text
    return summary


def _ordered(*values: int) -> bool:
    return all(0 < a <= b for a, b in zip(values, values[1:]))


def test_trace_kslice(emu_trace, tmp_path):
    """M = 3, K = 2048 (2 chunks of 1024), 64 tiles planned for 2 SMs: 4 ranges × 2 chunks of
    16 tiles each, on rings of 3 slots. Every slot's stamps in order (the producer's after the
    ring's first fill), one last block per range."""
    m, k, n, blocks, stages = 3, 2048, 1024, 12, 16
    p = make_w4(n, k, 128, True, seed=5, source="codes")
    words = formats.to_cuda_int4(p.qweight)
    n_tiles, nk = words.shape[:2]
    ng = p.scales.shape[1]
    x = make_x((m, k), torch.bfloat16, seed=6)
    bias = make_bias(n, seed=7)
    (tmp_path / "trace.txt").write_text(f"{blocks} {stages}")
    raw = _run(emu_trace, tmp_path, "kslice",
               [m, n, k, n_tiles, nk, 1, 1, nk * 32 // ng, ng, 0, 2, 0],
               {"x.bin": x.view(torch.int16), "w.bin": words, "scales.bin": p.scales,
                "bias.bin": bias})
    _check_w4(_as_float(raw, torch.bfloat16, (m, n)).double(), x, p, bias)
    assert (tmp_path / "stdout.txt").read_text().split()[:4] == ["kchunks", "2", "ranges", "4"]
    recs = _records(tmp_path, blocks, stages)
    grid = recs[:8]
    assert all(not any(h) and not any(map(any, st)) for h, st in recs[8:])  # past the grid
    for h, st in grid:
        assert h[SM] == 1 and h[RING] == 3 and h[GROUP] == 1
        assert _ordered(h[ENTER], h[FIRST_FULL], h[CONSUMED], h[JOINED], h[EXIT])
        assert _ordered(h[ENTER_CLK], h[FIRST_FULL_CLK], h[CONSUMED_CLK], h[JOINED_CLK],
                        h[EXIT_CLK])
        for t, s in enumerate(st):  # 16 tiles: every traced slot used
            assert _ordered(s[WAIT_FULL], s[FULL], s[RELEASED])
            if t >= 3:
                assert _ordered(s[WAIT_EMPTY], s[EMPTY], s[W_COPIED], s[X_COPIED])
            else:
                assert not any(s[WAIT_EMPTY:])
            assert s[ISSUED] == 0
    for r in range(4):  # block (range r, chunk c) is record r + 4c
        assert [grid[r + 4 * c][0][LAST] for c in range(2)].count(1) == 1
    summary = _report(tmp_path, "ks", "ks", blocks, stages, [h for h, _ in grid])
    assert summary["stream_us"] >= 0 and summary["wait_data_ns"] >= 0
    assert summary["launch_us"] > 0
    assert summary["late_blocks"] == 7  # the emulator runs the 8 blocks one after another
    # optin_iter's side-by-side table: one row per case, one column per run folder
    runs = tmp_path / "runs"
    for run in ("control", "traced"):
        (runs / run).mkdir(parents=True)
        (runs / run / "trace_ks.json").write_text((tmp_path / "trace_ks.json").read_text())
    table = _report_module().compare(runs)
    assert "| case | control | traced |" in table and "| ks | 1.00 | 1.00 |" in table


def test_trace_wgmma(emu_trace, tmp_path):
    """gemm_w4a16's wgmma kernel, 32-row blocks: 3 tiles of 31 stages on 2 blocks (block 0
    takes tiles 0 and 2), a 16-slot ring in copy groups of 4 stages, each tile's last group one
    padding slot. The producer stamps from slot 16 on (after the ring's first fill)."""
    m, k, n, blocks, stages = 20, 1950, 264, 3, 80
    p = make_w4(n, k, 64, False, seed=m, source="codes")
    words = formats.to_cuda_int4(p.qweight)
    n_tiles, nk = words.shape[:2]
    kt = -(-nk // 2)
    ng = p.scales.shape[1]
    x = make_x((m, k), torch.bfloat16, seed=n)
    bias = make_bias(n, seed=m)
    (tmp_path / "trace.txt").write_text(f"{blocks} {stages}")
    raw = _run(emu_trace, tmp_path, "w4a16",
               [m, n, n_tiles, nk, kt, 1, 1, nk * 32 // ng, ng, 1, 2],
               {"xt.bin": _image_16(x, kt), "w.bin": words, "scales.bin": p.scales,
                "bias.bin": bias, "zeros.bin": p.zeros}, x_rows="32")
    _check_w4(_as_float(raw, torch.bfloat16, (m, n)).double(), x, p, bias)
    assert kt == 31
    recs = _records(tmp_path, blocks, stages)
    assert not any(recs[2][0])  # 2 blocks
    for b, (h, st) in enumerate(recs[:2]):
        slots = 64 if b == 0 else 32  # 32 per tile: 31 stages and a padding slot
        assert h[SM] == 1 and h[RING] == 16 and h[GROUP] == 4
        assert _ordered(h[ENTER], h[FIRST_FULL], h[CONSUMED], h[EXIT])
        assert _ordered(h[ENTER_CLK], h[FIRST_FULL_CLK], h[CONSUMED_CLK], h[EXIT_CLK])
        for it, s in enumerate(st):
            real = it < slots and it % 32 != 31
            assert bool(s[WAIT_FULL]) == real, (b, it)
            assert bool(s[X_COPIED]) == (real and it >= 16), (b, it)
            if real:
                assert _ordered(s[WAIT_FULL], s[FULL], s[ISSUED])
                # the previous stage's slot goes back once this one is issued (not at a tile's
                # first stage)
                assert bool(s[RELEASED]) == (it % 32 != 0), (b, it)
                assert not s[RELEASED] or s[RELEASED] >= s[ISSUED]
            group = 16 <= it < slots and it % 4 == 0  # the producer's stamps: per copy group
            assert bool(s[WAIT_EMPTY]) == group, (b, it)
            if group:
                assert _ordered(s[WAIT_EMPTY], s[EMPTY], s[W_COPIED])
    summary = _report(tmp_path, "w4", "w4a16", blocks, stages, [h for h, _ in recs[:2]])
    assert summary["work_ns"] > 0 and summary["period_ns"] > 0


def test_report_late_blocks():
    """A block that entered after another on its SM had exited is a later wave's; blocks side by
    side on an SM, or on other SMs, are not."""
    def head(sm, enter, exit_):
        h = [0] * HEAD
        h[SM], h[ENTER], h[EXIT] = sm, enter, exit_
        return h
    late_blocks = _report_module().late_blocks
    one_wave = [head(1, 0, 10), head(1, 1, 12), head(2, 0, 9), head(2, 2, 11)]
    assert late_blocks(one_wave) == 0
    assert late_blocks(one_wave + [head(1, 11, 20), head(2, 9, 19), head(2, 10, 30)]) == 2
