"""The optimisation recipe and the tensor-indexed batching shared by training and every method."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from unlearn.checks import finite, integer, require

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "cosine")


@dataclass
class Recipe:
    """How to optimise: checked on construction so a bad value fails before any compute."""

    epochs: int
    lr: float
    batch_size: int
    optimizer: str
    momentum: float
    weight_decay: float
    scheduler: str

    def __post_init__(self):
        checks = [
            ("epochs", integer(self.epochs, 1), "an integer >= 1"),
            ("lr", finite(self.lr) and self.lr > 0, "a finite number > 0"),
            ("batch_size", integer(self.batch_size, 1), "an integer >= 1"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {OPTIMIZERS}"),
            ("momentum", finite(self.momentum) and 0 <= self.momentum < 1, "a number in [0, 1)"),
            ("weight_decay", finite(self.weight_decay) and self.weight_decay >= 0, "a finite number >= 0"),
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
        if len(idx) == 0:
            raise ValueError("Cycler: cannot draw batches from an empty index (an empty D_f or D_r)")
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


def fit(model: nn.Module, data, idx: Tensor, recipe: Recipe, seed: int, desc: str = "train",
        log=None) -> nn.Module:
    """Train `model` with cross-entropy on training samples `idx` of `data` (original model, Retrain).

    `log(metrics, step)`, when given, receives `<desc>/loss` and `<desc>/acc` (running means over the epoch's
    augmented batches, in train mode) after every epoch.
    """
    if len(idx) == 0:
        raise ValueError(f"{desc}: no training samples")
    g = torch.Generator().manual_seed(seed)
    opt = recipe.optimizer_for(model.parameters())
    steps = recipe.epochs * math.ceil(len(idx) / recipe.batch_size)
    sched = recipe.scheduler_for(opt, steps)
    model.train()
    step = 0
    for epoch in tqdm(range(recipe.epochs), desc=desc, disable=None, leave=False):
        loss_sum = torch.zeros((), device=idx.device)
        correct = torch.zeros((), device=idx.device)
        for b in batches(idx, recipe.batch_size, g):
            x, y = data.prepare(data.x_train[b], train=True, generator=g), data.y_train[b]
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
            loss_sum += loss.detach() * len(b)  # on the device: no host sync per step
            correct += (logits.detach().argmax(1) == y).sum()
        if log is not None:
            log({f"{desc}/loss": loss_sum.item() / len(idx), f"{desc}/acc": 100.0 * correct.item() / len(idx),
                 f"{desc}/epoch": epoch + 1}, step)
    return model.eval()
