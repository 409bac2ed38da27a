"""One wgmma GEMM per call, for compute-sanitizer racecheck on a chosen ring: the op, M, K and N
from argv, x rows per block from LLMACCEL_WGMMA_N (bench/gpu/NOTES.md, 2026-11-23 racecheck)."""
import sys

import torch

from llmaccel import formats, ops

op, m, k, n = sys.argv[1], *map(int, sys.argv[2:5])
g = torch.Generator().manual_seed(0)
x = torch.randn(m, k, generator=g).to(torch.bfloat16).cuda()
if op == "gemm_w4a16":
    w = formats.pack_int4(torch.randint(0, 16, (n, k), generator=g),
                          torch.rand(n, -(-k // 128), generator=g) * 0.01, None, 128)
    args = (formats.to_cuda_int4(w.qweight).cuda(), w.scales.cuda(), None, None, n)
else:
    w = formats.pack_int8(torch.randint(-127, 128, (n, k), generator=g),
                          torch.rand(n, generator=g) * 0.01)
    args = (formats.to_cuda_int8(w.qweight).cuda(), w.scales.cuda(), None, n)
print(op, m, k, n, ops.cuda_path(op, m), getattr(ops, op)(x, *args).float().abs().sum().item())
