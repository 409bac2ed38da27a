"""Knowledge distillation, teacher → compressed student: soft losses on next-token
distributions (forward/reverse KL, generalised JSD, top-k cached teacher), hard cross entropy,
their mix, hidden-state matching and same-vocabulary checks."""

from .losses import (HiddenMatch, check_same_tokenizer, check_same_vocab_size, distill_loss,
                     hard_ce, jsd, kl_forward, kl_forward_topk, kl_reverse)

__all__ = ["HiddenMatch", "check_same_tokenizer", "check_same_vocab_size", "distill_loss",
           "hard_ce", "jsd", "kl_forward", "kl_forward_topk", "kl_reverse"]
