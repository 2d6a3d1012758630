"""What a run says while it works: one progress line per epoch in the log (a tqdm bar in a terminal), the
non-finite-loss guard of every training loop, the cost estimate before training, and the warnings about
oversubscribed threads and an original model outside the paper's regime.

Log lines go through `logging` (Hydra's job log, SLURM's output); a bar is drawn only when stderr is a
terminal, and then log lines print above it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import sys
import time
from typing import Callable

import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from unlearn import cpus

log = logging.getLogger("unlearn")
LOG_EVERY = 0.0  # seconds between two progress lines of one phase: progress.log_every, set by `configure` (until
# then, e.g. in a notebook that calls `fit` directly, every epoch)
QUIET_EVERY = 10.0  # seconds: the least spacing of the lines of a quiet phase (evaluation), whatever LOG_EVERY
ACCELERATOR_CHECK_EVERY = 50  # steps between two finiteness checks of the loss off the CPU (one host sync each)
PROBE_MIN_SECONDS, PROBE_MAX_STEPS = 0.5, 50  # a long run's probe times at least this long (or this many steps)
REFINE_ABOVE = 600.0  # seconds: a run estimated longer gets the longer probe; a short one (tests) keeps 2 steps


class Diverged(ValueError):
    """The optimisation diverged: a loss (or the weights) became non-finite. The message names the phase, the
    epoch, the step and the learning rate, and says that nothing was cached."""


def duration(seconds: float) -> str:
    """h:mm:ss (days prefixed when longer)."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    days, s = divmod(s, 86400)
    text = f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{days}d {text}" if days else text


def terminal() -> bool:
    return sys.stderr.isatty()


class Progress:
    """Progress of one phase over `total` units (epochs, or batches for evaluation), counted from `first`
    (a resumed run). `check(loss)` before each optimiser step stops at a non-finite loss; `done(**values)`
    after each unit logs `phase: epoch 3/30  loss 0.41  elapsed 0:00:12  ETA 0:01:48` when LOG_EVERY seconds
    have passed since the last line (the first and last epoch always; `quiet` phases such as evaluation only
    when they run longer than that, and at most every QUIET_EVERY seconds)."""

    def __init__(self, phase: str, total: int, *, unit: str = "epoch", first: int = 0, quiet: bool = False,
                 steps_per_epoch: int | None = None, opt: torch.optim.Optimizer | None = None,
                 lr_key: str | None = None, check_every: int | None = None):
        self.phase, self.total, self.unit, self.first, self.quiet = phase, total, unit, first, quiet
        self.steps_per_epoch, self.opt, self.lr_key = steps_per_epoch, opt, lr_key
        self.check_every = check_every  # steps between finiteness checks; None: 1 on the CPU, else ACCELERATOR_...
        self.epoch, self.batch, self.step, self.units = first, 0, 0, 0
        self._pending, self._pending_from = None, 1  # all losses since the last check finite? (on the device)
        self.bar, self._redirect = None, contextlib.ExitStack()

    def __enter__(self) -> "Progress":
        self.start = self.last_line = time.perf_counter()
        if terminal():
            self._redirect.enter_context(logging_redirect_tqdm())  # log lines print above the bar
            steps = self.steps_per_epoch
            self.bar = tqdm(total=(self.total - self.first) * steps if steps else self.total - self.first,
                            desc=self.phase, unit="step" if steps else self.unit, leave=False, file=sys.stderr)
        return self

    def __exit__(self, *exc) -> bool:
        if self.bar is not None:
            self.bar.close()
        self._redirect.close()
        return False

    def epochs(self):
        """The unit indices first..total-1, tracking the current one for messages."""
        for epoch in range(self.first, self.total):
            self.epoch, self.batch = epoch, 0
            yield epoch

    def check(self, loss: torch.Tensor) -> None:
        """Stop at a non-finite loss: at once on the CPU (one sync per step, cheap there); off the CPU, where a
        sync stalls the device, from an all-finite flag kept on the device and read every
        ACCELERATOR_CHECK_EVERY steps and at the end of each epoch."""
        self.batch += 1
        self.step += 1
        if self.bar is not None and self.steps_per_epoch:
            self.bar.update(1)
        value = loss.detach().float().sum()
        if self._every(value) == 1:
            if not bool(torch.isfinite(value)):
                self._fail(float(value), f"batch {self.batch}{self._of_epoch()}")
            return
        finite = torch.isfinite(value)  # a flag, not a sum: a sum of huge finite losses could overflow
        self._pending = finite if self._pending is None else self._pending & finite
        if self.step % self._every(value) == 0:
            self._flush()

    def _every(self, value: torch.Tensor) -> int:
        if self.check_every is not None:
            return self.check_every
        return 1 if value.device.type == "cpu" else ACCELERATOR_CHECK_EVERY

    def _flush(self) -> None:
        if self._pending is not None and not bool(self._pending):
            self._fail("not finite", f"between steps {self._pending_from} and {self.step} of this phase "
                                     f"(checked every {self._every(self._pending)} steps)")
        self._pending, self._pending_from = None, self.step + 1

    def _of_epoch(self) -> str:
        return f"/{self.steps_per_epoch}" if self.steps_per_epoch else ""

    def _fail(self, value: float | str, where: str) -> None:
        lr = f", lr {self.opt.param_groups[0]['lr']:g}" if self.opt is not None else ""
        hint = f"; lower {self.lr_key}" if self.lr_key else ""
        raise Diverged(f"{self.phase}: the loss is {value} at epoch {self.epoch + 1}/{self.total}, {where}{lr}: "
                       f"the optimisation diverged{hint}. Nothing of this phase was cached or recorded")

    def done(self, **values: float) -> None:
        """One unit finished; `values` (loss, acc, ...) go into its line."""
        if self.steps_per_epoch is None and self.bar is not None:
            self.bar.update(1)
        self._flush()
        self.units += 1
        index = self.first + self.units
        now = time.perf_counter()
        edge = index == self.total or (not self.quiet and index == self.first + 1)
        if self.quiet and self.last_line == self.start and index == self.total:
            edge = False  # a short evaluation says nothing
        if self.bar is not None and values:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)
        every = max(LOG_EVERY, QUIET_EVERY) if self.quiet else LOG_EVERY
        if not (edge or now - self.last_line >= every):
            return
        self.last_line = now
        done = index - self.first
        eta = (now - self.start) / done * (self.total - index) if done else math.inf
        shown = "".join(f"  {k} {v:.4g}" for k, v in values.items())
        log.info("%s: %s %d/%d%s  elapsed %s  ETA %s", self.phase, self.unit, index, self.total, shown,
                 duration(now - self.start), duration(eta))


