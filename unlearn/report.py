"""Results as data: the runs CSV to a tidy long table, and the long table to paper-style tables."""
from __future__ import annotations

import pandas as pd

ID_COLS = ["table", "dataset", "model", "paradigm", "method", "smooth_rate", "p", "seed"]
HEADLINE = ["UA", "MIA", "RA", "TA", "H", "RTE_min", "avg_gap", "sum"]


def to_long(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (run identity, metric): `table,dataset,model,paradigm,method,smooth_rate,p,seed,metric,value`."""
    missing = [c for c in ID_COLS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs CSV lacks identity columns {missing}; expected {ID_COLS}")
    metric_cols = [c for c in runs.columns if c not in ID_COLS + ["git_commit", "timestamp", "run_dir"]
                   and pd.api.types.is_numeric_dtype(runs[c])]
    runs = runs.assign(table=runs["table"].fillna("-"))
    long = runs.melt(id_vars=ID_COLS, value_vars=metric_cols, var_name="metric", value_name="value")
    return long.dropna(subset=["value"]).reset_index(drop=True)


def summary(long: pd.DataFrame, metrics: list[str] | None = None, by: list[str] | None = None) -> pd.DataFrame:
    """Mean ± std over seeds, one row per method (and config), one column per metric, as in the paper."""
    metrics = metrics or HEADLINE
    by = by or [c for c in ID_COLS if c != "seed"]
    sel = long[long["metric"].isin(metrics)]
    stats = sel.groupby(by + ["metric"], dropna=False)["value"].agg(["mean", "std", "count"]).reset_index()
    stats["cell"] = [f"{m:.2f} ± {s:.2f}" if n > 1 else f"{m:.2f}"  # one seed has no spread to report
                     for m, s, n in zip(stats["mean"], stats["std"], stats["count"])]
    wide = stats.pivot_table(index=by, columns="metric", values="cell", aggfunc="first")
    return wide[[m for m in metrics if m in wide.columns]].reset_index()
