"""SalUn: saliency-masked Random Label unlearning (Fan et al. 2024, ICLR, "SalUn: Empowering Machine
Unlearning via Gradient-based Weight Saliency")."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unlearn.checks import finite, require
from unlearn.methods.base import Task
from unlearn.methods.rl import RL
from unlearn.train import batches

MASK_APPLY = ("restore", "grad")


class SalUn(RL):
    """Random Label updates restricted to the `mask_fraction` most salient weights.

    Saliency = |sum over D_f batches of the gradient of the forget cross-entropy| at the original weights,
    in eval mode, ranked globally over all parameters; the top floor(fraction * N) form the mask (the
    authors' Classification/generate_mask.py:14-80). `mask_apply=restore` zeroes the gradients outside the
    mask and restores those weights after every step, so they stay bit-identical (the paper's
    theta_u = m * (theta_o + dtheta) + (1 - m) * theta_o, and the authors' code since a6e89fd, RL.py:11-34);
    `mask_apply=grad` only zeroes their gradients, so weight decay and momentum still move them (the code
    the paper ran). BatchNorm running statistics are buffers and update in train mode in both.
    """

    def __init__(self, *, mask_fraction: float, mask_apply: str, saliency_augment: bool, **recipe):
        super().__init__(**recipe)
        require([("mask_fraction", finite(mask_fraction) and 0 < mask_fraction <= 1,
                  "a number in (0, 1] (fraction of weights updated)"),
                 ("mask_apply", mask_apply in MASK_APPLY, f"one of {MASK_APPLY}"),
                 ("saliency_augment", isinstance(saliency_augment, bool), "true or false")],
                {"mask_fraction": mask_fraction, "mask_apply": mask_apply, "saliency_augment": saliency_augment},
                "salun: ")
        self.mask_fraction, self.mask_apply, self.saliency_augment = mask_fraction, mask_apply, saliency_augment

    def saliency(self, model: nn.Module, task: Task, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """|sum over D_f batches of the gradient of the mean forget CE| per parameter name (eval mode)."""
        data, forget = task.data, task.split.forget
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        grads = {n: torch.zeros_like(p) for n, p in params.items()}
        was_training = model.training
        model.eval()  # BN running statistics (generate_mask.py:25); augmentation is the data's, not the mode's
        for b in batches(forget, self.recipe.batch_size, None, shuffle=False):
            x = data.prepare(data.x_train[b], train=self.saliency_augment, generator=generator)
            loss = F.cross_entropy(model(x), data.y_train[b])
            g = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for n, gi in zip(params, g):
                if gi is not None:
                    grads[n] += gi  # signed sum over batches, abs afterwards (generate_mask.py:41-48)
        model.train(was_training)
        return {n: v.abs() for n, v in grads.items()}

    def saliency_mask(self, model: nn.Module, task: Task,
                      generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Boolean mask per parameter name: True for the floor(mask_fraction * N) largest saliencies."""
        sal = self.saliency(model, task, generator)
        flat = torch.cat([v.flatten() for v in sal.values()])
        k = max(1, int(self.mask_fraction * flat.numel()))  # int(), as generate_mask.py:60
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep[torch.topk(flat, k, sorted=False).indices] = True  # exactly k weights, ties broken by topk
        out, i = {}, 0
        for n, v in sal.items():
            out[n] = keep[i:i + v.numel()].view_as(v)
            i += v.numel()
        return out

    def setup(self, run):
        mask = self.saliency_mask(run.model, run.task, run.generator)
        run.state["masked"] = [(p, mask[n], p.detach().clone()) for n, p in run.model.named_parameters() if n in mask]

    def before_step(self, run):
        for p, m, _ in run.state["masked"]:
            if p.grad is not None:
                p.grad.mul_(m)

    @torch.no_grad()
    def after_step(self, run):
        if self.mask_apply == "restore":
            for p, m, frozen in run.state["masked"]:
                p.copy_(torch.where(m, p, frozen))  # undo weight decay / momentum outside the mask, exactly
