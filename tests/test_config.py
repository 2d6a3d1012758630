"""One home for every value: Python takes the YAML's values (no signature defaults), a method built from
its YAML and from Python with the same arguments behaves identically, and `experiment=ablation` is a
multirun even without -m."""
import inspect
import json
import re
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tests.conftest import CONF, HANG_GUARD, ROOT, TINY, compose_cfg, yaml_method
from unlearn.checks import ConfigError
from unlearn.identity import config_id
from unlearn.workspace import Workspace

METHODS = sorted(p.stem for p in (CONF / "method").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def _defaults(cls) -> list[str]:
    """Keyword parameters of `cls(...)` that carry a Python default, following **kwargs up the MRO."""
    out = []
    for klass in cls.__mro__:
        if not klass.__module__.startswith("unlearn") or "__init__" not in vars(klass):
            continue
        for p in inspect.signature(vars(klass)["__init__"]).parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.default is not p.empty:
                out.append(f"{klass.__name__}.{p.name}")
    return out


@pytest.mark.parametrize("group, name", [("method", m) for m in METHODS] + [("model", m) for m in MODELS])
def test_python_has_no_defaults_of_its_own(group, name, tmp_path):
    target = OmegaConf.to_container(compose_cfg([f"{group}={name}", "dataset=synthetic"], tmp_path)[group])["_target_"]
    module, cls = target.rsplit(".", 1)
    assert _defaults(getattr(__import__(module, fromlist=[cls]), cls)) == []


@pytest.mark.parametrize("method", [m for m in METHODS if m != "retrain"])
def test_yaml_and_python_with_the_same_arguments_behave_identically(method, tmp_path):
    tiny = [o for o in TINY if method not in ("iu", "ff") or not o.startswith("method.epochs")]  # one-shot
    ws = Workspace(compose_cfg([*tiny, f"method={method}", "paradigm=random", "paradigm.forget_fraction=0.25"],
                               tmp_path))
    spec = OmegaConf.to_container(ws.cfg.method, resolve=True)
    cls = type(ws.method)
    by_python = cls(**{k: v for k, v in spec.items() if k not in ("_target_", "name")})
    original = ws.refs.original()[0]
    a, b = ws.method(original, ws.task).state_dict(), by_python(original, ws.task).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_tuned_values_override_the_methods_yaml_for_their_regime(tmp_path):
    digits = compose_cfg(["method=ga"], tmp_path).method
    paper = compose_cfg(["method=ga", "dataset=cifar10"], tmp_path).method
    assert (paper.lr, paper.epochs, paper.batch_size) == (1e-4, 10, 256)  # App. D.3, conf/method/ga.yaml
    assert (digits.lr, digits.batch_size) == (0.002, 64)  # conf/tuned/digits/ga.yaml
    assert compose_cfg(["method=ga", "method.lr=0.5"], tmp_path).method.lr == 0.5  # the command line wins
    assert yaml_method("ga").recipe.lr == 1e-4


def test_each_data_set_names_its_training_recipe(tmp_path):
    recipes = {"digits": 15, "cifar10": 160, "cifar100": 160, "svhn": 160, "imagenet": 90, "newsgroups20": 60,
               "cifar10_jpg": 160, "cifar10_cpu": 25, "cifar100_cpu": 25, "imagenet_cpu": 25}
    for dataset, epochs in recipes.items():
        assert compose_cfg([f"dataset={dataset}"], tmp_path).train.epochs == epochs, dataset
    assert compose_cfg(["dataset=cifar10", "train=cifar_cpu"], tmp_path).train.epochs == 25


REGIMES = sorted(p.stem for p in (CONF / "regime").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (CONF / "dataset").glob("*.yaml"))


def test_every_data_set_names_a_regime_that_lists_it(tmp_path):
    """One choice behind a run's scale: each data set's own regime lists it (or takes any data), and the regime
    picks the recipe and keys the tuned values."""
    for dataset in DATASETS:
        cfg = compose_cfg([f"dataset={dataset}"], tmp_path)
        assert cfg.regime.name in REGIMES, dataset
        assert not cfg.regime.datasets or cfg.dataset.name in cfg.regime.datasets, dataset
    listed = [d for r in REGIMES for d in OmegaConf.load(CONF / "regime" / f"{r}.yaml").datasets]
    assert set(listed) - {compose_cfg([f"dataset={d}"], tmp_path).dataset.name for d in DATASETS} == set()  # no regime lists a data set that is not there


def test_the_regime_keys_the_tuned_values_and_the_recipe(tmp_path):
    ga = compose_cfg(["method=ga", "dataset=cifar10_fast_cpu", "model=fastcnn"], tmp_path)
    tuned = OmegaConf.load(CONF / "tuned" / "cifar_fast_cpu" / "ga.yaml")
    assert (ga.regime.name, ga.method.lr, ga.train.epochs) == ("cifar_fast_cpu", tuned.lr,
                                                                OmegaConf.load(CONF / "train" / "cifar_fast_cpu.yaml").epochs)
    text = compose_cfg(["experiment=newsgroups20_cpu", "method=ga"], tmp_path)  # an experiment names its regime
    assert (text.regime.name, text.method.lr) == ("text_cpu", OmegaConf.load(CONF / "tuned" / "text_cpu" / "ga.yaml").lr)
    recipe_only = compose_cfg(["dataset=cifar10", "train=cifar_cpu", "method=ga"], tmp_path)  # train= swaps the
    assert (recipe_only.regime.name, recipe_only.method.lr) == ("cifar_paper", 1e-4)  # recipe, not the tuned values


@pytest.mark.parametrize("overrides", [["experiment=cifar10_random_fast_cpu"], ["dataset=cifar10_cpu", "model=vit"],
                                       *([f"dataset={d}"] for d in ("digits", "cifar10", "imagenet", "newsgroups20"))])
def test_the_retrain_method_is_the_reference_recipe_in_every_regime(overrides, tmp_path):
    """method=retrain carries every field of the training recipe, so it hands over the cached reference Retrain
    (the tier's clean epochs, Nesterov and weight averaging once got lost: RA 92.9 instead of ~99)."""
    from hydra.utils import instantiate

    from unlearn.train import Recipe
    cfg = compose_cfg([*overrides, "method=retrain"], tmp_path)
    spec = OmegaConf.to_container(cfg.method, resolve=True)
    spec.pop("name")
    assert instantiate(spec).recipe == Recipe(**cfg.train)


REGIME_REFUSED = [
    (["dataset=cifar10_cpu", "regime=digits"], "the regimes for dataset=cifar10_cpu: cifar_cpu (drop regime="),
    (["dataset=newsgroups20", "regime=digits"], "the regimes for dataset=newsgroups20: text_cpu, text_paper"),
    (["regime=cifar_fast_cpu"], "its data sets: cifar10_fast_cpu"),
    (["dataset=imagefolder", "dataset.root=x", "regime=cifar_cpu"], "regime=default runs any data set"),
]


@pytest.mark.parametrize("overrides, says", REGIME_REFUSED[1:])
def test_a_data_set_outside_its_regime_is_refused_by_the_config_check(overrides, says, tmp_path):
    from unlearn.validate import check_config
    with pytest.raises(ConfigError, match=re.escape(says)):
        check_config(compose_cfg(overrides, tmp_path))


@pytest.mark.slow  # a process; by default the check runs in-process above and CLI_REJECTED["top-level"]
# (tests/test_validation.py) runs a config check's refusal through run.py, exit 2 and nothing written
def test_a_data_set_outside_its_regime_is_refused_before_any_work(tmp_path):
    """The first case as a user meets it (the others through the same check, in-process, above)."""
    overrides, says = REGIME_REFUSED[0]
    out = subprocess.run([sys.executable, "run.py", *overrides, f"cache_dir={tmp_path}/cache",
                          f"results_csv={tmp_path}/runs.csv", f"hydra.run.dir={tmp_path}/run"], cwd=ROOT,
                         capture_output=True, text=True, timeout=HANG_GUARD)
    assert out.returncode != 0 and says in out.stderr + out.stdout, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and not (tmp_path / "cache").exists() and not (tmp_path / "runs.csv").exists()


def test_ablation_is_a_multirun_of_one_job_per_row(tmp_path):
    """What makes `experiment=ablation` sweep without -m (the slow test below runs it): Hydra's mode and a sweep
    over every row of conf/ablation/, each row a distinct configuration of Table 6."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        hydra_node = compose("config", overrides=["experiment=ablation", *TINY], return_hydra_config=True).hydra
    assert str(hydra_node.mode) == "RunMode.MULTIRUN" and hydra_node.sweeper.params["+ablation"] == "glob(*)"
    rows = sorted(p.stem for p in (CONF / "ablation").glob("*.yaml"))
    assert len(rows) == 9
    cfgs = [compose_cfg(["experiment=ablation", *TINY, f"+ablation={row}"], tmp_path) for row in rows]
    assert {c.table for c in cfgs} == {"table6"} and len({config_id(c) for c in cfgs}) == 9


@pytest.mark.slow  # nine jobs in a subprocess; by default the test above checks what makes it a sweep of nine
def test_ablation_runs_as_a_multirun_without_dash_m(tmp_path):
    out = subprocess.run([sys.executable, "run.py", "experiment=ablation", *TINY, f"cache_dir={tmp_path}/cache",
                          f"results_csv={tmp_path}/runs.csv", f"hydra.sweep.dir={tmp_path}/sweep"], cwd=ROOT,
                         capture_output=True, text=True, timeout=HANG_GUARD)
    assert out.returncode == 0, out.stderr[-2000:]
    runs = [json.loads(p.read_text()) for p in sorted((tmp_path / "sweep").glob("*/metrics.json"))]
    assert len(runs) == 9 and {r["table"] for r in runs} == {"table6"}
    assert len({r["config_id"] for r in runs}) == 9
