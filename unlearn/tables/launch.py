"""Launching a table's jobs: skip those already done by this code on this setup, run the rest one multirun per
(block, row), go on past a failing row, and pass a stop signal on to the running job.

"Already done" is a fact about inputs, never about the working tree: a results row counts for a job when its
`config_id` and seed match and it was computed by the same code (`code_digest`: the package's sources and
configs that can change this job's numbers, never git's dirty flag, which the runner's own written tables flip)
on the same setup (device, torch threads, CPU instruction set, torch version).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from unlearn.cli import override_values
from unlearn.identity import ENVIRONMENT, code_digest
from unlearn.results_csv import read_runs
from unlearn.references import cpu_capability
from unlearn.tables.plan import Job

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def environment(job: Job) -> dict:
    """The `ENVIRONMENT` columns the job's row will carry when it runs on this machine."""
    cuda = job.cfg.device == "cuda" or (job.cfg.device == "auto" and torch.cuda.is_available())
    return {"device": "cuda" if cuda else "cpu", "threads": job.threads or torch.get_num_threads(),
            "cpu_capability": cpu_capability(), "torch": torch.__version__}


def _norm(value) -> str:
    """A CSV cell as text: 4 and 4.0 (a column with blanks reads as floats) are the same thread count."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if pd.isna(value) else str(value)


def identity(job: Job, digests: dict) -> tuple[str, ...]:
    target = str(job.cfg.method.get("_target_"))
    if target not in digests:  # one digest per method: it leaves out the files of the other methods
        digests[target] = code_digest(job.cfg)
    env = environment(job)
    return (job.config_id, str(job.seed), digests[target], *(_norm(env[k]) for k in ENVIRONMENT))


def done(jobs: list[Job], runs: pd.DataFrame) -> list[bool]:
    """For each job: is its result in `runs`, from this code and this setup?"""
    columns = ["config_id", "seed", "code_digest", *ENVIRONMENT]
    if not len(runs) or any(c not in runs for c in columns):  # rows from before code_digest count for no job
        return [False] * len(jobs)
    have = {tuple(_norm(v) for v in row) for row in runs[columns].itertuples(index=False)}
    digests: dict[str, str] = {}
    return [identity(j, digests) in have for j in jobs]


@dataclass
class Outcome:
    """What a launch did: groups that finished, failed (with exit status), and the stop signal, if any."""
    finished: list[str] = field(default_factory=list)
    failed: list[tuple[str, int]] = field(default_factory=list)
    signal: int | None = None


def launch(groups: dict[str, list[str]], log=print) -> Outcome:
    """Run each command in turn (`{label: argv}`), each in its own process group. A failing one is reported and
    the next one runs; SIGTERM, SIGINT or SIGHUP to this process go to the running command's whole group (a
    second one sends SIGKILL), and no further command starts."""
    out, current = Outcome(), {"proc": None}

    def forward(signum, _frame):
        proc = current["proc"]
        again, out.signal = out.signal is not None, signum
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL if again else signum)
            except ProcessLookupError:
                pass
    previous = {s: signal.signal(s, forward) for s in STOP_SIGNALS}
    start = time.time()
    try:
        for k, (label, cmd) in enumerate(groups.items(), 1):
            if out.signal is not None:
                break
            done_so_far = len(out.finished) + len(out.failed)
            eta = (f", ETA {(time.time() - start) / done_so_far * (len(groups) - k + 1) / 60:.1f} min"
                   if done_so_far else "")
            log(f"[{time.time() - start:7.0f} s] row {k}/{len(groups)}{eta}: {label}: {' '.join(cmd[3:])}")
            current["proc"] = proc = subprocess.Popen(cmd, start_new_session=True)  # its own group: signals reach
            if out.signal is not None:  # its workers; a signal that came while it started is passed on now
                os.killpg(proc.pid, out.signal)
            code = proc.wait()
            current["proc"] = None
            if out.signal is not None:
                break
            if code == 0:
                out.finished.append(label)
            else:
                out.failed.append((label, code))
                log(f"error: {label} failed (exit status {code}); going on with the other rows")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return out


def seeds_present(jobs: list[Job], runs: pd.DataFrame) -> list[Job]:
    """`jobs` plus, for each configuration, a job for every other seed the results hold: a table printed after a
    partial run (`--seeds 0`) shows every seed present, not only the ones just run."""
    if not len(runs) or "config_id" not in runs:
        return jobs
    seeds: dict[str, set[int]] = {}
    for cid, seed in zip(runs["config_id"].astype(str), runs["seed"]):
        if not pd.isna(seed):
            seeds.setdefault(cid, set()).add(int(seed))
    out, have = list(jobs), {(j.config_id, j.seed) for j in jobs}
    for j in jobs:
        for seed in sorted(seeds.get(j.config_id, ())):
            if (j.config_id, seed) not in have:
                have.add((j.config_id, seed))
                cfg = j.cfg.copy()
                cfg.seed = seed
                out.append(Job(j.block, j.row, seed, j.overrides, j.config_id, cfg, j.threads))
    return out


def fuller(new: pd.DataFrame, written: pd.DataFrame) -> list[str]:
    """Cells ("block / row / column") where an already written table holds more runs than `new`: such a table
    is never overwritten by a partial run."""
    if not len(written) or not {"block", "row", "column", "n"} <= set(written.columns):
        return []
    keys = ["block", "row", "column"]
    both = written[keys + ["n"]].merge(new[keys + ["n"]], on=keys, how="left", suffixes=("_old", "_new"))
    worse = both[both["n_old"].fillna(0) > both["n_new"].fillna(0)]
    return [" / ".join(str(v) for v in r) for r in worse[keys].itertuples(index=False)]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def failures(table: str, failed: list[tuple[str, int]]) -> int:
    """The runner's exit status: 1, with the list, when a row failed (the other rows ran), else 0."""
    if not failed:
        return 0
    say(f"error: {table}: {len(failed)} row(s) failed: " + "; ".join(f"{label} (exit status {code})"
                                                                     for label, code in failed)
        + ". Their cells read 'not run'; fix them and rerun the same command (finished jobs are kept)")
    return 1


