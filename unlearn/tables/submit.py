"""Submit a whole paper table (every block x row x seed not yet done) as a few job arrays, and return at once.

    python -m unlearn.tables.submit table1 --scale paper [--seeds 0,1,2] [--rows ..] [--variant arxiv]
        [--references-only] [--margin 1.5] [--dry-run] -- hydra/launcher=slurm hydra.launcher.partition=gpu [overrides]
    make submit TABLE=table1 SCALE=paper ARGS="hydra.launcher.partition=gpu"

The jobs are one per reference model the table needs (`stage=original`, `stage=retrain`: each trains one model,
resumable from its checkpoints), and one per (block, row, seed) whose result is not yet there from this code on
this setup (the table runner's rule). An array has one time limit and one requeue count, so the jobs go into one
array per time band (BANDS: each job's derived limit rounded up; the most requeues any of its jobs needs),
reference jobs and method jobs never together (jobs without derived limits, as at CPU scale, share the preset's):
a CIFAR-10 job does not ask for ImageNet's limit, and Table 1 goes as 4 arrays.
On SLURM each method array depends on the reference arrays that hold its blocks' models
(`--dependency=afterany:<ids>`), so no method job holds a GPU while it waits for a reference in training.
`afterany`, not `afterok`: a reference job that failed or ran out of requeues leaves its checkpoint, and the method
job that needs it resumes that training itself under the cache lock (its limits cover it). The local executor
(local_submitit) has no dependencies: its method jobs start at once and wait on the reference jobs' cache locks; a
waiter resumes a training whose job was stopped.
The launcher preset (hydra/launcher=slurm, or local_submitit to try it on this machine) gives the arrays'
resources; at paper scale the time limits, requeues and each job's `lock_timeout` are derived from the preset's
cost estimate (unlearn/tables/limits.py). `python -m unlearn.tables print <table> --scale <scale>` collects the
results whenever you like.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from unlearn.tables import limits
from unlearn.tables import plan as planning
from unlearn.tables import launch
from unlearn.tables.launch import done, say
from unlearn.tables.preset import SCALES, VARIANTS, load
from unlearn.tables.references import reference_jobs
from unlearn.cli import split_argv

ALLOWED = ("slurm", "local_submitit")


@dataclass
class Entry:
    """One job: a label and the overrides of its `python -m unlearn.app` run, its derived limits and its block."""
    label: str
    argv: list[str]
    limits: limits.Limits | None
    block: str = ""


class Task:
    """The callable each array job runs: the unlearn app on its overrides, in the folder it was submitted from.
    On a time limit or preemption submitit calls `checkpoint` and requeues the same task, which resumes from the
    reference models' checkpoints and the cache."""

    def __init__(self, cwd: str):
        self.cwd = cwd

    def __call__(self, argv: list[str]) -> int:
        code = subprocess.call([sys.executable, "-m", "unlearn.app", *argv], cwd=self.cwd)
        if code != 0:
            raise RuntimeError(f"python -m unlearn.app {' '.join(argv)} ended with exit status {code}")
        return code

    def checkpoint(self, *args, **kwargs):
        import submitit
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def entries(preset, jobs, extra: list[str], hl, margin: float, references_only: bool) -> list[Entry]:
    """The table's jobs: every reference model, then the method jobs `jobs`; each with its derived limits."""
    labels = [f"table={preset.table}", f"scale={preset.scale}"]
    cap, requeues = limits.cap(hl)
    minutes = {b.name: limits.block_minutes(preset, b) for b in preset.blocks if b.overrides is not None}
    out = []
    for r in reference_jobs(jobs, extra, labels):
        m = minutes.get(r.block.name)
        lim = None if m is None else limits.for_reference(m, cap, requeues, margin=margin)
        out.append(Entry(f"{r.block.name} / {r.stage} seed {r.seed}", [*r.argv(), *lock(lim, extra)], lim,
                         r.block.name))
    if not references_only:
        for j in jobs:
            m = minutes.get(j.block.name)
            lim = None if m is None else limits.for_row(m, j.row.id, cap, requeues, margin=margin)
            out.append(Entry(f"{j.block.name} / {j.row.id} seed {j.seed}", [*j.overrides, f"seed={j.seed}",
                                                                            *lock(lim, extra)], lim, j.block.name))
    return out


