"""A time budget for one run (`budget.minutes`): before any training, the cost estimate's timed probe says whether
the configured model and recipe fit; when they do not, the run names one recipe that does, priced from measured
throughput, and `budget.apply=true` runs it instead (the run's config changes, so its row and config_id say
what ran). The budget itself changes no number and is no part of a result's identity.

The recipe searched for, in this order (each step keeps what the one before could not):
  1. fewer `train.epochs` (the original model's and Retrain's), down to EPOCH_FLOOR of the configured ones;
  2. a narrower model (`model.width`, or `hidden` / `dim`), halving down to MIN_WIDTH, each width timed by the
     same probe, with the most epochs that fit;
  3. fewer training images per class (`dataset.per_class_train`, where the data set has it), down to MIN_PER_CLASS;
  4. fewer epochs than EPOCH_FLOOR, down to one.
The method's own values (its epochs, learning rate) are never changed: they are what is being measured.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
from typing import Callable

import torch
from omegaconf import DictConfig, OmegaConf

from unlearn.estimate import Estimate, idle, measure, plan
from unlearn.groups import build
from unlearn.tuned import apply_tuned
from unlearn.checks import ConfigError

log = logging.getLogger("unlearn")
EPOCH_FLOOR = 0.5  # share of the configured train.epochs that step 1 keeps at least
MIN_WIDTH = 8  # narrowest model step 2 offers (ResNet-18 at width 8 is the project's CPU-scale network)
MIN_PER_CLASS = 10  # fewest training images per class step 3 offers
WIDTH_KEYS = ("width", "hidden", "dim")  # a model's narrowness knob, the first one its config has

Cost = Callable[[int, "int | None", float], float]  # (train.epochs, width, share of D_tr) -> seconds


def check_keys(cfg: DictConfig) -> None:
    """Refuse a bad `budget.minutes` or `budget.apply` in one line, before any work."""
    b = cfg.get("budget")
    if b is None:
        return
    m = b.minutes
    if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 < m < math.inf):
        raise ConfigError(f"budget.minutes={m!r} is invalid; allowed: a number of minutes > 0, or null (no budget)")
    if not isinstance(b.apply, bool):
        raise ConfigError(f"budget.apply={b.apply!r} is invalid; allowed: true or false")
    if m is not None and cfg.progress.probe_batches == 0:
        raise ConfigError(f"budget.minutes={m!r} needs the timed probe, which progress.probe_batches=0 turns off; "
                          f"allowed: progress.probe_batches >= 1, or budget.minutes=null")


def search(cost: Cost, budget_s: float, epochs: int, widths: list, shares: list[tuple[int, float]]
           ) -> tuple[dict, float, bool]:
    """The first recipe of the module's order whose `cost` is within `budget_s`: ({"epochs", "width",
    "per_class"} that change, its seconds, True); when none is, the smallest tried and False. `widths` start with
    the configured one (None: no knob); `shares` are (images per class, share of D_tr), largest first."""
    floor = max(1, math.ceil(epochs * EPOCH_FLOOR))

    def most_epochs(width, share, low):  # cost is affine in the epochs: a + b * epochs
        a, b = cost(0, width, share), cost(1, width, share) - cost(0, width, share)
        n = epochs if b <= 0 else min(epochs, math.floor((budget_s - a) / b))
        return n if n >= low and cost(n, width, share) <= budget_s else None

    def recipe(n, width, k):
        out = {"epochs": n, "width": width, "per_class": k}
        base = {"epochs": epochs, "width": widths[0], "per_class": None}
        return {key: v for key, v in out.items() if v != base[key]}

    for width in widths:  # steps 1 and 2
        if (n := most_epochs(width, 1.0, floor)) is not None:
            return recipe(n, width, None), cost(n, width, 1.0), True
    small = widths[-1]
    for k, share in shares:  # step 3: the most images per class that fit at the floor
        if cost(floor, small, share) <= budget_s:
            return recipe(floor, small, k), cost(floor, small, share), True
    k, share = shares[-1] if shares else (None, 1.0)
    if (n := most_epochs(small, share, 1)) is not None:  # step 4
        return recipe(n, small, k), cost(n, small, share), True
    return recipe(1, small, k), cost(1, small, share), False


@dataclasses.dataclass
class Fit:
    """The budget's verdict on a workspace's run: its estimate, and the recipe that fits (`changes`: config key ->
    value; empty when the configured one fits)."""
    minutes: float
    seconds: float  # the configured run, estimated
    changes: dict
    predicted: float  # seconds of the recipe in `changes`, from the probe
    fits: bool  # False: nothing tried fits; `changes` is the smallest recipe tried
    applied: bool
    estimate: Estimate | None  # the configured run's probe (None: nothing to train)
    again: bool = False  # the recipe budget.apply chose, priced by a second probe (it is changed once, never twice)

    @property
    def warn(self) -> bool:
        return bool(self.changes) or self.seconds > self.minutes * 60

    def overrides(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.changes.items()]

    def line(self) -> str:
        head = f"budget.minutes={self.minutes:g}: the run is estimated at {_minutes(self.seconds)}"
        if not self.changes and self.again and self.warn:
            return (f"budget.minutes={self.minutes:g}: the recipe budget.apply chose is estimated at "
                    f"{_minutes(self.seconds)} by a second probe (probes of a loaded machine differ); it is run as "
                    f"chosen, budget.apply changes a recipe once")
        if not self.changes:
            return f"{head}, within the budget"
        what = " ".join(self.overrides())
        if not self.fits:
            return (f"{head}; nothing tried fits: the smallest recipe tried ({what}) is estimated at "
                    f"{_minutes(self.predicted)} (from the timed probe)")
        verb = "applied (budget.apply=true)" if self.applied else "apply it with budget.apply=true or add it to the command"
        return (f"{head}; a recipe that fits: {what} (estimated {_minutes(self.predicted)} from the timed "
                f"probe's measured throughput); {verb}")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.3g} min"


def _width_key(cfg: DictConfig) -> str | None:
    return next((k for k in WIDTH_KEYS if isinstance(cfg.model.get(k), int) and cfg.model[k] > 0), None)


def _shares(ws) -> list[tuple[int, float]]:
    """(images per class, share of today's D_tr kept) for step 3, largest first; [] without the knob."""
    if "per_class_train" not in ws.cfg.dataset or ws.paradigm.labels == "coarse":  # coarse labels: not the classes
        return []                                                                   # per_class_train counts
    counts = torch.bincount(ws.data.y_train.cpu()).float()
    counts = counts[counts > 0]
    held = ws.cfg.eval.validation_fraction if ws.cfg.eval.split == "validation" else 0.0  # held out after the cap
    top, out = round(float(counts.max()) / (1 - held)), []
    k = top
    while (k := k * 3 // 4) >= MIN_PER_CLASS:  # a quarter fewer per step: a handful of candidates
        out.append((k, float(counts.clamp(max=k * (1 - held)).sum() / counts.sum())))
    return out


def check(ws, apply: bool) -> Fit | None:
    """The budget's verdict on the workspace's run (None without budget.minutes); with `apply` and budget.apply,
    the recipe that fits is written into ws.cfg (the caller sets up again from it)."""
    cfg = ws.cfg
    if cfg.get("budget") is None or cfg.budget.minutes is None:
        return None
    again, apply = not apply and cfg.budget.apply, apply and cfg.budget.apply  # again: after it was applied
    budget_s = cfg.budget.minutes * 60
    phases = plan(ws)
    if idle(phases):
        return Fit(cfg.budget.minutes, 0.0, {}, 0.0, True, False, None)
    estimate = measure(ws, phases, longer=True)
    seconds = estimate.seconds(phases)
    if seconds <= budget_s or again:
        return Fit(cfg.budget.minutes, seconds, {}, seconds, True, False, estimate, again)
    key = _width_key(cfg) if ws.refs.external is None else None  # an original from outside has its own width
    widths = [cfg.model[key]] if key else [None]
    while key and widths[-1] // 2 >= MIN_WIDTH:
        widths.append(widths[-1] // 2)
    timed = {widths[0]: estimate}

    def cost(epochs, width, share):
        if width not in timed:  # each width once, by the same probe
            timed[width] = measure(ws, phases, _model(ws, key, width), longer=True)
        return timed[width].seconds(plan(ws, epochs=epochs, share=share, fresh=True))

    try:
        found, predicted, fits = search(cost, budget_s, ws.refs.recipe.epochs, widths, _shares(ws))
    except ValueError:  # a model that cannot be built at that width (e.g. a ViT whose width is not a multiple of
        widths = widths[:len(timed)]  # its heads): the widths that could be are the search's
        found, predicted, fits = search(cost, budget_s, ws.refs.recipe.epochs, widths, _shares(ws))
    names = {"epochs": "train.epochs", "width": f"model.{key}", "per_class": "dataset.per_class_train"}
    fit = Fit(cfg.budget.minutes, seconds, {names[k]: v for k, v in found.items()}, predicted, fits,
              apply and fits, estimate)
    if apply and not fits:
        raise ConfigError(f"{fit.line()}; allowed: a larger budget.minutes, or budget.apply=false to run as configured")
    if fit.applied:
        log.info(fit.line())
        for k, v in fit.changes.items():
            OmegaConf.update(cfg, k, v, force_add=False)
        _retune(cfg)
    return fit


def _model(ws, key: str, width: int) -> torch.nn.Module:
    cfg = copy.deepcopy(ws.cfg)
    cfg.model[key] = width
    with torch.random.fork_rng():  # the run's random state is untouched by the probe's model
        return build(cfg.model, num_classes=ws.data.num_classes, input_shape=list(ws.data.input_shape))


def _retune(cfg: DictConfig) -> None:
    """Values `unlearn tune` chose for the recipe that fits (its own setting), as for any run of it."""
    from hydra.core.hydra_config import HydraConfig
    apply_tuned(cfg, list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else [])
