"""Shared fixtures: compose the real configs with Hydra and shrink them to tiny CPU runs."""
import itertools
import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from unlearn.cli import override_key

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

# Subprocess tests stop a hung child after this long. It guards against hangs only: CI runs on a loaded
# 2-core machine where a one-minute sweep can take ten times longer, so it is far above any normal run time.
HANG_GUARD = 1800
TINY = ["dataset=synthetic", "model=cnn", "device=cpu", "wandb.mode=disabled", "method.epochs=1"]
_RUNS = itertools.count()


def compose_cfg(overrides, tmp_path: Path):
    """The real root config with `overrides`, writing only under `tmp_path` (a fresh run folder per call).

    The three paths are set on the composed config, not passed to Hydra: they are plain top-level values that no
    composition reads, so the same overrides compose once per worker (`_composed_once`) whatever the test's
    folder; an override of one of them in `overrides` wins, as it would on the command line."""
    overrides = list(overrides)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    given = {override_key(o) for o in overrides}
    paths = {"cache_dir": f"{tmp_path}/cache", "results_csv": f"{tmp_path}/runs.csv",
             "run_dir": f"{tmp_path}/run{next(_RUNS)}"}
    for key, value in paths.items():
        if key not in given:
            cfg[key] = value
    return cfg


def _instantiate(spec, **kw):
    try:
        return instantiate(spec, **kw)
    except InstantiationException as e:  # the constructor's own error, as a user would see it
        raise e.__cause__ from None


def yaml_model(name: str, num_classes: int, input_shape, **keys):
    """A model built from conf/model/<name>.yaml, the one home of its defaults, with `keys` changed."""
    spec = OmegaConf.to_container(OmegaConf.load(CONF / "model" / f"{name}.yaml"), resolve=True)
    for meta in ("name", "modality", "num_classes", "input_shape"):
        spec.pop(meta)
    return _instantiate({**spec, **keys}, num_classes=num_classes, input_shape=list(input_shape))


