"""Students on a tiny random Llama: pruned masks stay fixed through AdamW with weight decay,
fake quantization against its definition and its straight-through gradient, the packing round
trip (exact codes, logits to float32 summation order), GPTQ-initialised students, layer-dropped
copies, the training contract and every error.

Tolerance policy for logits of a packed model: FakeQuantLinear and QuantLinear use bit-identical
weights (checked exactly) and differ only in how float32 sums them (order; the kernel applies
each group's scale after the group's sum). Both are compared with the exact function of those
weights, the same model in float64: the packed model must be within 4× the fake-quant model's
own float32 error (measured 0.9–1.8× on these models).
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import llmaccel
from llmaccel import quantizers
from llmaccel.distillation import (FakeQuantLinear, after_step, fake_quant_student,
                                   layer_dropped_student, pack_fake_quant, pruned_student,
                                   trainable_parameters)
from llmaccel.distillation.students import FixedMask, code_range, group_params
from llmaccel.nn import QuantLinear, SparseLinear
from llmaccel.pruning.pack import is_2_4
from llmaccel.quantization.layer_plan import swap_module

from ..tiny_llama import random_ids, tiny_llama

pytest.importorskip("transformers")

VOCAB = 128
PACK_TOL_FACTOR = 4


@pytest.fixture(scope="module")
def teacher():
    return tiny_llama(layers=4, hidden=64, inter=128, vocab=VOCAB)


@pytest.fixture(scope="module")
def ids():
    return random_ids(2, 16, vocab=VOCAB, seed=3)


@pytest.fixture(scope="module")
def gptq_model(teacher):
    q = copy.deepcopy(teacher)
    llmaccel.quantize_(q, llmaccel.GPTQ(group_size=32, act_int8_min_m=None),
                       calibration=random_ids(8, 32, vocab=VOCAB, seed=1), progress=False)
    return q


def train(model, ids, steps=3, lr=1e-3, weight_decay=0.1):
    """AdamW on the LM loss, as the trainer runs it: step, then after_step."""
    opt = torch.optim.AdamW(trainable_parameters(model), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        model(ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
        after_step(model)


def fake_layers(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, FakeQuantLinear)}


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits.double()


def exact_logits(model, ids):
    """The float64 function of a model's quantized weights: every FakeQuantLinear or QuantLinear
    replaced by an nn.Linear holding its dequantized weight."""
    ref = copy.deepcopy(model)
    for name, mod in list(ref.named_modules()):
        if isinstance(mod, (FakeQuantLinear, QuantLinear)):
            lin = nn.Linear(mod.in_features, mod.out_features, bias=mod.bias is not None)
            with torch.no_grad():
                lin.weight.copy_(mod.quantized_weight() if isinstance(mod, FakeQuantLinear)
                                 else mod.dequantize())
                if mod.bias is not None:
                    lin.bias.copy_(mod.bias)
            swap_module(ref, name, lin)
    return logits(ref.double(), ids)


def assert_same_function(packed, fake, ids):
    exact = exact_logits(fake, ids)
    fake_err = (logits(fake, ids) - exact).abs().max().item()
    packed_err = (logits(packed, ids) - exact).abs().max().item()
    assert 0 < fake_err < 1e-5, fake_err
    assert packed_err <= PACK_TOL_FACTOR * fake_err, (packed_err, fake_err)


def pruned_2_4(teacher):
    model = copy.deepcopy(teacher)
    llmaccel.prune_(model, llmaccel.Magnitude(pattern="2:4"), progress=False)
    return model


def pruned_names(model):
    return [n for n, m in model.named_modules()
            if isinstance(m, (nn.Linear, FakeQuantLinear)) and bool((m.weight == 0).any())]


# ---- pruned student -------------------------------------------------------------------------

def test_pruned_zeros_stay_through_adamw_with_weight_decay(teacher, ids):
    student = pruned_student(pruned_2_4(teacher))
    names = pruned_names(student)
    assert len(names) == 4 * 7  # q, k, v, o, gate, up, down of every layer; lm_head dense
    zeros = {n: student.get_submodule(n).weight.detach() == 0 for n in names}
    start = {n: student.get_submodule(n).weight.detach().clone() for n in names}
    train(student, ids, steps=5, lr=1e-2, weight_decay=0.1)
    for n in names:
        w = student.get_submodule(n).weight.detach()
        assert torch.equal(w == 0, zeros[n]), n
        assert is_2_4(w != 0), n
        assert not torch.equal(w, start[n]), f"{n} did not train"


def test_pruned_gradient_hook_and_after_step(teacher, ids):
    student = pruned_student(pruned_2_4(teacher))
    lin = student.model.layers[1].mlp.down_proj
    pruned = lin.weight.detach() == 0
    student(ids, labels=ids).loss.backward()
    assert lin.weight.grad[pruned].abs().max() == 0
    assert lin.weight.grad[~pruned].abs().max() > 0
    with torch.no_grad():  # what a misbehaving optimizer or a diverged step could leave
        lin.weight[pruned] = float("nan")
    after_step(student)
    assert torch.equal(lin.weight.detach() == 0, pruned)


def test_pruned_hooks_follow_copies_and_replaced_weights(teacher, ids):
    copied = copy.deepcopy(pruned_student(pruned_2_4(teacher)))
    lin = copied.model.layers[0].self_attn.q_proj
    other = copied.model.layers[1].self_attn.q_proj
    trainable_parameters(copied)
    other.weight = nn.Parameter(other.weight.detach().clone())  # as a checkpoint load may do
    trainable_parameters(copied)
    copied(ids, labels=ids).loss.backward()
    for m in (lin, other):
        assert m.weight.grad[m.weight.detach() == 0].abs().max() == 0


def test_pruned_given_masks(teacher, ids):
    model = copy.deepcopy(teacher)
    name = "model.layers.2.mlp.up_proj"
    keep = torch.rand(128, 64, generator=torch.Generator().manual_seed(0)) > 0.3
    pruned_student(model, {name: keep})
    lin = model.get_submodule(name)
    assert torch.equal(lin.weight.detach() != 0, keep)
    train(model, ids, steps=2, lr=1e-2)
    assert torch.equal(lin.weight.detach() != 0, keep)
    # A second call replaces the mask rather than stacking a second one.
    pruned_student(model, {name: torch.ones_like(keep)})
    assert len([c for c in lin._student_constraints if isinstance(c, FixedMask)]) == 1


def test_pruned_sparse_linear_round_trip(teacher, ids):
    model = pruned_2_4(teacher)
    packed_names = llmaccel.sparsify_(model)
    assert len(packed_names) == 28
    values = {n: model.get_submodule(n).dequantize() for n in packed_names}
    pruned_student(model)
    for n in packed_names:
        lin = model.get_submodule(n)
        assert type(lin) is nn.Linear and torch.equal(lin.weight.detach(), values[n])
    train(model, ids, steps=2, lr=1e-2)
    assert sorted(llmaccel.sparsify_(model)) == sorted(packed_names)  # still 2:4 everywhere


# ---- fake quantization ----------------------------------------------------------------------

def test_group_params_equal_int4_rules_at_4_bits():
    groups = torch.randn(16, 4, 32, generator=torch.Generator().manual_seed(0))
    for symmetric in (True, False):
        s, z = group_params(groups, 4, symmetric)
        s4, z4 = quantizers.int4_group_params(groups, symmetric)
        assert torch.equal(s, s4) and torch.equal(z, z4)


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("group_size", [32, 128, -1])
def test_fake_quant_4_bit_is_rtn(symmetric, group_size):
    lin = nn.Linear(100, 40)
    fq = FakeQuantLinear.from_linear(lin, 4, llmaccel.Int4WeightOnly(group_size, symmetric))
    codes, scales, zeros = quantizers.quantize_int4(lin.weight, group_size, symmetric)
    assert torch.equal(fq.codes(), codes) and torch.equal(fq.scales, scales)
    z = (torch.full_like(scales, 8) if zeros is None else zeros.float())
    g = fq.group
    deq = ((codes.float() - z.repeat_interleave(g, 1)[:, :100])
           * scales.repeat_interleave(g, 1)[:, :100])
    assert torch.equal(fq.quantized_weight(), deq)
    x = torch.randn(3, 5, 100)
    assert torch.equal(fq(x), F.linear(x, deq, lin.bias))


@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
@pytest.mark.parametrize("bits", [2, 3])
def test_fake_quant_low_bits_against_definition(bits, symmetric):
    lin = nn.Linear(64, 16, bias=False)
    fq = FakeQuantLinear.from_linear(lin, bits, llmaccel.Int4WeightOnly(32, symmetric))
    w = lin.weight.detach().double().view(16, 2, 32)
    half = 2 ** (bits - 1)
    if symmetric:  # largest magnitude → the lowest code, around the fixed zero point 8
        wmax = w.gather(2, w.abs().argmax(2, keepdim=True))
        s, z, lo, hi = wmax / -half, torch.full_like(wmax, 8.0), 8 - half, 8 + half - 1
    else:
        mn, mx = w.amin(2, keepdim=True).clamp(max=0), w.amax(2, keepdim=True).clamp(min=0)
        s = (mx - mn) / (2 * half - 1)
        z, lo, hi = torch.round(-mn / s), 0, 2 * half - 1
    codes = (torch.round(w / s) + z).clamp(lo, hi)
    assert (lo, hi) == code_range(bits, symmetric)
    assert torch.equal(fq.codes().view(16, 2, 32).double(), codes)
    torch.testing.assert_close(fq.quantized_weight().double(), ((codes - z) * s).view(16, 64),
                               rtol=1e-6, atol=0)


def test_ste_gradient_passes_inside_the_grid_only():
    lin = nn.Linear(64, 8)
    fq = FakeQuantLinear.from_linear(lin, 3, llmaccel.Int4WeightOnly(32, False))
    with torch.no_grad():
        fq.weight.mul_(2.5)  # pushes the largest weights of each group past the grid's ends
    x, gy = torch.randn(5, 64), torch.randn(5, 8)
    x.requires_grad_(True)
    (fq(x) * gy).sum().backward()
    s = fq.scales.double().repeat_interleave(32, 1)  # 2 groups of 32 inputs
    raw = torch.round(fq.weight.detach().double() / s) + fq.zeros.double().repeat_interleave(32, 1)
    inside = (raw >= 0) & (raw <= 7)
    assert 0 < int((~inside).sum()) < inside.numel()
    full = gy.t() @ x.detach()  # dL/dW of a plain linear
    assert torch.equal(fq.weight.grad, torch.where(inside, full, 0))
    assert torch.equal(fq.bias.grad, gy.sum(0))
    torch.testing.assert_close(x.grad, gy @ fq.quantized_weight())
    assert fq.scales.grad is None and fq.zeros.grad is None


def test_scales_are_frozen_and_not_trained(teacher, ids):
    student = fake_quant_student(copy.deepcopy(teacher), 3)
    params = {id(p) for p in trainable_parameters(student)}
    layers = fake_layers(student)
    assert len(layers) == 28 and isinstance(student.lm_head, nn.Linear)
    assert all(id(m.weight) in params for m in layers.values())
    before = {n: (m.scales.clone(), m.zeros.clone()) for n, m in layers.items()}
    train(student, ids)
    for n, m in layers.items():
        assert torch.equal(m.scales, before[n][0]) and torch.equal(m.zeros, before[n][1])


@pytest.mark.parametrize("bits,group_size,symmetric",
                         [(3, 128, True), (3, 32, False), (4, 64, True), (2, -1, False)])
def test_ste_packing_round_trip_exact(teacher, ids, bits, group_size, symmetric):
    student = fake_quant_student(copy.deepcopy(teacher), bits, group_size, symmetric)
    start = {n: m.codes() for n, m in fake_layers(student).items()}
    train(student, ids)
    fakes = fake_layers(student)
    assert any(not torch.equal(m.codes(), start[n]) for n, m in fakes.items()), "no code moved"
    packed = pack_fake_quant(copy.deepcopy(student))
    assert not fake_layers(packed)
    for name, fq in fakes.items():
        q = packed.get_submodule(name)
        assert isinstance(q, QuantLinear) and q.config.act_int8_min_m is None
        codes, scales, zeros = q.codes()
        lo, hi = code_range(bits, symmetric)
        assert lo <= int(codes.min()) and int(codes.max()) <= hi
        assert torch.equal(codes, fq.codes()) and torch.equal(scales, fq.scales)
        assert (zeros is None) == symmetric
        if zeros is not None:
            assert torch.equal(zeros.float(), fq.zeros)
        assert torch.equal(q.dequantize(), fq.quantized_weight())
    assert_same_function(packed, student, ids)


def test_gptq_init_reproduces_the_quantized_model(gptq_model, ids):
    student = fake_quant_student(copy.deepcopy(gptq_model), 4, init="quantized")
    fakes = fake_layers(student)
    assert len(fakes) == 28
    for name, fq in fakes.items():
        q = gptq_model.get_submodule(name)
        codes, scales, _ = q.codes()
        assert torch.equal(fq.codes(), codes) and torch.equal(fq.scales, scales)
        assert fq.scheme.group_size == 32 and fq.scheme.symmetric
    assert_same_function(gptq_model, student, ids)
    packed = pack_fake_quant(copy.deepcopy(student))
    for name in fakes:
        assert torch.equal(packed.get_submodule(name).qweight,
                           gptq_model.get_submodule(name).qweight)
    with pytest.raises(ValueError, match="outside the 3-bit range"):
        fake_quant_student(copy.deepcopy(gptq_model), 3, init="quantized")
    with pytest.raises(ValueError, match="group_size=128 given, the layer has 32"):
        fake_quant_student(copy.deepcopy(gptq_model), 4, group_size=128, init="quantized")


def test_3_bit_packed_model_back_to_a_student(teacher, ids):
    student = fake_quant_student(copy.deepcopy(teacher), 3, 32, False)
    train(student, ids, steps=2)
    again = fake_quant_student(pack_fake_quant(copy.deepcopy(student)), 3, init="quantized")
    for name, fq in fake_layers(student).items():
        other = again.get_submodule(name)
        assert torch.equal(other.codes(), fq.codes())
        assert torch.equal(other.weight, fq.quantized_weight())


def test_pruned_then_fake_quant_keeps_zeros_through_packing(teacher, ids):
    student = fake_quant_student(pruned_student(pruned_2_4(teacher)), 4, 32, True)
    fakes = fake_layers(student)
    zeros = {n: m.weight.detach() == 0 for n, m in fakes.items()}
    assert all(isinstance(c, FixedMask) for m in fakes.values() for c in m._student_constraints)
    train(student, ids, steps=3, lr=1e-2)
    pack_fake_quant(student)
    for n, pruned in zeros.items():
        assert bool((student.get_submodule(n).codes()[0][pruned] == 8).all()), n
    assert len(llmaccel.sparsify_(student)) == 28  # symmetric 2:4 int4: the sparse kernel


def test_int4_2_4_sparse_model_trains_and_packs_back(teacher, ids):
    model = pruned_2_4(teacher)
    llmaccel.quantize_(model, llmaccel.Int4WeightOnly(32, act_int8_min_m=None))
    names = llmaccel.sparsify_(model)
    assert len(names) == 28 and isinstance(model.get_submodule(names[0]), SparseLinear)
    with pytest.raises(TypeError, match="fake_quant_student"):
        pruned_student(model)
    weights = {n: model.get_submodule(n).dequantize() for n in names}
    student = pruned_student(fake_quant_student(model, 4, init="quantized"))
    zero_but_kept = 0
    for n in names:
        fq = student.get_submodule(n)
        assert torch.equal(fq.quantized_weight(), weights[n])
        (mask,) = fq._student_constraints
        assert bool((mask.keep.view(-1, 4).sum(1) == 2).all())  # 2 trainable slots per group
        zero_but_kept += int((mask.keep & (weights[n] == 0)).sum())
    assert zero_but_kept > 0  # weights rounded to the zero code are not pinned as pruned
    train(student, ids, steps=3, lr=1e-2)
    pack_fake_quant(student)
    assert sorted(llmaccel.sparsify_(student)) == sorted(names)


# ---- layer-dropped student ------------------------------------------------------------------

def test_layer_dropped_copies_and_renumbers(teacher, ids):
    snapshot = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = layer_dropped_student(teacher, 2)
    assert student.config.num_hidden_layers == 2 and len(student.model.layers) == 2
    assert teacher.config.num_hidden_layers == 4 and len(teacher.model.layers) == 4
    for i, t in enumerate((0, 3)):  # default: the first and the last
        layer = student.model.layers[i]
        assert layer.self_attn.layer_idx == i
        for (name, p), q in zip(layer.named_parameters(),
                                teacher.model.layers[t].parameters()):
            assert torch.equal(p, q) and p.data_ptr() != q.data_ptr(), name
    train(student, ids, steps=1, lr=1e-2)
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, snapshot[k]), k
    prompt = ids[:1, :6]
    cached = student.generate(prompt, max_new_tokens=5, do_sample=False, use_cache=True)
    uncached = student.generate(prompt, max_new_tokens=5, do_sample=False, use_cache=False)
    assert cached.shape == (1, 11) and torch.equal(cached, uncached)


def test_layer_dropped_keep_and_default_spread(teacher, ids):
    same = layer_dropped_student(teacher, 4)
    assert torch.equal(logits(same, ids), logits(teacher, ids))
    student = layer_dropped_student(teacher, keep=[1, 2])
    assert torch.equal(student.model.layers[0].mlp.up_proj.weight,
                       teacher.model.layers[1].mlp.up_proj.weight)
    assert [layer.self_attn.layer_idx for layer in student.model.layers] == [0, 1]
    thirty = tiny_llama(layers=30, hidden=32, inter=32, heads=2, kv_heads=1, vocab=VOCAB)
    kept = layer_dropped_student(thirty, 20)
    firsts = [layer.input_layernorm.weight for layer in kept.model.layers]
    indices = [next(i for i, t in enumerate(thirty.model.layers)
                    if torch.equal(t.input_layernorm.weight, w)) for w in firsts]
    assert indices[0] == 0 and indices[-1] == 29 and len(set(indices)) == 20
    assert max(b - a for a, b in zip(indices, indices[1:])) == 2


# ---- contract and errors --------------------------------------------------------------------

def test_after_step_is_a_no_op_on_a_plain_model(teacher):
    model = copy.deepcopy(teacher)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    after_step(model)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert trainable_parameters(model) == list(model.parameters())


def test_bad_input_errors(teacher):
    model = copy.deepcopy(teacher)
    for bits in (1, 5, 8, True, 3.0):
        with pytest.raises(ValueError, match="bits must be 2, 3 or 4"):
            fake_quant_student(model, bits)
    with pytest.raises(ValueError, match="init must be one of"):
        fake_quant_student(model, 3, init="gptq")
    with pytest.raises(ValueError, match="group_size"):
        fake_quant_student(model, 3, group_size=48)
    with pytest.raises(ValueError, match="no int4 QuantLinear or SparseLinear"):
        fake_quant_student(model, 3, init="quantized")
    with pytest.raises(ValueError, match="no FakeQuantLinear"):
        pack_fake_quant(model)
    with pytest.raises(ValueError, match="no linear layer with zero weights"):
        pruned_student(model)
    with pytest.raises(ValueError, match="not an nn.Linear"):
        pruned_student(model, {"model.norm": torch.ones(64, dtype=torch.bool)})
    with pytest.raises(ValueError, match="not an nn.Linear"):
        pruned_student(model, {"model.layers.9.mlp.up_proj": torch.ones(128, 64, dtype=torch.bool)})
    with pytest.raises(ValueError, match="bool tensor shaped like its weight"):
        pruned_student(model, {"model.layers.0.mlp.up_proj": torch.ones(64, 128, dtype=torch.bool)})
    with pytest.raises(ValueError, match="bool tensor shaped like its weight"):
        pruned_student(model, {"model.layers.0.mlp.up_proj": torch.ones(128, 64)})
    assert not any(fake_layers(model)) and after_step(model) is None
    for n_layers in (0, 5, True):
        with pytest.raises(ValueError, match="n_layers must be an int in 1..4"):
            layer_dropped_student(teacher, n_layers)
    for keep in ([], [2, 1], [0, 0], [0, 4], [-1, 2]):
        with pytest.raises(ValueError, match="strictly increasing"):
            layer_dropped_student(teacher, keep=keep)
    with pytest.raises(ValueError, match="exactly one"):
        layer_dropped_student(teacher)
    with pytest.raises(ValueError, match="exactly one"):
        layer_dropped_student(teacher, 2, keep=[0, 1])
