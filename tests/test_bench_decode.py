"""scripts/bench_decode.py: the cores a lazily decoded ImageNet job needs, and the SLURM preset's CPU count."""
from __future__ import annotations

import importlib.util
import math

import pandas as pd
from omegaconf import OmegaConf

from tests.conftest import CONF, ROOT

SPEC = importlib.util.spec_from_file_location("bench_decode", ROOT / "scripts" / "bench_decode.py")
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)


def test_the_paper_gpus_rate_comes_from_its_imagenet_retrain_time():
    assert 1000 < bench.paper_rate() < 1500  # 90 epochs of ~1.28M images in 26.18 hours


def test_the_benchmark_writes_every_path_with_the_cores_its_rate_implies(tmp_path):
    out = tmp_path / "decode.csv"
    assert bench.main(["--images", "3", "--speedups", "1,4", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.path) == ["read", "pil_train", "pil_eval", "tv_cpu"]  # no CUDA here: no gpu row
    for r in table.itertuples():
        assert r.cores_at_x1 == math.ceil(bench.paper_rate() / r.images_per_s_per_core)
        assert r.cores_at_x4 == math.ceil(4 * bench.paper_rate() / r.images_per_s_per_core)
    assert "| read |" in out.with_suffix(".md").read_text()


def test_the_committed_measurement_supports_the_slurm_presets_cpu_count():
    """docs/scaling-out.md: with GPU decoding one core of file reads feeds a GPU 4x the paper's; with PIL decoding
    the preset's cores feed the paper's GPU."""
    table = pd.read_csv(ROOT / "results" / "bench" / "decode.csv").set_index("path")
    cpus = OmegaConf.load(CONF / "hydra" / "launcher" / "slurm.yaml").cpus_per_task
    assert table.loc["read", "cores_at_x4"] == 1
    assert all(table.loc[p, "cores_at_x1"] <= cpus for p in ("pil_train", "pil_eval", "tv_cpu"))
