"""A sweep ends with one screen: mean ± std over seeds per configuration of the jobs it ran (the `unlearn collect`
view), at most 120 columns wide. A Hydra callback (conf/config.yaml `hydra.callbacks`), so every launcher and
sweeper gets it; it reads the sweep folder's metrics.json files, not the shared results CSV (which other sweeps
also write)."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("unlearn")
WIDTH = 120
METRICS = ("UA", "MIA", "RA", "TA", "avg_gap", "RTE_min")
SHORT = {"smooth_rate": "alpha", "avg_gap": "gap", "RTE_min": "RTE", "n_seeds": "n"}


def compact(runs: pd.DataFrame, width: int = WIDTH) -> str:
    """The summary of `runs` as text of at most `width` columns: what is the same for every configuration goes
    into a heading line, then one line per configuration (method, the hyperparameters that vary, seeds, metrics);
    hyperparameter columns are dropped from the right while the table is too wide."""
    from unlearn.report import summary
    table = summary(runs, list(METRICS))
    same = [c for c in ("table", "dataset", "model", "paradigm") if table[c].nunique(dropna=False) == 1]
    heading = ", ".join(f"{c} {table[c].iloc[0]}" for c in same if str(table[c].iloc[0]) not in ("-", "nan"))
    table = table.drop(columns=[*same, "config_id"])
    table = table.rename(columns=lambda c: SHORT.get(c, c.split(".", 1)[-1] if "." in c else c))
    fixed = [c for c in table.columns if c in ("method", "n", *(SHORT.get(m, m) for m in METRICS))]
    extra = [c for c in table.columns if c not in fixed]
    while True:
        shown = table[[c for c in table.columns if c in fixed or c in extra]]
        text = shown.to_string(index=False)
        if max(map(len, text.splitlines())) <= width or not extra:
            break
        extra.pop()
    lines = [f"sweep summary ({len(runs)} runs{'; ' + heading if heading else ''}):", *text.splitlines()]
    return "\n".join(line[:width] for line in lines)


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from unlearn.collect import read_run_dirs
        folder = Path(config.hydra.sweep.dir)
        if not folder.is_dir():
            return
        runs, _ = read_run_dirs([str(folder)])
        if runs.empty:
            return
        try:
            print(compact(runs), flush=True)
        except (KeyError, ValueError) as e:  # runs of an older version lacking identity columns: no summary
            log.warning("no sweep summary: %s", e)
