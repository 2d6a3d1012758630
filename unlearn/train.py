"""The optimisation recipe, the tensor-indexed batching, and the step mechanics (precision, memory format,
compilation, resumable checkpoints) shared by training and every method."""
from __future__ import annotations

import json
import logging
import math
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import torch
from torch import Tensor, nn

from unlearn.checks import finite, integer, require
from unlearn.progress import Progress
from unlearn.steps import PLAIN, Compute, Lookahead, accumulated_step

log_ = logging.getLogger("unlearn")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "cosine", "onecycle")
KILL_AFTER_EPOCH = "UNLEARN_TEST_KILL_AFTER_EPOCH"  # drills: SIGKILL this process after that training epoch


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
    clean_epochs: int = 0  # last epochs of `fit` without augmentation (memorise D_tr); 0 = augment throughout
    accumulate: int = 1  # micro-batches per optimiser step (`accumulated_step`); 1 = the whole batch at once
    nesterov: bool = False  # Nesterov momentum (SGD only)
    label_smoothing: float = 0.0  # smoothing of `fit`'s cross-entropy in its augmented epochs (clean ones use 0)
    lookahead: bool = False  # `fit` pulls the weights towards their running average every 5 steps (`Lookahead`)
    bias_lr_scale: float = 1.0  # 1-D parameters (biases, norm shifts) step at lr x this, weight decay / this

    def __post_init__(self):
        checks = [
            ("epochs", integer(self.epochs, 1), "an integer >= 1"),
            ("lr", finite(self.lr) and self.lr > 0, "a finite number > 0"),
            ("batch_size", integer(self.batch_size, 1), "an integer >= 1"),
            ("optimizer", self.optimizer in OPTIMIZERS, f"one of {OPTIMIZERS}"),
            ("momentum", finite(self.momentum) and 0 <= self.momentum < 1, "a number in [0, 1)"),
            ("weight_decay", finite(self.weight_decay) and self.weight_decay >= 0, "a finite number >= 0"),
            ("scheduler", self.scheduler in SCHEDULERS, f"one of {SCHEDULERS}"),
            ("clean_epochs", integer(self.clean_epochs, 0) and integer(self.epochs, 1)  # epochs checked first
             and self.clean_epochs <= self.epochs,
             "an integer in [0, epochs]"),
            ("nesterov", isinstance(self.nesterov, bool) and not (self.nesterov and (self.optimizer != "sgd"
                                                                               or not self.momentum > 0)),
             "true only with optimizer=sgd and momentum > 0; else false"),
            ("lookahead", isinstance(self.lookahead, bool), "true or false"),
            ("bias_lr_scale", finite(self.bias_lr_scale) and self.bias_lr_scale > 0, "a finite number > 0"),
            ("label_smoothing", finite(self.label_smoothing) and 0 <= self.label_smoothing < 1, "a number in [0, 1)"),
            ("accumulate", integer(self.accumulate, 1) and integer(self.batch_size, 1)
             and self.batch_size % self.accumulate == 0,
             f"an integer >= 1 dividing batch_size={self.batch_size} (micro-batches per optimiser step)"),
        ]
        require(checks, vars(self))

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("clean_epochs", "accumulate", "nesterov", "label_smoothing", "lookahead", "bias_lr_scale"):
            if out[key] == getattr(Recipe, key):
                del out[key]  # keys added later: at their defaults, recipes keep the cache keys they always had
        return out

    def optimizer_for(self, params) -> torch.optim.Optimizer:
        params = [p for p in params if p.requires_grad]
        if self.bias_lr_scale != 1:  # (the same decay per step: lr x weight_decay is unchanged)
            params = [{"params": [p for p in params if p.ndim > 1]},
                      {"params": [p for p in params if p.ndim <= 1], "lr": self.lr * self.bias_lr_scale,
                       "weight_decay": self.weight_decay / self.bias_lr_scale}]
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                                   nesterov=self.nesterov)
        cls = torch.optim.Adam if self.optimizer == "adam" else torch.optim.AdamW
        return cls(params, lr=self.lr, weight_decay=self.weight_decay)

    def scheduler_for(self, opt: torch.optim.Optimizer, steps: int):
        if self.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
        if self.scheduler == "onecycle":  # the fast-training recipes' triangle: lr/5 up to lr at 23% of the steps,
            # then linearly down to ~0 (lr/5e4); momentum stays fixed
            return torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=max(2, steps), pct_start=0.23,
                anneal_strategy="linear", cycle_momentum=False, div_factor=5.0, final_div_factor=1e4)
        return None