def yaml_method(name: str, **keys):
    """A method built from its composed YAML (conf/method/<name>.yaml with the shared optimiser recipe)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        node = compose("config", overrides=[f"method={name}", "dataset=synthetic"]).method
    spec = OmegaConf.to_container(node, resolve=True)
    spec.pop("name")
    return _instantiate({**spec, **keys})


def state_round_trip(model, fresh, tmp_path: Path):
    """Store `model`'s weights through the content cache and load them into `fresh`."""
    from unlearn.cache import cached
    key = {"test": type(model).__name__}
    cached("ckpt", key, tmp_path, lambda: {"state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}})
    fresh.load_state_dict(cached("ckpt", key, tmp_path, lambda: pytest.fail("not cached"))["state_dict"])
    return fresh


@pytest.fixture
def tiny_cfg(tmp_path):
    """Factory: tiny synthetic config plus extra overrides (one-shot methods such as iu/ff have no `epochs`)."""
    def make(*extra):
        cfg = compose_cfg([o for o in TINY if o != "method.epochs=1"] + list(extra), tmp_path)
        if "epochs" in cfg.method and "method.epochs" not in {override_key(o) for o in extra}:
            cfg.method.epochs = 1
        return cfg
    return make


@pytest.fixture
def synthetic():
    from unlearn.data.synthetic import load_synthetic
    return load_synthetic()


# The files xdist should hand out first (`make test` passes --dist loadfile --no-loadscope-reorder): the longest
# first, so the two workers end together (longest processing time first); the others follow in collection order.
# Measured with --durations=0 on 2026-12-07 (idle 2-core AVX2 machine): 77, 41, 29, 28, 26, 26, 19, 18, 16, 15, 13,
# 12, 12 and 11 s. A stale or missing entry only changes which worker ends last, never what a test does.
LONGEST_FIRST = ("test_tables.py", "test_faults.py", "test_paper_scale.py", "test_experiments.py",
                 "test_table_references.py", "test_validation.py", "test_config.py", "test_launchers.py",
                 "test_shared_files.py", "test_tune.py", "test_selection.py", "test_text.py", "test_figures.py",
                 "test_runner.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order is kept
    if SHARED_DATA.exists():
        return
    skip = pytest.mark.skip(reason=f"{SHARED_DATA} is absent")
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


# --- one composition per distinct set of group choices, shared by the tests of a worker ---------------------------
_COMPOSED: dict = {}
_REAL: dict = {}  # Hydra's own compose_config, for tests/test_harness.py


@pytest.fixture(autouse=True, scope="session")
def _composed_once():
    """Hydra composes each distinct (config folder, group choices, working folder) once per test worker; every
    caller gets its own deep copy with its value overrides applied by Hydra's own code. Composing is ~0.15 s and
    the tests compose the same groups again and again with other values (a table's label, a tmp folder, a
    learning rate); a composed config depends on nothing else (interpolations resolve when read)."""
    import copy

    from hydra._internal.hydra import Hydra

    real = _REAL["compose_config"] = Hydra.compose_config

    def compose_config(self, config_name, overrides, run_mode, *args, **kwargs):
        parsed, groups, values = _split(overrides, self.config_loader.repository)
        sources = tuple(s.full_path() for s in self.config_loader.get_sources())
        key = (sources, config_name, tuple(groups), run_mode, args, tuple(sorted(kwargs.items())), os.getcwd())
        if key not in _COMPOSED:
            _COMPOSED[key] = real(self, config_name, groups, run_mode, *args, **kwargs)
        cfg = copy.deepcopy(_COMPOSED[key])
        if values:
            _apply_values(cfg, parsed, values)
        return cfg

    Hydra.compose_config = compose_config
    real_load = OmegaConf.load
    OmegaConf.load = staticmethod(_parsed_once(real_load))
    yield
    Hydra.compose_config = real
    OmegaConf.load = staticmethod(real_load)


# hydra.* values that Hydra reads while composing (the search path) or right after its overrides (env_copy)
COMPOSED_HYDRA_KEYS = ("hydra.searchpath", "hydra.job.env_copy")


def _split(overrides, repo):
    """(every override parsed; what Hydra must compose: group choices, sweeps and the hydra.* keys it reads while
    composing, as text; the value overrides), told apart as Hydra's defaults list tells them
    (`hydra._internal.defaults_list.Overrides`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    groups, values = [], []
    for line, o in zip(overrides, parsed):
        value_override = not o.is_sweep_override() and not o.key_or_group.startswith(COMPOSED_HYDRA_KEYS) and (
            isinstance(o.value(), dict) or not repo.group_exists(o.key_or_group))
        (values.append(o) if value_override else groups.append(line))
    return parsed, groups, values


def _apply_values(cfg, parsed, values) -> None:
    """What Hydra does with value overrides after composing: apply them (its own function, so the same errors),
    then list every command-line override in `hydra.overrides` (task or hydra, in order) and the run's
    `override_dirname`."""
    from hydra._internal import config_loader_impl as loader

    loader.ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
    task = [o for o in parsed if not o.is_hydra_override()]
    named = cfg.hydra.job.config.override_dirname
    with open_dict(cfg.hydra):
        cfg.hydra.overrides.task = [o.input_line for o in task]
        cfg.hydra.overrides.hydra = [o.input_line for o in parsed if o.is_hydra_override()]
        cfg.hydra.job.override_dirname = loader.get_overrides_dirname(
            overrides=task, kv_sep=named.kv_sep, item_sep=named.item_sep, exclude_keys=named.exclude_keys)


def _parsed_once(real_load):
    """`OmegaConf.load` that parses each distinct YAML text once per worker and hands every caller its own deep
    copy. Distinct compositions still read every file again (Hydra parses the ~15 files of a composition each
    time, ~27% of its cost, measured); keyed by the text, so a file a test rewrites is parsed anew."""
    import copy
    import io

    parsed: dict = {}

    def load(file_):
        if not hasattr(file_, "read"):
            return real_load(file_)
        text = file_.read()
        if text not in parsed:
            parsed[text] = real_load(io.StringIO(text))
        return copy.deepcopy(parsed[text])
    return load
