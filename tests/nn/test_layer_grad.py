"""Training through packed layers: QuantLinear and SparseLinear pass gradients to their input and
to what feeds it (a LoRA adapter on a packed base, a trainable layer in front), as the float
layer with the same (dequantized) weight would; their packed buffers stay frozen.

Tolerance: the loss is linear in the packed layer's output, (y · g).sum(), so the gradient that
reaches the layer is g whatever its forward rounded, and every gradient upstream of it is the
float twin's up to float32 matmul rounding (rtol 1e-5), on both the float- and the
int8-activation paths (the straight-through estimator of ops/autograd.py)."""

import pytest
import torch
from torch import nn

import llmaccel
from llmaccel.nn import QuantLinear, SparseLinear

from ..helpers import make_x
from .test_sparse_linear import pruned_linear

IN, OUT = 96, 40


def packed_layer(kind: str) -> nn.Module:
    lin = pruned_linear(IN, OUT)  # 2:4 pruned, so every kind can pack it
    if kind == "int4":
        return QuantLinear.from_linear(lin, llmaccel.Int4WeightOnly(32, act_int8_min_m=4))
    if kind == "int8":
        return QuantLinear.from_linear(lin, llmaccel.Int8WeightOnly(act_int8_min_m=4))
    if kind == "w8a8":
        return QuantLinear.from_linear(lin, llmaccel.Int8Dynamic())
    if kind == "sp24_int4":
        return SparseLinear.from_quant_linear(
            QuantLinear.from_linear(lin, llmaccel.Int4WeightOnly(32, act_int8_min_m=4)))
    return SparseLinear.from_linear(lin)  # sp24_bf16


class LoraOnPacked(nn.Module):
    """A trainable layer in front, then base(h) + up(down(h)) with a frozen packed base."""

    def __init__(self, base: nn.Module, rank: int = 4):
        super().__init__()
        torch.manual_seed(1)
        self.front = nn.Linear(IN, IN)
        self.base = base
        self.down, self.up = nn.Linear(IN, rank, bias=False), nn.Linear(rank, OUT, bias=False)

    def forward(self, x):
        h = self.front(x)
        return self.base(h) + self.up(self.down(h))


def float_twin(model: LoraOnPacked) -> LoraOnPacked:
    lin = nn.Linear(IN, OUT)
    with torch.no_grad():
        lin.weight.copy_(model.base.dequantize())
        lin.bias.copy_(model.base.bias)
    twin = LoraOnPacked(lin.requires_grad_(False))
    twin.load_state_dict({k: v for k, v in model.state_dict().items()
                          if not k.startswith("base.")}, strict=False)
    return twin


@pytest.mark.parametrize("m", [1, 8], ids=["m1", "m8"])  # float and int8 activations
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("kind", ["int4", "int8", "w8a8", "sp24_int4", "sp24_bf16"])
def test_gradients_match_the_float_twin(kind, dtype, m):
    model = LoraOnPacked(packed_layer(kind))
    twin = float_twin(model)
    buffers = {k: v.clone() for k, v in model.base.state_dict().items()}
    x, g = make_x((2, m, IN)), make_x((2, m, OUT), seed=2)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        (model(x).float() * g).sum().backward()
        (twin(x).float() * g).sum().backward()
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained == ["front.weight", "front.bias", "down.weight", "up.weight"]
    twin_params = dict(twin.named_parameters())
    for name in trained:
        got, want = dict(model.named_parameters())[name].grad, twin_params[name].grad
        assert got is not None, name
        tol = 1e-5 if dtype == torch.float32 else 2e-2  # bf16 autocast: bf16 matmuls upstream
        torch.testing.assert_close(got, want, rtol=tol, atol=tol, msg=name)
    # Frozen: no parameters in the packed layer, and its buffers unchanged by the step.
    assert list(model.base.parameters()) == []
    assert all(torch.equal(v, buffers[k]) for k, v in model.base.state_dict().items())


def test_sgd_through_a_packed_layer_lowers_the_loss():
    """SGD on the layer in front of a frozen 2:4 int4 base (adapter off): every step's gradient
    comes through the packed layer, and each one lowers the loss."""
    model = LoraOnPacked(packed_layer("sp24_int4"))
    model.down.requires_grad_(False)
    model.up.requires_grad_(False)
    x, target = make_x((16, IN)), make_x((16, OUT), seed=4)
    opt = torch.optim.SGD(model.front.parameters(), lr=0.2)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = ((model(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.parametrize("kind", ["int4", "w8a8", "sp24_int4", "sp24_bf16"])
def test_compiled_training_step_matches_eager(kind):
    """torch.compile(fullgraph=True) of the whole module: forward and backward trace through the
    packed layers (registered ops, fake kernels, the backward's dequant ops) and give eager's
    gradients, on the int8-activation path (M = 16)."""
    model = LoraOnPacked(packed_layer(kind))
    x, g = make_x((2, 8, IN)), make_x((2, 8, OUT), seed=2)
    (model(x) * g).sum().backward()
    want = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad()
    (torch.compile(model, fullgraph=True)(x) * g).sum().backward()
    got = [p.grad for p in model.parameters() if p.requires_grad]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("m", [1, 8], ids=["m1", "m8"])
@pytest.mark.parametrize("kind", ["int4", "w8a8", "sp24_int4", "sp24_bf16"])
def test_trainable_bias_with_x_not_requiring_grad(kind, m):
    """A bias made a Parameter trains even where x needs no gradient (the first layer on frozen
    inputs): the layers' eager fast path, which skips autograd, must not take that call."""
    layer = packed_layer(kind)
    layer.bias = nn.Parameter(layer.bias.clone())
    g = make_x((m, OUT), seed=3)
    (layer(make_x((m, IN))) * g).sum().backward()
    torch.testing.assert_close(layer.bias.grad, g.sum(0))
    with torch.no_grad():  # and inference keeps the fast path
        assert layer(make_x((m, IN))).grad_fn is None
