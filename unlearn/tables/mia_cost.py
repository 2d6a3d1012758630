"""CPU hours of the MIA at the paper's scale, for `python -m unlearn.tables estimate`: the reference attack
(`eval.mia_solver=svc`) fits an RBF SVC per feature on |test| shadow members and |test| non-members, on one core
while the GPU waits, and libsvm's time grows ~n^2 — hours per ImageNet evaluation.

The cost per feature comes from a measurement, results/bench/mia.csv (scripts/bench_mia.py: both solvers side by
side on this machine's CPU at a few sizes), extrapolated with the growth measured between its two largest sizes
(for svc at least n^2, MIN_GROWTH);
the K-dimensional `prob` feature also with the growth measured across its numbers of classes. Every job evaluates
one model (the unlearned one, or Retrain's as the `retrain` row); each seed also evaluates its original and Retrain
once for all rows.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

BENCH = Path(__file__).resolve().parents[2] / "results" / "bench" / "mia.csv"
# The paper-scale data sets: |test| (the shadow size per side when eval.mia_shadow_size is null) and K.
PAPER_DATA = {"cifar10": (10_000, 10), "cifar10_jpg": (10_000, 10), "cifar100": (10_000, 100),
              "cifar100_super": (10_000, 20), "svhn": (26_032, 10), "imagenet": (50_000, 1_000),
              "newsgroups20": (7_532, 20), "celeba": (19_962, 2)}


def read(path: Path | None = None) -> pd.DataFrame:
    path = BENCH if path is None else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no MIA timings; run scripts/bench_mia.py to measure them")
    return pd.read_csv(path)


MIN_GROWTH = {"svc": 2.0, "binned": 0.0}  # least exponent in n: libsvm's fit grows ~n^2 and faster at large n
# (10,000 per side took 28-39 s per feature here, ~n^2.6 from 4,000), so a slower growth measured at small sizes
# is not extrapolated; the binned fit is linear at most


def _grow(x0: float, y0: float, x1: float, y1: float, x: float, least: float = 0.0) -> float:
    """y at x from the power law through (x0, y0) and (x1, y1); its exponent kept in [least, 3]."""
    e = math.log(y1 / y0) / math.log(x1 / x0) if x1 != x0 and y0 > 0 and y1 > 0 else 2.0
    return y1 * (x / x1) ** min(3.0, max(least, e))


def seconds(bench: pd.DataFrame, per_side: int, classes: int, solver: str = "svc") -> float:
    """Seconds of one evaluation's attack fits (every fitted feature) with `per_side` shadow points per side."""
    col = f"{solver}_s"
    total = 0.0
    for feature, rows in bench.groupby("feature"):
        ks = sorted(rows["classes"].unique())
        by_k = {}
        for k in ks:  # the feature's time at `per_side` for each measured K
            r = rows[rows["classes"] == k].sort_values("per_side")
            (n0, t0), (n1, t1) = r[["per_side", col]].iloc[-2], r[["per_side", col]].iloc[-1]
            by_k[k] = _grow(n0, t0, n1, t1, per_side, MIN_GROWTH[solver]) if per_side > n1 else \
                _grow(n0, t0, n1, t1, per_side)
        if feature == "prob" and len(ks) >= 2:  # a K-dimensional feature: its K matters
            total += _grow(ks[-2], by_k[ks[-2]], ks[-1], by_k[ks[-1]], classes)
        else:  # 1-D features: K changes nothing but noise, so the mean over the measured K
            total += sum(by_k.values()) / len(by_k)
    return total


def cpu_hours(dataset: str, shadow: int | None, evaluations: int, bench: pd.DataFrame,
              solver: str = "svc") -> float:
    """CPU hours of `evaluations` evaluations on a paper-scale data set (NaN for one not in PAPER_DATA)."""
    if dataset not in PAPER_DATA:
        return math.nan
    test, classes = PAPER_DATA[dataset]
    return evaluations * seconds(bench, shadow or test, classes, solver) / 3600


def table_hours(preset, seeds: int, bench: pd.DataFrame) -> pd.DataFrame:
    """Per block of `preset` (at its scale): evaluations and the MIA's CPU hours with either solver."""
    from hydra import compose, initialize_config_dir

    from unlearn.paths import CONF
    out = []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for block in preset.blocks:
            if block.overrides is None:
                continue
            cfg = compose("config", overrides=list(block.overrides))
            evaluations = seeds * (sum(r.id not in block.skip_rows for r in preset.rows) + 2)
            shadow = cfg.eval.mia_shadow_size
            out.append({"table": preset.table, "block": block.name, "evaluations": evaluations,
                        **{f"mia_{s}_cpu_hours": cpu_hours(cfg.dataset.name, shadow, evaluations, bench, s)
                           for s in ("svc", "binned")}})
    return pd.DataFrame(out)
