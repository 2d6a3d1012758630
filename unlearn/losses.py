"""Generalised label smoothing (GLS) cross-entropy, including negative smooth rates.

PyTorch's `label_smoothing` argument rejects alpha < 0, so the smoothed target is built by hand.
"""
import torch
import torch.nn.functional as F
from torch import Tensor


def gls_targets(target: Tensor, num_classes: int, alpha: float | Tensor) -> Tensor:
    """y_GLS = (1 - alpha) * onehot(y) + alpha / K; `alpha` is a scalar or one rate per sample."""
    alpha = torch.as_tensor(alpha, dtype=torch.float32, device=target.device)
    if alpha.ndim == 1:
        alpha = alpha.unsqueeze(1)
    onehot = F.one_hot(target, num_classes).float()
    return (1 - alpha) * onehot + alpha / num_classes


def gls_cross_entropy(logits: Tensor, target: Tensor, alpha: float | Tensor = 0.0,
                      reduction: str = "mean") -> Tensor:
    """Cross-entropy against GLS targets: Eq. 9 of the paper.

    Equals (1 + (1-K)/K * alpha) * CE(y) + alpha/K * sum_{y' != y} CE(y'); alpha = 0 is plain CE,
    alpha < 0 is negative label smoothing (NLS), 0 < alpha <= 1 is positive label smoothing.
    """
    y = gls_targets(target, logits.shape[-1], alpha)
    loss = -(y * F.log_softmax(logits, dim=-1)).sum(-1)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction={reduction!r}; allowed: 'mean', 'sum', 'none'")


def mixed_loss(logits_forget: Tensor, y_forget: Tensor, alpha: float | Tensor, p: float,
               logits_retain: Tensor | None = None, y_retain: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 10: p * CE(B_r) - (1 - p) * CE_GLS(B_f, alpha), as batch means (the paper writes sums over batches
    of equal size, which differ by the constant batch size). Without retain logits the descent term is 0.

    Returns (loss, forget term CE_GLS(B_f), retain term CE(B_r)) so callers can log both parts.
    """
    forget = gls_cross_entropy(logits_forget, y_forget, alpha)
    retain = (F.cross_entropy(logits_retain, y_retain) if logits_retain is not None
              else torch.zeros((), device=logits_forget.device))
    return p * retain - (1 - p) * forget, forget, retain
