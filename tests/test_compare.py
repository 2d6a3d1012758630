"""`unlearn compare`: every method on one setting with seeds, only missing jobs run, the Retrain-relative table."""
from __future__ import annotations

import pandas as pd

from unlearn import compare


def test_compare_runs_missing_jobs_once_and_prints_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["dataset=synthetic", "model=cnn", "wandb.mode=disabled", f"cache_dir={tmp_path}/cache",
            "--methods", "ga", "--seeds", "0", "--no-tune", "--results", str(tmp_path / "runs.csv"),
            "--out", str(tmp_path / "out"), "--", "method.epochs=1", f"hydra.sweep.dir={tmp_path}/sweep"]
    assert compare.main(args) == 0
    first = capsys.readouterr()
    assert "2 jobs, 2 to run" in first.err
    (md,) = (tmp_path / "out").glob("synthetic-*.md")
    text = md.read_text()
    assert "| retrain | 100.00 |" in text and "| ga |" in text and "original model: train accuracy" in text
    frame = pd.read_csv(md.with_suffix(".csv"))
    assert set(frame["row"]) == {"retrain", "ga"} and (frame["n"] == 1).all()
    assert not [c for c in frame.columns if c.startswith("paper")]  # no paper column for your own data
    assert compare.main(args) == 0
    assert "2 jobs, 0 to run" in capsys.readouterr().err


def test_compare_refuses_bad_arguments_before_any_work(capsys):
    assert compare.main(["dataset=synthetic", "--methods", "ga,nosuch"]) == 2
    assert "nosuch" in capsys.readouterr().err
    assert compare.main(["method=ga"]) == 2
    assert compare.main(["dataset=synthetic", "--seeds", "0,x"]) == 2
