"""The paper's main claims, each judged holds / does not hold from the written tables (results/tables/*.csv).

One line per claim with the rule that decides it and the numbers it was decided on, so the README's summary is
generated, not argued:
1. UGradSL forgets more than GA at a similar cost: UA higher by more than the two stds summed, with an RTE at most
   RTE_RATIO times GA's (every block of the standard tables that has both rows).
2. With gradient mixing, NLS beats PLS (Table 6): higher UA and a smaller Avg. Gap, for UGradSL and UGradSL+.
3. On random forgetting UGradSL or UGradSL+ is closest to Retrain (smallest Avg. Gap among the plain rows).
4. More epochs forget more (Table 14): UGradSL's and UGradSL+'s UA rises from the fewest to the most epochs.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from unlearn.tables.preset import available, load
from unlearn.tables.sentences import _fmt, cells, epoch_rows, read, trend

RTE_RATIO = 3.0  # "similar cost": UGradSL's RTE at most this many times GA's
CEILING = 99.5  # UA (%) at which a method has forgotten all of D_f
STANDARD = ("table1", "table2", "table3", "table7", "table8", "table9", "table10", "table11", "table12")  # one row
# per method (tables 5, 6, 13, 14 reuse these jobs or vary one method's settings)
OURS = ("ugradsl", "ugradsl_plus")


def _one(df: pd.DataFrame, block: str, row: str, column: str) -> tuple[float, float] | None:
    c = cells(df, block, column)
    c = c[c["row"] == row]
    return (float(c["value"].iloc[0]), float(c["std"].fillna(0).iloc[0])) if len(c) else None


def _blocks(df: pd.DataFrame) -> list[str]:
    return [b for b in dict.fromkeys(df["block"]) if (df[df["block"] == b]["n"] > 0).any()]


def _verdict(results: list[bool]) -> str:
    if not results:
        return "not measured"
    k = sum(results)
    return "holds" if k == len(results) else "does not hold" if k == 0 else f"holds in {k} of {len(results)}"


def _standard_blocks(tables: dict[str, pd.DataFrame]):
    """(table, frame, block) for every block of the tables whose rows are the standard method set."""
    for table, df in tables.items():
        if table in STANDARD:
            for block in _blocks(df):
                yield table, df, block


def forgets_more_than_ga(tables: dict[str, pd.DataFrame], presets: dict) -> tuple[str, list[str]]:
    results, numbers = [], []
    for table, df, block in _standard_blocks(tables):
        ua = [_one(df, block, r, "UA") for r in ("ugradsl", "ga")]
        rte = [_one(df, block, r, "RTE") for r in ("ugradsl", "ga")]
        if None in ua or None in rte:
            continue
        (u, us), (g, gs) = ua
        ratio = rte[0][0] / rte[1][0] if rte[1][0] > 0 else float("inf")
        text = f"T{table[5:]} {block}: UA {_fmt(u)} vs {_fmt(g)}, RTE ×{ratio:.1f}"
        if min(u, g) >= CEILING:  # both forget all of D_f: nothing to compare (e.g. class-wise digits)
            numbers.append(text + " (both at the ceiling, not counted)")
            continue
        fails = [what for what, bad in (("UA", u - g <= us + gs), ("RTE", ratio > RTE_RATIO)) if bad]
        results.append(not fails)
        numbers.append(text + (f" ✗ {' and '.join(fails)}" if fails else ""))
    return _verdict(results), numbers


def nls_beats_pls(tables: dict[str, pd.DataFrame], presets: dict) -> tuple[str, list[str]]:
    df = tables.get("table6")
    results, numbers = [], []
    for block in _blocks(df) if df is not None else []:
        for fam, label in (("ugradsl", "UGradSL"), ("ugradsl_plus", "UGradSL+")):
            got = {k: (_one(df, block, f"{fam}_{k}", "UA"), _one(df, block, f"{fam}_{k}", "avg_gap"))
                   for k in ("nls", "pls")}
            if any(None in v for v in got.values()):
                continue
            (ua_n, _), (gap_n, _) = got["nls"]
            (ua_p, _), (gap_p, _) = got["pls"]
            ok = ua_n > ua_p and gap_n < gap_p
            results.append(ok)
            numbers.append(f"T6 {label}: UA {_fmt(ua_n)} vs {_fmt(ua_p)}, gap {_fmt(gap_n)} vs {_fmt(gap_p)}"
                           + ("" if ok else " ✗"))
    return _verdict(results), numbers


def is_random(preset, block: str) -> bool:
    b = next((x for x in preset.blocks if x.name == block), None)
    return b is not None and any(o.startswith("paradigm=random") for o in (b.overrides or []))


def closest_on_random(tables: dict[str, pd.DataFrame], presets: dict) -> tuple[str, list[str]]:
    results, numbers = [], []
    for table, df, block in _standard_blocks(tables):
        if not is_random(presets[table], block):
            continue
        gap = cells(df, block, "avg_gap")
        selected = {r.id for r in presets[table].rows if r.selected_at}  # (R) rows aim at the gap: claim 3 compares
        plain = (gap["method"] != "retrain") & ~gap["row"].isin(selected)  # the rows every method has
        gap = gap[plain].sort_values("value", kind="stable").reset_index(drop=True)
        if gap.empty or not gap["row"].isin(OURS).any():
            continue
        best = gap.iloc[0]
        ok = best["row"] in OURS
        ranks = ", ".join(f"{n} {i + 1}" for i, n in zip(gap.index, gap["name"]) if gap.loc[i, "row"] in OURS)
        results.append(ok)
        numbers.append(f"T{table[5:]} {block}: closest {best['name']} {_fmt(best['value'])}"
                       + ("" if ok else f" (ranks: {ranks} of {len(gap)}) ✗"))
    return _verdict(results), numbers


def epochs_trend(tables: dict[str, pd.DataFrame], presets: dict) -> tuple[str, list[str]]:
    df = tables.get("table14")
    results, numbers = [], []
    for block in _blocks(df) if df is not None else []:
        fams = epoch_rows(presets["table14"])
        for method in OURS:
            ua = {rid: _one(df, block, rid, "UA") for _, rid in fams.get(method, [])}
            rows = sorted((e, rid) for e, rid in fams.get(method, []) if ua[rid] is not None)
            if len(rows) < 2:
                continue
            (e0, first), (e1, last) = rows[0], rows[-1]
            t = trend(ua[first][0], ua[last][0])
            results.append(t == "rises")
            numbers.append(f"T14 {'UGradSL+' if method == 'ugradsl_plus' else 'UGradSL'}: UA "
                           f"{_fmt(ua[first][0])} → {_fmt(ua[last][0])} ({e0} → {e1} epochs, {t})"
                           + ("" if t == "rises" else " ✗"))
    return _verdict(results), numbers


CLAIMS = (
    ("UGradSL forgets more than GA at a similar RTE", "UA higher by more than both stds, RTE ≤ "
     f"{RTE_RATIO:g}× GA's; every block of tables {', '.join(t[5:] for t in STANDARD)}", forgets_more_than_ga),
    ("NLS beats PLS with gradient mixing (Table 6)", "higher UA and smaller Avg. Gap, UGradSL and UGradSL+",
     nls_beats_pls),
    ("UGradSL or UGradSL+ is closest to Retrain on random forgetting", "smallest Avg. Gap of the plain rows ((R) "
     "rows left out); random blocks of the tables above", closest_on_random),
    ("More epochs forget more (Table 14)", "UA rises by more than 1 point from the fewest to the most epochs, "
     "UGradSL and UGradSL+", epochs_trend),
)


def claims(folder: Path, scale: str = "cpu", version: str = "iclr") -> pd.DataFrame:
    """One row per claim: the claim, its rule, the verdict and the numbers, from the tables written at `scale`."""
    tables = {t: df for t in available() if (df := read(folder, t, scale, version)) is not None}
    presets = {t: load(t, scale) for t in tables}
    out = []
    for claim, rule, judge in CLAIMS:
        verdict, numbers = judge(tables, presets)
        out.append({"claim": claim, "rule": rule, "verdict": verdict, "numbers": "; ".join(numbers) or "-"})
    return pd.DataFrame(out)


def render(folder: Path, scale: str = "cpu", tables: list[str] | None = None, version: str = "iclr") -> str:
    """The claims as a Markdown table (`tables` is unused: every claim names its own tables)."""
    df = claims(folder, scale, version)
    lines = [f"| the paper's claim | rule | at {scale} scale | numbers (✗: where it fails) |", "|---|---|---|---|"]
    lines += [f"| {r.claim} | {r.rule} | **{r.verdict}** | {r.numbers} |" for r in df.itertuples()]
    return "\n".join(lines)
