"""BE: boundary expanding (Chen et al. 2023, "Boundary Unlearning", CVPR)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unlearn.checks import require
from unlearn.methods.base import LossMethod

SHADOWS = ("prune", "keep")
INITS = ("xavier", "linear_default")


def widen(fc: nn.Linear, generator: torch.Generator, init: str = "xavier") -> nn.Linear:
    """fc with one extra (shadow) output: old rows copied; the new row Xavier-normal with bias 0 (Chen et
    al.'s init_params, models.py:39-49) or nn.Linear's default U(+-1/sqrt(d)) for weight and bias (SalUn's
    expand_model, boundary_ex.py:50-61)."""
    k, d = fc.out_features, fc.in_features
    wide = nn.Linear(d, k + 1, bias=fc.bias is not None).to(fc.weight.device, fc.weight.dtype)
    with torch.no_grad():
        if init == "xavier":
            std = (2.0 / (d + k + 1)) ** 0.5  # xavier_normal_ of a (k+1) x d matrix
            wide.weight[k] = std * torch.randn(d, generator=generator).to(wide.weight)
        else:
            bound = 1.0 / d ** 0.5
            wide.weight[k] = (2 * torch.rand(d, generator=generator) - 1).to(wide.weight) * bound
        wide.weight[:k] = fc.weight
        if fc.bias is not None:
            wide.bias[k] = 0 if init == "xavier" else float(2 * torch.rand((), generator=generator) - 1) * bound
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
    """Widen `model.fc` by a shadow class and fine-tune the whole net on D_f relabelled to it.

    `shadow=prune` then drops the shadow output (Chen et al.'s paper and code, boundary_unlearning.py:156-165):
    the forget samples land in the nearest remaining classes' regions and the model keeps its shape.
    `shadow=keep` returns the K+1-output model (Fan et al.'s SalUn code, boundary_ex.py:136-138, evaluated
    with argmax and softmax over K+1 outputs): D_f predicted as the shadow class counts as forgotten.
    """

    drive = "forget"

    def __init__(self, *, shadow: str, shadow_init: str, **recipe):
        super().__init__(**recipe)
        require([("shadow", shadow in SHADOWS, f"one of {SHADOWS}"),
                 ("shadow_init", shadow_init in INITS, f"one of {INITS}")],
                {"shadow": shadow, "shadow_init": shadow_init}, "be: ")
        self.shadow, self.shadow_init = shadow, shadow_init

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
        model.fc = widen(model.fc, torch.Generator().manual_seed(task.seed), self.shadow_init)
        model = super().unlearn(model, task)
        if self.shadow == "prune":
            model.fc = prune(model.fc)
        return model.eval()
