"""Every experiment file composes; the Table 6 ablation's rows map to the right method and alpha and run."""
import pytest
import yaml

from tests.conftest import CONF, compose_cfg
from unlearn.workspace import run_experiment

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
ROWS = {  # Table 6 row -> (method, sign of alpha)
    "ga": ("ga", 0), "ugradsl_no_retain_nls": ("ugradsl_no_retain", -1), "ugradsl_no_nls": ("ugradsl", 0),
    "ugradsl_nls": ("ugradsl", -1), "ugradsl_pls": ("ugradsl", 1), "ft": ("ft", 0),
    "ugradsl_plus_no_nls": ("ugradsl_plus", 0), "ugradsl_plus_nls": ("ugradsl_plus", -1),
    "ugradsl_plus_pls": ("ugradsl_plus", 1),
}


def _sign(x):
    return (x > 0) - (x < 0)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes(name, tmp_path):
    cfg = compose_cfg([f"experiment={name}"], tmp_path)
    assert cfg.table, "experiment files name their table for the results CSV"
    assert cfg.dataset.name and cfg.model.name and cfg.paradigm.name and cfg.method.name


def test_ablation_sweeps_every_table6_row():
    spec = yaml.safe_load((CONF / "experiment" / "ablation.yaml").read_text())
    assert spec["hydra"]["sweeper"]["params"]["+ablation"].split(",") == list(ROWS)


@pytest.mark.parametrize("row", ROWS)
def test_ablation_row_runs_with_its_method_and_alpha(row, tmp_path):
    cfg = compose_cfg(["experiment=ablation", f"+ablation={row}", "dataset=synthetic", "model=cnn",
                       "device=cpu", "wandb.mode=disabled", "train.epochs=2", "method.epochs=1"], tmp_path)
    method, sign = ROWS[row]
    assert cfg.method.name == method and cfg.paradigm.name == "random" and cfg.table == "table6"
    assert _sign(cfg.smooth_rate) == sign
    if "smooth_rate" in cfg.method and method != "ga":
        assert cfg.method.smooth_rate == cfg.smooth_rate
    metrics = run_experiment(cfg)
    assert metrics["sum"] == metrics["sum"]  # finite, not NaN