# ------------------------------------------------------------------------------ where the results are read from

RUN_ROOTS = ("results/runs", "results/multirun", "results/submitted")  # Hydra's run and sweep folders, submit's


def without_csv(overrides: list[str]) -> bool:
    """Whether the user's overrides turn the shared results CSV off (`results_csv=null`; the last one wins): on
    file systems whose locks are unreliable every job writes only its run folder's metrics.json."""
    values = override_values(overrides, "results_csv")
    return bool(values) and values[-1].strip().lower() in ("null", "none", "~")


@dataclass
class RunDirs:
    """The runs of a table launched with results_csv=null: every metrics.json under `roots` (no shared file)."""
    roots: list[str]

    def read(self) -> pd.DataFrame:
        from unlearn.collect import read_run_dirs
        runs, _ = read_run_dirs([r for r in self.roots if Path(r).is_dir()])  # an absent folder holds no run
        return runs

    def __str__(self) -> str:
        return "metrics.json under " + ", ".join(self.roots)


def source(results: str, overrides: list[str]) -> Path | RunDirs:
    """Where a table's results are: the results CSV `results`, or with results_csv=null the run folders (Hydra's
    defaults, the submitted arrays' and any run or sweep folder the overrides name)."""
    if not without_csv(overrides):
        return Path(results)
    named = override_values(overrides, "hydra.sweep.dir", "hydra.run.dir", "run_dir")
    return RunDirs([*RUN_ROOTS, *(n for n in named if n not in ("null", "None"))])


def csv_override(results: Path | RunDirs) -> list[str]:
    """The override that sends every job's row to the results CSV; none under results_csv=null (the user's own
    override then stays the last one)."""
    return [] if isinstance(results, RunDirs) else [f"results_csv={results}"]


def results(path: str, overrides: list[str]) -> pd.DataFrame:
    """The runs so far, from the results CSV or, under results_csv=null, from the run folders."""
    where = source(path, overrides)
    if isinstance(where, RunDirs):
        return where.read()
    if not where.exists():
        return pd.DataFrame()
    runs, problems = read_runs(where)
    for p in problems:
        say(f"{where}: {p}")
    return runs
