"""The distillation trainer on tiny random Llamas: LR schedule values, gradient accumulation
against one large batch, learning, evaluation steps, exact resume, atomic checkpoints, the
after_step contract, top-k teacher caching, the progress bar, and every input error."""

import pytest
import torch

from llmaccel.distillation import (DistillConfig, DistillData, distill, fake_quant_student,
                                   latest_checkpoint, lr_at, pruned_student)
from llmaccel.distillation import checkpoints, trainer
from llmaccel.eval.quality import evaluate_quality

from ..tiny_llama import tiny_llama

VOCAB = 128
# Summing two micro-batch gradients instead of one batch changes only the float32 summation
# order (and the GEMM blocking of a smaller batch): a few ulps of the gradient's size.
TOL_ACCUM_GRAD = dict(rtol=1e-5, atol=1e-7)
# Three AdamW steps on such gradients: Adam divides by sqrt(v), so an ulp-level gradient
# difference stays an ulp-level relative difference of lr-sized updates.
TOL_ACCUM_WEIGHTS = dict(rtol=0, atol=1e-6)


class Interrupted(Exception):
    pass


@pytest.fixture
def hooks():
    """The module whose after_step / trainable_parameters the trainer calls (looked up at
    call time, so tests can wrap them with monkeypatch)."""
    from llmaccel.distillation import students
    return students


def models():
    """(teacher, student): 3 and 2 layers, same vocabulary, different weights. The teacher's
    logits are scaled up so its distributions are peaked, as a trained model's are; a random
    Llama's are nearly uniform and would leave little to distil."""
    teacher = tiny_llama(layers=3, vocab=VOCAB, seed=0)
    with torch.no_grad():
        teacher.lm_head.weight.mul_(4)
    return teacher, tiny_llama(layers=2, vocab=VOCAB, seed=1)


def token_data(n_train=2048, n_eval=512):
    g = torch.Generator().manual_seed(123)
    return DistillData(torch.randint(0, VOCAB, (n_train,), generator=g),
                       torch.randint(0, VOCAB, (n_eval,), generator=g))


def config(**kw):
    base = dict(steps=6, batch_size=2, seq_len=16, lr=3e-3, warmup_steps=2, eval_every=2,
                eval_windows=4, progress=False)
    return DistillConfig(**{**base, **kw})


def weights_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def without_time(history):
    return [{k: v for k, v in h.items() if k not in ("elapsed_s", "eval_s")} for h in history]


# ---- schedule ------------------------------------------------------------------------------

def test_lr_warmup_linear_then_cosine_to_min():
    cfg = DistillConfig(steps=10, lr=1.0, warmup_steps=4, min_lr_ratio=0.1)
    got = [lr_at(s, cfg) for s in range(10)]
    assert got[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0], abs=1e-12)
    # Cosine over the 6 remaining steps: 0.1 + 0.9 · ½(1 + cos(π · i/6)), i = 1..6.
    assert got[4] == pytest.approx(0.1 + 0.45 * (1 + 3 ** 0.5 / 2), abs=1e-12)
    assert got[6] == pytest.approx(0.1 + 0.45, abs=1e-12)  # halfway: cos(π/2) = 0
    assert got[-1] == pytest.approx(0.1, abs=1e-12)
    assert all(a > b for a, b in zip(got[3:], got[4:]))


def test_lr_without_warmup_starts_below_peak_and_ends_at_min():
    cfg = DistillConfig(steps=3, lr=2.0, warmup_steps=0, min_lr_ratio=0.0)
    assert [lr_at(s, cfg) for s in range(3)] == pytest.approx([1.5, 0.5, 0.0], abs=1e-12)


# ---- gradient accumulation -----------------------------------------------------------------

def test_grad_accum_gives_the_gradient_of_one_big_batch():
    teacher, student = models()
    ids = token_data().train_ids
    starts = torch.tensor([0, 100, 400, 1000])
    windows = ids[starts.unsqueeze(1) + torch.arange(16)]
    grads, parts = [], []
    for batch, accum in ((4, 1), (2, 2), (1, 4)):
        student.zero_grad(set_to_none=True)
        cfg = config(batch_size=batch, grad_accum=accum, alpha=0.7)
        parts.append(trainer._backward_step(student, teacher, windows, starts, cfg, None))
        grads.append([p.grad.clone() for p in student.parameters()])
    for other in grads[1:]:
        for g_big, g_acc in zip(grads[0], other):
            torch.testing.assert_close(g_acc, g_big, **TOL_ACCUM_GRAD)
    for p in parts[1:]:
        assert p == pytest.approx(parts[0], rel=1e-5)


