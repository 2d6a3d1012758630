"""The one interface every unlearning method implements, and the shared loop of loss-based methods."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from unlearn.data import Data
from unlearn.paradigms import Split
from unlearn.train import Cycler, Recipe, batches


@dataclass
class Task:
    """Everything a method may use: data (on the device, labels as trained), the split, and context."""

    data: Data
    split: Split
    device: torch.device
    seed: int
    build_model: callable = None  # () -> freshly initialised model of the original architecture


class Method:
    """Base class: `method(model, task)` returns the unlearned model and never touches `model` itself.

    Subclasses take their hyperparameters as keyword arguments (so a typo in YAML fails at once)
    and implement `unlearn(model, task)` on a private copy.
    """

    def __init__(self, epochs: int = 5, lr: float = 0.01, batch_size: int = 128, optimizer: str = "sgd",
                 momentum: float = 0.9, weight_decay: float = 5e-4, scheduler: str = "none"):
        self.recipe = Recipe(epochs, lr, batch_size, optimizer, momentum, weight_decay, scheduler)

    def __call__(self, model: nn.Module, task: Task) -> nn.Module:
        torch.manual_seed(task.seed)
        return self.unlearn(copy.deepcopy(model).to(task.device), task)

    def unlearn(self, model: nn.Module, task: Task) -> nn.Module:
        raise NotImplementedError


class LossMethod(Method):
    """Gradient methods that differ only in their loss (and, optionally, a few hooks).

    `drive` names what one epoch passes over: "forget" (D_f), "retain" (D_r) or "all" (D_f and D_r
    shuffled together; each batch is handed to `loss` split into its forget and retain parts). With
    `pair`, every batch of the driving split comes with an equal-size batch cycled from the other one.
    """

    drive = "forget"
    pair = False

    def loss(self, model: nn.Module, forget: tuple[Tensor, Tensor] | None,
             retain: tuple[Tensor, Tensor] | None) -> Tensor:
        raise NotImplementedError

    def unlearn(self, model, task):
        data, split, r = task.data, task.split, self.recipe
        if self.drive not in ("forget", "retain", "all"):
            raise ValueError(f"{type(self).__name__}.drive={self.drive!r}; allowed: 'forget', 'retain', 'all'")
        g = torch.Generator().manual_seed(task.seed)
        main = {"forget": split.forget, "retain": split.retain,
                "all": torch.cat([split.forget, split.retain])}[self.drive]
        other = split.retain if self.drive == "forget" else split.forget
        cycler = Cycler(other, g) if self.pair and self.drive != "all" else None
        in_forget = torch.zeros(len(data.y_train), dtype=torch.bool, device=main.device)
        in_forget[split.forget] = True
        opt = r.optimizer_for(model.parameters())
        sched = r.scheduler_for(opt, r.epochs * math.ceil(len(main) / r.batch_size))

        def fetch(idx):
            if len(idx) == 0:
                return None
            return data.prepare(data.x_train[idx], train=True, generator=g), self.targets(task, idx)

        self.setup(model, task, g)
        model.train()
        for epoch in tqdm(range(r.epochs), desc=type(self).__name__, disable=None, leave=False):
            self.start_epoch(epoch, task, g)
            for b in batches(main, r.batch_size, g):
                if self.drive == "all":
                    forget, retain = fetch(b[in_forget[b]]), fetch(b[~in_forget[b]])
                else:
                    here, mate = fetch(b), fetch(cycler.take(len(b))) if cycler is not None else None
                    forget, retain = (here, mate) if self.drive == "forget" else (mate, here)
                loss = self.loss(model, forget, retain)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                self.before_step(model)
                opt.step()
                self.after_step(model)
                if sched is not None:
                    sched.step()
        return model.eval()

    def targets(self, task: Task, idx: Tensor) -> Tensor:
        """Labels of training samples `idx` as the loss sees them (relabelling methods override)."""
        return task.data.y_train[idx]

    def setup(self, model: nn.Module, task: Task, generator: torch.Generator) -> None:
        """Hook before the first step (masks, relabelling)."""

    def start_epoch(self, epoch: int, task: Task, generator: torch.Generator) -> None:
        """Hook at the start of every epoch (per-epoch relabelling, decaying penalties)."""

    def before_step(self, model: nn.Module) -> None:
        """Hook between backward and the optimiser step (gradient masks)."""

    def after_step(self, model: nn.Module) -> None:
        """Hook right after the optimiser step (restoring frozen weights)."""
