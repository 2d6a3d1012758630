"""Warm exactly the reference models a paper table will ask for: its jobs' original and Retrain models, trained
(or found in the cache) before the method jobs, which then only load them.

    python -m unlearn.tables.references table1 [--scale paper] [--seeds 0,1,2] [--dry-run] [-- hydra/launcher=slurm ...]
    make references TABLE=table1 SCALE=paper [SEEDS=0,1,2] [ARGS="hydra/launcher=slurm"]

The table's jobs are composed as the table runner composes them (same blocks, rows, seeds and extra overrides, so
the same class drawn per seed and the same cache keys); jobs that differ only in their method share references, so
one `stage=references` job runs per distinct (data, model, paradigm, recipe, evaluation, step mechanics, seed), as
one multirun per block: with a parallel launcher the references of every seed train side by side.
"""
from __future__ import annotations

import argparse
import sys

from unlearn.identity import config_hash, params
from unlearn.tables.launch import launch, say
from unlearn.tables.plan import Job, plan
from unlearn.tables.preset import load

MECHANICS = ("precision", "channels_last", "compile", "cudnn")


def reference_key(job: Job) -> str:
    """What the job's original and Retrain models depend on, but the seed: everything but the method (and the
    labels). The seed is a top-level key, never in `params`, so one key gathers the seeds of a setting."""
    cfg = job.cfg
    keys = {k: v for k, v in params(cfg).items() if not k.startswith("method.")}
    keys.update({k: cfg.get(k) for k in MECHANICS})
    return config_hash({"names": {s: cfg[s].get("name") for s in ("dataset", "model", "paradigm")}, **keys})


def sweeps(jobs: list[Job], extra: list[str], labels: list[str]) -> list[list[str]]:
    """One `stage=references` multirun per distinct reference setting, over the seeds that need it: the block's
    overrides, a row's overrides that are not the method's, the user's, the table's labels."""
    groups: dict[str, tuple[list[str], list[int]]] = {}
    for job in jobs:
        setting = reference_key(job)
        own = [o for o in job.row.overrides if not o.lstrip("+~").startswith(("method", "ablation="))]
        base = [*job.block.overrides, *own, *extra, *labels]
        overrides, seeds = groups.setdefault(setting, (base, []))
        if job.seed not in seeds:
            seeds.append(job.seed)
    return [["-m", "stage=references", *overrides, f"seed={','.join(map(str, sorted(seeds)))}"]
            for overrides, seeds in groups.values()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m unlearn.tables.references", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table")
    ap.add_argument("--scale", default="cpu", choices=("cpu", "paper"))
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds, as the table's")
    ap.add_argument("--dry-run", action="store_true", help="print the reference sweeps without running them")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
        preset = load(args.table, args.scale)
    except ValueError as e:
        print(f"error: {e if 'scale' in str(e) or 'table' in str(e) else f'--seeds={args.seeds!r}: allowed: integers, comma-separated'}",
              file=sys.stderr)
        return 2
    jobs = plan(preset, seeds, extra)
    if not jobs:
        print(f"error: {args.table} has no block at scale {args.scale}", file=sys.stderr)
        return 2
    commands = sweeps(jobs, extra, [f"table={args.table}", f"scale={args.scale}"])
    print(f"{args.table} ({args.scale}): {len(jobs)} jobs share {sum(len(c[-1].split(',')) for c in commands)} "
          f"reference settings in {len(commands)} sweeps", file=sys.stderr)
    runs = {f"references {k}": [sys.executable, "-m", "unlearn.app", *c] for k, c in enumerate(commands, 1)}
    if args.dry_run:
        for cmd in runs.values():
            print(" ".join(cmd[2:]), file=sys.stderr)
        return 0
    outcome = launch(runs, say)  # a failing sweep does not stop the others; signals reach the running one
    return 128 + outcome.signal if outcome.signal else 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
