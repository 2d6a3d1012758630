"""The README's per-table sentences, generated from the written tables (results/tables/<table>_<scale>.csv).

Each block gets one bullet: who is closest to Retrain (smallest Avg. Gap) and who is farthest, the ranges of UA
and TA against Retrain's, and whether the paper's claim for that table holds in our numbers, computed from them
(the paper's cells from one version, as the printer shows them). Nothing here is written by hand, so a sentence
cannot disagree with the table it describes.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from unlearn.cli import override_values
from unlearn.tables.preset import available, load
from unlearn.tables.printer import VERSION_NAME, attach_paper
from unlearn.tables.select import LABELS

NAMES = {**LABELS, "retrain": "Retrain"}


def read(folder: Path, table: str, scale: str, version: str = "iclr") -> pd.DataFrame | None:
    """The written table with the paper's cells of one version re-attached (None if it was never written)."""
    path = folder / f"{table}_{scale}.csv"
    if not path.exists():
        return None
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    return attach_paper(df, load(table, scale), version=version)


def name(row: pd.Series) -> str:
    label = str(row["label"])
    return NAMES.get(label, label)


def cells(df: pd.DataFrame, block: str, column: str, who: str = "ours") -> pd.DataFrame:
    """One line per row of `block` that has a value in `column`: name, method, value, std (ours or the paper's)."""
    g = df[(df["block"] == block) & (df["column"] == column)]
    g = g[g["n"] > 0] if who == "ours" else g
    value, std = ("mean", "std") if who == "ours" else ("paper", "paper_std")
    g = g[g[value].notna()]
    return pd.DataFrame({"row": g["row"], "name": [name(r) for _, r in g.iterrows()], "method": g["method"],
                         "value": g[value].astype(float), "std": g[std].astype(float)}).reset_index(drop=True)


