"""The optimisation recipe and the tensor-indexed batching shared by training and every method."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from unlearn.checks import require

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "cosine")


@dataclass
class Recipe:
    """How to optimise: checked on construction so a bad value fails before any compute."""

    epochs: int = 10
    lr: float = 0.01
    batch_size: int = 128
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    scheduler: str = "none"

    def __post_init__(self):
        checks = [
            ("epochs", isinstance(self.epochs, int) and self.epochs >= 1, "an integer >= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("batch_size", isinstance(self.batch_size, int) and self.batch_size >= 1, "an integer >= 1"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {OPTIMIZERS}"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("scheduler", self.scheduler in SCHEDULERS, f"one of {SCHEDULERS}"),
        ]
        require(checks, vars(self))

    def to_dict(self) -> dict:
        return asdict(self)

    def optimizer_for(self, params) -> torch.optim.Optimizer:
        params = [p for p in params if p.requires_grad]
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        cls = torch.optim.Adam if self.optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=self.lr, weight_decay=self.weight_decay)

    def scheduler_for(self, opt: torch.optim.Optimizer, steps: int):
        if self.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
        return None


def batches(idx: Tensor, batch_size: int, generator: torch.Generator, shuffle: bool = True):
    """Yield index batches of `idx` (a shuffled pass; the last batch may be short)."""
    if shuffle:
        idx = idx[torch.randperm(len(idx), generator=generator).to(idx.device)]
    for i in range(0, len(idx), batch_size):
        yield idx[i:i + batch_size]


class Cycler:
    """Endless shuffled draws from `idx`: pairs each batch of one split with a batch of the other."""

    def __init__(self, idx: Tensor, generator: torch.Generator):
        self.idx, self.g, self.pos = idx, generator, len(idx)

    def take(self, n: int) -> Tensor:
        out = []
        while n > 0:
            if self.pos >= len(self.idx):
                self.perm, self.pos = self.idx[torch.randperm(len(self.idx), generator=self.g).to(self.idx.device)], 0
            chunk = self.perm[self.pos:self.pos + n]
            self.pos += len(chunk); n -= len(chunk)
            out.append(chunk)
        return torch.cat(out)


def fit(model: nn.Module, data, idx: Tensor, recipe: Recipe, seed: int, desc: str = "train") -> nn.Module:
    """Train `model` with cross-entropy on training samples `idx` of `data` (original model, Retrain)."""
    g = torch.Generator().manual_seed(seed)
    opt = recipe.optimizer_for(model.parameters())
    steps = recipe.epochs * math.ceil(len(idx) / recipe.batch_size)
    sched = recipe.scheduler_for(opt, steps)
    model.train()
    for _ in tqdm(range(recipe.epochs), desc=desc, disable=None, leave=False):
        for b in batches(idx, recipe.batch_size, g):
            x = data.prepare(data.x_train[b], train=True, generator=g)
            loss = nn.functional.cross_entropy(model(x), data.y_train[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
    return model.eval()
