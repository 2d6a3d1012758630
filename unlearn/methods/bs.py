"""BS: boundary shrinking (Chen et al. 2023, "Boundary Unlearning", CVPR)."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unlearn.checks import finite
from unlearn.methods.base import LossMethod, Task


@torch.no_grad()
def _logits(model, x):
    return model(x)


def nearest_wrong_class(model: nn.Module, x: Tensor, y: Tensor, bound: float) -> Tensor:
    """Label of the nearest wrong class: argmax over classes != y of the logits at the FGSM point x + bound * sign(grad).

    The authors take the plain argmax (which keeps y when the step does not cross a boundary); masking y
    makes every label a wrong one.
    """
    x = x.detach().clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    logits = _logits(model, x.detach() + bound * gx.sign())
    logits[torch.arange(len(y), device=y.device), y] = float("-inf")
    return logits.argmax(1)


class BS(LossMethod):
    """Relabel each forget sample with its nearest wrong class (FGSM on a frozen copy of the original model),
    then fine-tune the whole net on the relabelled D_f; one epoch is one pass over D_f."""

    drive = "forget"

    def __init__(self, *, bound: float, **recipe):
        super().__init__(**recipe)
        if not (finite(bound) and bound > 0):
            raise ValueError(f"bs: bound={bound!r} is invalid; allowed: > 0 (L-inf FGSM step in model-input units)")
        self.bound = bound

    def relabel(self, model: nn.Module, task: Task) -> Tensor:
        """Nearest-wrong-class labels of D_f (in `split.forget` order), from an un-augmented FGSM step."""
        frozen = copy.deepcopy(model).eval()
        for p in frozen.parameters():
            p.requires_grad_(False)
        data, forget, bs = task.data, task.split.forget, self.recipe.batch_size
        return torch.cat([nearest_wrong_class(frozen, data.prepare(data.x_train[b]), data.y_train[b], self.bound)
                          for b in forget.split(bs)])

    def check(self, task):
        data = task.data
        if not data.prepare(data.x_train[task.split.forget[:1]]).is_floating_point():
            raise ValueError(f"bs needs continuous model inputs for its FGSM step; {data.name!r} feeds "
                             f"{data.x_train.dtype} (e.g. token ids)")

    def setup(self, run):
        labels = run.task.data.y_train.clone()
        labels[run.task.split.forget] = self.relabel(run.model, run.task)  # before any step: the original model
        run.state["labels"] = labels

    def targets(self, run, idx):
        return run.state["labels"][idx]

    def loss(self, run, forget, retain):
        x, y = forget
        return F.cross_entropy(run.model(x), y)
