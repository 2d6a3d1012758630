"""A sweep ends with one screen per configuration (unlearn/sweep_summary.py), at most 120 columns wide."""
from __future__ import annotations

import json

from omegaconf import OmegaConf

from unlearn.sweep_summary import SweepSummary, compact


def _run(folder, n, method, seed, lr, ua):
    d = folder / f"{n}_method={method}"
    d.mkdir(parents=True)
    ident = {"table": "-", "dataset": "synthetic", "model": "cnn", "paradigm": "random", "method": method,
             "smooth_rate": None, "p": None, "seed": seed, "config_id": f"{method}{lr}", "method.lr": lr,
             "method.a_very_long_hyperparameter_name_one": 1, "method.a_very_long_hyperparameter_name_two": 2,
             "timestamp": f"2026-01-01T00:00:0{n}"}
    ident["method.a_very_long_hyperparameter_name_one"] = n  # varies: would be a column
    metrics = {"UA": ua, "MIA": 50.0, "RA": 99.0, "TA": 90.0, "avg_gap": 3.0, "RTE_min": 0.1}
    (d / "metrics.json").write_text(json.dumps({**ident, "metrics": metrics}))


def test_summary_fits_120_columns_and_averages_seeds_per_configuration(tmp_path, capsys):
    for n, (method, seed, lr, ua) in enumerate([("ga", 0, 0.1, 10.0), ("ga", 1, 0.1, 20.0), ("ga", 0, 0.2, 30.0),
                                                ("ugradsl", 0, 0.1, 40.0)]):
        _run(tmp_path, n, method, seed, lr, ua)
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("sweep summary (4 runs; dataset synthetic, model cnn, paradigm random")
    assert all(len(line) <= 120 for line in out)
    rows = out[2:]
    assert len(rows) == 3  # ga at two learning rates, ugradsl: never two configurations averaged as seeds
    assert any("15.00 ± 7.07" in r for r in rows)  # ga lr 0.1: two seeds
    assert "lr" in out[1].split()


def test_too_many_varying_columns_are_dropped_not_wrapped(tmp_path):
    import pandas as pd
    runs = pd.DataFrame([{"table": "-", "dataset": "d", "model": "m", "paradigm": "p", "method": "ga",
                          "smooth_rate": None, "p": None, "seed": 0, "config_id": str(i), "UA": 1.0, "MIA": 1.0,
                          "RA": 1.0, "TA": 1.0, "avg_gap": 1.0, "RTE_min": 1.0,
                          **{f"method.knob_with_a_long_name_{k}": i + k for k in range(12)}} for i in range(3)])
    text = compact(runs, width=120)
    assert all(len(line) <= 120 for line in text.splitlines())
    assert "UA" in text.splitlines()[1] and "gap" in text.splitlines()[1]
