"""A paper table from the results CSV: mean ± std over seeds in the paper's layout, the paper's own value and
the difference next to each of ours, bold for the best unlearning method per column; Markdown, LaTeX and CSV.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from unlearn.report import latest_per_job
from unlearn.tables.plan import Job
from unlearn.tables.preset import Preset

PAPER_VALUES = Path(__file__).parent / "paper_values.csv"
LOWER_IS_BETTER = {"RTE", "avg_gap"}
METRIC = {"RTE": "RTE_min", "additional_mia": "mia/forget_vs_test_acc"}  # table column -> results column (RTE
# converted to the block's unit below; additional_mia: arXiv Table 5's attack as unlearn/mia.py forget_vs_test)
HEADER = {"UA": "UA", "MIA": "MIA", "RA": "RA", "TA": "TA", "H": "H", "RTE": "RTE", "avg_gap": "Avg. Gap",
          "sum": "Sum", "additional_mia": "Add. MIA"}
# arXiv Table 14 prints RA and TA in swapped columns: its "TA" holds ~100 and the text says GA at 10 epochs has
# "TA less than 10%", which is the printed "RA" (see /unlearn/tables/README.md).
SWAPPED_RA_TA = {"table14"}


def paper_values(path: Path = PAPER_VALUES) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def paper_cell(paper: pd.DataFrame, table: str, block: str, row_id: str, method: str, paper_row: str | None,
               column: str) -> tuple[float, float, str] | None:
    """(value, std, source) of the paper for one cell: the ICLR version first, then arXiv; ICLR's BU row stands
    in for BS where neither version has a BS row (it equals arXiv's BS in Table 8)."""
    if table in SWAPPED_RA_TA and column in ("RA", "TA"):
        column = {"RA": "TA", "TA": "RA"}[column]
    suffix = ""
    if block.endswith("]") and " [" in block:  # "CIFAR-10 [Random]": rows of block CIFAR-10 labelled "... [Random]"
        block, suffix = block.split(" [", 1)
        suffix = " [" + suffix
    sel = paper[(paper["table"] == table) & (paper["block"] == block) & (paper["column"] == column)]
    sel = sel[sel["row"].str.endswith(suffix)] if suffix else sel
    if paper_row is not None:  # a named row, also an "(R)" one (selected toward Retrain)
        sel = sel[sel["row"] == paper_row + suffix]
    else:
        sel = sel[sel["selection"].isna()]
        sel = sel[sel["method"].isin([row_id])] if (sel["method"] == row_id).any() else sel[sel["method"] == method]
        if sel.empty and method == "bs":
            sel = paper[(paper["table"] == table) & (paper["block"] == block) & (paper["column"] == column)
                        & (paper["method"] == "bu")]
    for version in ("iclr", "arxiv"):
        hit = sel[sel["version"] == version]
        if len(hit):
            r = hit.iloc[0]
            std = float(r["std"]) if pd.notna(r["std"]) else math.nan
            return float(r["value"]), std, f"{version} T{r['paper_table']} line {r['source_line']}"
    return None


def frame(preset: Preset, jobs: list[Job], runs: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (block, table row, column): ours (mean, std, n), the paper's value and the difference."""
    paper = paper_values() if paper is None else paper
    runs = latest_per_job(runs) if len(runs) else runs
    index = {(c, s): i for i, (c, s) in enumerate(zip(runs.get("config_id", []), runs.get("seed", [])))}
    out = []
    for block in preset.blocks:
        for row in preset.rows:
            mine = [j for j in jobs if j.block.name == block.name and j.row.id == row.id]
            found = runs.iloc[[index[(j.config_id, j.seed)] for j in mine if (j.config_id, j.seed) in index]]
            for col in preset.columns:
                key = METRIC.get(col, col)
                vals = found[key].dropna().astype(float) if key in found else pd.Series(dtype=float)
                if col == "RTE" and block.rte_unit == "hr":
                    vals = vals / 60
                ref = paper_cell(paper, preset.table, block.paper_block, row.id, row.method, row.paper_row, col)
                mean = float(vals.mean()) if len(vals) else math.nan
                out.append({"table": preset.table, "scale": preset.scale, "block": block.name, "row": row.id,
                            "label": row.label, "method": row.method, "column": col, "mean": mean,
                            "std": float(vals.std()) if len(vals) > 1 else math.nan, "n": len(vals),
                            "expected": len(mine), "paper": ref[0] if ref else math.nan,
                            "paper_std": ref[1] if ref else math.nan, "paper_source": ref[2] if ref else "",
                            "delta": mean - ref[0] if ref and len(vals) else math.nan,
                            "unit": block.rte_unit if col == "RTE" else ""})
    df = pd.DataFrame(out)
    df["bold"] = False
    for (block, col), g in df[df["method"] != "retrain"].groupby(["block", "column"]):
        if g["mean"].notna().any():
            best = g["mean"].min() if col in LOWER_IS_BETTER else g["mean"].max()
            df.loc[g.index[np.isclose(g["mean"], best, rtol=0, atol=5e-3)], "bold"] = True
    return df


def regime(jobs: list[Job], runs: pd.DataFrame, block: str) -> str:
    """The condition the paper's effect needs, measured: does the original model fit its training set?"""
    ids = {(j.config_id, j.seed) for j in jobs if j.block.name == block}
    if not len(runs):
        return "no results yet"
    runs = latest_per_job(runs)  # one run per job, as in the cells: a job also run by a figure counts once
    sel = runs[[(c, s) in ids for c, s in zip(runs["config_id"], runs["seed"])]]
    if sel.empty or "original/RA" not in sel:
        return "no results yet"
    f, r = sel["forget/size"], sel["retain/size"] if "retain/size" in sel else np.nan
    train = ((100 - sel["original/UA"]) * f + sel["original/RA"] * r) / (f + r)
    return (f"original model: train accuracy {train.mean():.1f}%, test accuracy {sel['original/TA'].mean():.1f}% "
            f"(TA set); original UA {sel['original/UA'].mean():.1f} / MIA {sel['original/MIA'].mean():.1f} vs "
            f"Retrain UA {sel['retrain/UA'].mean():.1f} / MIA {sel['retrain/MIA'].mean():.1f}")


def _num(x: float, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def cell(r, latex: bool = False) -> str:
    if r["expected"] == 0:
        return "n/a"
    if r["n"] == 0:
        ours = "not run"
    else:
        ours = _num(r["mean"]) + ("" if math.isnan(r["std"]) else (r" $\pm$ " if latex else " ± ") + _num(r["std"]))
        if r["bold"]:
            ours = rf"\textbf{{{ours}}}" if latex else f"**{ours}**"
        if r["n"] < r["expected"]:
            ours += f" (n={r['n']})"
    if not math.isnan(r["paper"]):
        delta = "" if math.isnan(r["delta"]) else f", {r['delta']:+.2f}"
        ours += rf" \small{{({_num(r['paper'])}{delta})}}" if latex else f" ({_num(r['paper'])}{delta})"
    return ours


def markdown(df: pd.DataFrame, preset: Preset, notes: dict[str, str]) -> str:
    lines = [f"### {preset.table}: {preset.title} ({preset.scale} scale)", "",
             "Ours: mean ± std over seeds; in brackets the paper's value and ours − paper. Bold: the best "
             "unlearning method per column (highest; lowest for RTE and Avg. Gap).", ""]
    for block, g in df.groupby("block", sort=False):
        unit = g.loc[g["column"] == "RTE", "unit"].iloc[0] if (g["column"] == "RTE").any() else ""
        cols = [HEADER[c] + (f" ({unit})" if c == "RTE" else "") for c in preset.columns]
        lines += [f"**{block}**" + (f": {notes[block]}" if notes.get(block) else ""), "",
                  "| method | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
        for row_id, rg in g.groupby("row", sort=False):
            cells = {r["column"]: cell(r) for _, r in rg.iterrows()}
            lines.append(f"| {rg['label'].iloc[0]} | " + " | ".join(cells[c] for c in preset.columns) + " |")
        lines.append("")
    return "\n".join(lines)


def latex(df: pd.DataFrame, preset: Preset) -> str:
    out = []
    for block, g in df.groupby("block", sort=False):
        out += [rf"% {preset.table} ({preset.scale} scale), block {block}",
                r"\begin{tabular}{l" + "c" * len(preset.columns) + "}", r"\toprule",
                " & ".join(["Method"] + [HEADER[c] for c in preset.columns]) + r" \\", r"\midrule"]
        for row_id, rg in g.groupby("row", sort=False):
            cells = {r["column"]: cell(r, latex=True) for _, r in rg.iterrows()}
            out.append(" & ".join([rg["label"].iloc[0].replace("_", r"\_")] + [cells[c] for c in preset.columns])
                       + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(out)


def write(df: pd.DataFrame, preset: Preset, notes: dict[str, str], folder: Path) -> dict[str, Path]:
    """results/tables/<table>_<scale>.{md,tex,csv}."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{preset.table}_{preset.scale}"
    paths = {"md": stem.with_suffix(".md"), "tex": stem.with_suffix(".tex"), "csv": stem.with_suffix(".csv")}
    paths["md"].write_text(markdown(df, preset, notes))
    paths["tex"].write_text(latex(df, preset))
    df.to_csv(paths["csv"], index=False)
    return paths


def gpu_hours(preset: Preset, seeds: int, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Estimated GPU hours of the table at the paper's scale, from the paper's own measured RTEs (A5000 GPUs):
    per seed, the original model (Retrain's time x |D_tr| / |D_r|, i.e. x 1/0.9 for 10% forgotten) plus
    Retrain plus every row's RTE. A block without published RTEs borrows those of the same experiment in
    another table (`rte_like`), scaled by the row's epochs over 10 (`method.epochs=<n>` rows); rows without a
    published RTE count as FT. Evaluation is not included."""
    paper = paper_values() if paper is None else paper
    out = []
    for block in preset.blocks:
        if block.overrides is None:
            continue

        def rte(table: str, row_id: str, method: str, paper_row: str | None) -> float:
            ref = paper_cell(paper, table, block.paper_block, row_id, method, paper_row, "RTE")
            return math.nan if ref is None else ref[0] * (60 if block.rte_unit == "hr" else 1)

        minutes = {}
        for row in preset.rows:
            m = rte(preset.table, row.id, row.method, row.paper_row)
            if math.isnan(m) and block.rte_like:
                epochs = [int(o.split("=")[1]) for o in row.overrides if o.startswith("method.epochs=")]
                m = rte(block.rte_like, row.method, row.method, None) * (epochs[0] / 10 if epochs else 1)
            if not math.isnan(m):
                minutes[row.id] = m
        retrain = minutes.get("retrain", math.nan)
        if math.isnan(retrain) and block.rte_like:
            retrain = rte(block.rte_like, "retrain", "retrain", None)
        ft = minutes.get("ft", rte(block.rte_like, "ft", "ft", None) if block.rte_like else math.nan)
        rows = sum(minutes.get(r.id, ft) for r in preset.rows if r.id not in block.skip_rows and r.method != "retrain")
        total = seeds * (retrain / 0.9 + retrain + rows)
        out.append({"table": preset.table, "block": block.name, "retrain_min": retrain, "rows_min": rows,
                    "gpu_hours": total / 60, "published_rtes": len(minutes)})
    return pd.DataFrame(out)
