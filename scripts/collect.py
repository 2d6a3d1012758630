"""Turn a runs CSV into the tidy long format and print mean ± std over seeds, one row per configuration.

    .venv/bin/python scripts/collect.py results/runs.csv --long results/long.csv [--table table6] [--markdown]
    .venv/bin/python scripts/collect.py --from-wandb ENTITY/PROJECT [--filter table=table6] ...  (W&B public API)
"""
import argparse
import sys

from unlearn.report import summary, to_long
from unlearn.results_csv import read_runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="?", help="CSV written by run.py (results_csv)")
    ap.add_argument("--from-wandb", metavar="ENTITY/PROJECT",
                    help="rebuild the runs from this W&B project's finished runs instead of a CSV (needs a login)")
    ap.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                    help="with --from-wandb: only runs whose results column KEY is VALUE (repeatable)")
    ap.add_argument("--long", help="write the long-format CSV here")
    ap.add_argument("--table", help="keep only rows of this paper table")
    ap.add_argument("--markdown", action="store_true", help="print Markdown instead of plain text")
    args = ap.parse_args()
    if (args.runs is None) == (args.from_wandb is None):
        ap.error("give either a runs CSV or --from-wandb ENTITY/PROJECT")
    if args.filter and not args.from_wandb:
        ap.error("--filter goes with --from-wandb (use --table for a CSV)")
    if args.from_wandb:
        from unlearn.wandb_log import pull_runs
        try:
            runs, problems = pull_runs(args.from_wandb, args.filter)
        except ValueError as e:
            ap.error(str(e))
    else:
        runs, problems = read_runs(args.runs)
    for p in problems:
        print(f"{args.runs or args.from_wandb}: {p}", file=sys.stderr)
    if args.table:
        runs = runs[runs["table"] == args.table]
    if args.long:
        to_long(runs).to_csv(args.long, index=False)
    table = summary(runs)
    print(table.to_markdown(index=False) if args.markdown else table.to_string(index=False))


if __name__ == "__main__":
    main()
