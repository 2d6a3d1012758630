"""`make references TABLE=...`: exactly the reference models a table's jobs ask for, warmed before them."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from omegaconf import open_dict

from unlearn.tables import plan as planning
from tests import faults
from tests.conftest import HANG_GUARD, TINY
from unlearn.tables import limits, references
from unlearn.tables.preset import load
from unlearn.workspace import run_experiment

SHRINK = ["dataset=synthetic", "model=cnn", "device=cpu", "wandb.mode=disabled"]


def test_each_reference_model_is_its_own_job_and_jobs_differing_only_in_method_share_them():
    jobs = planning.plan(load("table10", "cpu"), [0, 2], SHRINK)
    assert len({j.row.method for j in jobs}) > 5
    refs = references.reference_jobs(jobs, SHRINK, ["table=table10", "scale=cpu"])
    assert sorted((r.stage, r.seed) for r in refs) == [("original", 0), ("original", 2), ("retrain", 0), ("retrain", 2)]
    ((_, sweep),) = references.sweeps(refs)
    assert sweep[:2] == ["-m", "stage=original,retrain"] and sweep[-1] == "seed=0,2"
    assert not [o for o in sweep if o.startswith(("method", "+ablation"))]
    six = planning.plan(load("table6", "cpu"), [1], SHRINK)  # ablation rows pick their method by +ablation=
    ((_, sweep6),) = references.sweeps(references.reference_jobs(six, SHRINK, []))
    assert not [o for o in sweep6 if "ablation=" in o] and sweep6[-1] == "seed=1"


def test_an_original_shared_by_two_paradigms_is_trained_by_one_job():
    """table5's class-wise and random blocks, both in one regime (the random block's own runs on the fast tier),
    forget from the same data and model: one original per seed, a Retrain per block; the second block's sweep asks
    only for its Retrain."""
    import dataclasses
    preset = load("table5", "cpu")
    classwise, random = preset.blocks
    same = [o.replace("classwise", "random") for o in classwise.overrides if "forget_class" not in o]
    preset.blocks[1] = dataclasses.replace(random, overrides=[*same, "paradigm.forget_fraction=0.1"])
    jobs = planning.plan(preset, [0, 1], SHRINK)
    refs = references.reference_jobs(jobs, SHRINK, [])
    assert sorted((r.stage, r.block.name, r.seed) for r in refs) == [
        ("original", "Class-wise", 0), ("original", "Class-wise", 1),
        ("retrain", "Class-wise", 0), ("retrain", "Class-wise", 1), ("retrain", "Random", 0), ("retrain", "Random", 1)]
    stages = [(block.name, sweep[1]) for block, sweep in references.sweeps(refs)]
    assert stages == [("Class-wise", "stage=original,retrain"), ("Random", "stage=retrain")]


def _values(line: str) -> dict[str, str]:
    return dict(o.split("=", 1) for o in line.split() if "=" in o)


def test_paper_scale_limits_are_derived_from_the_estimate(capsys):
    """ImageNet's references (the paper's 26 h Retrain, 29 h original) get a lock timeout longer than one
    holder's whole training (the former fixed 24 h was shorter) and enough 720-min requeues to cover it; the
    CIFAR-10 block a time limit far below the preset's 720 min; a time limit the user sets is kept, and the
    requeues cover the work under it."""
    assert references.main(["table1", "--scale", "paper", "--seeds", "0,1", "--dry-run", "--",
                            "hydra/launcher=slurm"]) == 0
    lines = [_values(line) for line in capsys.readouterr().err.splitlines() if line.startswith("unlearn.app")]
    by_data = {v.get("dataset", v.get("experiment")): v for v in lines}
    minutes = limits.block_minutes(load("table1", "paper"), load("table1", "paper").blocks[2])
    assert minutes.original > 1500 and minutes.retrain > 1500  # the paper's ImageNet RTEs, minutes
    imagenet = by_data["imagenet"]
    assert imagenet["stage"] == "original,retrain" and imagenet["seed"] == "0,1"
    need = limits.MARGIN * minutes.original
    assert int(imagenet["lock_timeout"]) >= need * 60 > 86400
    assert int(imagenet["hydra.launcher.timeout_min"]) == 720
    assert 720 * (int(imagenet["hydra.launcher.max_num_timeout"]) + 1) >= need
    assert int(by_data["cifar10"]["hydra.launcher.timeout_min"]) < 720
    assert references.main(["table1", "--scale", "paper", "--seeds", "0", "--dry-run", "--", "hydra/launcher=slurm",
                            "hydra.launcher.timeout_min=300", "lock_timeout=5"]) == 0
    raw = next(x for x in capsys.readouterr().err.splitlines() if "dataset=imagenet" in x)
    assert raw.count("timeout_min=") == 1 and raw.count("lock_timeout=") == 1  # the user's, given once
    line = _values(raw)
    assert (line["hydra.launcher.timeout_min"], line["lock_timeout"]) == ("300", "5")
    assert 300 * (int(line["hydra.launcher.max_num_timeout"]) + 1) >= need


def test_rows_without_retrain_still_get_limits_from_the_tables_retrain():
    """`--rows ga` leaves the Retrain row out of the preset, not out of the paper: the limits stay the same."""
    for block in range(3):
        whole = limits.block_minutes(load("table1", "paper"), load("table1", "paper").blocks[block])
        only = limits.block_minutes(load("table1", "paper", ["ga"]), load("table1", "paper", ["ga"]).blocks[block])
        assert only is not None and (only.original, only.retrain) == (whole.original, whole.retrain)
        assert only.rows["ga"] == whole.rows["ga"]


def test_cpu_scale_keeps_the_configured_limits(capsys):
    assert references.main(["table10", "--seeds", "0", "--dry-run", "--", *SHRINK]) == 0
    out = capsys.readouterr().err
    assert "lock_timeout" not in out and "timeout_min" not in out and "no estimate at this scale" in out


def test_derive_covers_resumable_work_with_requeues_and_flags_unlearning_that_cannot_fit():
    short = limits.derive(work_min=20, wait_min=10, cap_min=720)
    assert (short.timeout_min, short.max_num_timeout) == (limits.MIN_TIMEOUT, 0)
    long = limits.derive(work_min=3000, wait_min=1600, cap_min=720, whole_min=100)
    assert long.timeout_min == 720 and long.fits and long.lock_timeout == 1.5 * 1600 * 60
    assert 720 * long.max_num_timeout >= 1.5 * 3000  # every attempt but the last resumes the references...
    assert 720 >= 1.5 * 100  # ...and the last one holds the whole unlearning
    assert not limits.derive(work_min=0, wait_min=0, cap_min=720, whole_min=600).fits  # 900 min > 720, not resumable
    assert limits.derive(work_min=30, wait_min=0, cap_min=720, requeues=3).max_num_timeout == 3  # the preset's kept


def test_bad_margin_is_refused_before_any_work(capsys):
    assert references.main(["table1", "--scale", "paper", "--margin", "0", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "margin=0.0" in err and "allowed" in err and len(err.strip().splitlines()) == 1


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


@pytest.mark.slow  # four processes; by default: test_faults kills a whole run at every stage, test_scaleout resumes
# training to the same weights, test_warmed_references_... runs the stage= jobs the table then loads
def test_a_killed_reference_job_resumes_to_the_uninterrupted_weights_and_trains_only_its_model(tmp_path):
    """stage=original killed (SIGKILL) after its second epoch, run again: it resumes from the checkpoint and ends
    with the weights of an uninterrupted job, and trains no Retrain model; stage=retrain then trains only that."""
    env = {**{k: v for k, v in os.environ.items() if k not in faults.at("-")}, "WANDB_MODE": "disabled",
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    base = [o for o in TINY if o != "method.epochs=1"] + ["threads=1", "checkpoint_every=1", "results_csv=null"]

    def job(stage: str, cache: str, fault: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "unlearn.app", f"stage={stage}", *base, f"cache_dir={cache}"],
                              cwd=tmp_path, env={**env, **(faults.at(fault) if fault else {})},
                              capture_output=True, text=True, timeout=HANG_GUARD)

    store = tmp_path / "cache"
    killed = job("original", str(store), fault="original/2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert len(list(store.glob("original-*.resume.pt"))) == 1 and not list(store.glob("original-" + "?" * 16 + ".pt"))
    again = job("original", str(store))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "original: resuming from epoch 1 of" in again.stdout + again.stderr  # the last whole checkpoint
    assert not list(store.glob("retrain-*")) and not list(store.glob("*.resume.pt"))  # not this job's model
    plain = job("original", str(tmp_path / "plain"))
    assert plain.returncode == 0, plain.stderr[-2000:]

    def digest(folder: Path, kind: str) -> str:
        (path,) = folder.glob(f"{kind}-" + "?" * 16 + ".pt")
        return torch.load(path, weights_only=True)["value"]["info"]["digest"]
    assert digest(store, "original") == digest(tmp_path / "plain", "original")
    retrain = job("retrain", str(store))
    assert retrain.returncode == 0, retrain.stderr[-2000:]
    assert digest(store, "retrain") and "original: not cached" not in retrain.stdout + retrain.stderr


def test_fast_jobs_ask_for_other_reference_models_than_plain_ones():
    """fast=true changes the step mechanics when the job starts (bf16, and on a GPU channels_last and benchmarked
    cuDNN): `make references` must not warm the plain models for it, nor count them as its own."""
    jobs = planning.plan(load("table10", "cpu"), [0], SHRINK)
    job = jobs[0]
    plain = {stage: references.reference_key(job, stage) for stage in ("original", "retrain")}
    with open_dict(job.cfg):
        job.cfg.fast = True
    assert all(references.reference_key(job, stage) != key for stage, key in plain.items())
    with open_dict(job.cfg):
        job.cfg.fast = False
    assert {stage: references.reference_key(job, stage) for stage in plain} == plain
