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


def test_bf16_and_fp32_runs_of_one_seed_are_two_configurations(tmp_path):
    """`precision=bf16 seed=12` once had the default run's config_id (and gave another TA); every step mechanic
    that changes numbers enters the id, and the plain loop keeps the id it always had."""
    from tests.conftest import TINY, compose_cfg
    from unlearn.identity import config_hash, config_id, params
    plain = compose_cfg([*TINY, "seed=12"], tmp_path)
    names = {s: plain[s].get("name") for s in ("dataset", "model", "paradigm", "method")}
    assert config_id(plain) == config_hash({"names": names, "params": params(plain)})[:10]  # as before
    ids = {config_id(compose_cfg([*TINY, "seed=12", *o], tmp_path)) for o in
           ([], ["precision=bf16"], ["precision=fp16"], ["compile=true"], ["cudnn=benchmark"],
            ["original.checkpoint=torchvision:ResNet18_Weights.IMAGENET1K_V1"])}
    assert len(ids) == 6


def _setups():
    runs = _runs()
    runs["timestamp"] = [f"2026-01-01T00:00:0{i}" for i in range(len(runs))]
    runs["cpu_capability"], runs["precision"] = "AVX512", "fp32"
    avx2 = runs[runs["method"] == "ga"].assign(cpu_capability="AVX2", UA=[11.0, 21.0], timestamp="2026-01-02")
    return pd.concat([runs, avx2], ignore_index=True)


def test_runs_on_two_cpu_instruction_sets_are_never_merged():
    """The same config and seed on AVX2 and AVX-512: two rows of the report (neither replaces the other),
    with the instruction set shown because it varies."""
    table = summary(_setups(), metrics=["UA"])
    ga = table[table["method"] == "ga"].set_index("cpu_capability")
    assert len(ga) == 2 and ga.loc["AVX512", "UA"] == "15.00 ± 7.07" and ga.loc["AVX2", "UA"] == "16.00 ± 7.07"
    assert (ga["n_seeds"] == 2).all() and "precision" not in table  # shown only where it varies
    long = to_long(_setups())
    assert "cpu_capability" in long and len(long[long["method"] == "ga"]) == 2 * 2 * 3  # 2 setups x 2 seeds x 3


def test_rows_of_two_precisions_are_two_rows_even_with_one_config_id():
    """Rows written before precision entered config_id: the precision column keeps them apart."""
    runs = _setups()
    runs = runs[runs["cpu_capability"] == "AVX512"]
    bf16 = runs.assign(precision="bf16", UA=runs["UA"] + 1, timestamp="2026-01-03")
    table = summary(pd.concat([runs, bf16]), metrics=["UA"])
    assert len(table[table["method"] == "ga"]) == 2 and set(table["precision"]) == {"fp32", "bf16"}


def test_a_row_says_its_step_mechanics_and_code(tmp_path):
    from tests.conftest import TINY, compose_cfg
    from unlearn.results_csv import read_runs
    from unlearn.workspace import run_experiment
    run_experiment(compose_cfg([*TINY, "method=ga", "precision=bf16"], tmp_path))
    runs, _ = read_runs(tmp_path / "runs.csv")
    row = runs.iloc[0]
    assert (row["precision"], bool(row["channels_last"]), bool(row["compile"]), row["cudnn"]) == \
        ("bf16", False, False, "deterministic")
    assert len(str(row["code_digest"])) == 16 and "-dirty" not in str(row["code_digest"])
