"""Run and print the paper's tables.

    python -m unlearn.tables run table1 --scale cpu --seeds 0,1,2 [-- extra overrides, e.g. device=cuda]
    python -m unlearn.tables print table1 --scale cpu [--paper arxiv]
    python -m unlearn.tables run table8 --variant arxiv   UGradSL/UGradSL+ with arXiv's adaptive alpha, beside arXiv
    python -m unlearn.tables reprint table1 [--paper arxiv]   the paper's values beside a written table, no runs
    python -m unlearn.tables sentences [table1]    README sentences from results/tables/<table>_<scale>.csv (all: also
                                                   written to results/tables/sentences_<scale>.md; claims alike)
    python -m unlearn.tables claims                the paper's main claims: hold / do not hold, with the numbers
    python -m unlearn.tables list
    python -m unlearn.tables estimate [table1]     GPU hours at the paper's scale, from the paper's own RTEs

`run` checks every block's data first (a block whose data is absent is reported with where to put it and
how to get it; the table stops at once when no block has data), then launches one multirun per (block, row)
for the seeds whose result is not yet in the results CSV from this very code on this setup (the job's
`config_id` and seed, the `code_digest` of the package's sources and configs, device, threads, CPU instruction
set and torch version; see unlearn/tables/launch.py), and prints the table. A failing row is reported and the
other rows run (exit status 1 at the end, with the list); SIGTERM / SIGINT reach the running job, and the
runner says what finished. The printed table shows every seed the results hold; a run that holds fewer results
than the table already written (`--seeds 0` after three seeds) writes beside it, in <out>/partial/. Results land
in the shared results CSV like any run; tables go to results/tables/.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from unlearn.cli import (check_results_arg, one_line_errors, override_problem, override_values, parse_seeds, refuse,
                         split_argv)
from unlearn.results_csv import read_runs
from unlearn.tables import launch
from unlearn.tables import plan as planning
from unlearn.tables import printer
from unlearn.tables import preset as preset_files
from unlearn.tables.preset import SCALES, VARIANTS, available, load


def _runs(path: Path):
    if isinstance(path, launch.RunDirs):  # results_csv=null: every run folder's metrics.json
        return path.read()
    if not path.exists():
        return pd.DataFrame()
    runs, problems = read_runs(path)
    for p in problems:
        print(f"{path}: {p}", file=sys.stderr)
    return runs


def preset_problem(preset, extra: list[str]) -> str | None:
    """One line naming the preset file, block and row whose overrides (or the user's, after --) Hydra would
    refuse, before anything is composed (`unlearn.cli.override_problem`)."""
    for block in (b for b in preset.blocks if b.overrides is not None):
        for row in preset.rows:
            problem = override_problem([*block.overrides, *row.overrides, *extra])
            if problem is not None:
                return f"{preset_files.PRESETS / preset.table}.yaml, block {block.name!r}, row {row.id!r}: {problem}"
    return None


def check_blocks(preset, jobs, download: bool = True) -> dict[str, str]:
    """{block: reason} for blocks that cannot run: no preset at this scale, or data absent (before any compute)."""
    skipped = {b.name: f"no {preset.scale}-scale preset" for b in preset.blocks if b.overrides is None}
    for block in preset.blocks:
        first = next((j for j in jobs if j.block.name == block.name), None)
        if first is not None and (msg := planning.missing_data(first.cfg, download)):
            skipped[block.name] = msg
    return skipped


def show(preset, jobs, results: Path, out: Path, skipped: dict[str, str], paper: str = "iclr") -> None:
    runs = _runs(results)
    jobs = launch.seeds_present(jobs, runs)  # every seed the results hold, not only those just run
    df = printer.frame(preset, jobs, runs, version=paper)
    notes = {}
    for b in preset.blocks:
        parts = [b.note] if b.note else []
        why = skipped.get(b.name, "").splitlines()[0].replace(f"{Path.cwd()}/", "") if b.name in skipped else ""
        parts.append(f"skipped: {why}" if b.name in skipped  # paths relative to the checkout, as in the preset
                     else printer.regime(jobs, runs, b.name))
        notes[b.name] = "; ".join(parts)
    kept = [j for j in jobs if j.block.name not in skipped]
    behind = printer.table_runs(preset, kept, runs)
    df, notes, behind = keep_written_blocks(df, notes, behind, preset, out, paper)
    out = beside(df, preset, out)  # skipped blocks stay, with the paper's values and why they did not run
    text = printer.markdown(df, preset, notes)
    print(text)
    paths = printer.write(df, preset, notes, out, behind)
    print(f"\nwritten: {', '.join(str(p) for p in paths.values())}")


KEPT = "kept as written before: the results CSV read here holds none of this block's runs"


def keep_written_blocks(df: pd.DataFrame, notes: dict[str, str], behind: pd.DataFrame, preset, out: Path,
                        paper: str) -> tuple[pd.DataFrame, dict[str, str], pd.DataFrame]:
    """A block of which the results CSV holds no run, but the table already written does, is kept as written (its
    cells, note and rows behind them; the paper's values of `paper` attached again), so printing one block's new
    runs on a machine that lacks the others' does not empty them. Blocks with any run here are printed from the
    runs; a block holding fewer runs than the written one still sends the whole table to partial/ (`beside`)."""
    written_csv = out / f"{preset.stem}.csv"
    if not written_csv.is_file():
        return df, notes, behind
    written = pd.read_csv(written_csv, keep_default_na=False, na_values=[""])
    if not {"block", "row", "column", "n"} <= set(written.columns):
        return df, notes, behind
    has = lambda frame, b: bool((frame.loc[frame["block"] == b, "n"].fillna(0) > 0).any())  # noqa: E731
    keep = [b.name for b in preset.blocks if not has(df, b.name) and has(written, b.name)]
    if not keep:
        return df, notes, behind
    order = {b.name: i for i, b in enumerate(preset.blocks)}
    merged = pd.concat([df[~df["block"].isin(keep)], written[written["block"].isin(keep)][df.columns.intersection(
        written.columns)]], ignore_index=True)
    merged = merged.sort_values("block", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    merged = printer.attach_paper(merged, preset, version=paper)
    written_notes = printer.written_notes(out / f"{preset.stem}.md")
    for name in keep:
        old = written_notes.get(name, "")
        skip = notes.get(name, "") if notes.get(name, "").startswith("skipped:") else ""  # why it cannot run here
        notes[name] = "; ".join(part for part in (skip, old.replace(f"; {KEPT}", "").replace(KEPT, ""), KEPT) if part)
    runs_csv = out / f"{preset.stem}.runs.csv"
    if runs_csv.is_file():
        before = pd.read_csv(runs_csv, low_memory=False)
        if "block" in before:
            behind = pd.concat([behind, before[before["block"].isin(keep)]], ignore_index=True)
    print(f"{', '.join(keep)}: no run of {'this block' if len(keep) == 1 else 'these blocks'} in the results read "
          f"here; kept as written in {written_csv}", file=sys.stderr)
    return merged, notes, behind


def beside(df: pd.DataFrame, preset, out: Path) -> Path:
    """`out`, or `out/partial` when the table already written there holds more runs in some cell than this one:
    a partial run never overwrites a fuller (committed) table."""
    written = out / f"{preset.stem}.csv"
    cells = launch.fuller(df, pd.read_csv(written)) if written.is_file() else []
    if not cells:
        return out
    print(f"{written} holds more runs than this table in {len(cells)} cell(s) (e.g. {cells[0]}); it is kept, and "
          f"this table is written beside it in {out / 'partial'}", file=sys.stderr)
    return out / "partial"


def emulated_jobs(jobs) -> str | None:
    """Said once before a table's CPU jobs start when they ask for bf16 on a CPU that emulates it (the tier's
    tables: hours where the machine they were written on took minutes)."""
    from unlearn.steps import EMULATED_BF16, emulated_bf16
    from unlearn.workspace import resolve_device
    slow = [j for j in jobs if j.cfg.device in ("auto", "cpu")  # (device=cuda never runs on the CPU)
            and emulated_bf16(j.cfg, resolve_device(str(j.cfg.device)))]
    if not slow:
        return None
    return f"{len(slow)} of the {len(jobs)} jobs to run ask for precision=bf16 and {EMULATED_BF16}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Hydra overrides for every job go after --, e.g. -- device=cuda hydra/launcher=joblib")
    ap.add_argument("command", choices=("run", "print", "reprint", "list", "estimate", "sentences", "claims", "submit"))
    ap.add_argument("table", nargs="?", help=f"one of {available()}")
    ap.add_argument("--scale", default="cpu", choices=SCALES)
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds")
    ap.add_argument("--rows", help="comma-separated row ids to run or print (default: all rows of the table)")
    ap.add_argument("--blocks", help="comma-separated block names to run (default: every block); the table printed "
                                     "afterwards shows every block")
    ap.add_argument("--results", default="results/runs.csv", help="the results CSV (results_csv of the runs)")
    ap.add_argument("--out", default="results/tables", help="folder of the printed tables")
    ap.add_argument("--rerun", action="store_true", help="run every job, even those already in the results CSV")
    ap.add_argument("--dry-run", action="store_true", help="list the jobs that would run, run nothing")
    ap.add_argument("--paper", default=None, choices=("iclr", "arxiv"),
                    help="the paper version printed beside ours, one per table (a table only one version has "
                         "prints that one); default: the variant's")
    ap.add_argument("--variant", default="iclr", choices=VARIANTS,
                    help="arxiv: UGradSL and UGradSL+ rows run with the adaptive per-sample alpha (arXiv's Algorithm "
                         "1) and print beside arXiv's numbers, to <table>_<scale>_arxiv.*")
    argv = list(sys.argv[1:] if argv is None else argv)
    own, extra = split_argv(argv)  # extra: Hydra overrides for every job
    args = ap.parse_args(own)
    args.overrides = extra
    if args.variant == "arxiv" and args.paper == "iclr":
        refuse("--variant arxiv --paper iclr would print arXiv's method beside ICLR's numbers; allowed with "
               "--variant arxiv: --paper arxiv (the default)")
    args.paper = args.paper or args.variant
    if args.command == "submit":  # the whole table as one job array, returning at once (unlearn/tables/submit.py)
        return __import__("unlearn.tables.submit", fromlist=["main"]).main(argv[1:])
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as e:
        refuse(str(e))
    check_results_arg(args.results, "--results", args.command == "print" and not override_values(
        args.overrides, "results_csv"))  # results_csv=null: run folders
    if args.command == "list":
        for t in available():
            print(f"{t}: {load(t, 'cpu').title}")
        return 0
    if args.command == "estimate":  # paper scale, from the paper's own RTEs and the measured MIA fits
        from unlearn.tables import mia_cost
        presets = [load(t, "paper") for t in ([args.table] if args.table else available())]
        est = pd.concat([printer.gpu_hours(p, len(seeds)) for p in presets], ignore_index=True)
        try:
            bench = mia_cost.read()
        except FileNotFoundError as e:
            bench, note = None, f"MIA not counted: {e}"
        if bench is not None:
            mia = pd.concat([mia_cost.table_hours(p, len(seeds), bench) for p in presets], ignore_index=True)
            est = est.merge(mia, on=["table", "block"], how="left")
            note = (f"the MIA's attack fits (eval.mia_solver=svc, the default): {est['mia_svc_cpu_hours'].sum():.0f} "
                    f"CPU hours on one core per job, the GPU waiting; eval.mia_solver=binned: "
                    f"{est['mia_binned_cpu_hours'].sum():.1f} (from {mia_cost.BENCH.name}, scripts/bench_mia.py)")
        print(est.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
        print(f"total: {est['gpu_hours'].sum():.0f} GPU hours (estimate from the paper's RTEs on A5000 GPUs, "
              f"{len(seeds)} seeds, evaluation not included); {note}")
        return 0
    if args.command in ("sentences", "claims"):  # Markdown for the README, from the written table CSVs
        from unlearn.tables import claims, sentences
        tables = [args.table] if args.table else None
        module = sentences if args.command == "sentences" else claims
        text = module.render(Path(args.out), args.scale, tables, args.paper)
        print(text)
        if tables is None:  # the whole set: kept beside the tables it was generated from
            path = Path(args.out) / f"{args.command}_{args.scale}.md"
            printer._atomic(path, text + "\n")
            print(f"written: {path}", file=sys.stderr)
        return 0
    if args.table is None:
        ap.error("give a table, e.g. table1")
    if args.command == "reprint":  # the paper's values of one version beside a written table, without its runs
        try:
            paths = printer.reprint(load(args.table, args.scale, variant=args.variant), Path(args.out), args.paper)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print("written: " + ", ".join(str(p) for p in paths.values()))
        return 0
    try:
        preset = load(args.table, args.scale, args.rows.split(",") if args.rows else None, args.variant)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    blocks = args.blocks.split(",") if args.blocks else [b.name for b in preset.blocks]
    if unknown := [b for b in blocks if b not in {x.name for x in preset.blocks}]:
        refuse(f"--blocks {unknown} are not blocks of {args.table}; allowed: {[b.name for b in preset.blocks]}")
    if preset.elsewhere:
        print(f"{args.table}: rows {sorted(preset.elsewhere)} are left out at {args.scale} scale: their values were "
              f"selected toward Retrain at {sorted(set(preset.elsewhere.values()))} scale (make tune "
              f"METHOD=<method> TABLE={args.table} SCALE={args.scale} selects them at this one)", file=sys.stderr)
    results = launch.source(args.results, args.overrides)  # the CSV, or the run folders under results_csv=null
    if (problem := preset_problem(preset, args.overrides)) is not None:
        refuse(problem)
    jobs = planning.plan(preset, seeds, [*args.overrides, *launch.csv_override(results)])
    skipped = check_blocks(preset, jobs, download=not args.dry_run) if args.command == "run" else {}
    for name, why in skipped.items():
        print(f"{args.table} block {name!r} will not run: {why}", file=sys.stderr)
    if args.command == "run" and len(skipped) == len(preset.blocks):
        print(f"error: no block of {args.table} can run at {args.scale} scale (see above)", file=sys.stderr)
        return 2
    failed: list[tuple[str, int]] = []
    if args.command == "run":
        runnable = [j for j in jobs if j.block.name not in skipped and j.block.name in blocks]
        todo = [j for j, ok in zip(runnable, launch.done(runnable, _runs(results))) if args.rerun or not ok]
        launch.say(f"{args.table} ({args.scale}): {len(runnable)} jobs in blocks that can run and were asked for, "
                   f"{len(runnable) - len(todo)} already done by this code on this setup, {len(todo)} to run")
        if slow := emulated_jobs(todo):
            launch.say(f"warning: {slow}")
        groups: dict[str, list] = {}
        for j in todo:
            groups.setdefault(f"{j.block.name} / {j.row.id}", []).append(j)
        commands = {label: [sys.executable, "-m", "unlearn.app", "-m", *group[0].overrides,
                            "seed=" + ",".join(str(j.seed) for j in group)] for label, group in groups.items()}
        if args.dry_run:
            for label, cmd in commands.items():
                launch.say(f"{label}: {' '.join(cmd[3:])}")
            return 0
        start, since = time.time(), datetime.now(timezone.utc).isoformat(timespec="microseconds")
        outcome = launch.launch(commands, launch.say)
        runs = _runs(results)
        new = runs[runs["timestamp"].astype(str) >= since] if "timestamp" in runs else runs.iloc[:0]
        wrote = set(zip(new["config_id"].astype(str), new["seed"].astype(int))) if len(new) else set()
        ran = [f"{j.block.name} / {j.row.id} seed {j.seed}" for j in todo if (j.config_id, j.seed) in wrote]
        launch.say(f"{args.table} ({args.scale}): {len(ran)} of {len(todo)} jobs finished in "
                   f"{(time.time() - start) / 60:.1f} min")
        if outcome.signal is not None:
            left = [label for label in commands if label not in outcome.finished]
            launch.say(f"{args.table}: stopped by {signal.Signals(outcome.signal).name}, passed on to the running "
                       f"job. Finished: {', '.join(ran) or 'no job'}. Not finished: rows {', '.join(left)}. The same "
                       f"command runs what is left (finished jobs are kept)")
            return 128 + outcome.signal
        failed = outcome.failed
    show(preset, jobs, results, Path(args.out), skipped, args.paper)
    return launch.failures(args.table, failed)


if __name__ == "__main__":
    sys.exit(one_line_errors(main))
