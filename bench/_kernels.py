"""The kernels bench_gemm.py times: llmaccel ops, dispatched QuantLinear layers, torch baselines.

Every quantized kernel, ours or torch's, is fed the *same* round-to-nearest codes and scales, so
the comparison is between kernels, not between quantizers. Each kernel carries several
independent copies of its weight (rotated by the timer, see _timing.py) and a check of its
output against a reference on a slice of rows and columns, run before it is timed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

import llmaccel
from llmaccel.nn.quant_linear import W8_ACT_BLOCK
from llmaccel import formats, quantizers
from llmaccel import reference as ref

GROUP = 128  # int4 group size of every int4 kernel benchmarked here (the Llama default)
ROWS_CHECKED = 8  # first and last rows of x compared with the reference
BLOCKS_CHECKED = 8  # first row blocks (of 16 outputs) compared, plus the last one

# Allowed max|out - expected| / max|expected|. Float32 paths differ from the reference only in
# summation order; bfloat16 outputs carry 2^-8 rounding; torch's bf16-input baselines are
# compared with fp32 math on fp32 input, so they also carry the input's bf16 rounding.
TOL = {"fp32": 1e-4, "bf16": 1e-2, "bf16_input": 3e-2, "int8_act": 3e-2, "exact": 0.0}

KINDS = ["gemm_w4a16", "gemm_w4a8", "gemm_w8a16", "gemm_w8a8",
         "layer_int4wo", "layer_int8wo", "layer_int8dyn",
         "torch_linear_fp32", "torch_linear_bf16", "torch_int4pack_mm", "torch_int8pack_mm",
         "torch_int_mm", "torch_int_mm_qdq"]
LABELS = {"gemm_w4a16": "gemm_w4a16", "gemm_w4a8": "gemm_w4a8", "gemm_w8a16": "gemm_w8a16",
          "gemm_w8a8": "gemm_w8a8", "layer_int4wo": "int4 layer", "layer_int8wo": "int8wo layer",
          "layer_int8dyn": "int8dyn layer", "torch_linear_fp32": "F.linear fp32",
          "torch_linear_bf16": "F.linear bf16", "torch_int4pack_mm": "int4pack_mm",
          "torch_int8pack_mm": "int8pack_mm", "torch_int_mm": "_int_mm",
          "torch_int_mm_qdq": "_int_mm+qdq"}
LAYER_CONFIGS = {"layer_int4wo": llmaccel.Int4WeightOnly(group_size=GROUP),
                 "layer_int8wo": llmaccel.Int8WeightOnly(), "layer_int8dyn": llmaccel.Int8Dynamic()}


@dataclass
class Kernel:
    name: str
    ours: bool
    weight_bytes: int  # every byte of one packed weight: codes + scales + zeros
    copies: list  # independent weight copies; the timer cycles through them
    run: Callable  # run(inputs: dict, weight) -> output tensor (..., N)
    expect: Callable  # expect(inputs, rows) -> expected output at [rows][:, cols]
    tol: str
    act: str  # which tensor of the inputs dict it reads: "ours", "fp32", "bf16" or "int8"
    dispatch: Callable[[int], str] = lambda m: ""  # layers: the op QuantLinear runs at this M
    note: str = ""
    int8_compute: Callable[[int], bool] = lambda m: False


def nbytes(*ts) -> int:
    return sum(t.numel() * t.element_size() for t in ts if t is not None)


def torch_int4_group(k: int) -> int:
    """torch's int4pack kernel needs K divisible by the group: g128 where it can, else smaller."""
    return next((g for g in (GROUP, 64, 32) if k % g == 0), GROUP)


