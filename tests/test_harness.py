"""The suite's shortcuts give what Hydra gives: a composition shared across tests (group choices composed once,
value overrides applied afterwards by Hydra's own function) equals Hydra's own composition, errors included."""
import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.hydra import Hydra
from omegaconf import OmegaConf

from tests.conftest import _REAL, CONF

CASES = [
    ["dataset=synthetic", "model=cnn", "method=ga", "method.lr=0.5", "seed=3", "cache_dir=/elsewhere"],
    ["experiment=cifar10_random", "method=ugradsl", "smooth_rate=-0.3", "p=0.5", "table=table1", "scale=cpu"],
    ["experiment=ablation", "dataset=synthetic", "+ablation=ugradsl_pls", "+eval.extra=1"],
    ["method=ga", "~method.lr", "++new=2", "seed=${oc.env:HOME}"],
    ["regime=cifar_fast_cpu", "dataset=cifar10_fast_cpu", "method=scrub", "hydra/launcher=slurm",
     "hydra.launcher.timeout_min=300", "lock_timeout=5"],
    ["method=ga", "hydra.sweep.dir=/elsewhere/sweep", "hydra.job.name=mine", "hydra.verbose=true",
     "hydra.job.config.override_dirname.kv_sep=:", "seed=4"],
    ["hydra.job.env_copy=[HOME]", f"hydra.searchpath=[file://{CONF}]", "hydra/launcher=local", "seed=5"],
    ["method=ga", "method.nonexistent=1"],  # Hydra's error: not in the struct
    ["method=ga", "dataset={a:1}"],  # a dict for a group: a value override, refused
]


def _composed(overrides, hydra_node: bool) -> str:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        try:
            return OmegaConf.to_yaml(compose("config", overrides=overrides, return_hydra_config=hydra_node))
        except Exception as e:  # noqa: BLE001 - the error is part of what must be equal
            return f"{type(e).__name__}: {e}"


@pytest.mark.parametrize("hydra_node", [False, True])
@pytest.mark.parametrize("overrides", CASES, ids=range(len(CASES)))
def test_a_shared_composition_equals_hydras_own(overrides, hydra_node, monkeypatch):
    shared = [_composed(overrides, hydra_node) for _ in range(2)]  # the second from the worker's cache
    monkeypatch.setattr(Hydra, "compose_config", _REAL["compose_config"])
    assert shared == [_composed(overrides, hydra_node)] * 2
