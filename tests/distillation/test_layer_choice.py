"""Choosing the layers to drop from calibration hidden states (Gromov et al., 2024)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from llmaccel.distillation import layer_dropped_student
from llmaccel.distillation.run import build_student, layer_calibration
from llmaccel.distillation.students import block_distances, closest_block

from ..tiny_llama import random_ids, tiny_llama

pytest.importorskip("transformers")

VOCAB = 128


def with_identity_block(first: int, n: int, layers: int = 6):
    """A tiny model whose layers first..first+n−1 add nothing to the residual stream (their
    output projections are zero), so dropping exactly them leaves the function unchanged."""
    model = tiny_llama(layers=layers, hidden=32, inter=64, heads=2, kv_heads=1, vocab=VOCAB)
    with torch.no_grad():
        for layer in model.model.layers[first:first + n]:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    return model


def logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("first", [0, 2, 3])
def test_the_identity_block_is_chosen_and_dropping_it_changes_nothing(first):
    teacher = with_identity_block(first, 2)
    calib = random_ids(3, 12, vocab=VOCAB, seed=5)
    dist = block_distances(teacher, teacher.model.layers, 2, calib)
    assert dist.shape == (6 - 2,) and dist.dtype == torch.float64
    assert float(dist[first]) < 1e-4 and float(dist.min()) == float(dist[first])
    assert bool((dist >= 0).all()) and bool((dist <= 1).all())
    student = layer_dropped_student(teacher, 4, calibration=calib)
    assert student.config.num_hidden_layers == 4
    assert [m.self_attn.layer_idx for m in student.model.layers] == [0, 1, 2, 3]
    assert student.config.llmaccel_kept_layers == [i for i in range(6)
                                                   if not first <= i < first + 2]
    ids = random_ids(2, 10, vocab=VOCAB, seed=9)
    torch.testing.assert_close(logits(student, ids), logits(teacher, ids), rtol=1e-5, atol=1e-5)


def test_distances_against_the_definition():
    teacher = tiny_llama(layers=5, hidden=32, inter=64, heads=2, kv_heads=1, vocab=VOCAB)
    calib = random_ids(2, 8, vocab=VOCAB, seed=1)
    with torch.no_grad():
        hidden = teacher(calib, output_hidden_states=True).hidden_states  # [i]: input of layer i
    for n in (1, 3):
        want = [float(torch.arccos(F.cosine_similarity(hidden[s], hidden[s + n], dim=-1)
                                   .clamp(-1, 1)).mean() / math.pi) for s in range(5 - n)]
        got = block_distances(teacher, teacher.model.layers, n, calib).tolist()
        assert got == pytest.approx(want, abs=1e-6)
    # One window or a batch of them: the mean over all tokens either way.
    one = block_distances(teacher, teacher.model.layers, 1, calib[0])
    assert one.shape == (4,)


def test_the_last_layer_always_stays_and_the_teacher_is_left_as_it_was():
    teacher = with_identity_block(4, 2)  # the identity block ends at the last layer
    teacher.train()
    snapshot = copy.deepcopy(teacher.state_dict())
    start = closest_block(teacher, teacher.model.layers, 2, random_ids(2, 8, vocab=VOCAB))
    assert start <= 6 - 1 - 2  # blocks end before the last layer
    assert teacher.training  # restored
    assert all(not layer._forward_pre_hooks for layer in teacher.model.layers)
    assert all(torch.equal(v, snapshot[k]) for k, v in teacher.state_dict().items())


def test_build_student_and_calibration_windows():
    teacher = with_identity_block(1, 3)
    stream = random_ids(1, 300, vocab=VOCAB, seed=2)[0]
    calib = layer_calibration(stream, windows=4, seq_len=64)
    assert calib.shape == (4, 64) and torch.equal(calib.flatten(), stream[:256])
    assert layer_calibration(stream[:40], windows=4, seq_len=64).shape == (1, 40)
    student, prep = build_student(teacher, drop_layers=3, calibration=calib)
    assert prep.mode == "layer-dropped"
    ids = random_ids(1, 12, vocab=VOCAB, seed=4)
    torch.testing.assert_close(logits(student, ids), logits(teacher, ids), rtol=1e-5, atol=1e-5)
    everything = layer_dropped_student(teacher, 6, calibration=calib)
    assert torch.equal(logits(everything, ids), logits(teacher, ids))


def test_bad_inputs():
    teacher = tiny_llama(layers=4, hidden=32, inter=64, heads=2, kv_heads=1, vocab=VOCAB)
    calib = random_ids(1, 8, vocab=VOCAB)
    with pytest.raises(ValueError, match="give n_layers, not keep"):
        layer_dropped_student(teacher, keep=[0, 3], calibration=calib)
    with pytest.raises(ValueError, match="n_layers must be an int in 1..4"):
        layer_dropped_student(teacher, 7, calibration=calib)
    for bad in (torch.zeros(2, 3), torch.zeros(1, 2, 3, dtype=torch.long),
                torch.zeros(0, dtype=torch.long), [[1, 2]]):
        with pytest.raises(ValueError, match="calibration must be a non-empty integer tensor"):
            layer_dropped_student(teacher, 2, calibration=bad)
    with pytest.raises(ValueError, match="can drop 1..3 of 4 layers"):
        block_distances(teacher, teacher.model.layers, 4, calib)