def lock(lim: limits.Limits | None, extra: list[str]) -> list[str]:
    """The job's derived lock_timeout, unless the user set one."""
    return [] if lim is None else lim.overrides("", extra)


def parameters(hl, entries_: list[Entry], folder: Path, name: str, band_min: int | None = None
               ) -> tuple[str, dict, dict]:
    """(cluster, executor init parameters, update_parameters) of an array of `entries_` from the launcher preset
    `hl`, with the largest derived time limit of its jobs (or `band_min`, the array's band, when longer) and their
    most requeues (one array has one set)."""
    target = str(hl.get("_target_", ""))
    if "submitit" not in target:
        raise ValueError(f"hydra/launcher={target.rsplit('.', 1)[-1] or 'basic'} cannot submit a job array; allowed: "
                         f"hydra/launcher={' or hydra/launcher='.join(ALLOWED)}")
    cluster = "slurm" if target.endswith("SlurmLauncher") else "local"
    params = {k: v for k, v in OmegaConf.to_container(hl, resolve=False).items()
              if k not in ("_target_", "submitit_folder", "name")}
    derived = [e.limits for e in entries_ if e.limits is not None]
    if derived:
        params["timeout_min"] = max(band_min or 0, *(x.timeout_min for x in derived))
        if cluster == "slurm":
            params["max_num_timeout"] = max(x.max_num_timeout for x in derived)
    init = {"folder": str(folder / "%j"), "cluster": cluster}
    if "max_num_timeout" in params:
        init[f"{cluster}_max_num_timeout"] = params.pop("max_num_timeout")
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    update = {k if k in base else f"{cluster}_{k}": v for k, v in params.items()}
    return cluster, init, {**update, "name": name}


@dataclass
class Array:
    """One job array: its jobs, whether they train reference models, its executor parameters, and the numbers
    (from 1) of the arrays it starts after."""
    entries: list[Entry]
    references: bool
    init: dict
    update: dict
    after: list[int] = field(default_factory=list)

    def describe(self, cluster: str) -> str:
        kind = "reference models" if self.references else "method jobs"
        blocks = list(dict.fromkeys(e.block for e in self.entries))
        requeues = self.init.get(f"{cluster}_max_num_timeout", "submitit's default")
        after = (f"depends on arrays {', '.join(map(str, self.after))} (afterany)" if self.after else
                 "no dependency (local executor: waits on the reference jobs' locks)" if not self.references
                 and cluster != "slurm" else "no dependency")
        return (f"{len(self.entries)} {kind} of {', '.join(blocks)}, timeout_min={self.update.get('timeout_min')}, "
                f"requeues={requeues}, {after}")


def is_reference(e: Entry) -> bool:
    return e.argv[0].startswith("stage=")


BANDS = (60, 120, 240, 480, 720, 1440, 2880)  # minutes: an array's time limit, the band above its longest job's


def band(e: Entry, cap_min: int) -> int | None:
    """The time limit `e` is grouped under: the first of BANDS at or above its derived limit (at most the launcher's
    cap), so jobs a few minutes apart share an array (a job asks for at most twice its derived limit; the job
    ends when its work does); None under the preset's own limits (no derived ones, as at CPU scale)."""
    if e.limits is None:
        return None
    t = e.limits.timeout_min
    return min(next((b for b in BANDS if b >= t), t), max(cap_min, t))


