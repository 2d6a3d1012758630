"""What a run says while it works: one progress line per epoch in the log (a tqdm bar in a terminal), the
non-finite-loss guard of every training loop, and the warnings about oversubscribed threads and an original
model outside the paper's regime (the cost estimate before training: `unlearn.estimate`).

Log lines go through `logging` (Hydra's job log, SLURM's output); a bar is drawn only when stderr is a
terminal, and then log lines print above it.
"""
from __future__ import annotations

import contextlib
import logging
import math
import sys
import time

import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from unlearn import cpus

log = logging.getLogger("unlearn")
LOG_EVERY = 0.0  # seconds between two progress lines of one phase: progress.log_every, set by `configure` (until
# then, e.g. in a notebook that calls `fit` directly, every epoch)
QUIET_EVERY = 10.0  # seconds: the least spacing of the lines of a quiet phase (evaluation), whatever LOG_EVERY
ACCELERATOR_CHECK_EVERY = 50  # steps between two finiteness checks of the loss off the CPU (one host sync each)


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
