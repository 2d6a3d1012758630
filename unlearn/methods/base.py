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
    """Gradient methods that differ only in their loss.

    `drive` names the split whose full pass makes an epoch ("forget" or "retain"); with `pair`,
    every batch of it comes with an equal-size batch cycled from the other split.
    """

    drive = "forget"
    pair = False

    def loss(self, model: nn.Module, forget: tuple[Tensor, Tensor] | None,
             retain: tuple[Tensor, Tensor] | None) -> Tensor:
        raise NotImplementedError

    def unlearn(self, model, task):
        data, split, r = task.data, task.split, self.recipe
        g = torch.Generator().manual_seed(task.seed)
        main, other = (split.forget, split.retain) if self.drive == "forget" else (split.retain, split.forget)
        cycler = Cycler(other, g) if self.pair else None
        opt = r.optimizer_for(model.parameters())
        sched = r.scheduler_for(opt, r.epochs * math.ceil(len(main) / r.batch_size))

        def fetch(idx):
            return data.prepare(data.x_train[idx], train=True, generator=g), data.y_train[idx]

        model.train()
        for _ in tqdm(range(r.epochs), desc=type(self).__name__, disable=None, leave=False):
            for b in batches(main, r.batch_size, g):
                mate = fetch(cycler.take(len(b))) if cycler is not None else None
                here = fetch(b)
                forget, retain = (here, mate) if self.drive == "forget" else (mate, here)
                loss = self.loss(model, forget, retain)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                self.before_step(model)
                opt.step()
                if sched is not None:
                    sched.step()
        return model.eval()

    def before_step(self, model: nn.Module) -> None:
        """Hook between backward and the optimiser step (gradient masks, penalties)."""
