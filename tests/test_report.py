"""The collector: runs CSV -> long format -> mean ± std over seeds."""
import pandas as pd
import pytest

from unlearn.report import summary, to_long


def _runs():
    base = {"table": "T1", "dataset": "digits", "model": "resnet18", "paradigm": "classwise",
            "smooth_rate": -0.5, "p": 0.8, "git_commit": "abc", "timestamp": "t", "run_dir": "r"}
    rows = []
    for method, uas in (("ga", [10.0, 20.0]), ("ugradsl", [90.0, 90.0])):
        for seed, ua in enumerate(uas):
            rows.append({**base, "method": method, "config_id": f"id-{method}", "seed": seed, "UA": ua, "MIA": ua / 2,
                         "retrain/UA": 100.0})
    return pd.DataFrame(rows)


def test_long_format_has_one_row_per_metric():
    long = to_long(_runs())
    assert list(long.columns) == ["table", "dataset", "model", "paradigm", "method", "smooth_rate", "p", "seed",
                                  "config_id", "metric", "value"]
    assert len(long) == 4 * 3 and set(long["metric"]) == {"UA", "MIA", "retrain/UA"}


def test_summary_is_mean_and_std_over_seeds():
    table = summary(_runs(), metrics=["UA", "MIA"])
    ga = table[table["method"] == "ga"].iloc[0]
    assert ga["UA"] == "15.00 ± 7.07" and ga["MIA"] == "7.50 ± 3.54"
    assert table[table["method"] == "ugradsl"].iloc[0]["UA"] == "90.00 ± 0.00"


def test_a_single_seed_shows_no_spread():
    runs = _runs()
    table = summary(runs[runs["seed"] == 0], metrics=["UA"])
    assert table[table["method"] == "ga"].iloc[0]["UA"] == "10.00"


def test_missing_identity_columns():
    with pytest.raises(ValueError, match="lacks identity columns"):
        to_long(pd.DataFrame({"UA": [1.0]}))


def test_two_learning_rates_are_two_rows_never_averaged(tmp_path):
    """`run.py -m method=ga method.lr=0.001,0.01 seed=0,1` through the real runner: two configurations."""
    from tests.conftest import TINY, compose_cfg
    from unlearn.results_csv import read_runs
    from unlearn.workspace import run_experiment

    for lr in (0.001, 0.01):
        for seed in (0, 1):
            run_experiment(compose_cfg([*TINY, "method=ga", f"method.lr={lr}", f"seed={seed}"], tmp_path))
    runs, problems = read_runs(tmp_path / "runs.csv")
    assert not problems and runs["config_id"].nunique() == 2
    assert runs["smooth_rate"].isna().all() and runs["p"].isna().all()  # GA uses neither
    table = summary(runs, metrics=["UA"])
    assert len(table) == 2 and sorted(table["method.lr"]) == [0.001, 0.01]
    assert table["n_seeds"].tolist() == [2, 2]
    long = to_long(runs)
    assert long.groupby("config_id")["seed"].nunique().tolist() == [2, 2]


def test_rows_with_different_config_ids_are_never_merged():
    runs = _runs()
    runs.loc[runs["seed"] == 1, "config_id"] += "-other"  # same method, another configuration
    table = summary(runs, metrics=["UA"])
    assert len(table) == 4 and (table["n_seeds"] == 1).all()


def test_a_rerun_row_replaces_its_duplicate():
    runs = _runs()
    runs["timestamp"] = [f"2026-01-01T00:00:0{i}" for i in range(len(runs))]
    again = runs.iloc[[0]].assign(UA=99.0, timestamp="2026-01-02T00:00:00")  # the same run recorded twice
    table = summary(pd.concat([runs, again]), metrics=["UA"])
    ga = table[table["method"] == "ga"].iloc[0]
    assert ga["n_seeds"] == 2 and ga["UA"] == "59.50 ± 55.86"  # seeds 0 (latest: 99) and 1 (20)
