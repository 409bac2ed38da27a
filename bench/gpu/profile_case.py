#!/usr/bin/env python3
"""One gemm op on one shape, a few calls: the target for `ncu` (bench/gpu/NOTES.md).

    ncu --kernel-name regex:gemm_swapab --launch-skip 3 --launch-count 1 \
        python3 bench/gpu/profile_case.py --op gemm_w4a16 --k 4096 --n 14336 --m 1
"""
import argparse

import torch

from llmaccel import formats, ops

p = argparse.ArgumentParser()
p.add_argument("--op", default="gemm_w4a16")
p.add_argument("--k", type=int, default=4096)
p.add_argument("--n", type=int, default=14336)
p.add_argument("--m", type=int, default=1)
p.add_argument("--calls", type=int, default=5)
a = p.parse_args()
g = torch.Generator().manual_seed(0)
x = torch.randn(a.m, a.k, generator=g).to(torch.bfloat16).cuda()
if a.op == "gemm_w4a16":
    w = formats.pack_int4(torch.randint(0, 16, (a.n, a.k), generator=g),
                          torch.rand(a.n, a.k // 128, generator=g) * 0.01, None, 128)
    args = (formats.to_cuda_int4(w.qweight).cuda(), w.scales.cuda(), None, None, a.n)
else:
    w = formats.pack_int8(torch.randint(-127, 128, (a.n, a.k), generator=g),
                          torch.rand(a.n, generator=g) * 0.01)
    args = (formats.to_cuda_int8(w.qweight).cuda(), w.scales.cuda(), None, a.n)
for _ in range(a.calls):
    getattr(ops, a.op)(x, *args)
torch.cuda.synchronize()
print("done", a)