def test_grad_accum_run_matches_big_batch_run():
    teacher, a = models()
    _, b = models()
    distill(a, teacher, token_data(), config(steps=3, batch_size=4, grad_accum=1))
    distill(b, teacher, token_data(), config(steps=3, batch_size=2, grad_accum=2))
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pb, pa, **TOL_ACCUM_WEIGHTS, msg=name)


# ---- learning and evaluation ---------------------------------------------------------------

@pytest.mark.parametrize("kind,alpha", [("forward", 0.9), ("reverse", 1.0), ("jsd", 1.0)])
def test_student_moves_towards_teacher(kind, alpha):
    # The hard CE on random tokens can only learn the unigram: with its weight the soft loss
    # (the part that learns from the teacher) is the one to watch.
    teacher, student = models()
    r = distill(student, teacher, token_data(),
                config(steps=30, batch_size=4, seq_len=32, eval_every=10, loss=kind,
                       alpha=alpha))
    soft = [s["soft"] for s in r.step_log]
    assert sum(soft[-5:]) < 0.85 * sum(soft[:5])
    assert r.history[-1]["eval_kl"] < 0.85 * r.history[0]["eval_kl"]
    assert all((s["hard"] is not None) == (alpha < 1) for s in r.step_log)


def test_bf16_teacher_copy_trains_and_leaves_the_teacher_as_given():
    teacher, student = models()
    snapshot = {k: v.clone() for k, v in teacher.state_dict().items()}
    r = distill(student, teacher, token_data(),
                config(steps=20, batch_size=4, seq_len=32, eval_every=10, alpha=1.0,
                       autocast_bf16=True, teacher_bf16=True))
    assert r.history[-1]["eval_kl"] < 0.85 * r.history[0]["eval_kl"]
    for model in (student, teacher):
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(torch.equal(v, snapshot[k]) for k, v in teacher.state_dict().items())
    # Evaluation scores against the teacher as given (fp32), so the floor is unchanged.
    alone = distill(tiny_llama(layers=2, vocab=VOCAB, seed=1), teacher, token_data(),
                    config(steps=1, warmup_steps=0, batch_size=4, seq_len=32, alpha=1.0))
    assert r.teacher_ppl == alone.teacher_ppl


def test_evaluates_at_start_every_n_steps_and_at_end():
    teacher, student = models()
    data = token_data()
    cfg = config(steps=7, eval_every=3, warmup_steps=0)
    r = distill(student, teacher, data, cfg)
    assert [h["step"] for h in r.history] == [0, 3, 6, 7]
    assert r.history[0]["train_loss"] is None and r.history[0]["lr"] is None
    losses = [s["loss"] for s in r.step_log]
    assert r.history[1]["train_loss"] == pytest.approx(sum(losses[:3]) / 3)
    assert r.history[3]["train_loss"] == pytest.approx(losses[6])
    assert [s["lr"] for s in r.step_log] == [lr_at(i, cfg) for i in range(7)]
    assert r.history[3]["lr"] == lr_at(6, cfg)
    assert r.steps == 7 and not r.stopped_early and r.checkpoint is None
    # Evaluation time is counted apart: it grows with every evaluation, within elapsed time.
    eval_s = [h["eval_s"] for h in r.history]
    assert all(0 < a < b for a, b in zip(eval_s, eval_s[1:]))
    assert all(h["eval_s"] < h["elapsed_s"] for h in r.history)
    # The figures are eval.quality's on the returned student, on eval_windows windows.
    q = evaluate_quality(student.eval(), data.eval_ids, 16, 4, reference=teacher, progress=False)
    assert (r.final_ppl, r.final_kl) == (q.ppl, q.kl)
    assert r.teacher_ppl == evaluate_quality(teacher, data.eval_ids, 16, 4, progress=False).ppl

    r = distill(models()[1], teacher, data, config(steps=4, eval_every=None))
    assert [h["step"] for h in r.history] == [0, 4]


