"""Local parallel jobs on a multi-GPU node each take their own GPU (unlearn/gpus.py), checked on the CPU by mocking
what torch reports about CUDA."""
from __future__ import annotations

import pytest
import torch
from filelock import FileLock

from unlearn import gpus


@pytest.fixture
def two_gpus(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    yield chosen
    gpus.release()


def test_jobs_side_by_side_take_different_gpus(two_gpus, tmp_path):
    assert gpus.claim("auto", folder=tmp_path) == 0
    other_process = FileLock(str(tmp_path / "gpu-0.lock"))  # the first job keeps running elsewhere
    gpus.release()
    other_process.acquire(timeout=0)
    try:
        assert gpus.claim("cuda", folder=tmp_path) == 1  # the next job gets the free GPU
        assert two_gpus == [0, 1]
    finally:
        other_process.release()


def test_a_job_waits_while_every_gpu_is_taken(two_gpus, tmp_path, monkeypatch):
    held = [FileLock(str(tmp_path / f"gpu-{i}.lock")) for i in range(2)]
    for lock in held:
        lock.acquire(timeout=0)
    sleeps = []

    def sleep(seconds):  # the other job ends while this one waits
        sleeps.append(seconds)
        held[1].release()
    monkeypatch.setattr(gpus.time, "sleep", sleep)
    assert gpus.claim("auto", folder=tmp_path, poll=0.01) == 1
    assert sleeps == [0.01]
    held[0].release()


def test_nothing_to_share_leaves_the_device_alone(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: pytest.fail("no GPU to choose"))
    assert gpus.claim("cpu", folder=tmp_path) is None
    assert gpus.claim("cuda:1", folder=tmp_path) is None  # the user chose one
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert gpus.claim("auto", folder=tmp_path) is None  # one GPU: nothing to share
    assert gpus.local_launcher({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"})
    assert not gpus.local_launcher({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"})
    assert not gpus.local_launcher(None)
