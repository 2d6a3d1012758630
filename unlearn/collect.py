"""`unlearn collect`: a runs CSV to the tidy long format, and mean ± std over seeds, one row per configuration.

    unlearn collect results/runs.csv --long results/long.csv [--table table6] [--markdown]
    unlearn collect --from-wandb ENTITY/PROJECT [--filter table=table6] ...  (W&B public API)
    unlearn collect --from-runs results/multirun/2026-... [DIR ...]  (every metrics.json below)
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import pandas as pd

from unlearn.cache import atomic_write
from unlearn.cli import check_results_arg
from unlearn.report import summary, to_long
from unlearn.results_csv import read_runs


def read_run_dirs(roots: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The rows a shared results CSV would hold, rebuilt from every run's metrics.json under `roots` (no shared
    file, so no lock: for file systems whose locks are unreliable, or runs with results_csv=null)."""
    rows, problems = [], []
    for root in roots:
        paths = sorted(Path(root).rglob("metrics.json"))
        if not paths:
            problems.append(f"{root}: no metrics.json found")
        for path in paths:
            try:
                saved = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                problems.append(f"{path}: unreadable ({e}), skipped")
                continue
            if not isinstance(saved, dict) or not isinstance(saved.get("metrics"), dict):
                problems.append(f"{path}: holds no metrics, skipped")
                continue
            ident = {k: v for k, v in saved.items() if k not in ("metrics", "config", "wandb")}
            rows.append({k: ("" if v is None else v) for k, v in {**ident, **saved["metrics"]}.items()})
    if not rows:
        return pd.DataFrame(), problems
    buf = io.StringIO()  # through CSV text, so values are typed exactly as when read from results_csv
    writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)), restval="")
    writer.writeheader()
    writer.writerows(rows)
    buf.seek(0)
    return pd.read_csv(buf), problems


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,  # prog: `unlearn collect` or `unlearn report`
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="?", help="the results CSV of the runs (results_csv)")
    ap.add_argument("--from-wandb", metavar="ENTITY/PROJECT",
                    help="rebuild the runs from this W&B project's finished runs instead of a CSV (needs a login)")
    ap.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                    help="with --from-wandb: only runs whose results column KEY is VALUE (repeatable)")
    ap.add_argument("--from-runs", nargs="+", metavar="DIR",
                    help="rebuild the runs from every metrics.json under these run or sweep folders instead of a CSV")
    ap.add_argument("--long", help="write the long-format CSV here")
    ap.add_argument("--table", help="keep only rows of this paper table")
    ap.add_argument("--markdown", action="store_true", help="print Markdown instead of plain text")
    args = ap.parse_args(argv)
    if sum(x is not None for x in (args.runs, args.from_wandb, args.from_runs)) != 1:
        ap.error("give exactly one of: a runs CSV, --from-wandb ENTITY/PROJECT, --from-runs DIR ...")
    if args.filter and not args.from_wandb:
        ap.error("--filter goes with --from-wandb (use --table for a CSV)")
    if args.from_wandb:
        from unlearn.wandb_log import pull_runs
        try:
            runs, problems = pull_runs(args.from_wandb, args.filter)
        except ValueError as e:
            ap.error(str(e))
    elif args.from_runs:
        runs, problems = read_run_dirs(args.from_runs)
        if runs.empty:
            ap.error(f"no run results under {' '.join(args.from_runs)}")
    else:
        check_results_arg(args.runs, "the runs CSV", must_exist=True)  # run folders go with --from-runs
        runs, problems = read_runs(args.runs)
    for p in problems:
        print(f"{args.runs or args.from_wandb or 'runs'}: {p}", file=sys.stderr)
    if runs.empty:
        ap.error(f"{args.runs or args.from_wandb}: no complete rows")
    if args.table:
        runs = runs[runs["table"] == args.table]
    try:
        if args.long:  # written whole or not at all (temp file + rename)
            text = to_long(runs).to_csv(index=False)
            atomic_write(args.long, lambda f: f.write(text.encode("utf-8")))
        table = summary(runs)
    except ValueError as e:  # a CSV without the identity columns
        ap.error(f"{args.runs or args.from_wandb or 'runs'}: {e}")
    print(table.to_markdown(index=False) if args.markdown else table.to_string(index=False))


if __name__ == "__main__":
    from unlearn.cli import one_line_errors
    one_line_errors(main)  # a full disk: one line, exit status 2
