"""The cost estimate a run logs before training: the phases it will train and evaluate (images x epochs, cached
references cost nothing), timed on a throwaway model for a few steps, and a warning when the total is longer than
progress.warn_hours. `unlearn.budget` reuses the same probe to fit a run into a time budget."""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Callable

import torch

log = logging.getLogger("unlearn")
PROBE_MIN_SECONDS, PROBE_MAX_STEPS = 0.5, 50  # a long run's probe times at least this long (or this many steps)
REFINE_ABOVE = 600.0  # seconds: a run estimated longer gets the longer probe; a short one (tests) keeps 2 steps


@dataclasses.dataclass
class Phase:
    """One line of the cost block: `images` per epoch, `epochs`, and whether it is cached (costs nothing)."""
    name: str
    images: int
    epochs: int
    cached: bool = False
    inference: bool = False  # forward passes only (evaluation)
    note: str = ""


def speed(model: torch.nn.Module, data, idx: torch.Tensor, recipe, compute, batches: int, eval_batch: int,
          refine: Callable[[float], bool] = lambda seconds_per_image: True) -> tuple[float, float, int]:
    """Seconds per image of a training step and of an inference pass, and the steps timed: on a throwaway
    `model`, `batches` batches of `idx` after one warm-up step, then more (up to PROBE_MAX_STEPS, until
    PROBE_MIN_SECONDS have passed) while `refine(seconds per image so far)` says the estimate is worth it.
    Global random states are restored, so results do not change."""
    device = idx.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        model.train()
        opt = recipe.optimizer_for(model.parameters())
        stepper = dataclasses.replace(compute, compile=False).stepper(model, opt)
        g = torch.Generator().manual_seed(0)
        bs = max(1, min(recipe.batch_size, len(idx)))

        def step():
            b = idx[torch.randint(len(idx), (bs,), generator=g).to(device)]
            x, y = data.prepare(data.x_train[b], train=True, generator=g), data.y_train[b]
            with stepper.autocast():
                loss = torch.nn.functional.cross_entropy(model(x), y)
            stepper(loss)

        step()
        sync()
        start, n = time.perf_counter(), 0
        while n < batches or (n < PROBE_MAX_STEPS and time.perf_counter() - start < PROBE_MIN_SECONDS
                              and refine((time.perf_counter() - start) / (n * bs))):
            step()  # a long run of a tiny model: more steps, or timer noise and start-up costs dominate
            n += 1
            sync()
        train = (time.perf_counter() - start) / (n * bs)
        model.eval()
        n_eval = max(1, min(eval_batch, len(idx)))
        x = data.prepare(data.x_train[idx[:n_eval]])
        start = time.perf_counter()
        with torch.no_grad(), stepper.autocast():
            model(x)
        sync()
        infer = (time.perf_counter() - start) / n_eval
    return train, infer, n


def minutes(seconds: float) -> str:
    m = seconds / 60
    return "<1 min" if m < 1 else f"~{m:.0f} min" + (f" ({m / 60:.1f} h)" if m >= 120 else "")


def cost_block(phases: list[Phase], train_s: float, infer_s: float, how: str) -> tuple[str, float]:
    """The printed cost block and the total estimated seconds."""
    lines, total = [f"cost estimate ({how}; {train_s * 1e3:.3g} ms/image training, {infer_s * 1e3:.3g} ms/image "
                    f"inference):"], 0.0
    for p in phases:
        size = f"{p.images:>9,} images x {p.epochs:>4,} {'passes' if p.inference else 'epochs'}"
        if p.cached:
            lines.append(f"  {p.name:<11}{size}  cached" + (f"  {p.note}" if p.note else ""))
            continue
        seconds = p.images * p.epochs * (infer_s if p.inference else train_s)
        total += seconds
        lines.append(f"  {p.name:<11}{size}  {minutes(seconds)}" + (f"  {p.note}" if p.note else ""))
    lines.append(f"  {'total':<11}{'':>30}  {minutes(total)}")
    return "\n".join(lines), total


