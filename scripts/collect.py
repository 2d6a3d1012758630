"""Turn a runs CSV into the tidy long format and print paper-style tables (mean ± std over seeds).

    .venv/bin/python scripts/collect.py results/runs.csv --long results/long.csv [--table T1] [--markdown]
"""
import argparse

import pandas as pd

from unlearn.report import summary, to_long


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", help="CSV written by run.py (results_csv)")
    ap.add_argument("--long", help="write the long-format CSV here")
    ap.add_argument("--table", help="keep only rows of this paper table")
    ap.add_argument("--markdown", action="store_true", help="print Markdown instead of plain text")
    args = ap.parse_args()
    long = to_long(pd.read_csv(args.runs))
    if args.table:
        long = long[long["table"] == args.table]
    if args.long:
        long.to_csv(args.long, index=False)
    table = summary(long)
    print(table.to_markdown(index=False) if args.markdown else table.to_string(index=False))


if __name__ == "__main__":
    main()
