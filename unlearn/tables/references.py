"""Warm exactly the reference models a paper table will ask for: its jobs' original and Retrain models, trained
(or found in the cache) before the method jobs, which then only load them.

    python -m unlearn.tables.references table1 [--scale paper] [--seeds 0,1,2] [--dry-run] [-- hydra/launcher=slurm ...]
    make references TABLE=table1 SCALE=paper [SEEDS=0,1,2] [ARGS="hydra/launcher=slurm"]

The table's jobs are composed as the table runner composes them (same blocks, rows, seeds and extra overrides, so
the same class drawn per seed and the same cache keys); jobs that differ only in their method share references.
Each reference model is its own job (`stage=original` or `stage=retrain`), resumable from its checkpoints: the
original of a (data, model, recipe, seed) once, however many paradigms share it, and the Retrain model of every
(data, model, paradigm, recipe, seed). They run as one multirun per reference setting, originals and Retrains of
every seed side by side under a parallel launcher. At paper scale each multirun's time limit, requeues and lock
timeout are derived from the preset's cost estimate (unlearn/tables/limits.py); `python -m unlearn.tables.submit
TABLE --references-only` puts all of them in job arrays and returns at once (unlearn/tables/submit.py).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from unlearn.identity import config_hash, params
from unlearn.tables import limits
from unlearn.tables.launch import launch, say
from unlearn.tables.plan import Job, launcher, plan
from unlearn.tables.preset import Block, for_data, load
from unlearn.cli import override_key, split_argv

MECHANICS = ("precision", "channels_last", "compile", "cudnn")
STAGES = ("original", "retrain")


def reference_key(job: Job, stage: str = "retrain") -> str:
    """What the job's Retrain model (or, with stage="original", its original model: the same without the
    paradigm) depends on, but the seed: everything but the method (and the labels). The seed is a top-level
    key, never in `params`, so one key gathers the seeds of a setting."""
    cfg = job.cfg
    skip = ("method.", "paradigm.") if stage == "original" else ("method.",)
    keys = {k: v for k, v in params(cfg).items() if not k.startswith(skip)}
    keys.update({k: cfg.get(k) for k in MECHANICS})
    if cfg.get("fast", False):  # fast=true sets the mechanics when the job starts: its models are others
        keys["fast"] = True
    sections = ("dataset", "model") if stage == "original" else ("dataset", "model", "paradigm")
    return config_hash({"names": {s: cfg[s].get("name") for s in sections}, **keys})


@dataclass
class RefJob:
    """One reference model to train: `stage` (original | retrain) of one seed, under a setting's overrides."""
    stage: str
    block: Block
    overrides: list[str]  # without stage= and seed=
    seed: int

    def argv(self) -> list[str]:
        return [f"stage={self.stage}", *self.overrides, f"seed={self.seed}"]


def reference_jobs(jobs: list[Job], extra: list[str], labels: list[str]) -> list[RefJob]:
    """Every reference model the table's jobs need, once: the block's overrides, a row's overrides that are not
    the method's, the user's, the table's labels."""
    seen, out = set(), []
    for job in jobs:
        own = [o for o in job.row.overrides
               if not override_key(o).startswith("method") and override_key(o) != "ablation"]
        base = [*for_data(job.block.overrides, extra), *own, *extra, *labels]
        for stage in STAGES:
            key = (stage, reference_key(job, stage), job.seed)
            if key not in seen:
                seen.add(key)
                out.append(RefJob(stage, job.block, base, job.seed))
    return out


def sweeps(refs: list[RefJob]) -> list[tuple[Block, list[str]]]:
    """One multirun per setting (its overrides): `stage=original,retrain` over the seeds that need both, or the one
    stage a setting still needs (an original another paradigm's setting already trains is not asked for twice)."""
    groups: dict[tuple, tuple[Block, list[str], dict[int, list[str]]]] = {}
    for r in refs:
        _, _, stages = groups.setdefault(tuple(r.overrides), (r.block, r.overrides, {}))
        stages.setdefault(r.seed, []).append(r.stage)
    out = []
    for block, overrides, stages in groups.values():
        by_stages: dict[tuple[str, ...], list[int]] = {}
        for seed, st in stages.items():
            by_stages.setdefault(tuple(st), []).append(seed)
        for st, seeds in by_stages.items():
            out.append((block, ["-m", f"stage={','.join(st)}", *overrides, f"seed={','.join(map(str, sorted(seeds)))}"]))
    return out


def derived(preset, block: Block, hl, given: list[str], margin: float) -> list[str]:
    """The limits overrides of a reference multirun of `block` under the launcher `hl` (none without a
    paper-scale estimate)."""
    minutes = limits.block_minutes(preset, block)
    if minutes is None:
        return []
    return limits.for_reference(minutes, *limits.cap(hl), margin=margin).overrides(str(hl.get("_target_", "")), given)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m unlearn.tables.references", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table")
    ap.add_argument("--scale", default="cpu", choices=("cpu", "paper"))
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds, as the table's")
    ap.add_argument("--margin", type=float, default=limits.MARGIN,
                    help="time limits = this x the paper's minutes (paper scale; default %(default)s)")
    ap.add_argument("--dry-run", action="store_true", help="print the reference sweeps without running them")
    own, extra = split_argv(argv)
    args = ap.parse_args(own)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
        preset = load(args.table, args.scale)
        limits.derive(1.0, 1.0, 60, args.margin)  # a bad --margin is refused before anything is composed
    except ValueError as e:
        print(f"error: {e if 'scale' in str(e) or 'table' in str(e) or 'margin' in str(e) else f'--seeds={args.seeds!r}: allowed: integers, comma-separated'}",
              file=sys.stderr)
        return 2
    jobs = plan(preset, seeds, extra)
    if not jobs:
        print(f"error: {args.table} has no block at scale {args.scale}", file=sys.stderr)
        return 2
    refs = reference_jobs(jobs, extra, [f"table={args.table}", f"scale={args.scale}"])
    hl = launcher(extra)
    commands = [[*cmd[:-1], *derived(preset, block, hl, extra, args.margin), cmd[-1]]
                for block, cmd in sweeps(refs)]
    print(f"{args.table} ({args.scale}): {len(jobs)} jobs need {sum(r.stage == 'original' for r in refs)} original and "
          f"{sum(r.stage == 'retrain' for r in refs)} Retrain models, one job each, in {len(commands)} sweeps"
          + ("" if args.scale == "paper" else " (time limits and lock timeout as configured: no estimate at this "
                                               "scale)"), file=sys.stderr)
    runs = {f"references {k}": [sys.executable, "-m", "unlearn.app", *c] for k, c in enumerate(commands, 1)}
    if args.dry_run:
        for cmd in runs.values():
            print(" ".join(cmd[2:]), file=sys.stderr)
        return 0
    outcome = launch(runs, say)  # a failing sweep does not stop the others; signals reach the running one
    return 128 + outcome.signal if outcome.signal else 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
