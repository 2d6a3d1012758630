"""The paper's own numbers (paper_values.csv), read one version at a time.

The paper exists in two versions whose tables come from different runs (ICLR 2025 and arXiv; e.g. Table 1's
UGradSL on CIFAR-10 has UA 91.33 in one and 94.99 in the other). A printed table takes every paper cell from ONE
version, so a row never combines numbers of two runs: Avg. Gap and Sum, printed only by arXiv, are computed for
the ICLR version from its own UA, MIA, RA and TA and its own Retrain row, the way arXiv computes them (its printed
gaps and sums agree with that rule up to rounding and a handful of typos).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

PAPER_VALUES = Path(__file__).parent / "paper_values.csv"
VERSIONS = ("iclr", "arxiv")
GAP_COLUMNS = ("UA", "MIA", "RA", "TA")  # unlearn/metrics.py GAP_KEYS: Avg. Gap = mean |x - Retrain's x|
# arXiv Table 14 prints RA and TA in swapped columns: its "TA" holds ~100 and the text says GA at 10 epochs has
# "TA less than 10%", which is the printed "RA" (see /unlearn/tables/README.md).
SWAPPED_RA_TA = {"table14"}


def paper_values(path: Path = PAPER_VALUES) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def table_version(paper: pd.DataFrame, table: str, wanted: str = "iclr") -> str | None:
    """The version a table's paper cells come from: `wanted` when it has the table, else the one that has it
    (tables 5, 13 and 14 are arXiv only, 9 and 10 ICLR only); None when neither has it."""
    if wanted not in VERSIONS:
        raise ValueError(f"paper version {wanted!r} is invalid; allowed: {VERSIONS}")
    have = set(paper.loc[paper["table"] == table, "version"])
    for version in (wanted, *[v for v in VERSIONS if v != wanted]):
        if version in have:
            return version
    return None


def _block_rows(paper: pd.DataFrame, table: str, block: str) -> tuple[pd.DataFrame, str]:
    suffix = ""
    if block.endswith("]") and " [" in block:  # "CIFAR-10 [Random]": rows of block CIFAR-10 labelled "... [Random]"
        block, suffix = block.split(" [", 1)
        suffix = " [" + suffix
    sel = paper[(paper["table"] == table) & (paper["block"] == block)]
    return (sel[sel["row"].str.endswith(suffix)] if suffix else sel), suffix


def bu_stands_for(paper: pd.DataFrame, table: str, block: str) -> str | None:
    """Which of arXiv's boundary rows ('be' or 'bs') ICLR's single "BU" row of this block is, or None.

    ICLR reports one "boundary unlearning" row without naming the variant; arXiv reports Boundary Expanding (BE)
    and Boundary Shrink (BS). Where ICLR's BU equals one of them in UA, MIA, RA and TA it is that run (Table 7
    SVHN: BE; Table 8 CIFAR-10 and SVHN: BS); elsewhere (Tables 1, 2, 3, 7 CIFAR-100; 9 and 10, ICLR only) it
    matches neither and is compared with no row of ours."""
    rows, _ = _block_rows(paper, table, block)
    wide = rows[rows["selection"].isna()].pivot_table(index=["version", "method"], columns="column", values="value",
                                                      aggfunc="first")
    if ("iclr", "bu") not in wide.index:
        return None
    bu = wide.loc[("iclr", "bu"), list(GAP_COLUMNS)].to_numpy(float)
    for method in ("be", "bs"):
        if ("arxiv", method) in wide.index:
            other = wide.loc[("arxiv", method), list(GAP_COLUMNS)].to_numpy(float)
            if np.allclose(bu, other, rtol=0, atol=5e-3):
                return method
    return None


def _select(rows: pd.DataFrame, suffix: str, row_id: str, method: str, paper_row: str | None) -> pd.DataFrame:
    if paper_row is not None:  # a named row, also an "(R)" one (selected toward Retrain)
        return rows[rows["row"] == paper_row + suffix]
    plain = rows[rows["selection"].isna()]
    return plain[plain["method"] == row_id] if (plain["method"] == row_id).any() else plain[plain["method"] == method]


def paper_cell(paper: pd.DataFrame, table: str, block: str, row_id: str, method: str, paper_row: str | None,
               column: str, version: str | None = None) -> tuple[float, float, str] | None:
    """(value, std, source) of the paper for one cell, from `version` only. Avg. Gap and Sum that the version does
    not print are computed from its own UA, MIA, RA, TA (and its Retrain row's). version=None: ICLR, else arXiv,
    cell by cell (for estimates that need any published number, e.g. RTEs; never for a printed table)."""
    if version is None:
        for v in VERSIONS:
            if (hit := paper_cell(paper, table, block, row_id, method, paper_row, column, v)) is not None:
                return hit
        return None
    return paper_row_cells(paper, table, block, row_id, method, paper_row, [column], version)[column]


def paper_row_cells(paper: pd.DataFrame, table: str, block: str, row_id: str, method: str, paper_row: str | None,
                    columns: list[str], version: str) -> dict[str, tuple[float, float, str] | None]:
    """paper_cell for several columns of one row (the row is looked up once)."""
    rows, suffix = _block_rows(paper, table, block)
    rows = rows[rows["version"] == version]
    if version == "iclr" and method in ("be", "bs") and paper_row is None:
        if bu_stands_for(paper, table, block) != method:
            return dict.fromkeys(columns)
        row_id = method = "bu"
    sel = _select(rows, suffix, row_id, method, paper_row).drop_duplicates("column").set_index("column")
    out = {}
    for column in columns:
        printed = {"RA": "TA", "TA": "RA"}.get(column, column) if table in SWAPPED_RA_TA else column
        if printed in sel.index:
            r = sel.loc[printed]
            std = float(r["std"]) if pd.notna(r["std"]) else math.nan
            out[column] = float(r["value"]), std, f"{version} T{r['paper_table']} line {r['source_line']}"
        elif column in ("avg_gap", "sum") and set(GAP_COLUMNS) <= set(sel.index):
            out[column] = _computed(sel, rows, suffix, column, version)
        else:
            out[column] = None
    return out


def _computed(mine: pd.DataFrame, rows: pd.DataFrame, suffix: str, column: str,
              version: str) -> tuple[float, float, str] | None:
    """Avg. Gap or Sum of a row from its own UA, MIA, RA, TA (the gap against the same version's Retrain row)."""
    lines = f"{version} T{mine['paper_table'].iloc[0]} line {mine['source_line'].iloc[0]}"
    if column == "sum":
        return float(sum(mine.loc[c, "value"] for c in GAP_COLUMNS)), math.nan, f"{lines}, computed"
    retrain = rows[(rows["method"] == "retrain") & rows["selection"].isna()]
    retrain = retrain[retrain["row"].str.endswith(suffix)] if suffix else retrain
    ref = retrain.drop_duplicates("column").set_index("column")
    if not set(GAP_COLUMNS) <= set(ref.index):
        return None
    gap = float(np.mean([abs(mine.loc[c, "value"] - ref.loc[c, "value"]) for c in GAP_COLUMNS]))
    return gap, math.nan, f"{lines}, computed with Retrain's line {ref['source_line'].iloc[0]}"


def unmatched_bu(paper: pd.DataFrame, table: str, block: str, version: str) -> str:
    """A note for a block whose ICLR "BU" row stands for neither of our boundary rows (printed, not compared)."""
    if version != "iclr" or bu_stands_for(paper, table, block) is not None:
        return ""
    rows, _ = _block_rows(paper, table, block)
    bu = rows[(rows["version"] == "iclr") & (rows["method"] == "bu")].drop_duplicates("column")
    if bu.empty:
        return ""
    cells = ", ".join(f"{c} {v:.2f}" for c, v in zip(bu["column"], bu["value"]))
    return (f"the paper's BU row (ICLR, line {bu['source_line'].iloc[0]}: {cells}) does not say which boundary "
            f"method it is and matches neither arXiv's BE nor BS, so it is compared with neither")
