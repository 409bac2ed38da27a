"""The emulated kernels' shared-memory protocols under ThreadSanitizer (the emulator's `emu_race`
build; csrc/emu/simt_emu_race.h says which orders count): every access to shared memory must be
ordered against every other thread's conflicting access by what orders it on the GPU (block,
warp, named and cluster barriers, an mbarrier's phase, a wgmma's wait_group), whatever the
timing of the run.

Why: the value tests (test_wgmma_emu.py, test_kslice_emu.py) see a missing order only when the
run's timing makes it bite, and the emulator's copies land at once; compute-sanitizer's racecheck
needs the GPU, which this project has only now and then. The detector is checked first, on a
small kernel with each order left out in turn (tests/native/race_probe_kernel.h); then the
kernels run the rings, passes and copy forms the value tests cover, fewer shapes (the detector
slows the emulator 3-10×).

What it cannot see: the GPU's proxies (a bulk copy's writes against generic reads: the
`fence.proxy.async` rules) and timing; global memory between blocks (the emulator runs a grid's
blocks one after another)."""

import subprocess
from functools import partial

import pytest
import torch

from . import test_kslice_emu as kslice
from . import test_wgmma_emu as wgmma

# race_probe_kernel.h: 0 the whole protocol, then each order left out
PROBE_VARIANTS = {0: "whole", 1: "no __syncwarp before the release",
                  2: "one lane waits for the copy", 3: "no named barrier",
                  4: "no block barrier"}
PROBE_BYTES = 6 * 1024  # kTiles · kSlotBytes


def _probe(emu_race, tmp_path, variant: int) -> tuple[subprocess.CompletedProcess, int]:
    g = torch.Generator().manual_seed(variant)
    data = torch.randint(0, 256, (PROBE_BYTES,), dtype=torch.uint8, generator=g)
    (tmp_path / "in.bin").write_bytes(data.numpy().tobytes())
    (tmp_path / "params.txt").write_text(str(variant))
    done = subprocess.run([str(emu_race), "race_probe", str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    return done, int(data.sum())


@pytest.mark.parametrize("variant", sorted(PROBE_VARIANTS),
                         ids=[v.replace(" ", "-") for v in PROBE_VARIANTS.values()])
def test_race_detector_sees_each_missing_order(emu_race, tmp_path, variant):
    """The whole protocol runs clean and sums right; each variant that leaves an order out is
    reported (ThreadSanitizer's exit code 66), though the warp-collective mma.sync and shuffle
    between the reads and the release exchange the lanes' registers (they order no memory)."""
    done, expected = _probe(emu_race, tmp_path, variant)
    if variant == 0:
        assert done.returncode == 0, done.stderr[-3000:]
        assert int.from_bytes((tmp_path / "out.bin").read_bytes()[:4], "little") == expected
    else:
        assert done.returncode == 66 and "ThreadSanitizer: data race" in done.stderr, (
            f"{PROBE_VARIANTS[variant]}: not reported (rc {done.returncode})\n"
            f"{done.stderr[-2000:]}")


# The K-slice decode kernel's passes (the consumers' named barriers around a pass's sums) and its
# K chunks through the workspace and through a cluster's shared memory; test_kslice_emu's cases.
@pytest.mark.parametrize("case", [kslice.KSLICE_PASS_CASES[0], kslice.KSLICE_PASS_CASES[2]],
                         ids=["M16-zeros-passes", "M12-3chunks-passes"])
def test_kslice_orders(emu_race, tmp_path, case):
    kslice.test_emulated_kslice_passes(emu_race, tmp_path, *case, torch.bfloat16)


# The wgmma kernels' rings: name → (the value test's case function, its arguments after emu and
# tmp_path, the knobs). Among them session 9's racecheck case (gemm_w8a16 in 256-row blocks: a
# 3-slot ring that wraps, where racecheck reported the producer's refill against the consumers'
# fill; bench/gpu/NOTES.md), a 16-slot ring wrapping over 31 stages a tile, clusters, the release
# by every lane, the copy forms and the deep w8a8 ring.
BF16 = torch.bfloat16
WGMMA_CASES = {
    "w8a16-256rows-3slot-ring": (partial(wgmma._w8a16_case, m=300, k=520, n=200, x_rows="256",
                                         sms=132, cluster="", dtype=BF16), {}),
    "w4a16-32rows-ring-wraps": (partial(wgmma._w4a16_case, m=20, k=1950, n=264, group=64,
                                        symmetric=False, sms=2, dtype=BF16, x_rows="32"), {}),
    "w4a16-release-lanes": (partial(wgmma._w4a16_case, m=20, k=1950, n=264, group=64,
                                    symmetric=False, sms=2, dtype=BF16, x_rows="32"),
                            {"LLMACCEL_WGMMA_RELEASE": "lanes"}),
    "w8a8-256rows-cluster": (partial(wgmma._w8a8_case, m=600, k=512, n=264, with_bias=False,
                                     sms=132, dtype=BF16, x_rows="256", cluster="2"), {}),
    "w8a16-x-warp-pieces": (partial(wgmma._w8a16_case, m=300, k=520, n=200, x_rows="256",
                                    sms=132, cluster="", dtype=BF16),
                            {"LLMACCEL_WGMMA_XCOPY": "warp", "LLMACCEL_WGMMA_XPIECES": "2"}),
    "w8a8-two-weight-warps": (partial(wgmma._w8a8_case, m=300, k=1000, n=200, with_bias=False,
                                      sms=5, dtype=BF16, x_rows="128"),
                              {"LLMACCEL_WGMMA_WWARPS": "2", "LLMACCEL_WGMMA_XCOPY": "warp"}),
    "w8a8-deep-ring": (partial(wgmma._w8a8_case, m=600, k=1000, n=264, with_bias=True, sms=4,
                               dtype=BF16, x_rows="256"), {"LLMACCEL_W8A8_DEEP": "1"}),
    "tiled-w4": (partial(wgmma.test_emulated_tiled_w4, m=17, k=1000, n=72, group=32,
                         symmetric=False, dtype=BF16), {}),
}


@pytest.mark.parametrize("name", sorted(WGMMA_CASES))
def test_wgmma_orders(emu_race, tmp_path, monkeypatch, name):
    case, env = WGMMA_CASES[name]
    # the knobs reach the binary only through test_wgmma_emu's ENV_KNOBS
    assert set(env) <= set(wgmma.ENV_KNOBS), set(env) - set(wgmma.ENV_KNOBS)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    case(emu_race, tmp_path)