def nonfinite(state: dict) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold a NaN or an infinity."""
    return [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()
            and not bool(torch.isfinite(v).all())]


# ----------------------------------------------------------------------------------------------- run setup


def configure(cfg) -> None:
    """Apply the `progress` keys and warn when torch's threads exceed the cores this process may use."""
    p = cfg.progress
    checks = [("progress.log_every", p.log_every, isinstance(p.log_every, (int, float)) and p.log_every >= 0
               and math.isfinite(p.log_every), "a number of seconds >= 0 (0 = every epoch)"),
              ("progress.probe_batches", p.probe_batches, isinstance(p.probe_batches, int)
               and not isinstance(p.probe_batches, bool) and p.probe_batches >= 0, "an integer >= 0 (0 = no estimate)"),
              ("progress.warn_hours", p.warn_hours, isinstance(p.warn_hours, (int, float)) and p.warn_hours > 0,
               "a number of hours > 0"),
              ("min_train_acc", cfg.min_train_acc, isinstance(cfg.min_train_acc, (int, float))
               and 0 <= cfg.min_train_acc <= 100, "a percentage in [0, 100]")]
    for key, value, ok, allowed in checks:
        if not ok or isinstance(value, bool):
            raise ValueError(f"{key}={value!r} is invalid; allowed: {allowed}")
    global LOG_EVERY
    LOG_EVERY = float(p.log_every)
    warn_oversubscription(cfg.threads)


def warn_oversubscription(threads: int | None) -> str | None:
    """One warning when torch runs more threads than this process has cores: spin-waiting threads then make
    every step several times slower. Returns the line (None when there is nothing to say)."""
    n, have = torch.get_num_threads(), cpus.cores()
    if n <= have:
        return None
    what = f"threads={threads}" if threads is not None else f"torch's default of {n} threads (OMP_NUM_THREADS)"
    line = (f"{what} on {have} CPU core{'s' if have != 1 else ''}: oversubscribed threads spin-wait and make every "
            f"step several times slower; use threads={have} or fewer (threads=null takes torch's default)")
    log.warning(line)
    return line


# ------------------------------------------------------------------------------------------ cost estimate


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
