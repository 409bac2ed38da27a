import torch


def distill_loss_rows(student: torch.Tensor, teacher: torch.Tensor | None,
                      labels: torch.Tensor | None, alpha: float, temperature: float,
                      scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row distillation loss and its gradient with respect to the student's logits.

    student (rows, V) float32/bfloat16 logits; teacher (rows, V) float32/bfloat16, or None when
    alpha = 0; labels (rows,) int64 in [0, V), or None when alpha = 1. With T = temperature,
    q = softmax(student / T), p = softmax(teacher / T), q1 = softmax(student):

    → grad (rows, V) in student's dtype = scale · (alpha · T · (q − p) + (1 − alpha) ·
      (q1 − onehot(labels))), the gradient of scale · (alpha · T² · kl + (1 − alpha) · nll);
      kl (rows,) float32 = Σ p (log p − log q) (0 where alpha = 0);
      nll (rows,) float32 = −log q1[label] (0 where alpha = 1).
    Computed in float64 here; the kernel works in float32 (see csrc/train/distill_loss.h).
    """
    z = student.double()
    rows = z.shape[0]
    grad = torch.zeros_like(z)
    kl = torch.zeros(rows, dtype=torch.float64)
    nll = torch.zeros(rows, dtype=torch.float64)
    if alpha > 0:
        log_q = torch.log_softmax(z / temperature, dim=-1)
        log_p = torch.log_softmax(teacher.double() / temperature, dim=-1)
        p = log_p.exp()
        kl = torch.sum(p * (log_p - log_q), dim=-1)
        grad += alpha * temperature * (log_q.exp() - p)
    if alpha < 1:
        log_q1 = torch.log_softmax(z, dim=-1)
        y = labels.long().unsqueeze(-1)
        nll = -log_q1.gather(-1, y).squeeze(-1)
        grad += (1 - alpha) * (log_q1.exp() - torch.zeros_like(z).scatter_(-1, y, 1.0))
    return (grad * scale).to(student.dtype), kl.float(), nll.float()
