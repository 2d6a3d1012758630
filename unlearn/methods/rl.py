"""RL: Random Label -- fine-tune on D_f relabelled with random classes, together with D_r.

Golatkar et al. 2020 ("Eternal Sunshine"), as run by Fan et al. 2024 (SalUn's public code, which the
UGradSL and SalUn tables use): OPTML-Group/Unlearn-Saliency Classification/unlearn/RL.py.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from unlearn.checks import require
from unlearn.methods.base import LossMethod

LABELS = ("uniform", "wrong")
LOOPS = ("sequential", "combined")


def wrong_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random class different from `y` for every sample: (y + U{1..K-1}) mod K."""
    shift = torch.randint(1, num_classes, y.shape, generator=generator).to(y.device)
    return (y + shift) % num_classes


def uniform_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random class out of all K for every sample (the true one with probability 1/K)."""
    return torch.randint(0, num_classes, y.shape, generator=generator).to(y.device)


class RL(LossMethod):
    """Cross-entropy on D_f with random labels (redrawn every epoch) and on D_r with the true labels.

    `loop=sequential`: a pass over D_f, then a pass over D_r, every epoch (the public code's CIFAR-10/SVHN
    branch, RL.py:109-176); `loop=combined`: one shuffled pass over D_f u D_r, each batch one mean CE
    (its CIFAR-100/TinyImageNet branch, RL.py:51-107). `labels=uniform` draws from all K classes as the
    public code (RL.py:125, :53-55); `labels=wrong` never draws the true class.
    """

    def __init__(self, *, labels: str, loop: str, **recipe):
        super().__init__(**recipe)
        name = type(self).__name__.lower()
        require([("labels", labels in LABELS, f"one of {LABELS}"), ("loop", loop in LOOPS, f"one of {LOOPS}")],
                {"labels": labels, "loop": loop}, f"{name}: ")
        self.labels, self.loop = labels, loop
        self.drive = "forget_then_retain" if loop == "sequential" else "all"

    def check(self, task):
        if task.data.num_classes < 2:
            raise ValueError(f"{type(self).__name__} needs >= 2 classes to draw a random label; "
                             f"got {task.data.num_classes}")

    def start_epoch(self, run):
        # Each forget sample is fetched once per epoch in either loop, so one draw per epoch equals the
        # public code's draw per forget batch (sequential) or per epoch (combined).
        data, forget = run.task.data, run.task.split.forget
        draw = uniform_labels if self.labels == "uniform" else wrong_labels
        y = data.y_train.clone()
        y[forget] = draw(y[forget], data.num_classes, run.generator)
        run.state["labels"] = y

    def targets(self, run, idx):
        return run.state["labels"][idx]

    def loss(self, run, forget, retain):
        parts = [p for p in (forget, retain) if p is not None]
        x, y = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return F.cross_entropy(run.model(x), y)