def batches(idx: Tensor, batch_size: int, generator: torch.Generator, shuffle: bool = True, fold_single: bool = False):
    """Yield index batches of `idx` (a shuffled pass; the last batch may be short). fold_single: a last batch of one
    sample joins the one before (batch norm cannot train on a single sample: a D_f of 161 at batch 32 crashed)."""
    if shuffle:
        idx = idx[torch.randperm(len(idx), generator=generator).to(idx.device)]
    n = n_batches(len(idx), batch_size, fold_single)
    for k in range(n):
        yield idx[k * batch_size:(k + 1) * batch_size if k < n - 1 else len(idx)]


def n_batches(n: int, batch_size: int, fold_single: bool = False) -> int:
    """How many batches `batches` yields for `n` samples."""
    k = math.ceil(n / batch_size)
    return k - 1 if fold_single and k > 1 and n % batch_size == 1 else k


class Cycler:
    """Endless shuffled draws from `idx`: pairs each batch of one split with a batch of the other."""

    def __init__(self, idx: Tensor, generator: torch.Generator):
        if len(idx) == 0:
            raise ValueError("Cycler: cannot draw batches from an empty index (an empty D_f or D_r)")
        self.idx, self.g, self.pos = idx, generator, len(idx)

    def peek(self, n: int) -> Tensor | None:
        """What the next `take(n)` returns when it needs no new shuffle, else None: peeking draws nothing, so a loop
        may prefetch the mate batch without changing the order of the generator's draws."""
        if self.pos + n > len(self.idx) or not hasattr(self, "perm"):
            return None
        return self.perm[self.pos:self.pos + n]

    def take(self, n: int) -> Tensor:
        out = []
        while n > 0:
            if self.pos >= len(self.idx):
                self.perm, self.pos = self.idx[torch.randperm(len(self.idx), generator=self.g).to(self.idx.device)], 0
            chunk = self.perm[self.pos:self.pos + n]
            self.pos += len(chunk); n -= len(chunk)
            out.append(chunk)
        return torch.cat(out)


def prefetched(index_batches: Iterable[Tensor], store) -> Iterator[Tensor]:
    """The index batches of one pass; when `store` decodes lazily (LazyImages), the next batch decodes in the
    background while the current one computes. Batches and random draws are unchanged: the look-ahead stays
    within one `batches()` pass, whose only draw is its shuffle at the start."""
    if not hasattr(store, "prefetch"):
        yield from index_batches
        return
    it = iter(index_batches)
    cur = next(it, None)
    if cur is not None:
        store[cur].prefetch()
    while cur is not None:
        nxt = next(it, None)
        if nxt is not None:
            store[nxt].prefetch()
        yield cur
        cur = nxt


