"""`make references TABLE=...`: exactly the reference models a table's jobs ask for, warmed before them."""
from __future__ import annotations

import logging

from omegaconf import open_dict

from unlearn.tables import plan as planning
from unlearn.tables import references
from unlearn.tables.preset import load
from unlearn.workspace import run_experiment

SHRINK = ["dataset=synthetic", "model=cnn", "device=cpu", "wandb.mode=disabled"]


def test_jobs_that_differ_only_in_method_share_one_reference_sweep():
    jobs = planning.plan(load("table10", "cpu"), [0, 2], SHRINK)
    assert len({j.row.method for j in jobs}) > 5
    (sweep,) = references.sweeps(jobs, SHRINK, ["table=table10", "scale=cpu"])
    assert sweep[:2] == ["-m", "stage=references"] and sweep[-1] == "seed=0,2"
    assert not [o for o in sweep if o.startswith(("method", "+ablation"))]
    six = planning.plan(load("table6", "cpu"), [1], SHRINK)  # ablation rows pick their method by +ablation=
    (sweep6,) = references.sweeps(six, SHRINK, [])
    assert not [o for o in sweep6 if "ablation=" in o] and sweep6[-1] == "seed=1"


def test_warmed_references_are_the_ones_the_table_loads(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = [*SHRINK, f"cache_dir={tmp_path}/cache", "results_csv=null", f"hydra.sweep.dir={tmp_path}/sweep"]
    assert references.main(["table10", "--seeds", "0", "--", *extra]) == 0
    job = planning.plan(load("table10", "cpu", ["ga"]), [0], extra[:-1])[0]
    with open_dict(job.cfg):
        job.cfg.run_dir, job.cfg.method.epochs = str(tmp_path / "run"), 1
    with caplog.at_level(logging.INFO, logger="unlearn"):
        run_experiment(job.cfg)
    text = caplog.text
    assert "original: loaded from cache" in text and "retrain: loaded from cache" in text, text[-2000:]
