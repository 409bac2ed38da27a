"""One CUDA GEMM case, for compute-sanitizer and for bisecting a failure in isolation:
python bench/gpu/repro_case.py OP K N M [dtype] [group] [asym]. Prints the relative error
against a float32 reference on the dequantized weight; exits 1 on an error or a mismatch."""

import sys

import torch

from llmaccel import formats, ops
from llmaccel import quantizers
from llmaccel.reference import dequant as ref_dequant


def main(argv):
    op, k, n, m = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[argv[4] if len(argv) > 4 else "bf16"]
    group = int(argv[5]) if len(argv) > 5 else 128
    sym = not (len(argv) > 6 and argv[6] == "asym")
    torch.manual_seed(0)
    w = torch.randn(n, k)
    x = torch.randn(m, k, dtype=dtype, device="cuda")
    if op == "gemm_w4a16":
        p = formats.pack_int4(*quantizers.quantize_int4(w, group, sym), group)
        wd = ref_dequant.dequant_w4(p.qweight, p.scales, p.zeros, n, k)
        args = (formats.to_cuda_int4(p.qweight).cuda(), p.scales.cuda(),
                None if p.zeros is None else p.zeros.cuda())
    else:
        p = formats.pack_int8(*quantizers.quantize_int8(w))
        wd = ref_dequant.dequant_w8(p.qweight, p.scales, n, k)
        args = (formats.to_cuda_int8(p.qweight).cuda(), p.scales.cuda())
    print(op, f"K={k} N={n} M={m}", dtype, "path:", ops.cuda_path(op, m), flush=True)
    y = getattr(ops, op)(x, *args, None, n)
    torch.cuda.synchronize()
    ref = x.float() @ wd.cuda().t()
    err = float((y.float() - ref).norm() / ref.norm())
    print(f"rel err {err:.3e}", flush=True)
    return 0 if err < 2e-2 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
