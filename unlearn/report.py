"""Results as data: the runs CSV to a tidy long table, and to paper-style tables (mean ± std over seeds).

Rows are grouped by `config_id`, never by method name alone, so two configurations (two learning rates,
two forget fractions, ...) are never averaged as if they were seeds; the hyperparameters that differ
between configurations of a block are shown as columns, with `n_seeds`. Nor are runs merged that differ in
what changes numbers outside the config: the step mechanics and the machine (`SETUP`: precision,
channels_last, compile, cudnn, device, threads, CPU instruction set, torch version) split rows as well.
"""
from __future__ import annotations

import pandas as pd

from unlearn.identity import COMPUTE, ENVIRONMENT
from unlearn.metrics import HEADLINE

ID_COLS = ["table", "dataset", "model", "paradigm", "method", "smooth_rate", "p", "seed", "config_id"]
PARAM_PREFIXES = ("dataset.", "model.", "paradigm.", "train.", "method.", "eval.")
SETUP = (*COMPUTE, *ENVIRONMENT)  # change numbers, are not hyperparameters: a row's identity beside config_id
NOT_METRICS = {"overrides", "git_commit", "code_digest", "timestamp", "run_dir", "wandb_run", *SETUP}


def param_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if c.startswith(PARAM_PREFIXES)]


def setup_columns(runs: pd.DataFrame) -> list[str]:
    """The `SETUP` columns this CSV has (older CSVs lack some)."""
    return [c for c in SETUP if c in runs.columns]


def dedup(runs: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """One row per run identity (table, config_id, seed and the setup columns), the latest by timestamp: a job
    rerun after a crash between its CSV row and its end must not count twice, and an AVX2 run of a seed never
    replaces its AVX-512 run."""
    runs = runs.assign(table=runs["table"].fillna("-"))
    if "timestamp" in runs:
        runs = runs.sort_values("timestamp", kind="stable")
    keys = keys or ["table", "config_id", "seed", *setup_columns(runs)]
    return runs.drop_duplicates(keys, keep="last").reset_index(drop=True)


def latest_per_job(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per job (config_id, seed), the latest by timestamp, whichever table or figure ran it: a paper
    table and a figure share jobs by config_id, and a job run under two labels must count once."""
    latest = dedup(runs.assign(table="-"), ["config_id", "seed"])
    return latest.assign(config_id=latest["config_id"].astype(str), seed=latest["seed"].astype(int))


def check_identity(runs: pd.DataFrame) -> None:
    missing = [c for c in ID_COLS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs CSV lacks identity columns {missing}; expected {ID_COLS} "
                         f"(written by an older version of unlearn?)")


def metric_columns(runs: pd.DataFrame) -> list[str]:
    skip = set(ID_COLS) | NOT_METRICS | set(param_columns(runs))
    return [c for c in runs.columns if c not in skip and pd.api.types.is_numeric_dtype(runs[c])]


def to_long(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, metric): `table,dataset,model,paradigm,method,smooth_rate,p,seed,config_id,metric,value`."""
    check_identity(runs)
    runs = dedup(runs)
    long = runs.melt(id_vars=ID_COLS + setup_columns(runs), value_vars=metric_columns(runs), var_name="metric",
                     value_name="value")
    return long.dropna(subset=["value"]).reset_index(drop=True)


def cell(mean: float, std: float, n: int) -> str:
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"  # one seed has no spread to report


def varying(runs: pd.DataFrame, block: list[str]) -> list[str]:
    """Hyperparameter and setup columns that take more than one value among the configurations of some block."""
    cols = ["smooth_rate", "p"] + param_columns(runs) + setup_columns(runs)
    out = []
    for c in cols:
        if c in runs and (runs.groupby(block, dropna=False)[c].nunique(dropna=False) > 1).any():
            out.append(c)
    return out


def summary(runs: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """Mean ± std over seeds, one row per configuration (`config_id`), one column per metric.

    The block (table, dataset, model, paradigm) and method name lead; hyperparameters and setup columns that
    vary within a block follow, then `n_seeds`, then the metrics. Runs of one configuration on two setups
    (bf16 and fp32, AVX2 and AVX-512, ...) are two rows.
    """
    check_identity(runs)
    runs = dedup(runs)
    metrics = [m for m in (metrics or list(HEADLINE)) if m in runs.columns]
    block = ["table", "dataset", "model", "paradigm"]
    shown = varying(runs, block + ["method"])
    keys = block + ["method", "config_id"]
    groups = runs.groupby(keys + setup_columns(runs), dropna=False, sort=False)  # shown when they vary
    rows = []
    for key, g in groups:
        row = dict(zip(keys, key))
        for c in shown:
            row[c] = g[c].iloc[0]
        row["n_seeds"] = g["seed"].nunique()
        for m in metrics:
            v = g[m].dropna()
            row[m] = cell(v.mean(), v.std(), len(v)) if len(v) else ""
        rows.append(row)
    out = pd.DataFrame(rows, columns=keys + shown + ["n_seeds"] + metrics)
    return out.sort_values(block + ["method"] + shown, kind="stable").reset_index(drop=True)
