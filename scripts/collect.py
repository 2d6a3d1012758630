"""Turn a runs CSV into the tidy long format and print mean ± std over seeds, one row per configuration.

    .venv/bin/python scripts/collect.py results/runs.csv --long results/long.csv [--table table6] [--markdown]
"""
import argparse
import sys

from unlearn.report import summary, to_long
from unlearn.results_csv import read_runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="CSV written by run.py (results_csv)")
    ap.add_argument("--long", help="write the long-format CSV here")
    ap.add_argument("--table", help="keep only rows of this paper table")
    ap.add_argument("--markdown", action="store_true", help="print Markdown instead of plain text")
    args = ap.parse_args()
    runs, problems = read_runs(args.runs)
    for p in problems:
        print(f"{args.runs}: {p}", file=sys.stderr)
    if args.table:
        runs = runs[runs["table"] == args.table]
    if args.long:
        to_long(runs).to_csv(args.long, index=False)
    table = summary(runs)
    print(table.to_markdown(index=False) if args.markdown else table.to_string(index=False))


if __name__ == "__main__":
    main()
