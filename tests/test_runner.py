"""The runner end to end: caching, fail-fast validation, metrics.json, CSV rows, multirun sharing."""
import json
import multiprocessing as mp
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from omegaconf import open_dict

from tests.conftest import HANG_GUARD, ROOT, TINY
from unlearn.results_csv import append_row
from unlearn.workspace import Workspace, run_experiment

ENV = {**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _run(args, tmp_path, check=True):
    out = subprocess.run([sys.executable, "run.py", *args, f"cache_dir={tmp_path}/cache",
                          f"results_csv={tmp_path}/runs.csv"], cwd=ROOT, env=ENV, capture_output=True,
                         text=True, timeout=HANG_GUARD)
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_second_run_hits_the_cache(tiny_cfg, tmp_path, caplog):
    cfg = tiny_cfg()
    run_experiment(cfg)
    caplog.clear()
    with caplog.at_level("INFO", logger="unlearn"):
        ws = Workspace(tiny_cfg())
        ws.refs.original(), ws.refs.retrain()
    assert "original: loaded from cache" in caplog.text and "retrain: loaded from cache" in caplog.text
    assert len(list((tmp_path / "cache").glob("original-*.pt"))) == 1
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 1


# Bad inputs and what they are told: tests/test_validation.py


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_requested_without_cuda(tiny_cfg):
    with pytest.raises(ValueError, match="CUDA is not available"):
        run_experiment(tiny_cfg("device=cuda"))


def test_cli_multirun_writes_each_jobs_metrics_and_row_and_shares_original_and_retrain(tmp_path):
    """`run.py -m` as a user starts it (a single run through run.py: test_faults, test_wandb): each job's
    metrics.json holds the unlearned model's and both references' metrics, the CSV one row per job, and the two
    jobs train the original and Retrain once."""
    _run(["-m", *TINY, "method=ga,ugradsl", f"hydra.sweep.dir={tmp_path}/multi"], tmp_path)
    assert len(list((tmp_path / "cache").glob("original-*.pt"))) == 1
    assert len(list((tmp_path / "cache").glob("retrain-*.pt"))) == 1
    rows = pd.read_csv(tmp_path / "runs.csv")
    assert sorted(rows["method"]) == ["ga", "ugradsl"] and (rows["dataset"] == "synthetic").all()
    assert {"smooth_rate", "p", "seed", "git_commit", "timestamp", "UA", "retrain/UA"} <= set(rows.columns)
    saved = [json.loads(f.read_text()) for f in sorted((tmp_path / "multi").glob("*/metrics.json"))]
    assert len(saved) == 2
    for job in saved:
        for key in ("UA", "MIA", "RA", "TA", "H", "RTE_min", "avg_gap", "sum"):
            assert key in job["metrics"] and f"original/{key}" in job["metrics"] and f"retrain/{key}" in job["metrics"]
        assert job["config"]["dataset"]["name"] == "synthetic"


def _append_many(args):
    path, worker = args
    for i in range(25):
        append_row(path, {"worker": worker, "i": i, "payload": "x" * 200})


def test_parallel_appends_never_lose_or_interleave_rows(tmp_path):
    path = str(tmp_path / "rows.csv")
    with mp.get_context("fork").Pool(4) as pool:
        pool.map(_append_many, [(path, w) for w in range(4)])
    rows = pd.read_csv(path)
    assert len(rows) == 100 and (rows["payload"] == "x" * 200).all()
    assert sorted(zip(rows["worker"], rows["i"])) == [(w, i) for w in range(4) for i in range(25)]


def test_new_columns_widen_the_header(tmp_path):
    path = tmp_path / "rows.csv"
    append_row(path, {"a": 1})
    append_row(path, {"a": 2, "b": 3})
    rows = pd.read_csv(path)
    assert list(rows.columns) == ["a", "b"] and rows["b"].isna().tolist() == [True, False]


def test_where_data_is_cached_does_not_change_the_model_key(tiny_cfg):
    from unlearn.references import Spec
    ws = Workspace(tiny_cfg())
    before = ws.refs.original_key()

    def key(**dataset):  # the key of the same run whose dataset config had `dataset` as well
        cfg = ws.cfg.copy()
        with open_dict(cfg):
            cfg.dataset.update(dataset)
        ws.refs.spec = Spec.of(cfg, ws.refs.recipe, ws.refs.spec.labels)
        return ws.refs.original_key()

    assert key(cache_dir="/elsewhere", num_workers=7) == before  # keys that say where/how data is read
    assert key(noise=0.9) != before  # what it is


def test_reference_metrics_are_computed_once_per_split(tiny_cfg, monkeypatch):
    import unlearn.workspace as workspace

    calls = []
    real = workspace.evaluate
    monkeypatch.setattr(workspace, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = run_experiment(tiny_cfg("method=ga"))
    assert len(calls) == 3  # original, retrain, unlearned
    second = run_experiment(tiny_cfg("method=ft"))
    assert len(calls) == 4  # only the unlearned model is evaluated again
    for key in ("original/UA", "original/MIA", "retrain/TA", "retrain/mia/entropy"):
        assert second[key] == first[key]
    third = run_experiment(tiny_cfg("method=ga", "paradigm=random", "paradigm.forget_fraction=0.25"))
    assert len(calls) == 7  # another split: the references are evaluated on it
    assert third["original/UA"] != first["original/UA"] or third["forget/size"] != first["forget/size"]


# --- the table runner's launches (unlearn/tables/launch.py) ----------------------------------------------------

def test_a_failing_row_does_not_stop_the_others(tmp_path):
    from unlearn.tables.launch import launch
    marker = tmp_path / "second-ran"
    groups = {"block / bad": [sys.executable, "-c", "import sys; sys.exit(3)"],
              "block / good": [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]}
    out = launch(groups, log=lambda line: None)
    assert out.failed == [("block / bad", 3)] and out.finished == ["block / good"] and out.signal is None
    assert marker.exists()


STOPPED = """
import sys
from unlearn.tables.launch import launch
pid, marker = sys.argv[1], sys.argv[2]
sleeper = "import os, time; open(%r, 'w').write(str(os.getpid())); time.sleep(600)" % pid
out = launch({"a": [sys.executable, "-c", sleeper], "b": [sys.executable, "-c", "open(%r, 'w')" % marker]},
             log=lambda line: None)
print(out.signal, out.finished, out.failed)
"""


def test_sigterm_reaches_the_running_job_and_nothing_more_starts(tmp_path):
    """SIGTERM to the runner goes to its running job (which once kept running after the runner had gone), no
    further job starts, and the runner says what happened."""
    import signal
    import time
    pid_file, marker = tmp_path / "pid", tmp_path / "second-ran"
    runner = subprocess.Popen([sys.executable, "-c", STOPPED, str(pid_file), str(marker)], cwd=ROOT, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(HANG_GUARD * 10):  # until the job has started
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.1)
    job = int(pid_file.read_text())
    runner.send_signal(signal.SIGTERM)
    out, err = runner.communicate(timeout=HANG_GUARD)
    assert runner.returncode == 0, err[-2000:]
    assert out.split("\n")[0] == f"{int(signal.SIGTERM)} [] []"  # stopped by SIGTERM, nothing finished or failed
    with pytest.raises(ProcessLookupError):
        os.kill(job, 0)  # the job is gone (and reaped), not left running
    assert not marker.exists()


def test_benchmarked_cudnn_keys_gpu_reference_models_apart_and_leaves_cpu_keys_alone(tiny_cfg):
    """fast=true on a GPU benchmarks cuDNN kernels (other numbers): its reference models get their own cache
    keys; on a CPU cuDNN plays no part and the keys stay those of the plain loop."""
    import dataclasses
    ws = Workspace(tiny_cfg())
    refs = ws.refs
    plain = refs.original_key()
    cudnn = lambda mode: dataclasses.replace(refs.spec, compute=dataclasses.replace(refs.compute, cudnn=mode))  # noqa: E731
    refs.spec = cudnn("benchmark")
    assert refs.original_key() == plain
    refs.device = torch.device("cuda")  # only the key is computed: no GPU needed
    gpu_benchmark = refs.original_key()
    refs.spec = cudnn("deterministic")
    assert gpu_benchmark["compute"] == {"cudnn": "benchmark"} and "compute" not in refs.original_key()


def test_reference_training_time_leaves_compilations_out(tiny_cfg, monkeypatch):
    """original/RTE_s is the training's time without torch.compile's compilations (as the methods' RTE)."""
    import unlearn.references as references

    class Clock:  # a compile clock that saw 1000 s of compilation
        def __init__(self, on):
            self.seconds, self.count = 1000.0, 1

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(references, "CompileClock", Clock)
    _, info = Workspace(tiny_cfg()).refs.original()  # tiny_cfg caches in its own temporary folder
    assert info["train_seconds"] < 0  # the elapsed seconds minus the 1000 s the clock saw
