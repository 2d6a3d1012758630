"""`fast=true`: bf16, channels_last and cuDNN benchmark on a GPU, only bf16 on the CPU; in the config_id."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import TINY, compose_cfg
from unlearn.identity import config_id
from unlearn import steps
from unlearn.steps import apply_fast
from unlearn.validate import check_config
from unlearn.workspace import run_experiment

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # apply_fast reads only the device type: no GPU needed


def _cfg(tmp_path, *extra):
    return compose_cfg(["dataset=synthetic", "method=ga", *extra], tmp_path)


def _mechanics(cfg):
    return {k: cfg[k] for k in ("precision", "channels_last", "compile", "cudnn")}


def test_fast_on_a_gpu_without_native_bf16_is_refused_naming_fp16(tmp_path, monkeypatch):
    """A V100 or T4 emulates bf16: fast=true would run slower than fp32, so it is refused before any work, naming
    what is allowed; fast=true precision=fp16 runs there (and its config_id says fp16, as the job's row will)."""
    from unlearn.checks import ConfigError
    monkeypatch.setattr(steps, "bf16_native", lambda device: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100-SXM2-32GB")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    cfg = _cfg(tmp_path, "fast=true")
    with pytest.raises(ConfigError) as e:
        apply_fast(cfg, CUDA)
    assert "Tesla V100-SXM2-32GB (compute capability 7.0) has no native bf16" in str(e.value)
    assert "fast=true precision=fp16" in str(e.value) and cfg.precision == "fp32"  # nothing was written
    cfg = _cfg(tmp_path, "fast=true", "precision=fp16")
    before = config_id(cfg)
    apply_fast(cfg, CUDA)
    assert _mechanics(cfg)["precision"] == "fp16" and cfg.channels_last is True and config_id(cfg) == before


def test_fast_on_a_cpu_without_bf16_instructions_says_it_is_emulated(tmp_path, monkeypatch):
    monkeypatch.setattr(steps, "bf16_native", lambda device: False)
    note = apply_fast(_cfg(tmp_path, "fast=true"), CPU)
    assert "no bf16 instructions" in note and "emulated" in note
    monkeypatch.setattr(steps, "bf16_native", lambda device: True)
    assert "emulated" not in apply_fast(_cfg(tmp_path, "fast=true"), CPU)


def test_fast_on_the_cpu_turns_on_bf16_only_and_says_so(tmp_path):
    cfg = _cfg(tmp_path, "fast=true")
    note = apply_fast(cfg, CPU)
    assert _mechanics(cfg) == {"precision": "bf16", "channels_last": False, "compile": False, "cudnn": "deterministic"}
    assert "on the CPU" in note and "channels_last" in note and "not bit-reproducible" in note.lower()


def test_fast_on_a_gpu_sets_all_three_and_keeps_an_asked_for_fp16(tmp_path, monkeypatch):
    monkeypatch.setattr(steps, "bf16_native", lambda device: True)  # an Ampere or newer GPU
    cfg = _cfg(tmp_path, "fast=true")
    apply_fast(cfg, CUDA)
    assert _mechanics(cfg) == {"precision": "bf16", "channels_last": True, "compile": False, "cudnn": "benchmark"}
    cfg = _cfg(tmp_path, "fast=true", "precision=fp16")
    apply_fast(cfg, CUDA)
    assert cfg.precision == "fp16" and cfg.channels_last is True


def test_fast_off_changes_nothing_and_a_bad_value_is_refused(tmp_path):
    cfg = _cfg(tmp_path)
    before = OmegaConf.to_container(cfg)
    assert apply_fast(cfg, CUDA) is None and OmegaConf.to_container(cfg) == before
    with pytest.raises(ValueError, match=r"^fast='yes' is invalid; allowed: true or false"):
        check_config(_cfg(tmp_path, "fast=yes"))  # the value's rule lives with the config's others
    assert apply_fast(_cfg(tmp_path, "fast=false"), CUDA) is None


def test_fast_is_in_the_config_id_before_and_after_the_job_applies_it(tmp_path, monkeypatch):
    monkeypatch.setattr(steps, "bf16_native", lambda device: True)
    plain, bf16 = config_id(_cfg(tmp_path)), config_id(_cfg(tmp_path, "precision=bf16"))
    ids = set()
    for device in (CPU, CUDA):
        cfg = _cfg(tmp_path, "fast=true")
        ids.add(config_id(cfg))  # as a planner sees it, without a device
        apply_fast(cfg, device)
        ids.add(config_id(cfg))  # as the job records it
    assert len(ids) == 1 and ids.isdisjoint({plain, bf16})
    assert config_id(_cfg(tmp_path, "fast=false")) == plain


def test_a_fast_run_on_the_cpu_records_bf16_in_its_row(tmp_path):
    cfg = compose_cfg([*TINY, "method=ga", "fast=true"], tmp_path)
    run_experiment(cfg)
    row = pd.read_csv(tmp_path / "runs.csv").iloc[-1]
    assert row["precision"] == "bf16" and not row["channels_last"] and row["cudnn"] == "deterministic"
    assert row["config_id"] == config_id(compose_cfg([*TINY, "method=ga", "fast=true"], tmp_path))


def test_asked_for_bf16_on_a_cpu_that_emulates_it_warns_before_training(tmp_path, monkeypatch, caplog):
    """The tier's `precision: bf16` runs many times slower on an AVX2 CPU: the run says so before any training
    (and only there: not for fp32, not on a CPU with bf16 instructions, not twice under fast=true)."""
    monkeypatch.setattr(steps, "bf16_native", lambda device: False)
    assert "emulated" in steps.emulated_bf16(_cfg(tmp_path, "precision=bf16"), CPU)
    assert steps.emulated_bf16(_cfg(tmp_path, "precision=fp32"), CPU) is None
    assert steps.emulated_bf16(_cfg(tmp_path, "precision=bf16", "fast=true"), CPU) is None  # apply_fast's note says it
    assert steps.emulated_bf16(_cfg(tmp_path, "precision=bf16"), CUDA) is None
    with caplog.at_level("WARNING", logger="unlearn"):
        run_experiment(compose_cfg([*TINY, "method=ga", "precision=bf16"], tmp_path))
    assert any("precision=bf16 is emulated" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    monkeypatch.setattr(steps, "bf16_native", lambda device: True)
    assert steps.emulated_bf16(_cfg(tmp_path, "precision=bf16"), CPU) is None


def test_the_table_runner_warns_once_when_the_tiers_jobs_would_emulate_bf16(monkeypatch):
    from unlearn.tables import __main__ as runner, plan as planning
    from unlearn.tables.preset import load
    jobs = planning.plan(load("table6", "cpu", ["ga"]), [0])  # the tier: precision bf16
    assert jobs and all(j.cfg.precision == "bf16" for j in jobs)
    monkeypatch.setattr(steps, "bf16_native", lambda device: False)
    assert runner.emulated_jobs(jobs).startswith(f"{len(jobs)} of the {len(jobs)} jobs to run ask for precision=bf16")
    monkeypatch.setattr(steps, "bf16_native", lambda device: True)
    assert runner.emulated_jobs(jobs) is None