def test_modes_are_restored_and_the_caller_rng_untouched():
    teacher, student = models()
    teacher.train()
    student.eval()
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    distill(student, teacher, token_data(), config(steps=2))
    assert torch.equal(torch.rand(3), expected)
    assert not student.training and not teacher.training


# ---- checkpoints and resume ----------------------------------------------------------------

@pytest.mark.parametrize("autocast,topk", [(False, None), (True, None), (True, 8)])
def test_resume_continues_bit_exactly(tmp_path, hooks, monkeypatch, autocast, topk):
    teacher, straight = models()
    kw = dict(autocast_bf16=autocast, topk=topk, alpha=0.8)
    whole = distill(straight, teacher, token_data(), config(**kw))

    _, student = models()
    real_after_step, calls = hooks.after_step, []

    def dies_in_step_4(model):
        calls.append(1)
        if len(calls) == 4:
            raise Interrupted
        real_after_step(model)

    monkeypatch.setattr(hooks, "after_step", dies_in_step_4)
    ckpt = dict(checkpoint_dir=tmp_path, checkpoint_every=3)
    with pytest.raises(Interrupted):
        distill(student, teacher, token_data(), config(**kw, **ckpt))
    assert latest_checkpoint(tmp_path).name == "step-00000003"
    monkeypatch.setattr(hooks, "after_step", real_after_step)

    _, resumed = models()  # a fresh process would start from freshly built weights
    r = distill(resumed, teacher, token_data(), config(**kw, **ckpt, resume=True))
    assert weights_equal(resumed, straight)
    assert without_time(r.history) == without_time(whole.history)
    assert r.step_log == whole.step_log
    assert r.checkpoint == latest_checkpoint(tmp_path) == tmp_path / "step-00000006"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.json", "step-00000006"]


def test_time_budget_stops_checkpoints_and_resume_finishes(tmp_path):
    teacher, straight = models()
    distill(straight, teacher, token_data(), config(steps=3))
    _, student = models()
    r = distill(student, teacher, token_data(),
                config(steps=3, checkpoint_dir=tmp_path, max_time_s=1e-9))
    assert r.stopped_early and r.steps == 0 and [h["step"] for h in r.history] == [0]
    assert r.checkpoint == latest_checkpoint(tmp_path)
    r = distill(student, teacher, token_data(),
                config(steps=3, checkpoint_dir=tmp_path, resume=True))
    assert not r.stopped_early and r.steps == 3 and weights_equal(student, straight)


@pytest.mark.parametrize("fail_in", ["optimizer file", "pointer"])
def test_failed_save_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch, fail_in):
    teacher, straight = models()
    distill(straight, teacher, token_data(), config(steps=4))

    import safetensors.torch as st
    if fail_in == "optimizer file":
        # save_model writes the student through save_file too: call 4 is the optimizer file
        # of the second checkpoint, after its student file was written.
        target, name = st, "save_file"
    else:
        target, name = checkpoints, "atomic_write"
    real, calls = getattr(target, name), []

    def fails_midway(*args, **kwargs):
        calls.append(1)
        if len(calls) == (4 if fail_in == "optimizer file" else 2):
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, fails_midway)
    ckpt = dict(steps=4, checkpoint_dir=tmp_path, checkpoint_every=2)
    _, student = models()
    with pytest.raises(OSError, match="disk full"):
        distill(student, teacher, token_data(), config(**ckpt))
    assert latest_checkpoint(tmp_path).name == "step-00000002"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(target, name, real)

    _, resumed = models()
    r = distill(resumed, teacher, token_data(), config(**ckpt, resume=True))
    assert r.steps == 4 and weights_equal(resumed, straight)


def test_checkpoint_holds_no_pickle(tmp_path):
    teacher, student = models()
    r = distill(student, teacher, token_data(), config(steps=2, checkpoint_dir=tmp_path))
    assert sorted(p.name for p in r.checkpoint.iterdir()) == [
        "optimizer.safetensors", "state.json", "student.safetensors"]


