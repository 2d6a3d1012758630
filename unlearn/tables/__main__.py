"""Run and print the paper's tables.

    python -m unlearn.tables run table1 --scale cpu --seeds 0,1,2 [-- extra overrides, e.g. device=cuda]
    python -m unlearn.tables print table1 --scale cpu [--paper arxiv]
    python -m unlearn.tables reprint table1 [--paper arxiv]   the paper's values beside a written table, no runs
    python -m unlearn.tables sentences [table1]    README sentences from results/tables/<table>_<scale>.csv
    python -m unlearn.tables claims                the paper's main claims: hold / do not hold, with the numbers
    python -m unlearn.tables list
    python -m unlearn.tables estimate [table1]     GPU hours at the paper's scale, from the paper's own RTEs

`run` checks every block's data first (a block whose data is absent is reported with where to put it and
how to get it; the table stops at once when no block has data), then launches one multirun per (block, row)
for the seeds whose result is not yet in the results CSV from this very code (same git commit), and prints the
table. Results land in the shared results CSV like any run; tables go to results/tables/.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from unlearn.results import git_commit
from unlearn.results_csv import read_runs
from unlearn.tables import plan as planning
from unlearn.tables import printer
from unlearn.tables.preset import SCALES, available, load


def _runs(path: Path):
    if not path.exists():
        return pd.DataFrame()
    runs, problems = read_runs(path)
    for p in problems:
        print(f"{path}: {p}", file=sys.stderr)
    return runs


def check_blocks(preset, jobs) -> dict[str, str]:
    """{block: reason} for blocks that cannot run: no preset at this scale, or data absent (before any compute)."""
    skipped = {b.name: f"no {preset.scale}-scale preset" for b in preset.blocks if b.overrides is None}
    for block in preset.blocks:
        first = next((j for j in jobs if j.block.name == block.name), None)
        if first is not None and (msg := planning.missing_data(first.cfg)):
            skipped[block.name] = msg
    return skipped


def show(preset, jobs, results: Path, out: Path, skipped: dict[str, str], paper: str = "iclr") -> None:
    runs = _runs(results)
    df = printer.frame(preset, jobs, runs, version=paper)
    notes = {}
    for b in preset.blocks:
        parts = [b.note] if b.note else []
        parts.append(f"skipped: {skipped[b.name].splitlines()[0]}" if b.name in skipped
                     else printer.regime(jobs, runs, b.name))
        notes[b.name] = "; ".join(parts)
    df = df[~df["block"].isin(skipped)] if len(df) else df
    text = printer.markdown(df, preset, notes)
    print(text)
    kept = [j for j in jobs if j.block.name not in skipped]
    paths = printer.write(df, preset, notes, out, printer.table_runs(preset, kept, runs))
    print(f"\nwritten: {', '.join(str(p) for p in paths.values())}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Hydra overrides for every job go after --, e.g. -- device=cuda hydra/launcher=joblib")
    ap.add_argument("command", choices=("run", "print", "reprint", "list", "estimate", "sentences", "claims"))
    ap.add_argument("table", nargs="?", help=f"one of {available()}")
    ap.add_argument("--scale", default="cpu", choices=SCALES)
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds")
    ap.add_argument("--rows", help="comma-separated row ids to run or print (default: all rows of the table)")
    ap.add_argument("--results", default="results/runs.csv", help="the results CSV (results_csv of the runs)")
    ap.add_argument("--out", default="results/tables", help="folder of the printed tables")
    ap.add_argument("--rerun", action="store_true", help="run every job, even those already in the results CSV")
    ap.add_argument("--dry-run", action="store_true", help="list the jobs that would run, run nothing")
    ap.add_argument("--paper", default="iclr", choices=("iclr", "arxiv"),
                    help="the paper version printed beside ours, one per table (a table only one version has "
                         "prints that one)")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []  # Hydra overrides for every job
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    args.overrides = extra
    if args.command == "list":
        for t in available():
            print(f"{t}: {load(t, 'cpu').title}")
        return 0
    if args.command == "estimate":  # paper scale, from the paper's own RTEs
        seeds = len(args.seeds.split(","))
        frames = [printer.gpu_hours(load(t, "paper"), seeds) for t in ([args.table] if args.table else available())]
        est = pd.concat(frames, ignore_index=True)
        print(est.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
        print(f"total: {est['gpu_hours'].sum():.0f} GPU hours (estimate from the paper's RTEs on A5000 GPUs, "
              f"{seeds} seeds, evaluation not included)")
        return 0
    if args.command in ("sentences", "claims"):  # Markdown for the README, from the written table CSVs
        from unlearn.tables import claims, sentences
        tables = [args.table] if args.table else None
        module = sentences if args.command == "sentences" else claims
        print(module.render(Path(args.out), args.scale, tables, args.paper))
        return 0
    if args.table is None:
        ap.error("give a table, e.g. table1")
    if args.command == "reprint":  # the paper's values of one version beside a written table, without its runs
        try:
            paths = printer.reprint(load(args.table, args.scale), Path(args.out), args.paper)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print("written: " + ", ".join(str(p) for p in paths.values()))
        return 0
    try:
        preset = load(args.table, args.scale, args.rows.split(",") if args.rows else None)
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if preset.elsewhere:
        print(f"{args.table}: rows {sorted(preset.elsewhere)} are left out at {args.scale} scale: their values were "
              f"selected toward Retrain at {sorted(set(preset.elsewhere.values()))} scale (make tune "
              f"METHOD=<method> TABLE={args.table} SCALE={args.scale} selects them at this one)", file=sys.stderr)
    results = Path(args.results)
    jobs = planning.plan(preset, seeds, [*args.overrides, f"results_csv={results}"])
    skipped = check_blocks(preset, jobs) if args.command == "run" else {}
    for name, why in skipped.items():
        print(f"{args.table} block {name!r} will not run: {why}", file=sys.stderr)
    if args.command == "run" and len(skipped) == len(preset.blocks):
        print(f"error: no block of {args.table} can run at {args.scale} scale (see above)", file=sys.stderr)
        return 2
    if args.command == "run":
        commit = git_commit(Path(__file__).parent)
        runs = _runs(results)
        done = set()
        if len(runs) and not args.rerun:
            same = runs[runs["git_commit"].astype(str) == commit] if "git_commit" in runs else runs.iloc[:0]
            done = set(zip(same["config_id"].astype(str), same["seed"].astype(int)))
        runnable = [j for j in jobs if j.block.name not in skipped]
        todo = [j for j in runnable if (j.config_id, j.seed) not in done]
        print(f"{args.table} ({args.scale}): {len(runnable)} jobs in blocks that can run, {len(runnable) - len(todo)} "
              f"already done by this code, {len(todo)} to run", file=sys.stderr)
        groups: dict[tuple[str, str], list] = {}
        for j in todo:
            groups.setdefault((j.block.name, j.row.id), []).append(j)
        start = time.time()
        for (block, row), group in groups.items():
            cmd = [sys.executable, "-m", "unlearn.app", "-m", *group[0].overrides,
                   "seed=" + ",".join(str(j.seed) for j in group)]
            print(f"[{time.time() - start:7.0f} s] {block} / {row}: {' '.join(cmd[3:])}", file=sys.stderr)
            if args.dry_run:
                continue
            if subprocess.run(cmd).returncode != 0:
                print(f"error: {block} / {row} failed; fix it and rerun (finished jobs are kept)", file=sys.stderr)
                return 1
        print(f"{args.table} ({args.scale}): ran {len(todo)} jobs in {(time.time() - start) / 60:.1f} min",
              file=sys.stderr)
        if args.dry_run:
            return 0
    show(preset, jobs, results, Path(args.out), skipped, args.paper)
    return 0


if __name__ == "__main__":
    sys.exit(main())
