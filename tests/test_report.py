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
            rows.append({**base, "method": method, "seed": seed, "UA": ua, "MIA": ua / 2, "retrain/UA": 100.0})
    return pd.DataFrame(rows)


def test_long_format_has_one_row_per_metric():
    long = to_long(_runs())
    assert list(long.columns) == ["table", "dataset", "model", "paradigm", "method", "smooth_rate", "p", "seed",
                                  "metric", "value"]
    assert len(long) == 4 * 3 and set(long["metric"]) == {"UA", "MIA", "retrain/UA"}


def test_summary_is_mean_and_std_over_seeds():
    table = summary(to_long(_runs()), metrics=["UA", "MIA"])
    ga = table[table["method"] == "ga"].iloc[0]
    assert ga["UA"] == "15.00 ± 7.07" and ga["MIA"] == "7.50 ± 3.54"
    assert table[table["method"] == "ugradsl"].iloc[0]["UA"] == "90.00 ± 0.00"


def test_a_single_seed_shows_no_spread():
    runs = _runs()
    table = summary(to_long(runs[runs["seed"] == 0]), metrics=["UA"])
    assert table[table["method"] == "ga"].iloc[0]["UA"] == "10.00"


def test_missing_identity_columns():
    with pytest.raises(ValueError, match="lacks identity columns"):
        to_long(pd.DataFrame({"UA": [1.0]}))
