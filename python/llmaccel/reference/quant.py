import torch

MIN_ABSMAX = 2.0**-100  # kQuantActMinAbsMax in csrc/quant/quant_act_int8.h


def quantize_act_int8(x: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dynamic symmetric int8 quantization per row, in blocks of ``block`` columns.

    x (M, K) float32/bfloat16 → q int8 (M, k_pad), scale float32 (M, k_pad/block),
    qsum int32 (M, k_pad/block), with k_pad = K rounded up to ``block`` and q = 0 beyond K.
    scale = absmax/127; q = round_half_even(x · (127/absmax)) clamped to ±127. A block with
    absmax < 2^-100 gives q = 0, scale = 0; one with a NaN or inf gives q = 0, scale = NaN.
    """
    m, k = x.shape
    k_pad = (k + block - 1) // block * block
    xf = torch.zeros(m, k_pad, dtype=torch.float32)
    xf[:, :k] = x.float()
    blocks = xf.view(m, k_pad // block, block)
    amax = blocks.abs().amax(dim=2)
    finite = torch.isfinite(blocks).all(dim=2)
    # Blocks below 2^-100 (where 127/absmax would overflow) or with a NaN/inf quantize to zero;
    # a non-finite block gets a NaN scale so the NaN reaches the output (see quant_act_int8.h).
    usable = finite & (amax >= MIN_ABSMAX)
    # A true fp32 division, as the kernel does: the scalar form `127.0 / amax` is evaluated by
    # torch as reciprocal-then-multiply and rounds differently.
    inv = torch.where(usable, torch.full_like(amax, 127.0) / amax, torch.zeros_like(amax))
    scaled = torch.where(usable.unsqueeze(2), blocks * inv.unsqueeze(2), torch.zeros_like(blocks))
    q = torch.round(scaled).clamp_(-127, 127).to(torch.int8)
    scale = torch.where(usable, amax / 127.0, torch.zeros_like(amax))
    scale = torch.where(finite, scale, torch.full_like(amax, float("nan")))
    qsum = q.to(torch.int32).sum(dim=2, dtype=torch.int32)
    return q.view(m, k_pad), scale, qsum