class Checkpoints:
    """Resume state of one training run at `path`, written atomically every `every` epochs (0 = never) and
    used only by a run with the same `key`, so a preempted or killed job continues where it stopped. `every` is
    `checkpoint_every`, checked with the config (validate.check_config)."""

    def __init__(self, path: str | Path, key: dict, every: int):
        self.path, self.key, self.every = Path(path), json.dumps(key, sort_keys=True, default=str), every

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - an unreadable resume file only costs the epochs it held
            log_.warning("resume file %s cannot be read (%s); training from the start", self.path, e)
            return None
        if not isinstance(state, dict) or state.get("key") != self.key:
            log_.warning("resume file %s belongs to another run; training from the start", self.path)
            return None
        return state

    def due(self, epoch: int, epochs: int) -> bool:
        return self.every > 0 and epoch % self.every == 0 and epoch < epochs

    def save(self, state: dict) -> None:
        from unlearn.cache import atomic_save
        atomic_save({**state, "key": self.key}, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def _kill_drill(epoch: int) -> None:
    """A deterministic stand-in for a preemption (tests, drills): SIGKILL after epoch $UNLEARN_TEST_KILL_AFTER_EPOCH."""
    if os.environ.get(KILL_AFTER_EPOCH) == str(epoch):
        os.kill(os.getpid(), signal.SIGKILL)


def fit(model: nn.Module, data, idx: Tensor, recipe: Recipe, seed: int, desc: str = "train",
        log=None, compute: Compute = PLAIN, checkpoints: Checkpoints | None = None,
        lr_key: str = "train.lr") -> nn.Module:
    """Train `model` with cross-entropy on training samples `idx` of `data` (original model, Retrain).

    `log(metrics, step)`, when given, receives `<desc>/loss` and `<desc>/acc` (running means over the epoch's
    augmented batches, in train mode) after every epoch. With `checkpoints`, the run resumes from the last
    saved epoch (weights, optimiser, schedule, random states, curve) and ends with the weights of an
    uninterrupted run. A non-finite loss stops training with `progress.Diverged` naming `lr_key`.
    """
    if len(idx) == 0:
        raise ValueError(f"{desc}: no training samples")
    g = torch.Generator().manual_seed(seed)
    opt = recipe.optimizer_for(model.parameters())
    steps = recipe.epochs * math.ceil(len(idx) / recipe.batch_size)
    sched = recipe.scheduler_for(opt, steps)
    stepper = compute.stepper(model, opt)
    average = Lookahead(model, steps) if recipe.lookahead else None
    model.train()
    step, first, history = 0, 0, []
    if checkpoints is not None and (state := checkpoints.load()) is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None:
            sched.load_state_dict(state["scheduler"])
        stepper.load_state_dict(state["scaler"])
        if average is not None:
            average.load_state_dict(state["lookahead"])
        g.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        first, step, history = state["epoch"], state["step"], state["history"]
        log_.info("%s: resuming from epoch %d of %d (%s)", desc, first, recipe.epochs, checkpoints.path.name)
        for point, at in history:  # the curve of the epochs before the interruption
            if log is not None:
                log(point, at)
    if first == 0 and hasattr(model, "init_from_data"):  # data-dependent init (FastCNN's whitening filters)
        with torch.no_grad():
            model.init_from_data(data.prepare(data.x_train[idx[::max(1, len(idx) // 5000)][:5000]], train=False))
    progress = Progress(desc, recipe.epochs, first=first, steps_per_epoch=math.ceil(len(idx) / recipe.batch_size),
                        opt=opt, lr_key=f"{lr_key}={recipe.lr:g}")
    with progress:
        for epoch in progress.epochs():
            loss_sum = torch.zeros((), device=idx.device)
            correct = torch.zeros((), device=idx.device)
            for b in prefetched(batches(idx, recipe.batch_size, g), data.x_train):
                augmented = epoch < recipe.epochs - recipe.clean_epochs
                x, y = data.prepare(data.x_train[b], train=augmented, generator=g), data.y_train[b]

                def loss_of(rows: slice) -> Tensor:
                    nonlocal correct
                    logits = model(x[rows])
                    correct = correct + (logits.detach().argmax(1) == y[rows]).sum()  # on the device: no sync
                    return nn.functional.cross_entropy(logits, y[rows],
                                                       label_smoothing=recipe.label_smoothing if augmented else 0.0)
                loss = accumulated_step(stepper, len(b), recipe.accumulate, loss_of, progress.check)
                if sched is not None:
                    sched.step()
                step += 1
                if average is not None:
                    average.step(step)
                loss_sum += loss * len(b)  # on the device: no host sync per step
            point = {f"{desc}/loss": loss_sum.item() / len(idx), f"{desc}/acc": 100.0 * correct.item() / len(idx),
                     f"{desc}/epoch": epoch + 1}
            history.append((point, step))
            progress.done(loss=point[f"{desc}/loss"], acc=point[f"{desc}/acc"])
            if log is not None:
                log(point, step)
            if checkpoints is not None and checkpoints.due(epoch + 1, recipe.epochs):
                checkpoints.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                                  "scheduler": sched.state_dict() if sched is not None else {},
                                  "scaler": stepper.state_dict(), "generator": g.get_state(),
                                  **({"lookahead": average.state_dict()} if average is not None else {}),
                                  "torch_rng": torch.get_rng_state(), "epoch": epoch + 1, "step": step,
                                  "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                                  "history": history})
            _kill_drill(epoch + 1)
    return model.eval()