def arrays(hl, work: list[Entry], folder: Path, name: str) -> tuple[str, list[Array]]:
    """(cluster, the arrays of `work`): reference arrays first, one per time band; then the method jobs, one array
    per time band and set of reference arrays they need, so on SLURM each method array starts after the reference
    arrays that hold its blocks' reference models (a CIFAR-10 array never waits for ImageNet's); each array asks
    for its band and the most requeues any of its jobs needs."""
    cap_min, _ = limits.cap(hl)
    refs: dict[int | None, list[Entry]] = {}
    for e in work:
        if is_reference(e):
            refs.setdefault(band(e, cap_min), []).append(e)
    order = sorted(refs, key=lambda b: (b is not None, b or 0))  # None: the preset's limits
    holds = {}  # block -> the numbers (from 1) of the reference arrays holding its models
    for i, b in enumerate(order, 1):
        for e in refs[b]:
            holds.setdefault(e.block, set()).add(i)
    methods: dict[tuple, list[Entry]] = {}
    for e in work:
        if not is_reference(e):
            methods.setdefault((band(e, cap_min), tuple(sorted(holds.get(e.block, ())))), []).append(e)
    cluster, out = "", []
    for b in order:
        cluster, init, update = parameters(hl, refs[b], folder, name, band_min=b)
        out.append(Array(refs[b], True, init, update))
    for key in sorted(methods, key=lambda k: (k[0] is not None, k[0] or 0, k[1])):
        cluster, init, update = parameters(hl, methods[key], folder, name, band_min=key[0])
        out.append(Array(methods[key], False, init, update, list(key[1]) if cluster == "slurm" else []))
    return cluster, out


def depend(update: dict, cluster: str, ids: list[str]) -> dict:
    """`update` with a SLURM dependency on the arrays `ids` (they must have ended, however), merged into the
    preset's own additional_parameters (a dependency of the user's is kept: both must hold)."""
    if not ids:
        return update
    key = f"{cluster}_additional_parameters"
    extra = dict(update.get(key) or {})
    mine = "afterany:" + ":".join(ids)
    extra["dependency"] = f"{extra['dependency']},{mine}" if extra.get("dependency") else mine
    return {**update, key: extra}