def plan(ws, *, epochs: int | None = None, share: float = 1.0, fresh: bool = False) -> list[Phase]:
    """The phases of the workspace's run. For a budget's candidate recipe (unlearn.budget): `epochs` of the
    original and Retrain, the training images scaled by `share`, and `fresh` reference models (another recipe is
    another cache key: trained, not loaded)."""
    cfg, refs, task, method = ws.cfg, ws.refs, ws.task, ws.method
    split, epochs = task.split, refs.recipe.epochs if epochs is None else epochs
    n_train = round((len(split.forget) + len(split.retain)) * share)
    others = {name: cfg.stage in ("original", "retrain") and cfg.stage != name for name in ("original", "retrain")}
    cached = {name: others[name] or not fresh and refs.is_cached(name)  # stage=original / retrain: the other model
              for name in others}                                      # is not this job's
    phases = [Phase("original", n_train, epochs, cached["original"] or refs.external is not None),
              Phase("retrain", round(len(split.retain) * share), epochs, cached["retrain"])]
    if cfg.stage == "all":
        work = method.workload(task)
        phases.append(Phase("unlearning", round(work[0] * share), work[1], note=type(method).__name__)
                      if work is not None else
                      Phase("unlearning", 0, 0, cached=True, note=f"{type(method).__name__}: no training steps"))
    passes = 1 if cfg.stage == "all" else 0
    passes += 2 * sum(not c for c in cached.values())  # metrics and predictions of a reference trained now
    phases.append(Phase("evaluation", n_train + len(split.test), passes, cached=passes == 0, inference=True))
    return phases


def idle(phases: list[Phase]) -> bool:
    return all(p.cached or p.images * p.epochs == 0 for p in phases)


@dataclasses.dataclass
class Estimate:
    """A timed probe's result: seconds per image of a training step and of inference, and how it was measured."""
    train_s: float
    infer_s: float
    how: str

    def seconds(self, phases: list[Phase]) -> float:
        return cost_block(phases, self.train_s, self.infer_s, self.how)[1]


def measure(ws, phases: list[Phase], model: torch.nn.Module | None = None, longer: bool = False) -> Estimate:
    """Time a few training steps and one inference batch of `model` (default: the run's) on the run's data; a run
    whose `phases` add up to more than REFINE_ABOVE seconds gets the longer probe, and so does any with `longer`
    (a budget's decision: two steps' timer noise could pick another recipe)."""
    work = math.inf if longer else sum(p.images * p.epochs for p in phases if not p.cached and not p.inference)
    model = ws.new_model() if model is None else model
    train_s, infer_s, steps = speed(model.to(ws.device), ws.task.data, ws.task.split.retain, ws.refs.recipe,
                                    ws.refs.compute, ws.cfg.progress.probe_batches, ws.cfg.eval.batch_size,
                                    refine=lambda s: work * s > REFINE_ABOVE)
    return Estimate(train_s, infer_s, f"{steps} timed steps on {ws.device.type}, {torch.get_num_threads()} threads")


def announce(ws, estimate: Estimate | None = None) -> tuple[str, float] | None:
    """Before any training: log what the workspace's run will cost per phase, from a timed probe (or `estimate`, one
    already taken of this run); warn when it is longer than progress.warn_hours. Returns the block and its seconds
    (None with progress.probe_batches=0)."""
    cfg = ws.cfg
    if cfg.progress.probe_batches == 0:
        return None
    phases = plan(ws)
    if idle(phases):
        log.info("cost estimate: nothing to train (the reference models are cached)")
        return None
    est = measure(ws, phases) if estimate is None else estimate
    train_s, infer_s = est.train_s, est.infer_s
    block, seconds = cost_block(phases, train_s, infer_s, est.how)
    log.info(block)
    if seconds > cfg.progress.warn_hours * 3600:
        big = max((p for p in phases if not p.cached), key=lambda p: p.images * p.epochs *
                  (infer_s if p.inference else train_s))
        log.warning("this run is estimated to take %s, longer than progress.warn_hours=%g, mostly %s (%d images x "
                    "%d epochs); stop it now if that was not meant", minutes(seconds), cfg.progress.warn_hours,
                    big.name, big.images, big.epochs)
    return block, seconds
