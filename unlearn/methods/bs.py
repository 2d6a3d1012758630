"""BS: boundary shrinking (Chen et al. 2023, "Boundary Unlearning", CVPR)."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unlearn.checks import finite, require
from unlearn.methods.base import LossMethod, Task

RELABEL = ("every_batch", "once")
SPACES = ("pixel", "input")


def pixel_stats(data, device) -> tuple[Tensor, Tensor] | None:
    """(mean, std) with model input = (pixel - mean) / std for normalised uint8 images; None when the model
    input already is the pixel value (uint8 images without normalisation, or float images in [0, 1])."""
    if data.x_train.dtype == torch.uint8 and data.mean is not None:
        shape = (1, -1, 1, 1)
        return (torch.tensor(data.mean, device=device).view(shape), torch.tensor(data.std, device=device).view(shape))
    return None


def fgsm_point(model: nn.Module, x: Tensor, y: Tensor, bound: float, space: str,
               stats: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """One untargeted FGSM step from model input x (true labels y), returned in model-input units.

    space=pixel: the step is `bound` in [0, 1] pixel units, clamped to [0, 1] and rounded to the 1/255 grid
    (SalUn's boundary_sh.py:35-52, whose model normalises internally); `stats` maps pixels to inputs.
    space=input: x + bound * sign(grad) in model-input units, no clamp.
    """
    x = x.detach().clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    step = bound * gx.sign()  # the sign is the same in pixel units: inputs are a positive per-channel scaling
    if space == "input":
        return (x + step).detach()
    pix = x.detach() if stats is None else x.detach() * stats[1] + stats[0]
    pix = torch.round((pix + step).clamp(0.0, 1.0) * 255) / 255
    return pix if stats is None else (pix - stats[0]) / stats[1]


@torch.no_grad()
def boundary_labels(model: nn.Module, x_adv: Tensor, y: Tensor, keep_true: bool) -> Tensor:
    """argmax of the logits at the FGSM point; with keep_true=False the true class is excluded."""
    logits = model(x_adv)
    if not keep_true:
        logits[torch.arange(len(y), device=y.device), y] = float("-inf")
    return logits.argmax(1)


class BS(LossMethod):
    """Relabel each forget sample with the class a frozen copy of the original model predicts after one FGSM
    step, then fine-tune the whole net on D_f with those labels; one epoch is one pass over D_f.

    relabel=every_batch recomputes the labels on every (augmented) batch that is trained on, as both public
    codes (SalUn boundary_sh.py:80-99; Chen et al.'s boundary_unlearning.py:43-57); relabel=once labels
    the clean D_f before the first step.
    """

    drive = "forget"

    def __init__(self, *, bound: float, space: str, relabel: str, keep_true: bool, **recipe):
        super().__init__(**recipe)
        require([("bound", finite(bound) and bound > 0, "a finite number > 0 (L-inf FGSM step)"),
                 ("space", space in SPACES, f"one of {SPACES}"),
                 ("relabel", relabel in RELABEL, f"one of {RELABEL}"),
                 ("keep_true", isinstance(keep_true, bool), "true or false")],
                {"bound": bound, "space": space, "relabel": relabel, "keep_true": keep_true}, "bs: ")
        self.bound, self.space, self.relabel, self.keep_true = bound, space, relabel, keep_true

    def labels_for(self, frozen: nn.Module, task: Task, x: Tensor, y: Tensor) -> Tensor:
        """Boundary labels of model inputs x (true labels y) from the frozen original."""
        stats = pixel_stats(task.data, x.device) if self.space == "pixel" else None
        return boundary_labels(frozen, fgsm_point(frozen, x, y, self.bound, self.space, stats), y, self.keep_true)

    def frozen(self, model: nn.Module) -> nn.Module:
        frozen = copy.deepcopy(model).eval()
        for p in frozen.parameters():
            p.requires_grad_(False)
        return frozen

    def relabel_clean(self, model: nn.Module, task: Task) -> Tensor:
        """Boundary labels of the clean D_f (in `split.forget` order) from `model` (relabel=once)."""
        frozen, data, forget = self.frozen(model), task.data, task.split.forget
        return torch.cat([self.labels_for(frozen, task, data.prepare(data.x_train[b]), data.y_train[b])
                          for b in forget.split(self.recipe.batch_size)])

    def check(self, task):
        data = task.data
        x = data.prepare(data.x_train[task.split.forget[:1]])
        if not x.is_floating_point():
            raise ValueError(f"bs needs continuous model inputs for its FGSM step; {data.name!r} feeds "
                             f"{data.x_train.dtype} (e.g. token ids)")
        if self.space == "pixel" and data.x_train.dtype != torch.uint8:
            lo, hi = float(data.x_train.min()), float(data.x_train.max())
            if lo < 0 or hi > 1:
                raise ValueError(f"bs: space='pixel' needs images with pixels in [0, 1]; {data.name!r} inputs "
                                 f"span [{lo:.3g}, {hi:.3g}]; use space=input")

    def setup(self, run):
        run.state["frozen"] = self.frozen(run.model)  # the original model, before any step
        if self.relabel == "once":
            labels = run.task.data.y_train.clone()
            labels[run.task.split.forget] = self.relabel_clean(run.model, run.task)
            run.state["labels"] = labels

    def targets(self, run, idx):
        return run.state["labels"][idx] if self.relabel == "once" else run.task.data.y_train[idx]

    def loss(self, run, forget, retain):
        x, y = forget
        if self.relabel == "every_batch":  # y holds the true labels; relabel this very (augmented) batch
            new = self.labels_for(run.state["frozen"], run.task, x, y)
            run.record(kept_true=(new == y).float().mean())
            y = new
        return F.cross_entropy(run.model(x), y)
