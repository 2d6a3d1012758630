"""The one interface every unlearning method implements, and the shared loop of loss-based methods."""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

from unlearn.data import Data
from unlearn.paradigms import Split
from unlearn.progress import Diverged, Progress, nonfinite
from unlearn.steps import PLAIN, Compute, accumulated_step
from unlearn.train import Cycler, Recipe, batches, n_batches, prefetched


@dataclass
class Task:
    """Everything a method may use: data (on the device, labels as trained), the split, and context.

    `retrain` hands over the cached reference Retrain model and its info (`train_seconds`), and
    `train_recipe` is the recipe it was trained with, so a Retrain with that recipe need not train again.
    `log(metrics, step)` records a method's training curves (W&B history and the per-run curves file);
    `probe(model)`, when set, returns extra per-epoch metrics of the model being unlearned (e.g. UA and RA
    with `eval.every_epoch`); the loop calls it in eval mode and restores train mode.
    """

    data: Data
    split: Split
    device: torch.device
    seed: int
    build_model: Callable[[], nn.Module] | None = None  # a freshly initialised model of the original architecture
    retrain: Callable[[], tuple[nn.Module, dict]] | None = None
    train_recipe: Recipe | None = None
    log: Callable[[dict, int], None] = lambda metrics, step: None
    probe: Callable[[nn.Module], dict] | None = None
    compute: Compute = PLAIN  # precision, memory format, compilation of the steps (config keys precision, ...)


def probe(task: Task, model: nn.Module, prefix: str = "unlearn/") -> dict:
    """`task.probe(model)` in eval mode (train mode restored), keys prefixed; {} when the task has no probe."""
    if task.probe is None:
        return {}
    was_training = model.training
    model.eval()
    try:
        return {f"{prefix}{k}": v for k, v in task.probe(model).items()}
    finally:
        model.train(was_training)


class Method:
    """Base class: `method(model, task)` returns the unlearned model and never touches `model` itself.

    Subclasses take their hyperparameters as required keyword arguments (their defaults live in
    `conf/method/<name>.yaml` only, so a typo or a missing value fails at once) and implement
    `unlearn(model, task)` on a private copy.
    """

    recipe: Recipe | None = None  # the optimiser recipe of gradient methods; None for one-shot updates

    def __call__(self, model: nn.Module, task: Task) -> nn.Module:
        torch.manual_seed(task.seed)
        out = self.unlearn(copy.deepcopy(model).to(task.device), task)
        if bad := nonfinite(out.state_dict()):  # one-shot updates have no loss to watch
            raise Diverged(f"{type(self).__name__}: the unlearned model has non-finite weights ({', '.join(bad[:3])}"
                           f"{', ...' if len(bad) > 3 else ''}): the update diverged; lower its step size")
        return out

    def unlearn(self, model: nn.Module, task: Task) -> nn.Module:
        raise NotImplementedError

    def check(self, task: Task) -> None:
        """Raise ValueError if the method cannot run on this data and split: what it needs from the data (classes,
        continuous inputs, a linear head). Called by the `task` phase of unlearn.validate, before any training."""

    def runtime(self, seconds: float, task: Task) -> float:
        """The RTE to report for a call that took `seconds` (Retrain reports its reference's training time)."""
        return seconds

    def workload(self, task: Task) -> tuple[int, int] | None:
        """(images per epoch, epochs) of the training steps `unlearn` takes, for the cost estimate before the run;
        None for a one-shot update."""
        return None


class RecipeMethod(Method):
    """A method optimised with an SGD-style recipe: `epochs`, `lr`, `batch_size`, ... (conf/optim/sgd.yaml).
    `accumulate` runs each batch as that many micro-batches (`unlearn.steps.accumulated_step`)."""

    def __init__(self, *, epochs: int, lr: float, batch_size: int, optimizer: str, momentum: float,
                 weight_decay: float, scheduler: str, accumulate: int):
        self.recipe = Recipe(epochs=epochs, lr=lr, batch_size=batch_size, optimizer=optimizer, momentum=momentum,
                             weight_decay=weight_decay, scheduler=scheduler, accumulate=accumulate)

    def workload(self, task: Task) -> tuple[int, int] | None:
        """A pass over D_f and D_r per epoch (methods that drive one split override it)."""
        return len(task.split.forget) + len(task.split.retain), self.recipe.epochs


