"""The wgmma kernels' own source (csrc/gemm/gemm_w8a8_wgmma.cuh, gemm_w4a16_wgmma.cuh) run on
the CPU by the SIMT emulator (csrc/emu/simt_emu.h, driven by tests/native/wgmma_emu_main.cpp):
runs without a GPU, needs g++ and the CUDA headers (skipped without them).

Every CUDA thread is a host thread, the barriers, mbarrier phases and bulk copies behave as PTX
defines them, and wgmma is computed from the warpgroup's registers and the descriptor's
swizzled shared-memory read (the semantics test_wgmma_layout.py pins down). So these tests run
the kernels' real index arithmetic, pipeline phases, partial tiles and epilogue against the
reference; they cannot see timing, register limits or memory-ordering bugs. The emulator's
binary (the `emu` fixture) is built once per session in conftest.py; the opt-in copy switches'
cases are in test_wgmma_emu_copies.py, the K-slice decode kernel's in test_kslice_emu.py.
"""

import os
import subprocess
from pathlib import Path

import pytest
import torch

from llmaccel import formats, reference

from ..helpers import float_gemm_exact, make_bias, make_w4, make_w8, make_x, w4_exact
from .test_wgmma_layout import x_tile_image, x_tile_image_16

DTYPE_BITS = {torch.bfloat16: 8, torch.float16: 11}  # significand bits: u = 2^-bits
ENV_KNOBS = ("LLMACCEL_WGMMA_RELEASE", "LLMACCEL_WGMMA_XCOPY", "LLMACCEL_WGMMA_XPIECES",
             "LLMACCEL_WGMMA_WWARPS", "LLMACCEL_W8A8_DEEP", "LLMACCEL_WGMMA_XTMA")


