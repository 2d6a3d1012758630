"""A paper table from the results CSV: mean ± std over seeds in the paper's layout, the paper's own value and
the difference next to each of ours, bold for the best unlearning method per column; Markdown, LaTeX and CSV.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from unlearn.cache import atomic_write
from unlearn.report import ID_COLS, NOT_METRICS, latest_per_job, metric_columns
from unlearn.tables.paper import (SWAPPED_RA_TA, paper_cell, paper_row_cells, paper_values,  # noqa: F401
                                  table_version, unmatched_bu)
from unlearn.tables.preset import Preset

if TYPE_CHECKING:  # the printer reads results; it needs no model code
    from unlearn.tables.plan import Job

LOWER_IS_BETTER = {"RTE", "avg_gap"}
METRIC = {"RTE": "RTE_min", "additional_mia": "mia/forget_vs_test_acc"}  # table column -> results column (RTE
# converted to the block's unit below; additional_mia: arXiv Table 5's attack as unlearn/mia.py forget_vs_test)
HEADER = {"UA": "UA", "MIA": "MIA", "RA": "RA", "TA": "TA", "H": "H", "RTE": "RTE", "avg_gap": "Avg. Gap",
          "sum": "Sum", "additional_mia": "Add. MIA"}
VERSION_NAME = {"iclr": "ICLR", "arxiv": "arXiv"}


def attach_paper(df: pd.DataFrame, preset: Preset, paper: pd.DataFrame | None = None,
                 version: str = "iclr") -> pd.DataFrame:
    """The paper's value, std, source and ours − paper beside each cell of `df`, all from one version of the paper
    (`version`, or the other one for a table only it has): a row never mixes two versions' runs."""
    paper = paper_values() if paper is None else paper
    paper = paper[paper["table"] == preset.table]  # one table's rows: the lookups below run per cell
    used = table_version(paper, preset.table, version)
    blocks = {b.name: b.paper_block for b in preset.blocks}
    rows = {r.id: r for r in preset.rows}
    found = {}
    for (block, row), g in df.groupby(["block", "row"], sort=False) if len(df) else []:
        r = rows.get(row)
        if used is not None and r is not None and block in blocks:
            cols = paper_row_cells(paper, preset.table, blocks[block], r.id, r.method, r.paper_row,
                                   list(dict.fromkeys(g["column"])), used)
            found.update({(block, row, c): v for c, v in cols.items()})
    refs = [found.get(k) or (math.nan, math.nan, "") for k in zip(df["block"], df["row"], df["column"])]
    out = df.copy()
    out["paper"], out["paper_std"], out["paper_source"] = ([x[i] for x in refs] for i in range(3))
    out["paper_version"] = used or ""
    out["delta"] = np.where(out["n"] > 0, out["mean"] - out["paper"], math.nan) if len(out) else []
    return out


def frame(preset: Preset, jobs: list[Job], runs: pd.DataFrame, paper: pd.DataFrame | None = None,
          version: str = "iclr") -> pd.DataFrame:
    """One row per (block, table row, column): ours (mean, std, n), the paper's value (one version: `version`,
    see attach_paper) and the difference."""
    paper = paper_values() if paper is None else paper
    runs = latest_per_job(runs) if len(runs) else runs
    index = {(c, s): i for i, (c, s) in enumerate(zip(runs.get("config_id", []), runs.get("seed", [])))}
    out = []
    for block in preset.blocks:
        for row in (r for r in preset.rows if r.id not in block.foreign_rows):  # another block's (R) row: not
            mine = [j for j in jobs if j.block.name == block.name and j.row.id == row.id]  # printed as n/a here
            found = runs.iloc[[index[(j.config_id, j.seed)] for j in mine if (j.config_id, j.seed) in index]]
            for col in preset.columns:
                key = METRIC.get(col, col)
                vals = found[key].dropna().astype(float) if key in found else pd.Series(dtype=float)
                if col == "RTE" and block.rte_unit == "hr":
                    vals = vals / 60
                mean = float(vals.mean()) if len(vals) else math.nan
                out.append({"table": preset.table, "scale": preset.scale, "block": block.name, "row": row.id,
                            "label": row.label, "method": row.method, "column": col, "mean": mean,
                            "std": float(vals.std()) if len(vals) > 1 else math.nan, "n": len(vals),
                            "expected": len(mine), "unit": block.rte_unit if col == "RTE" else ""})
    df = attach_paper(pd.DataFrame(out), preset, paper, version)
    df["bold"] = False
    for (block, col), g in df[df["method"] != "retrain"].groupby(["block", "column"]):
        if g["mean"].notna().any():
            best = g["mean"].min() if col in LOWER_IS_BETTER else g["mean"].max()
            df.loc[g.index[np.isclose(g["mean"], best, rtol=0, atol=5e-3)], "bold"] = True
    return df


