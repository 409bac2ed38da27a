"""Knowledge distillation, teacher → compressed student.

* losses: forward/reverse KL, generalised JSD (temperature, T² scaling), top-k cached teacher,
  hard cross entropy, their α mix, hidden-state matching, same-vocabulary checks;
* students: pruned (masks kept fixed), fake-quantized with a straight-through estimator and
  packed into QuantLinear with the same scales, fewer layers copied from the teacher;
* trainer: ``distill(student, teacher, DistillData(train_ids, eval_ids), DistillConfig(...))``:
  AdamW, warm-up + cosine, gradient accumulation, bf16 autocast, held-out perplexity and KL every
  N steps, atomic safetensors checkpoints with exact resume;
* run: ``build_student`` (from a compressed model or by dropping layers) and ``finish_student``
  (back to QuantLinear / SparseLinear after training), ``shakespeare_data`` (the default text).
"""

from .data import DistillData
from .losses import (HiddenMatch, check_same_tokenizer, check_same_vocab_size, distill_loss,
                     hard_ce, jsd, kl_forward, kl_forward_topk, kl_forward_topk_tail,
                     kl_reverse)
from .students import (FakeQuantLinear, after_step, fake_quant_student, layer_dropped_student,
                       pack_fake_quant, pruned_student, trainable_parameters)
from .checkpoints import latest_checkpoint
from .trainer import DistillConfig, DistillResult, distill, lr_at
from .run import build_student, finish_student, shakespeare_data

__all__ = [
    "DistillConfig", "DistillData", "DistillResult", "FakeQuantLinear", "HiddenMatch",
    "after_step", "build_student", "check_same_tokenizer", "check_same_vocab_size", "distill",
    "distill_loss", "fake_quant_student", "finish_student", "hard_ce", "jsd", "kl_forward",
    "kl_forward_topk", "kl_forward_topk_tail", "kl_reverse", "latest_checkpoint",
    "layer_dropped_student", "lr_at", "pack_fake_quant", "pruned_student", "shakespeare_data",
    "trainable_parameters",
]
