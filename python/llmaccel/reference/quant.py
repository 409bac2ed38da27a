import torch


def quantize_act_int8(x: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dynamic symmetric int8 quantization per row, in blocks of ``block`` columns.

    x (M, K) float32/bfloat16 → q int8 (M, k_pad), scale float32 (M, k_pad/block),
    qsum int32 (M, k_pad/block), with k_pad = K rounded up to ``block`` and q = 0 beyond K.
    scale = absmax/127; q = round_half_even(x · (127/absmax)) clamped to ±127.
    """
    m, k = x.shape
    k_pad = (k + block - 1) // block * block
    xf = torch.zeros(m, k_pad, dtype=torch.float32)
    xf[:, :k] = x.float()
    blocks = xf.view(m, k_pad // block, block)
    amax = blocks.abs().amax(dim=2)
    inv = torch.where(amax > 0, 127.0 / amax, torch.zeros_like(amax))
    q = torch.round(blocks * inv.unsqueeze(2)).clamp_(-127, 127).to(torch.int8)
    qsum = q.to(torch.int32).sum(dim=2, dtype=torch.int32)
    return q.view(m, k_pad), amax / 127.0, qsum