def _fmt(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"


def _list(c: pd.DataFrame) -> str:
    return ", ".join(f"{n} {_fmt(v)}" for n, v in zip(c["name"], c["value"]))


def _ordinal(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def closest(df: pd.DataFrame, block: str) -> str:
    """Who is closest to Retrain and who farthest, by our Avg. Gap (the minimum really is the first named)."""
    gap = cells(df, block, "avg_gap")
    gap = gap[gap["method"] != "retrain"].sort_values("value", kind="stable")
    if gap.empty:
        return ""
    return (f"closest to Retrain (smallest Avg. Gap): {_list(gap.head(3))}; farthest: {_list(gap.tail(1))}")


def _who(c: pd.DataFrame, value: float) -> str:
    """The rows at `value` (ties within rounding): two named, the rest counted."""
    names = list(c.loc[(c["value"] - value).abs() < 5e-3, "name"])
    return ", ".join(names[:2]) + (f" and {len(names) - 2} more" if len(names) > 2 else "")


def ranges(df: pd.DataFrame, block: str, columns=("UA", "TA")) -> str:
    parts = []
    for col in columns:
        c = cells(df, block, col)
        retrain, rest = c[c["method"] == "retrain"], c[c["method"] != "retrain"]
        if rest.empty:
            continue
        lo, hi = rest["value"].min(), rest["value"].max()
        ref = f" against Retrain's {_fmt(retrain['value'].iloc[0])}" if len(retrain) else ""
        parts.append(f"{col} {_fmt(lo)} ({_who(rest, lo)}) to {_fmt(hi)} ({_who(rest, hi)}){ref}")
    return ("unlearning rows span " + "; ".join(parts)) if parts else ""


def paper_closest(df: pd.DataFrame, block: str) -> str:
    """The paper's claim of every table: its closest row to Retrain. Compared among the rows both print."""
    ours, theirs = (cells(df, block, "avg_gap", who)[lambda c: c["method"] != "retrain"] for who in ("ours", "paper"))
    both = theirs[theirs["row"].isin(ours["row"])].sort_values("value", kind="stable")
    if len(both) < 2:
        return ("no closest-row claim compared: the paper's table gives fewer than two of our rows an Avg. Gap "
                "(it prints none and has no Retrain row to compute one from)")
    mine = ours.set_index("row").loc[both["row"]].sort_values("value", kind="stable").reset_index()
    best = both.iloc[0]
    rank = list(mine["row"]).index(best["row"]) + 1
    sources = sorted({" ".join(str(x).split()[:2]) for x in df["paper_source"] if isinstance(x, str) and x})
    version = ", ".join(f"{VERSION_NAME[v]} {t}" for v, t in (x.split() for x in sources))
    head = (f"the paper ({version}) has {best['name']} closest ({_fmt(best['value'])}) among the {len(both)} rows "
            f"both tables print")
    if rank == 1:
        return f"{head}, and so do we ({_fmt(mine['value'].iloc[0])}): **agrees**"
    return (f"{head}; ours has {mine['name'].iloc[0]} ({_fmt(mine['value'].iloc[0])}) and {best['name']} "
            f"{_ordinal(rank)} ({_fmt(float(mine.loc[rank - 1, 'value']))}): **disagrees**")


def _cell(df: pd.DataFrame, block: str, column: str, who: str) -> dict[str, float]:
    c = cells(df, block, column, who)
    return dict(zip(c["row"], c["value"]))


def _ua(df: pd.DataFrame, block: str, who: str) -> dict[str, float]:
    return _cell(df, block, "UA", who)


def ablation(df: pd.DataFrame, block: str) -> str:
    """Table 6's claim: with gradient mixing, NLS forgets (UA) more than PLS and than no smoothing."""
    ours, theirs = _ua(df, block, "ours"), _ua(df, block, "paper")
    parts, verdicts = [], []
    for fam, label in (("ugradsl", "UGradSL"), ("ugradsl_plus", "UGradSL+")):
        keys = [f"{fam}_nls", f"{fam}_pls", f"{fam}_no_nls"]
        if not all(k in ours and k in theirs for k in keys):
            continue
        holds = ours[keys[0]] > max(ours[keys[1]], ours[keys[2]])
        paper = theirs[keys[0]] > max(theirs[keys[1]], theirs[keys[2]])
        verdicts.append(holds == paper)
        parts.append(f"{label} UA with GM + NLS / + PLS / alone: ours {' / '.join(_fmt(ours[k]) for k in keys)}, "
                     f"paper {' / '.join(_fmt(theirs[k]) for k in keys)}")
    if "ugradsl_no_retain_nls" in ours and "ugradsl_no_retain_nls" in theirs:
        k = "ugradsl_no_retain_nls"
        ra, ra_paper = _cell(df, block, "RA", "ours").get(k), _cell(df, block, "RA", "paper").get(k)
        note = ""
        if ours[k] < theirs[k] / 2:
            note = " (it does not forget here)"
        elif ra is not None and ra_paper is not None and ra < ra_paper / 2:
            note = f" (it forgets D_r too: RA {_fmt(ra)} against the paper's {_fmt(ra_paper)})"
        parts.append(f"UGradSL w/o D_r + NLS: UA {_fmt(ours[k])} against the paper's {_fmt(theirs[k])}" + note)
    if not verdicts:
        return ""
    verdict = "**agrees**" if all(verdicts) else "**disagrees**"
    return f"NLS forgets most with gradient mixing ({verdict}): " + "; ".join(parts)


TREND_MIN = 1.0  # UA points: a smaller change between the fewest and the most epochs counts as flat


def trend(first: float, last: float) -> str:
    return "rises" if last - first > TREND_MIN else "falls" if first - last > TREND_MIN else "stays flat"


def epoch_rows(preset) -> dict[str, list[tuple[int, str]]]:
    """{method: [(epochs, row id), ...]} for the rows that set method.epochs (Table 14)."""
    fams: dict[str, list[tuple[int, str]]] = {}
    for r in preset.rows:
        n = [int(v) for v in override_values(r.overrides, "method.epochs")]
        if n:
            fams.setdefault(r.method, []).append((n[0], r.id))
    return fams


def epochs(df: pd.DataFrame, block: str, preset) -> str:
    """Table 14's claim: more unlearning epochs forget more; per method, UA from the fewest to the most epochs
    (a change under TREND_MIN points is flat), ours against the paper's direction."""
    ours, theirs = _ua(df, block, "ours"), _ua(df, block, "paper")
    parts = []
    for method, rows in epoch_rows(preset).items():
        rows = [x for x in rows if x[1] in ours]
        if len(rows) < 2:
            continue
        (e0, first), (e1, last) = min(rows), max(rows)
        text = f"{NAMES.get(method, method)} UA {_fmt(ours[first])} → {_fmt(ours[last])} from {e0} to {e1} epochs"
        if first in theirs and last in theirs:
            mine, paper = trend(ours[first], ours[last]), trend(theirs[first], theirs[last])
            verdict = "agrees" if mine == paper else "disagrees"
            text += f" (paper {_fmt(theirs[first])} → {_fmt(theirs[last])}: {verdict})"
        parts.append(text)
    return ("more epochs forget more? " + "; ".join(parts)) if parts else ""


def additional_mia(df: pd.DataFrame, block: str) -> str:
    ours, theirs = cells(df, block, "additional_mia"), cells(df, block, "additional_mia", "paper")
    if ours.empty:
        return ""
    span = f"Add. MIA {_fmt(ours['value'].min())} to {_fmt(ours['value'].max())}"
    return span + (f" (paper {_fmt(theirs['value'].min())} to {_fmt(theirs['value'].max())})" if len(theirs) else "")


def table_sentences(df: pd.DataFrame, preset) -> list[str]:
    """One Markdown bullet per block with results."""
    out = []
    for block in dict.fromkeys(df["block"]):
        if not (df[df["block"] == block]["n"] > 0).any():
            continue
        parts = [closest(df, block), ranges(df, block)]
        if preset.table == "table6":
            parts.append(ablation(df, block))
        elif preset.table == "table14":
            parts.append(epochs(df, block, preset))
        if "additional_mia" in preset.columns:
            parts.append(additional_mia(df, block))
        parts.append(paper_closest(df, block))
        number = preset.table.removeprefix("table")
        out.append(f"- **Table {number}**, {block}: " + "; ".join(p for p in parts if p) + ".")
    return out


def render(folder: Path, scale: str = "cpu", tables: list[str] | None = None, version: str = "iclr") -> str:
    """The Markdown of every written table's sentences (tables never written are left out, and said so)."""
    lines, missing = [], []
    for table in tables or available():
        df = read(folder, table, scale, version)
        if df is None:
            missing.append(table)
            continue
        lines += table_sentences(df, load(table, scale))
    if missing:
        lines.append(f"- Not written at {scale} scale: {', '.join(missing)}.")
    return "\n".join(lines)