def submit(entries_: list[Entry], init: dict, update: dict, cwd: str):
    """One array of `entries_` through submitit (the only call to it); returns its jobs at once."""
    import submitit
    executor = submitit.AutoExecutor(**init)
    executor.update_parameters(**update)
    task = Task(cwd)
    return executor.map_array(task, [e.argv for e in entries_])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m unlearn.tables.submit", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table")
    ap.add_argument("--scale", default="paper", choices=SCALES)
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds")
    ap.add_argument("--rows", help="comma-separated row ids (default: every row)")
    ap.add_argument("--results", default="results/runs.csv", help="the results CSV (results_csv of the runs)")
    ap.add_argument("--margin", type=float, default=limits.MARGIN,
                    help="time limits = this x the paper's minutes (paper scale; default %(default)s)")
    ap.add_argument("--variant", default="iclr", help=f"one of {', '.join(VARIANTS)}: arxiv runs the UGradSL rows "
                    "with the adaptive per-sample alpha (as `tables run --variant`); default %(default)s")
    ap.add_argument("--references-only", action="store_true", help="only the reference models' jobs")
    ap.add_argument("--rerun", action="store_true", help="submit every job, even those already done")
    ap.add_argument("--dry-run", action="store_true", help="print the arrays, their jobs and parameters; submit none")
    own, extra = split_argv(argv)
    args = ap.parse_args(own)
    try:
        if args.variant not in VARIANTS:  # checked here, not by argparse: one line, with what is allowed
            raise ValueError(f"--variant={args.variant!r} is invalid; allowed: {', '.join(VARIANTS)}")
        preset = load(args.table, args.scale, args.rows.split(",") if args.rows else None, args.variant)
        try:
            seeds = [int(s) for s in args.seeds.split(",")]
        except ValueError:
            raise ValueError(f"--seeds={args.seeds!r} is invalid; allowed: integers, comma-separated") from None
        limits.derive(1.0, 1.0, 60, args.margin)  # a bad --margin is refused before anything is composed
        hl = planning.launcher(extra)
        parameters(hl, [], Path("."), "")  # a launcher that cannot submit is refused before the plan
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    jobs = planning.plan(preset, seeds, [*extra, *launch.csv_override(launch.source(args.results, extra))])
    skipped = {}  # the runner's rule: a block whose data is absent does not run (checked here, before submitting)
    for block in preset.blocks:
        first = next((j for j in jobs if j.block.name == block.name), None)
        if first is not None and (why := planning.missing_data(first.cfg, download=not args.dry_run)):
            skipped[block.name] = why
    for name, why in skipped.items():
        say(f"{args.table} block {name!r} {'has no data here' if args.dry_run else 'will not run'}: "
            f"{why.splitlines()[0]}")
    jobs = [j for j in jobs if j.block.name not in skipped or args.dry_run]  # a dry run lists them all
    if not jobs:
        print(f"error: no block of {args.table} can run at {args.scale} scale (see above)", file=sys.stderr)
        return 2
    runs = launch.results(args.results, extra)
    todo = [j for j, ok in zip(jobs, done(jobs, runs)) if args.rerun or not ok]
    work = entries(preset, jobs if args.references_only else todo, extra, hl, args.margin, args.references_only)
    if not todo and not args.references_only:
        say(f"{args.table} ({args.scale}): all {len(jobs)} jobs are done by this code on this setup; nothing to submit")
        return 0
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    folder = Path("results/submitted") / f"{args.table}_{args.scale}_{stamp}"
    cluster, batches = arrays(hl, work, folder, f"unlearn-{args.table}")
    n_refs = sum(map(is_reference, work))
    varying = ("folder", "timeout_min", f"{cluster}_max_num_timeout")  # stated per array below
    common = {k: v for k, v in {**batches[0].init, **batches[0].update}.items() if k not in varying}
    say(f"{args.table} ({args.scale}): {len(jobs)} jobs, {len(jobs) - len(todo)} done, {len(work)} to submit in "
        f"{len(batches)} arrays: {n_refs} reference models, {len(work) - n_refs} method jobs ({cluster}: "
        + ", ".join(f"{k}={v}" for k, v in common.items() if v not in (None, {})) + ")")
    for i, a in enumerate(batches, 1):
        say(f"array {i}/{len(batches)}: {a.describe(cluster)}")
        for e in a.entries if args.dry_run else []:
            say(f"{e.label}: {' '.join(e.argv)}")
    for e in work:
        if e.limits is not None and not e.limits.fits:
            say(f"warning: {e.label}: its unlearning alone is estimated above the time limit of "
                f"{e.limits.timeout_min} min and is not resumable: it cannot finish under this launcher; raise "
                f"hydra.launcher.timeout_min if the partition allows, or leave the row out (--rows)")
    if args.dry_run:
        return 0
    ids, rows = [], []  # SLURM's id of each array, in order; jobs.csv's rows
    for i, a in enumerate(batches, 1):
        update = depend(a.update, cluster, [ids[k - 1] for k in a.after])
        submitted = submit(a.entries, a.init, update, os.getcwd())
        ids.append(submitted[0].job_id.split("_")[0])
        rows += [[i, j.job_id, e.label, " ".join(e.argv)] for j, e in zip(submitted, a.entries)]
        say(f"submitted array {i}/{len(batches)} ({ids[-1]}): {a.describe(cluster)}")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "jobs.csv", "w", newline="") as f:  # which array task runs what, for squeue / sacct
        w = csv.writer(f)
        w.writerow(["array", "job_id", "label", "overrides"])
        w.writerows(rows)
    variant = "" if args.variant == "iclr" else f" --variant {args.variant}"
    say(f"submitted {len(rows)} jobs in {len(ids)} arrays ({', '.join(ids)}); logs in {folder}, job list in "
        f"{folder / 'jobs.csv'}. Collect the results whenever you like: python -m unlearn.tables print {args.table} "
        f"--scale {args.scale}{variant}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