def quantize_act_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row in eager torch: what a torch user does around torch._int_mm."""
    xs = x.float().abs().amax(dim=1, keepdim=True).clamp_(min=1e-12) / 127.0
    return torch.round(x.float() / xs).clamp_(-127, 127).to(torch.int8), xs


def make_inputs(x: torch.Tensor, dtype: torch.dtype) -> dict:
    """The activation tensors every kernel may read, made once per M outside the timing."""
    xq, xs = quantize_act_per_token(x.to(dtype))
    return {"ours": x.to(dtype), "fp32": x.float(), "bf16": x.to(torch.bfloat16),
            "int8": xq, "int8_scale": xs}


def check_columns(n: int) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """Row-block ranges [b0, b1) to check (first BLOCKS_CHECKED and the last) and their columns."""
    nb = (n + 15) // 16
    ranges = [(0, min(BLOCKS_CHECKED, nb))]
    if nb > BLOCKS_CHECKED:
        ranges.append((nb - 1, nb))
    cols = torch.cat([torch.arange(16 * b0, min(16 * b1, n)) for b0, b1 in ranges])
    return ranges, cols


def check_rows(m: int) -> torch.Tensor:
    return torch.tensor(sorted(set(range(min(m, ROWS_CHECKED))) |
                               set(range(max(0, m - ROWS_CHECKED), m))))


def build(k: int, n: int, dtype: torch.dtype, target_bytes: int, copies_for) -> list[Kernel]:
    """All kernels for one layer shape: in_features k, out_features n, activations dtype."""
    torch.manual_seed(0)
    w = torch.randn(n, k) * 0.02
    ranges, cols = check_columns(n)
    kernels: list[Kernel] = []

    def copies(nb: int, make: Callable[[], object]) -> list:
        return [make() for _ in range(copies_for(nb, target_bytes))]

    # ---- llmaccel: raw ops and dispatched layers on the same packed weights --------------------
    c4, s4, z4 = quantizers.quantize_int4(w, GROUP, True)
    p4 = formats.pack_int4(c4, s4, z4, GROUP)
    c8, s8 = quantizers.quantize_int8(w)
    p8 = formats.pack_int8(c8, s8)
    b4 = nbytes(p4.qweight, p4.scales, p4.zeros)
    b8 = nbytes(p8.qweight, p8.scales)
    clone4 = lambda: formats.PackedInt4(p4.qweight.clone(), p4.scales.clone(),  # noqa: E731
                                        None if p4.zeros is None else p4.zeros.clone(), n, k, GROUP)
    clone8 = lambda: formats.PackedInt8(p8.qweight.clone(), p8.scales.clone(), n, k)  # noqa: E731

    def ref_w4(op):
        def expect(inp, rows):
            x = inp["ours"][rows]
            return torch.cat([op(x, p4.qweight[b0:b1], p4.scales[b0:b1],
                                 None if p4.zeros is None else p4.zeros[b0:b1], None,
                                 min(n, 16 * b1) - 16 * b0) for b0, b1 in ranges], dim=1)
        return expect

    def ref_w8(op, *extra):
        def expect(inp, rows):
            x = inp["ours"][rows]
            return torch.cat([op(x, p8.qweight[b0:b1], p8.scales[16 * b0:16 * b1], None,
                                 min(n, 16 * b1) - 16 * b0, *extra) for b0, b1 in ranges], dim=1)
        return expect

    tol = "fp32" if dtype == torch.float32 else "bf16"
    ops = torch.ops.llmaccel
    w4copies, w8copies = copies(b4, clone4), copies(b8, clone8)
    for name, op, refop in [("gemm_w4a16", ops.gemm_w4a16, ref.gemm_w4a16),
                            ("gemm_w4a8", ops.gemm_w4a8, ref.gemm_w4a8)]:
        kernels.append(Kernel(
            name, True, b4, w4copies, expect=ref_w4(refop), tol=tol, act="ours",
            run=lambda inp, p, op=op: op(inp["ours"], p.qweight, p.scales, p.zeros, None, n),
            int8_compute=lambda m, name=name: name == "gemm_w4a8", note=f"g{GROUP}"))
    for name, op, refop in [("gemm_w8a16", ops.gemm_w8a16, ref.gemm_w8a16),
                            ("gemm_w8a8", ops.gemm_w8a8, ref.gemm_w8a8)]:
        kernels.append(Kernel(
            name, True, b8, w8copies, expect=ref_w8(refop), tol=tol, act="ours",
            run=lambda inp, p, op=op: op(inp["ours"], p.qweight, p.scales, None, n),
            int8_compute=lambda m, name=name: name == "gemm_w8a8"))

    for name, cfg in LAYER_CONFIGS.items():
        is4 = isinstance(cfg, llmaccel.Int4WeightOnly)

        def make_layer(is4=is4, cfg=cfg):
            layer = llmaccel.QuantLinear(k, n, False, cfg)
            p = clone4() if is4 else clone8()
            layer.qweight, layer.scales = p.qweight, p.scales
            if is4 and p.zeros is not None:
                layer.zeros = p.zeros
            return layer.eval()

        layers = copies(b4 if is4 else b8, make_layer)
        # Which op QuantLinear picks at this M (its own rule, the source of truth).
        dispatch = lambda m, lay=layers[0]: lay.kernel_for(m)  # noqa: E731
        uses_int8 = lambda m, d=dispatch: d(m) in ("gemm_w4a8", "gemm_w8a8")  # noqa: E731
        # The layer's int8 path: per-128-column activation blocks for weight-only int8, one
        # scale per token for Int8Dynamic (see QuantLinear).
        blocks = (W8_ACT_BLOCK,) if isinstance(cfg, llmaccel.Int8WeightOnly) else ()
        refs = ({"gemm_w4a8": ref_w4(ref.gemm_w4a8), "gemm_w4a16": ref_w4(ref.gemm_w4a16)} if is4
                else {"gemm_w8a8": ref_w8(ref.gemm_w8a8, *blocks),
                      "gemm_w8a16": ref_w8(ref.gemm_w8a16)})
        kernels.append(Kernel(
            name, True, b4 if is4 else b8, layers,
            run=lambda inp, layer: layer(inp["ours"]),
            expect=lambda inp, rows, refs=refs, d=dispatch: refs[d(len(inp["ours"]))](inp, rows),
            tol=tol, act="ours", dispatch=dispatch, int8_compute=uses_int8,
            note=f"g{GROUP}" if is4 else ""))
    del w4copies, w8copies

    # ---- torch baselines, same process, same codes ----------------------------------------------
    w_cols = w[cols]

    def float_ref(wsub: torch.Tensor, act: str = "fp32"):
        return lambda inp, rows: inp[act][rows].float() @ wsub.t()

    kernels.append(Kernel("torch_linear_fp32", False, 4 * n * k, copies(4 * n * k, w.clone),
                          run=lambda inp, wt: F.linear(inp["fp32"], wt),
                          expect=float_ref(w_cols), tol="fp32", act="fp32"))
    wb = w.to(torch.bfloat16)
    kernels.append(Kernel("torch_linear_bf16", False, 2 * n * k, copies(2 * n * k, wb.clone),
                          run=lambda inp, wt: F.linear(inp["bf16"], wt),
                          expect=float_ref(wb[cols].float()), tol="bf16_input", act="bf16"))

    # int4pack: dequant is (q - 8) * scale + zero with a float zero; symmetric RTN means zero = 0.
    gt = torch_int4_group(k)
    ct, st, _ = (c4, s4, None) if gt == GROUP else quantizers.quantize_int4(w, gt, True)
    pk = torch.ops.aten._convert_weight_to_int4pack_for_cpu(ct.to(torch.int32).contiguous(), 2)
    sz = torch.stack([st.t(), torch.zeros_like(st.t())], dim=-1).to(torch.bfloat16).contiguous()
    w4d = (ct[cols].float() - 8) * sz[..., 0].float().t()[cols].repeat_interleave(gt, 1)[:, :k]
    kernels.append(Kernel("torch_int4pack_mm", False, nbytes(pk, sz),
                          copies(nbytes(pk, sz), lambda: (pk.clone(), sz.clone())),
                          run=lambda inp, t: torch.ops.aten._weight_int4pack_mm_for_cpu(
                              inp["bf16"], t[0], gt, t[1]),
                          expect=float_ref(w4d, "bf16"), tol="bf16_input", act="bf16",
                          note=f"g{gt}"))

    s8b = s8.to(torch.bfloat16)
    w8d = c8[cols].float() * s8b[cols].float()[:, None]
    kernels.append(Kernel("torch_int8pack_mm", False, nbytes(c8, s8b),
                          copies(nbytes(c8, s8b), lambda: (c8.clone(), s8b.clone())),
                          run=lambda inp, t: torch.ops.aten._weight_int8pack_mm(inp["bf16"], *t),
                          expect=float_ref(w8d, "bf16"), tol="bf16_input", act="bf16"))

    # torch._int_mm takes the weight as Wq.t() (K, N), a transposed view of the (N, K) codes.
    c8_cols = c8[cols].to(torch.int64)
    kernels.append(Kernel("torch_int_mm", False, nbytes(c8), copies(nbytes(c8), c8.clone),
                          run=lambda inp, q: torch._int_mm(inp["int8"], q.t()),
                          expect=lambda inp, rows: (inp["int8"][rows].long() @ c8_cols.t()).int(),
                          tol="exact", act="int8", int8_compute=lambda m: True,
                          note="int8 x in, int32 out"))

    def int_mm_qdq(inp, t):
        x = inp["ours"]
        xq, xs = quantize_act_per_token(x)
        return (torch._int_mm(xq, t[0].t()).float() * xs * t[1]).to(x.dtype)

    kernels.append(Kernel("torch_int_mm_qdq", False, nbytes(c8, s8),
                          copies(nbytes(c8, s8), lambda: (c8.clone(), s8.clone())),
                          run=int_mm_qdq, expect=float_ref(c8[cols].float() * s8[cols, None]),
                          tol="int8_act", act="ours", int8_compute=lambda m: True,
                          note="x quantized per token"))
    return kernels


def check(kern: Kernel, inp: dict, out: torch.Tensor, n: int) -> tuple[float, bool]:
    """max|out - expected| / max|expected| on the checked rows and columns; whether it passes."""
    m = out.shape[0]
    rows = check_rows(m)
    _, cols = check_columns(n)
    got = out[rows][:, cols]
    exp = kern.expect(inp, rows)
    if kern.tol == "exact":
        return float((got.long() - exp.long()).abs().max()), bool(torch.equal(got, exp))
    err = float((got.float() - exp.float()).abs().max() / exp.float().abs().max().clamp_min(1e-30))
    return err, err <= TOL[kern.tol]
