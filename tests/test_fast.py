"""`fast=true`: bf16, channels_last and cuDNN benchmark on a GPU, only bf16 on the CPU; in the config_id."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import TINY, compose_cfg
from unlearn.identity import config_id
from unlearn.train import apply_fast
from unlearn.validate import check_config
from unlearn.workspace import run_experiment

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # apply_fast reads only the device type: no GPU needed


def _cfg(tmp_path, *extra):
    return compose_cfg(["dataset=synthetic", "method=ga", *extra], tmp_path)


def _mechanics(cfg):
    return {k: cfg[k] for k in ("precision", "channels_last", "compile", "cudnn")}


def test_fast_on_the_cpu_turns_on_bf16_only_and_says_so(tmp_path):
    cfg = _cfg(tmp_path, "fast=true")
    note = apply_fast(cfg, CPU)
    assert _mechanics(cfg) == {"precision": "bf16", "channels_last": False, "compile": False, "cudnn": "deterministic"}
    assert "on the CPU" in note and "channels_last" in note and "not bit-reproducible" in note.lower()


def test_fast_on_a_gpu_sets_all_three_and_keeps_an_asked_for_fp16(tmp_path):
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


def test_fast_is_in_the_config_id_before_and_after_the_job_applies_it(tmp_path):
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