def _rows(part: tuple[Tensor, Tensor] | None, rows: slice) -> tuple[Tensor, Tensor] | None:
    if part is None or rows.stop <= rows.start:
        return None
    return part[0][rows], part[1][rows]


def micro_loss(method: "LossMethod", run: "Run", forget, retain, is_forget: Tensor | None) -> Callable:
    """`loss_of(rows)` of a batch for `accumulated_step`: the method's loss on rows `rows` of the batch. A paired
    batch (forget and retain of equal length) is cut alike; a mixed one (`is_forget`, the batch's forget mask in
    its order) is cut in its order, each micro-batch taking the forget and retain rows that fall in it."""
    if is_forget is None:
        return lambda rows: method.loss(run, _rows(forget, rows), _rows(retain, rows))
    before = torch.cat([is_forget.new_zeros(1, dtype=torch.long), is_forget.long().cumsum(0)]).tolist()

    def loss_of(rows: slice) -> Tensor:
        nf = slice(before[rows.start], before[rows.stop])  # forget rows among batch rows [start, stop)
        nr = slice(rows.start - nf.start, rows.stop - nf.stop)
        return method.loss(run, _rows(forget, nf), _rows(retain, nr))
    return loss_of


@dataclass
class Run:
    """State of one call of the shared loop; hooks read and write it (never the method object)."""

    model: nn.Module
    task: Task
    generator: torch.Generator
    epoch: int = 0
    step: int = 0
    state: dict = field(default_factory=dict)  # per-run values of hooks: relabelled targets, masks, penalties
    sums: dict = field(default_factory=dict)  # running sums of logged scalars within the epoch

    def record(self, **scalars: float | Tensor) -> None:
        """Accumulate scalars (e.g. the forget and retain parts of a loss) for the epoch's mean."""
        for k, v in scalars.items():
            total, n = self.sums.get(k, (0.0, 0))
            # a tensor stays on its device (summed in float64): no host sync per step, read once per epoch
            self.sums[k] = (total + (v.detach().double() if isinstance(v, Tensor) else float(v)), n + 1)