def test_resume_refuses_a_different_run(tmp_path):
    teacher, student = models()
    distill(student, teacher, token_data(), config(steps=2, checkpoint_dir=tmp_path))
    with pytest.raises(ValueError, match="resume=True"):
        distill(student, teacher, token_data(), config(steps=2, checkpoint_dir=tmp_path))
    with pytest.raises(ValueError, match=r"different config \(lr: checkpoint 0.003 vs now"):
        distill(student, teacher, token_data(),
                config(steps=2, lr=1e-3, checkpoint_dir=tmp_path, resume=True))
    with pytest.raises(ValueError, match="different token data"):
        distill(student, teacher, token_data(n_train=1024),
                config(steps=2, checkpoint_dir=tmp_path, resume=True))
    # Run-control fields may change: a finished run resumes to itself.
    r = distill(student, teacher, token_data(),
                config(steps=2, checkpoint_dir=tmp_path, resume=True, checkpoint_every=1))
    assert r.steps == 2 and r.checkpoint.name == "step-00000002"


# ---- the students contract -----------------------------------------------------------------

def test_after_step_follows_every_optimizer_step(hooks, monkeypatch):
    teacher, student = models()
    events = []
    real_step, real_after_step = torch.optim.AdamW.step, hooks.after_step

    def optimizer_step(self, *args, **kwargs):
        events.append("step")
        return real_step(self, *args, **kwargs)

    def after_step(model):
        events.append("after_step")
        real_after_step(model)

    monkeypatch.setattr(torch.optim.AdamW, "step", optimizer_step)
    monkeypatch.setattr(hooks, "after_step", after_step)
    distill(student, teacher, token_data(), config(steps=5, grad_accum=2))
    assert events == ["step", "after_step"] * 5


def compressed_student():
    """A 50 %-pruned, 4-bit fake-quantized student (students.py), built deterministically."""
    student = models()[1]
    masks = {f"model.layers.{i}.mlp.up_proj":
             torch.rand(128, 64, generator=torch.Generator().manual_seed(i)) < 0.5
             for i in range(2)}
    return fake_quant_student(pruned_student(student, masks), bits=4, group_size=32), masks


def test_compressed_student_keeps_its_zeros_and_resumes_exactly(tmp_path, hooks, monkeypatch):
    teacher = models()[0]
    straight, masks = compressed_student()
    distill(straight, teacher, token_data(), config(steps=4, weight_decay=0.1))
    for name, keep in masks.items():
        w = straight.get_submodule(name).weight
        assert torch.all(w[~keep] == 0) and torch.all(w[keep] != 0)

    real_after_step, calls = hooks.after_step, []

    def dies_in_step_3(model):
        calls.append(1)
        if len(calls) == 3:
            raise Interrupted
        real_after_step(model)

    monkeypatch.setattr(hooks, "after_step", dies_in_step_3)
    ckpt = dict(steps=4, weight_decay=0.1, checkpoint_dir=tmp_path, checkpoint_every=2)
    with pytest.raises(Interrupted):
        distill(compressed_student()[0], teacher, token_data(), config(**ckpt))
    monkeypatch.setattr(hooks, "after_step", real_after_step)
    resumed = compressed_student()[0]
    distill(resumed, teacher, token_data(), config(**ckpt, resume=True))
    assert weights_equal(resumed, straight)


def test_only_trainable_parameters_change(hooks, monkeypatch):
    teacher, student = models()
    frozen = student.model.layers[1].self_attn.q_proj.weight
    before = frozen.detach().clone()
    monkeypatch.setattr(hooks, "trainable_parameters",
                        lambda m: [p for p in m.parameters() if p is not frozen])
    distill(student, teacher, token_data(), config(steps=2, weight_decay=0.1))
    assert torch.equal(frozen, before)


# ---- top-k teacher -------------------------------------------------------------------------

def test_topk_teacher_runs_each_window_once():
    teacher, student = models()
    shapes = []
    teacher.register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
    # 256 training tokens = 16 windows of 16; 12 steps draw 48 windows, so many recur.
    data = token_data(n_train=256)
    r = distill(student, teacher, data, config(steps=12, batch_size=4, topk=8, eval_seq_len=24))
    train_calls = [s for s in shapes if s[1] == 16]
    assert train_calls and all(s == (1, 16) for s in train_calls)
    assert len(train_calls) <= 16
    assert r.step_log[-1]["loss"] < r.step_log[0]["loss"]



