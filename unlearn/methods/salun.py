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


class SalUn(RL):
    """Random Label updates restricted to the `mask_fraction` most salient weights.

    Saliency = |gradient of the forget cross-entropy| at the original weights, summed over D_f, ranked
    globally over all parameters (as in the authors' generate_mask.py). Weights outside the mask stay
    bit-identical: their gradients are zeroed and their values restored after every optimiser step,
    so weight decay and momentum cannot move them. BatchNorm running statistics are buffers, not
    weights, and are updated in train mode as in the original.
    """

    def __init__(self, *, mask_fraction: float, **recipe):
        super().__init__(**recipe)
        require([("mask_fraction", finite(mask_fraction) and 0 < mask_fraction <= 1,
                  "a number in (0, 1] (fraction of weights updated)")], {"mask_fraction": mask_fraction}, "salun: ")
        self.mask_fraction = mask_fraction

    def saliency_mask(self, model: nn.Module, task: Task) -> dict[str, Tensor]:
        """Boolean mask per parameter name: True for the top `mask_fraction` of |grad of forget loss|."""
        data, forget = task.data, task.split.forget
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        grads = {n: torch.zeros_like(p) for n, p in params.items()}
        was_training = model.training
        model.eval()  # deterministic saliency: no augmentation, BN running stats (authors: model.eval())
        for b in batches(forget, self.recipe.batch_size, None, shuffle=False):
            loss = F.cross_entropy(model(data.prepare(data.x_train[b])), data.y_train[b])
            g = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for n, gi in zip(params, g):
                if gi is not None:
                    grads[n] += gi
        model.train(was_training)
        flat = torch.cat([v.abs().flatten() for v in grads.values()])
        k = max(1, round(self.mask_fraction * flat.numel()))
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep[torch.topk(flat, k, sorted=False).indices] = True  # exactly k weights, ties broken by topk
        out, i = {}, 0
        for n, v in grads.items():
            out[n] = keep[i:i + v.numel()].view_as(v)
            i += v.numel()
        return out

    def setup(self, run):
        mask = self.saliency_mask(run.model, run.task)
        run.state["masked"] = [(p, mask[n], p.detach().clone()) for n, p in run.model.named_parameters() if n in mask]

    def before_step(self, run):
        for p, m, _ in run.state["masked"]:
            if p.grad is not None:
                p.grad.mul_(m)

    @torch.no_grad()
    def after_step(self, run):
        for p, m, frozen in run.state["masked"]:
            p.copy_(torch.where(m, p, frozen))  # undo weight decay / momentum outside the mask, exactly