def _run(emu: Path, tmp: Path, kind: str, params: list[int], files: dict,
         group: str = "", x_rows: str = "", splits: str = "", cluster: str = "") -> bytes:
    (tmp / "params.txt").write_text(" ".join(str(int(v)) for v in params))
    for name, t in files.items():
        (tmp / name).write_bytes(t.contiguous().numpy().tobytes())
    # the knobs below come from the arguments; the release and x-copy forms from the test's env
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LLMACCEL_WGMMA") or k in ENV_KNOBS}
    if group:
        env["LLMACCEL_WGMMA_GROUP"] = group
    if x_rows:
        env["LLMACCEL_WGMMA_N"] = x_rows
    if splits:
        env["LLMACCEL_WGMMA_SPLITS"] = splits
    if cluster:
        env["LLMACCEL_WGMMA_CLUSTER"] = cluster
    done = subprocess.run([str(emu), kind, str(tmp)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, f"{kind}: emulator failed: {done.stderr[-2000:]}"
    assert not x_rows or f"x_rows {x_rows}" in done.stdout, done.stdout
    assert not splits or f"splits {splits}" in done.stdout, done.stdout
    assert not cluster or f"cluster {cluster}" in done.stdout, done.stdout
    (tmp / "stdout.txt").write_text(done.stdout)
    return (tmp / "out.bin").read_bytes()


def _image_16(x: torch.Tensor, kt: int) -> torch.Tensor:
    """16-bit x's image with NaN in the padding rows: x_tiles_16bit leaves them as they are, and
    they must never reach a stored output."""
    image = x_tile_image_16(x.view(torch.int16), kt)
    image[x_tile_image_16(torch.ones(x.shape[0], kt * 64, dtype=torch.int16), kt) == 0] = 0x7FFF
    return image


def _as_float(raw: bytes, dtype: torch.dtype, shape) -> torch.Tensor:
    return torch.frombuffer(bytearray(raw), dtype=torch.int16).view(dtype).float().view(shape)


def _check_w4(y: torch.Tensor, x: torch.Tensor, p, bias: torch.Tensor) -> None:
    """int4 outputs against the reference under test_cuda_gemm.py's policy:
    |y - y_ref| <= TOL · (|x| |W|ᵀ + |b|) per element (each scaled weight rounded to x's type)."""
    y_ref = reference.gemm_w4a16(x.float(), p.qweight, p.scales, p.zeros, bias, p.n).double()
    _, a = float_gemm_exact(x.float(), w4_exact(p), bias)
    tol = {torch.bfloat16: 1e-2, torch.float16: 3e-3}[x.dtype]
    assert torch.isfinite(y).all(), "unwritten or non-finite outputs"
    assert ((y - y_ref).abs() <= tol * a).all(), f"max error {(y - y_ref).abs().max():.3g}"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
# (m, k, n, bias, raster group, x rows, SMs): SMs sets the persistent grid; 3 makes each block
# loop over several tiles (the ring and its phases run on across tiles), "0" one block per tile.
@pytest.mark.parametrize("m,k,n,with_bias,group,x_rows,sms", [
    (300, 200, 200, True, "", "256", 132),  # 2 x blocks (the second partial), 2 weight blocks
    (300, 200, 200, True, "", "128", 132),  # the same in 128-row blocks (halves of image blocks)
    (65, 128, 16, False, "", "", 132),      # one weight tile, one k block (128 rows: the rule)
    (256, 1000, 136, True, "", "256", 132),  # 8 k blocks (the ring wraps), a partial last one
    (600, 64, 520, False, "3", "", 132),    # 5 weight blocks, raster groups of 3 (2 + 1)
    (600, 200, 520, True, "", "256", 3),    # 15 tiles on 3 blocks: 5 each
    (300, 1000, 136, False, "", "128", 2),  # 6 tiles on 2 blocks, 8 k blocks each
    (300, 200, 200, True, "", "64", 3),     # 64-row blocks: quarters of image blocks
    (40, 4096, 136, True, "", "", 132),     # 2 tiles on 132 SMs: K split 8 ways (the rule)
    (300, 1000, 200, False, "", "128", 5),  # K split 3 ways (forced): 18 items on 5 blocks
    (600, 128, 2100, True, "", "256", 1),   # 51 one-stage items on one block, 3-stage ring
])
def test_emulated_w8a8(emu, tmp_path, m, k, n, with_bias, group, x_rows, sms, dtype):
    """y = (xq · qᵀ) · xscale · scale + bias, every element within one rounding of y's type."""
    stdout = _w8a8_case(emu, tmp_path, m, k, n, with_bias, sms, dtype, group=group,
                        x_rows=x_rows, splits="3" if sms == 5 else "")
    if m == 40:  # the rule's split
        assert "splits 8" in stdout


def _w8a8_case(emu, tmp_path, m, k, n, with_bias, sms, dtype, group="", x_rows="", splits="",
               cluster="") -> str:
    """One emulated gemm_w8a8_wgmma call against the exact product (test_emulated_w8a8's
    bound); returns the driver's stdout."""
    g = torch.Generator().manual_seed(m + k + n)
    p = make_w8(n, k, seed=m, source="codes")
    codes, sw = formats.unpack_int8(p)
    words = formats.to_cuda_int8(p.qweight)
    n_tiles, nk = words.shape[:2]
    kt = -(-nk // 4)
    xq = torch.randint(-127, 128, (m, k), generator=g, dtype=torch.int8)
    xs = torch.rand(m, generator=g) / 64 + 1e-3
    bias = make_bias(n, seed=k) if with_bias else None
    files = {"xt.bin": x_tile_image(xq, kt), "w.bin": words, "scales.bin": p.scales,
             "xscale.bin": xs}
    if bias is not None:
        files["bias.bin"] = bias
    raw = _run(emu, tmp_path, "w8a8", [m, n, n_tiles, nk, kt, dtype == torch.bfloat16,
                                       bias is not None, sms], files, group, x_rows, splits,
               cluster)
    y = _as_float(raw, dtype, (m, n)).double()
    prod = (xq.double() @ codes.double().T) * (xs.double()[:, None] * sw.double()[None, :])
    ref = prod + (bias.double() if bias is not None else 0)
    # one rounding of y's type (fp16's subnormals below 2^-14 are 2^-24 apart), fp32's epilogue
    bound = (2.0 ** -DTYPE_BITS[dtype] * ref.abs() + 2.0 ** -20 * (prod.abs() + ref.abs())
             + 2.0 ** -24)
    assert torch.isfinite(y).all(), "unwritten or non-finite outputs"
    assert ((y - ref).abs() <= bound).all(), f"max error {(y - ref).abs().max():.3g}"
    return (tmp_path / "stdout.txt").read_text()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("m,k,n,group,symmetric,x_rows,sms", [
    (300, 200, 136, 64, False, "256", 132),  # K padded to 256 by the groups: 4 stages
    (300, 200, 136, 64, False, "128", 132),  # the same in 128-row blocks
    (70, 256, 16, 128, True, "", 132),       # one tile, one x block mostly padding
    (260, 96, 200, 32, False, "256", 132),   # a partial last stage; g32: a group per chunk
    (256, 1024, 40, -1, True, "256", 132),   # per-channel scales, 16 stages (the ring wraps)
    (600, 200, 520, 64, False, "256", 3),    # 15 tiles on 3 blocks (scales reloaded per tile)
    (40, 200, 136, 64, False, "", 132),      # M ≤ 64: 64-row x blocks (the rule)
    (17, 1024, 264, 128, True, "64", 2),     # 64-row blocks, 3 tiles on 2 blocks
    (40, 4096, 256, 128, False, "", 132),    # 2 tiles on 132 SMs: K split 8 ways
    (60, 2048, 136, 64, True, "", 132),      # K split 8 ways over g64 groups
    (5, 1000, 200, 128, True, "", 132),      # M ≤ 16: 16-row blocks (the rule), K split
    (1, 4096, 136, 128, False, "", 132),     # M = 1 in a 16-row block, K split 8 ways
    (30, 160, 136, 32, False, "", 132),      # 32-row blocks, 3 stages: an odd count
    (9, 64, 40, -1, True, "", 132),          # one stage per tile, per-channel scales
    (20, 1950, 264, 64, False, "32", 2),     # 31 stages a tile on the 16-stage ring, 3 tiles
    (16, 600, 520, 32, True, "16", 3),       # 16-row blocks, 5 tiles on 3 blocks
    (16, 64, 4096, 32, False, "", 1),        # 32 one-stage tiles on one block: the ring wraps
])
def test_emulated_w4a16(emu, tmp_path, m, k, n, group, symmetric, x_rows, sms, dtype):
    """Against the reference (_check_w4)."""
    _w4a16_case(emu, tmp_path, m, k, n, group, symmetric, sms, dtype, x_rows=x_rows)


def _w4a16_case(emu, tmp_path, m, k, n, group, symmetric, sms, dtype, x_rows="", cluster=""):
    """One emulated gemm_w4a16_wgmma call, with bias, against the reference (_check_w4)."""
    p = make_w4(n, k, group, symmetric, seed=m, source="codes")
    words = formats.to_cuda_int4(p.qweight)
    n_tiles, nk = words.shape[:2]
    kt = -(-nk // 2)
    ng = p.scales.shape[1]
    x = make_x((m, k), dtype, seed=n)
    bias = make_bias(n, seed=m)
    files = {"xt.bin": _image_16(x, kt), "w.bin": words, "scales.bin": p.scales,
             "bias.bin": bias}
    if p.zeros is not None:
        files["zeros.bin"] = p.zeros
    raw = _run(emu, tmp_path, "w4a16", [m, n, n_tiles, nk, kt, dtype == torch.bfloat16, 1,
                                        nk * 32 // ng, ng, p.zeros is not None, sms], files,
               x_rows=x_rows, cluster=cluster)
    _check_w4(_as_float(raw, dtype, (m, n)).double(), x, p, bias)


def _plan(emu: Path, tmp: Path, m: int, n_tiles: int, nk: int, int4: bool, sms: int = 132,
          **env: str) -> dict:
    """The launchers' plan (x rows per block, K split, blocks) for an H100-sized grid."""
    (tmp / "params.txt").write_text(
        " ".join(str(v) for v in (m, n_tiles, nk, 2 if int4 else 4, 16 if int4 else 64, sms)))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LLMACCEL_WGMMA")}
    done = subprocess.run([str(emu), "plan", str(tmp)], capture_output=True, text=True,
                          timeout=60, env={**clean, **env})
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    return {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}


ONE_X_COPY = dict(w_warps=1, x_warp=0, x_pieces=1)  # the default: every copy from one warp


def test_wgmma_plan(emu, tmp_path):
    """The plans the notes' predictions assume, on the issue's shapes (132 SMs)."""
    # int4 4096→14336 (896 tiles of 16 outputs, 128 chunks of 32 columns); 8192→8192
    assert _plan(emu, tmp_path, 1, 896, 128, True) == dict(x_rows=16, splits=1, kts=64,
                                                          blocks=112, cluster=1, **ONE_X_COPY)
    assert _plan(emu, tmp_path, 32, 896, 128, True)["x_rows"] == 32
    assert _plan(emu, tmp_path, 64, 896, 128, True)["x_rows"] == 64
    # 64 tiles: 2 splits of 64 k blocks (3 would leave 60 blocks with two items)
    assert _plan(emu, tmp_path, 16, 512, 256, True) == dict(x_rows=16, splits=2, kts=64,
                                                          blocks=128, cluster=1, **ONE_X_COPY)
    # 16-bit x: 128 rows up to M = 128, then 256 (measured faster at M = 192-512)
    assert _plan(emu, tmp_path, 128, 896, 128, True)["x_rows"] == 128
    assert _plan(emu, tmp_path, 129, 896, 128, True)["x_rows"] == 256
    # int8: 128 where 256-row blocks would leave the grid under two waves
    assert _plan(emu, tmp_path, 512, 896, 128, False)["x_rows"] == 128   # 224 blocks at 256
    # items of whole 4-stage copy groups in 16-64-row blocks: 3 splits of 24 k blocks, not 22
    assert _plan(emu, tmp_path, 1, 16, 128, True, LLMACCEL_WGMMA_SPLITS="3")["kts"] == 24
    assert _plan(emu, tmp_path, 4096, 896, 128, True) == dict(x_rows=256, splits=1, kts=64,
                                                            blocks=132, cluster=1, **ONE_X_COPY)
    # int8: never below 64 rows, even forced
    assert _plan(emu, tmp_path, 8, 896, 128, False)["x_rows"] == 64
    assert _plan(emu, tmp_path, 8, 896, 128, False, LLMACCEL_WGMMA_N="16")["x_rows"] == 64
    assert _plan(emu, tmp_path, 300, 896, 128, True, LLMACCEL_WGMMA_N="32")["x_rows"] == 32
    # two tiles: the split cuts the busiest block's k blocks from 64 to 8
    assert _plan(emu, tmp_path, 1, 16, 128, True)["splits"] == 8
    assert _plan(emu, tmp_path, 1, 16, 128, True, LLMACCEL_WGMMA_SPLITS="3")["splits"] == 3
    # clusters of 2 (opt-in): 66 clusters of 2 blocks over 56 × 16 units; none for one block
    assert _plan(emu, tmp_path, 4096, 896, 128, True, LLMACCEL_WGMMA_CLUSTER="2") == dict(
        x_rows=256, splits=1, kts=64, blocks=132, cluster=2, **ONE_X_COPY)
    assert _plan(emu, tmp_path, 300, 8, 128, False, LLMACCEL_WGMMA_CLUSTER="2")["cluster"] == 1


# Clusters of 2 blocks (LLMACCEL_WGMMA_CLUSTER=2): each block copies half of every x stage into
# both (multicast), a slot is refilled once both blocks' consumers let it go. (kind, m, k, n,
# x rows, SMs): an odd weight-block count (the second block of the last pair has no weights and
# only passes x on), units over several work items per cluster, a K split, 16-row blocks (1 KB
# shares).
CLUSTER_CASES = [
    ("w4a16", 300, 1000, 264, "256", 132),  # 3 weight blocks: one idle pair member, 2 x blocks
    ("w4a16", 40, 2048, 520, "", 6),        # 5 weight blocks on 3 clusters, 32-row blocks
    ("w4a16", 5, 4096, 256, "", 132),       # 16-row blocks, 1 unit: K split over clusters
    ("w8a8", 300, 1000, 520, "128", 4),     # 5 weight blocks, 2 clusters, 6 units
    ("w8a8", 600, 512, 264, "256", 132),    # 3 weight blocks, 3 x blocks
]


@pytest.mark.parametrize("kind,m,k,n,x_rows,sms", CLUSTER_CASES)
def test_emulated_wgmma_clusters(emu, tmp_path, kind, m, k, n, x_rows, sms):
    """The same products as single blocks give (each kernel's test bound), in clusters of 2."""
    dtype = torch.bfloat16
    if kind == "w4a16":
        _w4a16_case(emu, tmp_path, m, k, n, 64, False, sms, dtype, x_rows=x_rows, cluster="2")
        return
    _w8a8_case(emu, tmp_path, m, k, n, False, sms, dtype, x_rows=x_rows, cluster="2")


@pytest.mark.parametrize("kind,m,k,n,x_rows,sms,cluster", [
    ("w4a16", 300, 1000, 264, "256", 132, "2"), ("w4a16", 20, 1950, 264, "32", 2, ""),
    ("w8a8", 600, 512, 264, "256", 132, "2"), ("w8a8", 300, 1000, 200, "128", 5, ""),
])
def test_emulated_wgmma_release_lanes(emu, tmp_path, monkeypatch, kind, m, k, n, x_rows, sms,
                                      cluster):
    """LLMACCEL_WGMMA_RELEASE=lanes (every consumer thread arrives on the empty barriers, which
    then count 256 per block of the cluster): the same products, rings that wrap, clusters."""
    monkeypatch.setenv("LLMACCEL_WGMMA_RELEASE", "lanes")
    if kind == "w4a16":
        _w4a16_case(emu, tmp_path, m, k, n, 64, False, sms, torch.bfloat16, x_rows=x_rows,
                    cluster=cluster)
        return
    _w8a8_case(emu, tmp_path, m, k, n, False, sms, torch.bfloat16, x_rows=x_rows,
               cluster=cluster)


# gemm_w8a16_wgmma.cuh: int8 codes turned into exact 16-bit integers in registers, the
# per-channel scale on the fp32 sums. (m, k, n, x rows, SMs, cluster): every code value, both
# types, 16- to 256-row blocks, a partial last stage, a K split, persistent loops, clusters.
W8A16_CASES = [
    (1, 4096, 136, "", 132, ""),     # M = 1 in a 16-row block, K split 8 ways
    (30, 200, 264, "", 132, ""),     # 32-row blocks, a partial last stage, 3 weight blocks
    (64, 1000, 520, "", 2, ""),      # 64-row blocks, 5 tiles on 2 blocks
    (300, 520, 200, "256", 132, ""),  # 2 x blocks, 9 stages
    (300, 1000, 520, "128", 4, "2"),  # clusters of 2 over 5 weight blocks
]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("m,k,n,x_rows,sms,cluster", W8A16_CASES)
def test_emulated_w8a16(emu, tmp_path, m, k, n, x_rows, sms, cluster, dtype):
    """y = (x · codesᵀ) · scale + bias: exact integer weights, fp32 sums, one rounding to y's
    type (the sums' fp32 rounding bounded like the reference's)."""
    _w8a16_case(emu, tmp_path, m, k, n, x_rows, sms, cluster, dtype)


def _w8a16_case(emu, tmp_path, m, k, n, x_rows, sms, cluster, dtype):
    p = make_w8(n, k, seed=m, source="codes")
    codes, sw = formats.unpack_int8(p)
    words = formats.to_cuda_int8(p.qweight)
    n_tiles, nk = words.shape[:2]
    kt = -(-nk // 2)
    x = make_x((m, k), dtype, seed=n)
    bias = make_bias(n, seed=m)
    raw = _run(emu, tmp_path, "w8a16", [m, n, n_tiles, nk, kt, dtype == torch.bfloat16, 1, sms],
               {"xt.bin": _image_16(x, kt), "w.bin": words, "scales.bin": p.scales, "bias.bin": bias},
               x_rows=x_rows, cluster=cluster)
    if m == 1:  # the rule's split (two tiles on 132 SMs)
        assert "splits 8" in (tmp_path / "stdout.txt").read_text()
    y = _as_float(raw, dtype, (m, n)).double()
    xd = x.double()
    prod = (xd @ codes.double().T) * sw.double()[None, :]
    ref = prod + bias.double()
    mag = (xd.abs() @ codes.double().abs().T) * sw.double().abs()[None, :] + bias.double().abs()
    bound = 2.0 ** -DTYPE_BITS[dtype] * ref.abs() + 2.0 ** -20 * mag + 2.0 ** -24
    assert torch.isfinite(y).all(), "unwritten or non-finite outputs"
    assert ((y - ref).abs() <= bound).all(), f"max error {(y - ref).abs().max():.3g}"


def test_emulated_int8_to_16bit(emu, tmp_path):
    """Every signed byte, -128 included, comes out as the same integer in fp16 and in bf16."""
    raw = torch.frombuffer(bytearray(_run(emu, tmp_path, "cvt8", [0], {})), dtype=torch.int16)
    got = raw.view(64, 2, 4)  # word, (fp16, bf16), the word's four values in order
    want = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(torch.int8).float().view(64, 4)
    assert torch.equal(got[:, 0].view(torch.float16).float(), want)
    assert torch.equal(got[:, 1].view(torch.bfloat16).float(), want)


@pytest.mark.parametrize("m,k,kt", [(1, 8, 1), (300, 200, 4), (256, 64, 1)])
def test_emulated_x_tiles_16bit(emu, tmp_path, m, k, kt):
    """The image kernel's output equals its Python twin on x's rows (zero past k); the padding
    rows are not written."""
    x = make_x((m, k), torch.bfloat16, seed=k).view(torch.int16)
    raw = _run(emu, tmp_path, "xtiles16", [m, k, k, kt], {"x.bin": x})
    got = torch.frombuffer(bytearray(raw), dtype=torch.int16)
    rows = x_tile_image_16(torch.ones(m, kt * 64, dtype=torch.int16), kt) != 0
    assert torch.equal(got[rows], x_tile_image_16(x, kt)[rows])
    assert (got[~rows] == 0x5A5A).all()  # the driver's fill


# gemm_tiled_w4.cuh (the opt-in tiled int4 kernel, mma.sync + cp.async): shapes above the decode
# range with one and several 64-row blocks, a partial last weight tile, every group size, and
# K long enough that the (N, M) grid is split over K (partial sums, then the reduce kernel).
TILED_CASES = [(17, 1000, 72, 32, False), (64, 200, 100, -1, True), (65, 1000, 16, 64, False),
               (130, 264, 72, -1, False), (257, 200, 100, 32, True),
               (17, 4096, 100, 128, True), (64, 4096, 256, 64, False), (200, 2048, 100, 32, False)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("m,k,n,group,symmetric", TILED_CASES,
                         ids=[f"M{c[0]}-K{c[1]}-N{c[2]}-g{c[3]}" for c in TILED_CASES])
def test_emulated_tiled_w4(emu, tmp_path, m, k, n, group, symmetric, dtype):
    """Against the reference (_check_w4), K split as on a 132-SM H100."""
    p = make_w4(n, k, group, symmetric, seed=m + 1, source="codes")
    words = formats.to_cuda_int4(p.qweight)
    n_tiles, nk = words.shape[:2]
    ng = p.scales.shape[1]
    x = make_x((m, k), dtype, seed=n + 1)
    k8 = -(-k // 8) * 8
    xk = torch.zeros(m, k8, dtype=dtype)
    xk[:, :k] = x
    bias = make_bias(n, seed=k)
    files = {"x.bin": xk.view(torch.int16), "w.bin": words, "scales.bin": p.scales,
             "bias.bin": bias}
    if p.zeros is not None:
        files["zeros.bin"] = p.zeros
    raw = _run(emu, tmp_path, "tiled_w4", [m, n, k8, n_tiles, nk, dtype == torch.bfloat16, 1,
                                           nk * 32 // ng, ng, p.zeros is not None, 132], files)
    _check_w4(_as_float(raw, dtype, (m, n)).double(), x, p, bias)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32],
                         ids=["fp16", "bf16", "fp32"])
@pytest.mark.parametrize("m,k", [(1, 32), (255, 200), (40, 4096), (40, 4100), (7, 33)])
def test_emulated_quant_act_int8_tiles(emu, tmp_path, m, k, dtype):
    """quant_act_int8_tiles's kernel: bit-exact with the reference quantization (per token),
    laid out as x_tile_image, padding zero; one row all zero, one with an inf. K a multiple of 8
    takes the vector path (16-byte loads, 4-byte stores), else the scalar one."""
    x = make_x((m, k), dtype, seed=k)
    x[0, :] = 0
    if m > 2:
        x[2, 5] = float("inf")
    kt = -(-k // 128)
    code = {torch.float16: 0, torch.bfloat16: 1, torch.float32: 2}[dtype]
    raw = _run(emu, tmp_path, "quant_tiles", [m, k, k, kt, code],
               {"x.bin": x.view(torch.int16) if dtype != torch.float32 else x})
    assert f"vec {int(k % 8 == 0)}" in (tmp_path / "stdout.txt").read_text()
    q, scale, _ = reference.quantize_act_int8(x.float() if dtype == torch.float32 else x, k)
    got = torch.frombuffer(bytearray(raw), dtype=torch.int8)
    assert torch.equal(got, x_tile_image(q[:, :k], kt))
    got_scale = torch.frombuffer(bytearray((tmp_path / "scale_out.bin").read_bytes()),
                                 dtype=torch.float32)
    assert torch.equal(got_scale.view(torch.int32), scale.reshape(m).view(torch.int32))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32],
                         ids=["fp16", "bf16", "fp32"])
@pytest.mark.parametrize("m,k,block", [(3, 4096, 4096), (5, 200, 64), (4, 264, 128), (3, 33, 33)])
def test_emulated_quant_act_int8_rows(emu, tmp_path, m, k, block, dtype):
    """quant_act_int8's default mode (the one gemm_w8a8 and quantize_act_int8 use): q, scales and
    sums bit-exact with the reference, per token or per block; the vector path where K and the
    block are multiples of 8."""
    x = make_x((m, k), dtype, seed=block)
    x[1, :] = 0
    code = {torch.float16: 0, torch.bfloat16: 1, torch.float32: 2}[dtype]
    raw = _run(emu, tmp_path, "quant_rows", [m, k, k, block, code],
               {"x.bin": x.view(torch.int16) if dtype != torch.float32 else x})
    assert f"vec {int(k % 8 == 0 and block % 8 == 0)}" in (tmp_path / "stdout.txt").read_text()
    q, scale, qsum = reference.quantize_act_int8(x.float() if dtype == torch.float32 else x, block)
    assert torch.equal(torch.frombuffer(bytearray(raw), dtype=torch.int8).view(q.shape), q)
    got_scale = torch.frombuffer(bytearray((tmp_path / "scale_out.bin").read_bytes()),
                                 dtype=torch.int32)
    assert torch.equal(got_scale, scale.reshape(-1).view(torch.int32))
    got_sum = torch.frombuffer(bytearray((tmp_path / "qsum_out.bin").read_bytes()),
                               dtype=torch.int32)
    assert torch.equal(got_sum, qsum.reshape(-1).to(torch.int32))