def regime(jobs: list[Job], runs: pd.DataFrame, block: str) -> str:
    """The block's regime (conf/regime/) and the condition the paper's effect needs, measured: does the original
    model fit its training set?"""
    mine = [j for j in jobs if j.block.name == block]
    ids = {(j.config_id, j.seed) for j in mine}
    names = sorted({f"regime {j.cfg.regime.name} ({j.cfg.dataset.name}, {j.cfg.model.name})" for j in mine
                    if "regime" in j.cfg})
    return "; ".join([*names, _fit(ids, runs)])


def _fit(ids: set, runs: pd.DataFrame) -> str:
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


def paper_line(df: pd.DataFrame, preset: Preset, paper: pd.DataFrame | None = None) -> str:
    """Which version of the paper the bracketed numbers come from (one per table), and how to get the other."""
    used = df["paper_version"].iloc[0] if len(df) and "paper_version" in df else ""
    if not used:
        return "no version of the paper has this table"
    tables = sorted({s.split()[1] for s in df["paper_source"] if isinstance(s, str) and s}, key=lambda t: int(t[1:]))
    other = "arxiv" if used == "iclr" else "iclr"
    paper = paper_values() if paper is None else paper
    has_other = table_version(paper, preset.table, other) == other
    return (f"the paper's {VERSION_NAME[used]} version ({', '.join(tables) or 'no matching cells'}; Avg. Gap and "
            f"Sum it does not print are computed from its own cells; "
            + (f"the {VERSION_NAME[other]} version: --paper {other})" if has_other
               else f"the {VERSION_NAME[other]} version has no such table)"))


def block_notes(df: pd.DataFrame, preset: Preset, notes: dict[str, str],
                paper: pd.DataFrame | None = None) -> dict[str, str]:
    """The caller's notes per block plus what the paper's version leaves uncompared (ICLR's unnamed BU row)."""
    used = df["paper_version"].iloc[0] if len(df) and "paper_version" in df else ""
    if not used:
        return dict(notes)
    paper = paper_values() if paper is None else paper
    out = {}
    for b in preset.blocks:
        extra = unmatched_bu(paper, preset.table, b.paper_block, used)
        out[b.name] = "; ".join(x for x in (notes.get(b.name, ""), extra) if x)
    return out


def markdown(df: pd.DataFrame, preset: Preset, notes: dict[str, str]) -> str:
    notes = block_notes(df, preset, notes)
    lines = [f"### {preset.table}: {preset.title} ({preset.scale} scale)", "",
             "Ours: mean ± std over seeds; in brackets the paper's value and ours − paper, from "
             f"{paper_line(df, preset)}. Bold: the best unlearning method per column (highest; lowest for RTE and "
             "Avg. Gap).", ""]
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
        out += [rf"% {preset.table} ({preset.scale} scale), block {block}; in brackets: {paper_line(df, preset)}",
                r"\begin{tabular}{l" + "c" * len(preset.columns) + "}", r"\toprule",
                " & ".join(["Method"] + [HEADER[c] for c in preset.columns]) + r" \\", r"\midrule"]
        for row_id, rg in g.groupby("row", sort=False):
            cells = {r["column"]: cell(r, latex=True) for _, r in rg.iterrows()}
            out.append(" & ".join([rg["label"].iloc[0].replace("_", r"\_")] + [cells[c] for c in preset.columns])
                       + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(out)


NO_RUNS = ["table", "scale", "block", "row", "config_id", "seed"]  # the header of a table with no runs yet
LOCAL = {"run_dir", "wandb_run"}  # paths and ids that mean nothing on another machine


def table_runs(preset: Preset, jobs: list[Job], runs: pd.DataFrame) -> pd.DataFrame:
    """The runs the cells were computed from, one wide row each (the latest run of every job, as in `frame`):
    the cell it feeds (block, row), the run's identity and every metric, so any cell can be traced and recomputed.
    `ran_as` is the table label the run was recorded under (a figure or another table may have run the job)."""
    if not len(runs):
        return pd.DataFrame(columns=NO_RUNS)
    runs = runs.copy()  # consolidated: the results CSV reader leaves a frame of one block per column
    runs["ran_as"] = runs["table"]
    latest = latest_per_job(runs)
    by_job = {(c, s): i for i, (c, s) in enumerate(zip(latest["config_id"], latest["seed"]))}
    mine = [(j, by_job[(j.config_id, j.seed)]) for j in jobs if (j.config_id, j.seed) in by_job]
    if not mine:
        return pd.DataFrame(columns=NO_RUNS)
    found = latest.iloc[[i for _, i in mine]].reset_index(drop=True)
    cells = pd.DataFrame({"table": preset.table, "scale": preset.scale, "block": [j.block.name for j, _ in mine],
                          "row": [j.row.id for j, _ in mine]})
    setup = [c for c in found.columns if c in NOT_METRICS and c not in LOCAL]  # commit, code digest, device, ...
    ident = [c for c in dict.fromkeys(("ran_as", *ID_COLS, *setup)) if c in found and c != "table"]
    out = pd.concat([cells, found[ident], found[metric_columns(found.drop(columns=["ran_as"]))]], axis=1)
    return out.sort_values(["block", "row", "seed"], kind="stable").reset_index(drop=True)


def _atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))  # whole or not at all; a full disk named


