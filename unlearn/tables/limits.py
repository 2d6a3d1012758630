"""Time limits of a table's cluster jobs, derived from the preset's cost estimate instead of fixed values.

The estimate is the paper's own (`python -m unlearn.tables estimate`): its RTEs in minutes on A5000 GPUs, the
original model at Retrain's time x 1/0.9. From a job's work (one reference model, or a method row plus, in the
worst case, both references it may have to train itself when no reference job got there first) come:

- `timeout_min`: the job's time limit, `margin` x its work, never above the launcher preset's (the cluster's cap);
- `max_num_timeout`: how often a job that reaches it is requeued to resume from its checkpoint, so that the
  attempts together cover `margin` x the work, the last one long enough for the unlearning, which is not
  checkpointed (a row whose unlearning alone is longer than the launcher's limit cannot finish: `fits`);
- `lock_timeout`: how long a job waits for another one training the same reference model: `margin` x the
  longest reference of the block (one holder's whole training, when nothing stops it earlier).

Only the paper scale has an estimate; at CPU scale the configured values stay.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from unlearn.cli import override_key, override_values
from unlearn.tables.paper import paper_cell, paper_values
from unlearn.tables.preset import Block, Preset

MARGIN = 1.5  # x the paper's A5000 minutes: another GPU, data decoding and evaluation (MIA) are not in its RTEs
MIN_TIMEOUT = 60  # minutes: the shortest time limit asked for (start-up, data loading, a cached reference's metrics)
MIN_LOCK = 1800  # seconds: the shortest lock wait (a cached model's metrics and predictions, computed under a lock)


@dataclass(frozen=True)
class Minutes:
    """A block's paper-scale work in A5000 minutes: each reference model, and each row's unlearning."""
    original: float
    retrain: float
    rows: dict[str, float]

    def references(self) -> float:
        return max(self.original, self.retrain)


def paper_minutes(preset: Preset, block: Block, paper: pd.DataFrame):
    """({row id: the paper's RTE in minutes, nan where none}, rte(table, row_id, method, paper_row)): a row without
    a published RTE borrows `rte_like`'s, scaled by its `method.epochs=<n>` over 10 (shared by `estimate` and the
    time limits)."""
    def rte(table: str, row_id: str, method: str, paper_row: str | None) -> float:
        ref = paper_cell(paper, table, block.paper_block, row_id, method, paper_row, "RTE", version=None)
        return math.nan if ref is None else ref[0] * (60 if block.rte_unit == "hr" else 1)

    rows = {}
    for row in preset.rows:
        m = rte(preset.table, row.id, row.method, row.paper_row)
        if math.isnan(m) and block.rte_like:
            epochs = [int(v) for v in override_values(row.overrides, "method.epochs")]
            m = rte(block.rte_like, row.method, row.method, None) * (epochs[0] / 10 if epochs else 1)
        rows[row.id] = m
    return rows, rte


def block_minutes(preset: Preset, block: Block, paper: pd.DataFrame | None = None) -> Minutes | None:
    """The block's minutes from the paper's RTEs (as `estimate` counts them: a block without published RTEs
    borrows `rte_like`'s, scaled by a row's `method.epochs=<n>` over 10; a row without one counts as FT), or None
    when there is no Retrain time to start from."""
    if preset.scale != "paper":
        return None
    rows, rte = paper_minutes(preset, block, paper_values() if paper is None else paper)

    def published(row: str) -> float:  # the table's own cell even when `--rows` left the row out, else rte_like's
        m = rows.get(row, math.nan)
        m = rte(preset.table, row, row, None) if math.isnan(m) else m
        return rte(block.rte_like, row, row, None) if math.isnan(m) and block.rte_like else m
    retrain = published("retrain")
    if math.isnan(retrain):
        return None
    ft = published("ft")
    rows = {k: (ft if math.isnan(v) else v) for k, v in rows.items()}
    reference = {r.id for r in preset.rows if r.method == "retrain"}  # that row loads the Retrain reference
    return Minutes(original=retrain / 0.9, retrain=retrain,
                   rows={k: 0.0 if math.isnan(v) or k in reference else v for k, v in rows.items()})


@dataclass(frozen=True)
class Limits:
    timeout_min: int  # the job's time limit (SLURM --time), minutes
    max_num_timeout: int  # requeues of a job that reaches it (submitit); each resumes from the last checkpoint
    lock_timeout: int  # seconds a job waits on another job's lock (the run's `lock_timeout`)
    fits: bool = True  # False: the job's unlearning alone (not resumable) is longer than the time limit

    def overrides(self, launcher_target: str, given: list[str]) -> list[str]:
        """Hydra overrides that apply these limits to a multirun under the launcher `launcher_target`; a key the
        user set (in `given`) is left to the user."""
        values = {"lock_timeout": self.lock_timeout}
        if "submitit" in launcher_target:  # both submitit executors have a time limit; only SLURM requeues
            values["hydra.launcher.timeout_min"] = self.timeout_min
            if launcher_target.endswith("SlurmLauncher"):
                values["hydra.launcher.max_num_timeout"] = self.max_num_timeout
        mine = {override_key(o) for o in given}
        return [f"{k}={v}" for k, v in values.items() if k not in mine]


def derive(work_min: float, wait_min: float, cap_min: int, margin: float = MARGIN, requeues: int = 0,
           whole_min: float = 0.0) -> Limits:
    """Limits of a job doing `work_min` minutes of resumable work (reference training, checkpointed) and then
    `whole_min` minutes that must fit one attempt (unlearning, which is not checkpointed), waiting at most
    `wait_min` minutes for one lock holder, under a launcher whose time limit is `cap_min` minutes and which
    requeues a timed-out job `requeues` times (kept when more than the work needs: a requeue costs nothing
    unless a job overruns)."""
    if not margin > 0 or not math.isfinite(margin):
        raise ValueError(f"margin={margin!r} is invalid; allowed: a finite number > 0 (x the paper's minutes)")
    need, whole = margin * work_min, margin * whole_min
    timeout = int(min(cap_min, max(MIN_TIMEOUT, math.ceil(need + whole))))
    attempts = 1 if need + whole <= timeout else math.ceil(need / timeout) + (whole > 0)
    return Limits(timeout_min=timeout, max_num_timeout=max(requeues, attempts - 1),
                  lock_timeout=int(max(MIN_LOCK, math.ceil(margin * wait_min * 60))), fits=whole <= timeout)


def for_reference(minutes: Minutes, cap_min: int, requeues: int = 0, margin: float = MARGIN) -> Limits:
    """A job training one reference model of the block (stage=original or stage=retrain)."""
    return derive(minutes.references(), minutes.references(), cap_min, margin=margin, requeues=requeues)


def for_row(minutes: Minutes, row_id: str, cap_min: int, requeues: int = 0, margin: float = MARGIN) -> Limits:
    """A method job of the block: its row, plus both references when it has to train them itself."""
    return derive(minutes.original + minutes.retrain, minutes.references(), cap_min, margin=margin,
                  requeues=requeues, whole_min=minutes.rows.get(row_id, 0.0))


def cap(launcher) -> tuple[int, int]:
    """The launcher preset's time limit in minutes (effectively none without one) and its requeues."""
    return int(launcher.get("timeout_min") or 0) or 10**9, int(launcher.get("max_num_timeout") or 0)
