"""The MIA's CPU hours in `tables estimate`: extrapolated from measured fits (at least n^2 for the reference SVC),
the K-dimensional prob feature by its K, and counted once per evaluated model."""
import math

import pandas as pd
import pytest

from unlearn.tables import mia_cost
from unlearn.tables.preset import load


def bench(svc_growth: float = 2.0, prob_k_growth: float = 1.0) -> pd.DataFrame:
    """A measurement: 1 s per 1-D feature at 1,000 per side, growing as n^svc_growth; prob also as K^prob_k_growth."""
    rows = []
    for k in (10, 100):
        for n in (1000, 2000):
            for feature in ("confidence", "entropy", "m_entropy", "prob"):
                base = (n / 1000) ** svc_growth * ((k / 10) ** prob_k_growth if feature == "prob" else 1.0)
                rows.append({"classes": k, "per_side": n, "feature": feature, "svc_s": base, "binned_s": 0.5})
    return pd.DataFrame(rows)


def test_svc_grows_as_measured_and_never_slower_than_n_squared():
    assert math.isclose(mia_cost.seconds(bench(), 10_000, 10), 4 * 100.0)  # 4 features x (10,000/1,000)^2 s
    assert math.isclose(mia_cost.seconds(bench(2.5), 8_000, 10), 4 * 2 ** 2.5 * 4 ** 2.5)  # a faster growth is kept
    assert math.isclose(mia_cost.seconds(bench(1.0), 4_000, 10), 4 * 2 * 2 ** 2)  # a slower one is not extrapolated
    assert math.isclose(mia_cost.seconds(bench(), 4_000, 10, "binned"), 4 * 0.5)  # binned: as measured (flat here)


def test_the_prob_feature_grows_with_the_number_of_classes():
    one_d = 3 * 100.0  # the three 1-D features at 10,000 per side, whatever K
    assert math.isclose(mia_cost.seconds(bench(), 10_000, 1_000) - one_d, 100.0 * 100)  # prob: x (1,000/10)^1
    assert math.isclose(mia_cost.seconds(bench(prob_k_growth=0.5), 10_000, 1_000) - one_d, 100.0 * 10)


def test_hours_count_every_evaluated_model_of_a_paper_block():
    est = mia_cost.table_hours(load("table8", "paper"), seeds=3, bench=bench()).set_index("block")
    rows = len(load("table8", "paper").rows)
    cifar = est.loc["CIFAR-10"]
    assert cifar["evaluations"] == 3 * (rows + 2)  # every row's model, and each seed's original and Retrain
    assert math.isclose(cifar["mia_svc_cpu_hours"], cifar["evaluations"] * mia_cost.seconds(bench(), 10_000, 10) / 3600)
    assert est.loc["ImageNet", "mia_svc_cpu_hours"] > 25 * cifar["mia_svc_cpu_hours"]  # 50,000 per side, K = 1,000
    assert math.isnan(mia_cost.cpu_hours("digits", None, 10, bench()))  # not a paper-scale data set


def test_estimate_says_where_the_timings_are_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(mia_cost, "BENCH", tmp_path / "absent.csv")
    with pytest.raises(FileNotFoundError, match="run scripts/bench_mia.py"):
        mia_cost.read()
