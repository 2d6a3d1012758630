"""RL: Random Label -- fine-tune on D_f relabelled with random wrong classes, mixed with D_r.

Golatkar et al. 2020 ("Eternal Sunshine"), protocol of Jia et al. 2023 ("Model Sparsity Can Simplify
Machine Unlearning") and Fan et al. 2024 (SalUn): one shuffled pass over D_f u D_r per epoch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from unlearn.methods.base import Method, Task
from unlearn.train import batches


def wrong_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random class different from `y` for every sample: (y + U{1..K-1}) mod K."""
    shift = torch.randint(1, num_classes, y.shape, generator=generator).to(y.device)
    return (y + shift) % num_classes


class RL(Method):
    """Cross-entropy on D_f (random wrong labels, redrawn every epoch) together with D_r (true labels).

    Redrawing per epoch follows the public code of Jia et al. / Fan et al., which relabels D_f inside
    the per-epoch routine; unlike that code the new label is always wrong, never the true class.
    """

    def unlearn(self, model: nn.Module, task: Task) -> nn.Module:
        data, split, r = task.data, task.split, self.recipe
        if data.num_classes < 2:
            raise ValueError(f"{type(self).__name__} needs >= 2 classes to draw a wrong label; got {data.num_classes}")
        g = torch.Generator().manual_seed(task.seed)
        idx = torch.cat([split.forget, split.retain])
        nf = len(split.forget)
        self.prepare(model, task)
        opt = r.optimizer_for(model.parameters())
        sched = r.scheduler_for(opt, r.epochs * math.ceil(len(idx) / r.batch_size))
        model.train()
        for _ in tqdm(range(r.epochs), desc=type(self).__name__, disable=None, leave=False):
            y = data.y_train[idx].clone()
            y[:nf] = wrong_labels(y[:nf], data.num_classes, g)
            for b in batches(torch.arange(len(idx), device=idx.device), r.batch_size, g):
                x = data.prepare(data.x_train[idx[b]], train=True, generator=g)
                loss = F.cross_entropy(model(x), y[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                self.before_step(model)
                opt.step()
                self.after_step(model)
                if sched is not None:
                    sched.step()
        return model.eval()

    def prepare(self, model: nn.Module, task: Task) -> None:
        """Hook before the first step (SalUn builds its saliency mask here)."""

    def before_step(self, model: nn.Module) -> None:
        """Hook between backward and the optimiser step."""

    def after_step(self, model: nn.Module) -> None:
        """Hook right after the optimiser step."""