def write(df: pd.DataFrame, preset: Preset, notes: dict[str, str], folder: Path,
          runs: pd.DataFrame | None = None) -> dict[str, Path]:
    """results/tables/<table>_<scale>[_arxiv].{md,tex,csv}, and .runs.csv (the rows behind the cells) when `runs` is
    given; each written to a temp file and renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / preset.stem
    paths = {"md": stem.with_suffix(".md"), "tex": stem.with_suffix(".tex"), "csv": stem.with_suffix(".csv")}
    _atomic(paths["md"], markdown(df, preset, notes))
    _atomic(paths["tex"], latex(df, preset))
    _atomic(paths["csv"], df.to_csv(index=False))
    if runs is not None:
        paths["runs"] = folder / f"{preset.stem}.runs.csv"
        _atomic(paths["runs"], runs.to_csv(index=False))
    return paths


def written_notes(md: Path) -> dict[str, str]:
    """{block: its note} of a written table's markdown: the text after "**<block>**: " on each block's line."""
    lines = md.read_text().splitlines() if md.is_file() else []
    return dict(line[2:].split("**: ", 1) for line in lines if line.startswith("**") and "**: " in line)


def reprint(preset: Preset, folder: Path, version: str = "iclr") -> dict[str, Path]:
    """Rewrite a written table with the paper's values of one version, from its own CSV (no runs needed): ours,
    bold and the block notes are kept as written."""
    stem = folder / preset.stem
    if not stem.with_suffix(".csv").exists():
        raise ValueError(f"{stem.with_suffix('.csv')} does not exist; print the table first "
                         f"(python -m unlearn.tables print {preset.table} --scale {preset.scale})")
    df = pd.read_csv(stem.with_suffix(".csv"), keep_default_na=False, na_values=[""])
    df["paper_source"] = df["paper_source"].fillna("") if "paper_source" in df else ""
    notes = {block: "; ".join(part for part in note.split("; ") if not part.startswith("the paper's BU row (ICLR"))
             for block, note in written_notes(stem.with_suffix(".md")).items()}  # the BU note is the printer's
    df = attach_paper(df, preset, version=version)  # own: written again if it still applies
    return write(df, preset, notes, folder)


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

        from unlearn.tables.limits import paper_minutes
        published, rte = paper_minutes(preset, block, paper)
        minutes = {k: m for k, m in published.items() if not math.isnan(m)}
        retrain = minutes.get("retrain", math.nan)
        if math.isnan(retrain) and block.rte_like:
            retrain = rte(block.rte_like, "retrain", "retrain", None)
        ft = minutes.get("ft", rte(block.rte_like, "ft", "ft", None) if block.rte_like else math.nan)
        rows = sum(minutes.get(r.id, ft) for r in preset.rows if r.id not in block.skip_rows and r.method != "retrain")
        total = seeds * (retrain / 0.9 + retrain + rows)
        out.append({"table": preset.table, "block": block.name, "retrain_min": retrain, "rows_min": rows,
                    "gpu_hours": total / 60, "published_rtes": len(minutes)})
    return pd.DataFrame(out)