def test_teacher_scores_each_eval_window_once_and_alpha_zero_trains_without_it():
    teacher, student = models()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    shapes = []
    teacher.register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
    data = token_data()
    r = distill(student, teacher, data, config(steps=6, eval_every=2, alpha=0.0,
                                               eval_seq_len=24))
    # 4 evaluations (steps 0, 2, 4, 6) of the same 4 windows of 24: the teacher scores each
    # window once; training windows (16 tokens) never reach it at alpha = 0.
    assert shapes == [(1, 24)] * 4
    assert [h["step"] for h in r.history] == [0, 2, 4, 6]
    assert all(s["soft"] is None and s["hard"] == s["loss"] for s in r.step_log)
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items())
    # The cached reference gives the figures an uncached evaluation gives.
    q = evaluate_quality(student.eval(), data.eval_ids, 24, 4, reference=teacher, progress=False)
    assert (r.final_ppl, r.final_kl, r.history[-1]["eval_top1"]) == (q.ppl, q.kl,
                                                                     q.top1_agreement)
    assert r.teacher_ppl == evaluate_quality(teacher, data.eval_ids, 24, 4, progress=False).ppl

# ---- progress bar --------------------------------------------------------------------------

def test_progress_bar_shows_loss_and_ppl(capsys):
    teacher, student = models()
    distill(student, teacher, token_data(), config(steps=2, progress=True))
    err = capsys.readouterr().err
    assert "distill" in err and "loss=" in err and "ppl=" in err


def test_progress_bar_off_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    bar = trainer._progress_bar(config(progress=None), 0)
    assert bar.disable
    bar.close()


# ---- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,match", [
    (dict(steps=0), "steps must be an int >= 1"),
    (dict(steps=-3), "steps must be an int >= 1"),
    (dict(steps=2.5), "steps must be an int >= 1"),
    (dict(batch_size=0), "batch_size"),
    (dict(seq_len=1), "seq_len must be an int >= 2"),
    (dict(grad_accum=0), "grad_accum"),
    (dict(lr=0.0), "lr must be"),
    (dict(lr=float("nan")), "lr must be"),
    (dict(warmup_steps=7), r"warmup_steps must be an int in \[0, steps=6\]"),
    (dict(min_lr_ratio=1.5), "min_lr_ratio"),
    (dict(loss="mse"), "loss must be one of"),
    (dict(temperature=0), "temperature"),
    (dict(alpha=1.2), "alpha"),
    (dict(topk=0), "topk must be None or an int >= 1"),
    (dict(topk=8, loss="jsd"), "topk needs loss='forward'"),
    (dict(eval_every=0), "eval_every"),
    (dict(eval_seq_len=1), "eval_seq_len"),
    (dict(seed=-1), "seed"),
    (dict(resume=True), "resume=True needs a checkpoint_dir"),
    (dict(max_time_s=0), "max_time_s"),
    (dict(autocast_bf16="yes"), "autocast_bf16 must be a bool"),
    (dict(teacher_bf16=1), "teacher_bf16 must be a bool"),
])
def test_bad_config_is_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        config(**kw)


def test_bad_inputs_are_refused():
    teacher, student = models()
    data = token_data()
    with pytest.raises(ValueError, match="eval_ids has 20 tokens, fewer than one evaluation "
                                         "window of 32"):
        distill(student, teacher, token_data(n_eval=20), config(seq_len=32))
    with pytest.raises(ValueError, match="fewer than one evaluation window of 1024"):
        distill(student, teacher, data, config(eval_seq_len=1024))
    with pytest.raises(ValueError, match="train_ids has 10 tokens"):
        distill(student, teacher, token_data(n_train=10), config())
    with pytest.raises(ValueError, match="vocab_size differs: student 128, teacher 96"):
        distill(student, tiny_llama(layers=2, vocab=96), data, config())
    with pytest.raises(ValueError, match="outside the models' vocabulary of 128"):
        distill(student, teacher, DistillData(data.train_ids + 100, data.eval_ids), config())
    with pytest.raises(ValueError, match="topk = 200 exceeds the vocabulary size 128"):
        distill(student, teacher, data, config(topk=200))
    with pytest.raises(ValueError, match="teacher is on meta but the student on cpu"):
        distill(student, models()[0].to("meta"), data, config())
    with pytest.raises(TypeError, match=r"DistillData\(train_ids, eval_ids\)"):
        distill(student, teacher, (data.train_ids, data.eval_ids), config())
    with pytest.raises(ValueError, match="must be 1-D"):
        DistillData(data.train_ids.view(2, -1), data.eval_ids)
    with pytest.raises(ValueError, match="integer tensor"):
        DistillData(data.train_ids.float(), data.eval_ids)
