"""RL: Random Label -- fine-tune on D_f relabelled with random wrong classes, mixed with D_r.

Golatkar et al. 2020 ("Eternal Sunshine"), protocol of Jia et al. 2023 ("Model Sparsity Can Simplify
Machine Unlearning") and Fan et al. 2024 (SalUn): one shuffled pass over D_f u D_r per epoch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from unlearn.methods.base import LossMethod


def wrong_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random class different from `y` for every sample: (y + U{1..K-1}) mod K."""
    shift = torch.randint(1, num_classes, y.shape, generator=generator).to(y.device)
    return (y + shift) % num_classes


class RL(LossMethod):
    """Cross-entropy on D_f (random wrong labels, redrawn every epoch) together with D_r (true labels).

    Redrawing per epoch follows the public code of Jia et al. / Fan et al., which relabels D_f inside
    the per-epoch routine; unlike that code the new label is always wrong, never the true class.
    """

    drive = "all"

    def check(self, task):
        if task.data.num_classes < 2:
            raise ValueError(f"{type(self).__name__} needs >= 2 classes to draw a wrong label; "
                             f"got {task.data.num_classes}")

    def start_epoch(self, run):
        data, forget = run.task.data, run.task.split.forget
        y = data.y_train.clone()
        y[forget] = wrong_labels(y[forget], data.num_classes, run.generator)
        run.state["labels"] = y

    def targets(self, run, idx):
        return run.state["labels"][idx]

    def loss(self, run, forget, retain):
        parts = [p for p in (forget, retain) if p is not None]
        x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return F.cross_entropy(run.model(x), y)