class LossMethod(RecipeMethod):
    """Gradient methods that differ only in their loss (and, optionally, a few hooks).

    `drive` names what one epoch passes over: "forget" (D_f), "retain" (D_r), "all" (D_f and D_r
    shuffled together; each batch is handed to `loss` split into its forget and retain parts) or
    "forget_then_retain" (a shuffled pass over D_f, then one over D_r, as the public RL code). With
    `pair`, every batch of the driving split comes with an equal-size batch cycled from the other one.
    Hooks receive the per-call `Run`, so a method object holds only its hyperparameters. With `accumulate`
    > 1, `loss` is called once per micro-batch (the paired batch cut alike, a mixed batch cut in its order),
    `before_step` and `after_step` once per step: the same step as the whole batch's for a mean loss.
    """

    drive = "forget"
    pair = False

    def loss(self, run: Run, forget: tuple[Tensor, Tensor] | None,
             retain: tuple[Tensor, Tensor] | None) -> Tensor:
        raise NotImplementedError

    def unlearn(self, model, task):
        data, split, r = task.data, task.split, self.recipe
        drives = ("forget", "retain", "all", "forget_then_retain")
        if self.drive not in drives:
            raise ValueError(f"{type(self).__name__}.drive={self.drive!r}; allowed: {drives}")
        g = torch.Generator().manual_seed(task.seed)
        both = self.drive in ("all", "forget_then_retain")
        main = {"forget": split.forget, "retain": split.retain}.get(self.drive, torch.cat([split.forget, split.retain]))
        other = split.retain if self.drive == "forget" else split.forget
        cycler = Cycler(other, g) if self.pair and not both else None
        in_forget = torch.zeros(len(data.y_train), dtype=torch.bool, device=main.device)
        in_forget[split.forget] = True
        opt = r.optimizer_for(model.parameters())
        per_epoch = (n_batches(len(split.forget), r.batch_size, True) + n_batches(len(split.retain), r.batch_size, True)
                     if self.drive == "forget_then_retain" else n_batches(len(main), r.batch_size, True))
        sched = r.scheduler_for(opt, r.epochs * per_epoch)
        run = Run(model, task, g)
        stepper = task.compute.stepper(model, opt)

        def fetch(idx):
            if len(idx) == 0:
                return None
            return data.prepare(data.x_train[idx], train=True, generator=g), self.targets(run, idx)

        self.setup(run)
        model.train()
        progress = Progress(f"unlearn {type(self).__name__}", r.epochs, steps_per_epoch=per_epoch, opt=opt,
                            lr_key=f"method.lr={r.lr:g}")
        with progress:
            for epoch in progress.epochs():
                run.epoch, run.sums = epoch, {}
                self.start_epoch(run)
                lr = opt.param_groups[0]["lr"]
                epoch_batches = (prefetched(batches(main, r.batch_size, g, fold_single=True), data.x_train)
                                 if self.drive != "forget_then_retain" else
                                 itertools.chain(*(prefetched(batches(part, r.batch_size, g, fold_single=True),
                                                              data.x_train) for part in (split.forget, split.retain))))
                for b in epoch_batches:
                    if both:
                        is_f = in_forget[b]
                        forget, retain = fetch(b[is_f]), fetch(b[~is_f])
                    else:
                        if cycler is not None and hasattr(data.x_train, "prefetch"):  # lazily decoded images: the
                            ahead = cycler.peek(len(b))  # mate batch decodes beside this one (draws nothing)
                            if ahead is not None:
                                data.x_train[ahead].prefetch()
                        here, mate = fetch(b), fetch(cycler.take(len(b))) if cycler is not None else None
                        forget, retain = (here, mate) if self.drive == "forget" else (mate, here)
                    if r.accumulate == 1:
                        loss_of = lambda rows: self.loss(run, forget, retain)  # noqa: E731
                    else:
                        loss_of = micro_loss(self, run, forget, retain, is_f if both else None)
                    # zero_grad, backward (per micro-batch), check, before_step, opt.step
                    loss = accumulated_step(stepper, len(b), r.accumulate, loss_of, progress.check,
                                            lambda: self.before_step(run))
                    run.record(loss=loss)
                    self.after_step(run)
                    if sched is not None:
                        sched.step()
                    run.step += 1
                logged = {f"unlearn/{k}": float(total) / n for k, (total, n) in run.sums.items()}
                logged |= {"unlearn/lr": lr, "unlearn/epoch": epoch + 1} | probe(task, model)
                progress.done(**{k.removeprefix("unlearn/"): v for k, v in logged.items()
                                 if k not in ("unlearn/epoch", "unlearn/lr")})
                task.log(logged, run.step)
        return model.eval()

    def workload(self, task: Task) -> tuple[int, int] | None:
        """Images per epoch of the driving split(s), doubled when each batch is paired with one of the other."""
        n = {"forget": len(task.split.forget), "retain": len(task.split.retain)}.get(
            self.drive, len(task.split.forget) + len(task.split.retain))
        return n * (2 if self.pair and self.drive in ("forget", "retain") else 1), self.recipe.epochs

    def targets(self, run: Run, idx: Tensor) -> Tensor:
        """Labels of training samples `idx` as the loss sees them (relabelling methods override)."""
        return run.task.data.y_train[idx]

    def setup(self, run: Run) -> None:
        """Hook before the first step (masks, relabelling)."""

    def start_epoch(self, run: Run) -> None:
        """Hook at the start of every epoch (per-epoch relabelling, decaying penalties)."""

    def before_step(self, run: Run) -> None:
        """Hook between backward and the optimiser step (gradient masks)."""

    def after_step(self, run: Run) -> None:
        """Hook right after the optimiser step (restoring frozen weights)."""
