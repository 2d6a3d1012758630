"""Shared fixtures: compose the real configs with Hydra and shrink them to tiny CPU runs."""
import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by subprocess runs
# Test models are tiny: one intra-op thread avoids spin-waiting overhead, which on 2 shared cores
# made steps up to 100x slower.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

TINY = ["dataset=synthetic", "model=cnn", "device=cpu", "wandb.mode=disabled", "train.epochs=4",
        "train.batch_size=32", "method.epochs=1"]


def compose_cfg(overrides, tmp_path: Path):
    """The real root config with `overrides`, writing only under `tmp_path`."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[f"cache_dir={tmp_path}/cache", f"results_csv={tmp_path}/runs.csv",
                                             f"run_dir={tmp_path}/run", *overrides])


@pytest.fixture
def tiny_cfg(tmp_path):
    """Factory: tiny synthetic config plus extra overrides (one-shot methods such as iu/ff have no `epochs`)."""
    def make(*extra):
        cfg = compose_cfg([o for o in TINY if o != "method.epochs=1"] + list(extra), tmp_path)
        if "epochs" in cfg.method and not any(o.startswith("method.epochs=") for o in extra):
            cfg.method.epochs = 1
        return cfg
    return make


@pytest.fixture
def synthetic():
    from unlearn.data.synthetic import load_synthetic
    return load_synthetic()


def pytest_collection_modifyitems(config, items):
    if SHARED_DATA.exists():
        return
    skip = pytest.mark.skip(reason=f"{SHARED_DATA} is absent")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)
