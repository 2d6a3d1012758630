"""BE: boundary expanding (Chen et al. 2023, "Boundary Unlearning", CVPR)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unlearn.methods.base import LossMethod


def widen(fc: nn.Linear, generator: torch.Generator) -> nn.Linear:
    """fc with one extra (shadow) output: old rows copied, the new row Xavier-normal, bias 0 (as the authors)."""
    k, d = fc.out_features, fc.in_features
    wide = nn.Linear(d, k + 1, bias=fc.bias is not None).to(fc.weight.device, fc.weight.dtype)
    with torch.no_grad():
        std = (2.0 / (d + k + 1)) ** 0.5  # xavier_normal_ of a (k+1) x d matrix
        wide.weight[k] = std * torch.randn(d, generator=generator).to(wide.weight)
        wide.weight[:k] = fc.weight
        if fc.bias is not None:
            wide.bias[k] = 0
            wide.bias[:k] = fc.bias
    return wide


def prune(wide: nn.Linear) -> nn.Linear:
    """Drop the shadow output: the original head shape again."""
    k = wide.out_features - 1
    fc = nn.Linear(wide.in_features, k, bias=wide.bias is not None).to(wide.weight.device, wide.weight.dtype)
    with torch.no_grad():
        fc.weight.copy_(wide.weight[:k])
        if wide.bias is not None:
            fc.bias.copy_(wide.bias[:k])
    return fc


class BE(LossMethod):
    """Widen `model.fc` by a shadow class, fine-tune the whole net on D_f relabelled to it, then prune it.

    The forget samples' features move towards the shadow class, so after pruning they land in the
    nearest remaining classes' regions; the returned model has the original architecture and keys.
    """

    drive = "forget"

    def loss(self, run, forget, retain):
        x, _ = forget
        logits = run.model(x)
        shadow = torch.full((len(x),), logits.shape[1] - 1, dtype=torch.long, device=x.device)
        return F.cross_entropy(logits, shadow)

    def check(self, task):
        model = task.build_model() if task.build_model is not None else None
        if model is not None and not isinstance(getattr(model, "fc", None), nn.Linear):
            raise ValueError(f"be needs a linear head `model.fc`; {type(model).__name__} has none")

    def unlearn(self, model, task):
        model.fc = widen(model.fc, torch.Generator().manual_seed(task.seed))
        model = super().unlearn(model, task)
        model.fc = prune(model.fc)
        return model.eval()
