"""Every check a run makes before it trains, in one place: `PHASES` below lists them in the order they run.

Each phase runs as soon as what it checks exists, and before the work it guards. The rules of a group's own values
live with the class that takes them (a method's hyperparameters in its constructor, the train recipe in
`train.Recipe`, a paradigm's in `paradigms`, `budget.check_keys`); a rule two places need is one `checks.Rule`.
Every failure is a ConfigError (a ValueError) whose one-line message names the key, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import difflib
import functools
import inspect
import os
from pathlib import Path
from typing import Callable

import torch
from hydra.utils import get_object, to_absolute_path
from omegaconf import DictConfig, OmegaConf

from unlearn import locks
from unlearn.checks import P, SMOOTH_RATE, ConfigError, finite, integer, require
from unlearn.paths import CONF
from unlearn.mia import SOLVERS
from unlearn.results_csv import ForeignCSVError, check_file, check_regular
from unlearn.steps import Compute
from unlearn.train import Recipe
from unlearn.wandb_log import check_settings

DEVICES = ("auto", "cpu", "cuda")
WANDB_MODES = ("offline", "online", "disabled")


# Refused rather than dropped: a run that silently ran NCHW would record channels_last=true (its config, config_id
# and results row) for numbers computed without it, and a notice scrolls away in a log.
CHANNELS_LAST_ON_CPU = ("channels_last=true is a GPU option (NHWC convolutions for tensor cores) and this run is on "
                        "the CPU, where torch's convolution backward in that layout can corrupt memory (seen on AVX2 "
                        "CPUs); allowed on CPU: channels_last=false (or device=cuda on a machine with CUDA)")


def on_cpu(device) -> bool:
    """The run's models live on the CPU: device=cpu, or device=auto without CUDA."""
    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def _value(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key, throw_on_missing=False)


REGIME_KEYS = ("name", "datasets", "accumulate")  # conf/regime/<name>.yaml: what it states besides its recipe
PLAIN_GROUPS = ("eval", "wandb", "original")  # groups of conf/config.yaml that no constructor checks
BUILT_GROUPS = ("dataset", "model", "paradigm", "method")  # `_target_` groups: their keys are its arguments
HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_", "name", "modality"}


def accepted(target: str) -> set[str] | None:
    """Keyword arguments a `_target_` accepts, following `**kwargs` up a class's bases; None when it takes any."""
    obj = get_object(target)
    inits = [c.__dict__["__init__"] for c in obj.__mro__ if "__init__" in c.__dict__] if inspect.isclass(obj) else [obj]
    names: set[str] = set()
    for fn in inits:
        params = inspect.signature(fn).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names
    return None


def check_keys(cfg: DictConfig) -> None:
    """No unknown key under a known group (`+eval.mia_shadow_sise=5` would be silently ignored, yet enter the
    results CSV and the config_id): refused, naming the nearest known key."""
    known = dict(_plain_keys())
    known["train"] = {f.name for f in dataclasses.fields(Recipe)}
    known["regime"] = set(REGIME_KEYS)
    for group in BUILT_GROUPS:
        try:
            args = accepted(str(cfg[group].get("_target_")))
        except (ImportError, ValueError, TypeError, AttributeError):
            continue  # a bad _target_ is reported by instantiate, with its own message
        if args is not None:
            known[group] = args | HYDRA_KEYS
    for group, keys in known.items():
        node = OmegaConf.select(cfg, group, throw_on_missing=False)
        for key in (node.keys() if isinstance(node, DictConfig) else ()):
            if key not in keys:
                close = difflib.get_close_matches(str(key), sorted(keys - HYDRA_KEYS), n=1)
                hint = f"did you mean {group}.{close[0]}? " if close else ""
                raise ConfigError(f"{group}.{key} is not a key of {group} ({hint}known: "
                                  f"{', '.join(sorted(keys - HYDRA_KEYS))})")


@functools.lru_cache(maxsize=1)
def _plain_keys() -> dict[str, frozenset]:
    """The keys conf/config.yaml gives each plain group, read once per process (the check runs for every job a
    table plans or a sweep starts)."""
    base = OmegaConf.load(CONF / "config.yaml")
    return {g: frozenset(base[g]) for g in PLAIN_GROUPS}


def check_regime(cfg: DictConfig) -> None:
    """The regime's recipe and tuned values are for its own data sets: `regime=digits dataset=cifar10_cpu` would
    train CIFAR with the digits recipe and run the digits' learning rates on it, so it is refused, naming the
    data set's own regime."""
    regime = OmegaConf.select(cfg, "regime", default=None)
    if not isinstance(regime, DictConfig):
        raise ConfigError(f"regime={regime!r} is invalid; allowed: a config of conf/regime/ ({', '.join(regimes())})")
    datasets = list(regime.get("datasets") or [])
    name = str(cfg.dataset.get("name"))
    if datasets and name not in datasets:
        own = [r for r in regimes() if name in (OmegaConf.load(CONF / "regime" / f"{r}.yaml").get("datasets") or [])]
        hint = f"the regimes for dataset={name}: {', '.join(own)} (drop regime= for the data set's own)" if own else \
            f"dataset={name} belongs to no regime's list; regime=default runs any data set"
        raise ConfigError(f"dataset={name} is not a data set of regime={regime.name} (its data sets: "
                          f"{', '.join(datasets)}); {hint}, or keep the regime and swap only the recipe with train=...")


def regimes() -> list[str]:
    return sorted(p.stem for p in (CONF / "regime").glob("*.yaml"))


def check_config(cfg: DictConfig) -> None:
    """Every key and value of the composed config that no constructor sees: unknown keys, the top-level, `eval`,
    `train`, step mechanics, W&B and recording switches, the budget, and whether model and data modality agree."""
    check_keys(cfg)
    check_regime(cfg)
    v = {k: _value(cfg, k) for k in ("smooth_rate", "p", "seed", "device", "threads", "wandb.mode", "lock_timeout",
                                      "checkpoint_every", "eval.batch_size", "eval.mia_shadow_size", "eval.split",
                                      "eval.validation_fraction", "eval.mia_solver", "fast")}
    try:
        require([
            SMOOTH_RATE.row(v["smooth_rate"]), P.row(v["p"]),
            ("seed", integer(v["seed"], 0) and v["seed"] < 2 ** 32, "an integer in [0, 2^32)"),
            ("device", v["device"] in DEVICES, f"one of {DEVICES}"),
            ("threads", v["threads"] is None or integer(v["threads"], 1), "null (torch's default) or an integer >= 1"),
            ("wandb.mode", v["wandb.mode"] in WANDB_MODES, f"one of {WANDB_MODES}"),
            ("lock_timeout", finite(v["lock_timeout"]) and v["lock_timeout"] > 0, "a finite number of seconds > 0"),
            ("checkpoint_every", integer(v["checkpoint_every"], 0),
             "an integer >= 0 (epochs between resume checkpoints; 0 = never)"),
            ("eval.batch_size", integer(v["eval.batch_size"], 1), "an integer >= 1"),
            ("eval.split", v["eval.split"] in ("test", "validation"), "test or validation"),
            ("eval.mia_shadow_size", v["eval.mia_shadow_size"] is None or integer(v["eval.mia_shadow_size"], 1),
             "null (= the test-set size) or an integer >= 1"),
            ("eval.validation_fraction", finite(v["eval.validation_fraction"])
             and 0 < v["eval.validation_fraction"] < 1, "a number in (0, 1)"),
            ("eval.mia_solver", v["eval.mia_solver"] in SOLVERS, f"one of {SOLVERS}"),
            ("fast", isinstance(v["fast"], bool), "true or false (bf16, channels_last, cudnn benchmark)"),
        ], v)
        Compute(precision=_value(cfg, "precision"), channels_last=_value(cfg, "channels_last"),
                compile=_value(cfg, "compile"), cudnn=_value(cfg, "cudnn"))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not isinstance(_value(cfg, "cache_dir"), str) or not _value(cfg, "cache_dir"):
        raise ConfigError(f"cache_dir={_value(cfg, 'cache_dir')!r} is invalid; allowed: a folder (the reference "
                          f"models and decoded data are cached there; the default is results/cache)")
    try:
        check_settings(cfg)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if _value(cfg, "channels_last") is True and on_cpu(v["device"]):
        raise ConfigError(CHANNELS_LAST_ON_CPU)
    try:
        Recipe(**cfg.train)
    except (ValueError, TypeError) as e:  # a bad value, or a missing / misspelt key
        raise ConfigError(f"train.{e}" if isinstance(e, ValueError) else f"train: {e}") from None
    data_kind, model_kind = _value(cfg, "dataset.modality"), _value(cfg, "model.modality")
    if data_kind and model_kind and data_kind != model_kind:
        raise ConfigError(f"model={cfg.model.name} reads {model_kind} data but dataset={cfg.dataset.name} is "
                          f"{data_kind}; pick a {data_kind} model (model/*.yaml with modality: {data_kind})")
    check_recording(cfg)
    from unlearn import budget  # budget's own keys; budget imports this module
    budget.check_keys(cfg)


def check_recording(cfg: DictConfig) -> None:
    """The switches of what a run records are booleans (a YAML typo such as `ture` would be a truthy string)."""
    for key in ("eval.every_epoch", "wandb.silent", "wandb.log_models"):
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}; allowed: true or false")
    tags = OmegaConf.select(cfg, "wandb.tags", throw_on_missing=False)
    if OmegaConf.is_dict(tags) or OmegaConf.is_list(tags) and not all(isinstance(t, (str, int, float)) for t in tags):
        raise ConfigError(f"wandb.tags={tags!r}; allowed: null, one tag (wandb.tags=mine) or a list of tags "
                          f"(wandb.tags=[a,b])")


def _writable(folder: Path, key: str, value) -> None:
    """`folder` (existing or not) can be created and written; `key=value` is the setting that asked for it."""
    p = folder
    while not p.exists():
        p = p.parent
    if not p.is_dir() or not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={str(value)!r} cannot be written ({p} is not a writable folder)")


def check_results_csv(path: Path) -> None:
    """An existing results CSV must be a readable text file whose header carries the identity columns (a torn
    last line, or a torn header alone, is fine: the writer moves it aside). A FIFO, device or socket is refused
    by its type, never opened (an open would block)."""
    try:
        check_regular(path)
    except ForeignCSVError as e:
        raise ConfigError(str(e)) from None
    if not path.exists():
        return
    if path.is_dir() or not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(f"results_csv={str(path)!r} is not a readable and writable file")
    with path.open("rb") as f:
        first = f.readline()
    try:
        first = first.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"results_csv={str(path)!r} is not a text CSV (its first line is not UTF-8); use another "
                          f"results_csv or move the file") from None
    try:
        check_file(path)  # another header, or no CSV of ours at all (JSON, prose): never rewritten
    except ForeignCSVError as e:
        raise ConfigError(str(e)) from None


def check_outputs(cfg: DictConfig, run_dir: Path) -> None:
    """The results CSV, the cache and the run folder can be written, and the run folder holds no other run."""
    if cfg.results_csv is not None:  # null = no shared CSV (each run's metrics.json only)
        csv_path = Path(to_absolute_path(cfg.results_csv))
        _writable(csv_path.parent, "results_csv", cfg.results_csv)
        check_results_csv(csv_path)
    _writable(Path(to_absolute_path(cfg.cache_dir)), "cache_dir", cfg.cache_dir)
    _writable(run_dir, "run_dir", run_dir)
    if cfg.wandb.mode != "disabled":  # W&B would fall back to /tmp/wandb without a word
        _writable(Path(to_absolute_path(cfg.wandb.dir)) / "wandb", "wandb.dir", cfg.wandb.dir)
    if (run_dir / "metrics.json").exists():
        raise ConfigError(f"run_dir={str(run_dir)!r} already holds the metrics.json of another run; choose an empty "
                          f"run_dir (or leave it null for a fresh Hydra folder)")


def check_split(cfg: DictConfig, split) -> None:
    """The split is large enough for the evaluation: the MIA's shadow members are drawn from D_r (as many as
    its non-members from the evaluation set), and the additional MIA cross-validates D_f against that set."""
    n_shadow = len(split.test) if cfg.eval.mia_shadow_size is None else min(cfg.eval.mia_shadow_size, len(split.test))
    if len(split.retain) < n_shadow:
        size = cfg.eval.mia_shadow_size
        how = "null: as many as the evaluation set" if size is None else f"{size}, at most the evaluation set"
        raise ConfigError(f"D_r has {len(split.retain)} samples, too few for the MIA shadow set: it needs {n_shadow} "
                          f"members from D_r (eval.mia_shadow_size={how}); forget less, or set "
                          f"eval.mia_shadow_size <= {len(split.retain)}")
    if len(split.forget) < 2 or len(split.test) < 2:
        raise ConfigError(f"D_f has {len(split.forget)} and the evaluation set {len(split.test)} samples; the "
                          f"MIA metrics need at least 2 in each: forget more")


def check_task(method, task, model: str, sizing: str) -> None:
    """The method can run on this data and split (its `Method.check`), and the model reads the data: one forward
    pass on two training samples returns one logit per class."""
    method.check(task)
    net = task.build_model().to(task.device).eval()
    x = task.data.prepare(task.data.x_train[task.split.retain[:2]])
    try:
        with torch.no_grad():
            out = net(x)
    except RuntimeError as e:
        raise ConfigError(f"model={model} ({sizing}) cannot read {task.data.name} inputs of shape "
                          f"{list(x.shape[1:])}: {str(e).splitlines()[0][:200]}") from None
    if out.shape != (len(x), task.data.num_classes):
        raise ConfigError(f"model={model} returns {list(out.shape)} for {len(x)} samples; "
                          f"expected [{len(x)}, {task.data.num_classes}]")


def check_lock(cfg: DictConfig, claim) -> None:
    """The results CSV's lock can be taken (it is first needed after training): a file system without flock is a
    LockError now, and the run folder's claim is given back."""
    if cfg.results_csv is None:
        return
    try:
        locks.check_lockable(Path(to_absolute_path(cfg.results_csv)))
    except locks.LockError:
        claim.abandon()
        raise


def check_budget(ws, apply: bool):
    """budget.minutes: the run as built is estimated phase by phase before training; the verdict (a warning, or
    with budget.apply the recipe that fits, written into ws.cfg) is unlearn.budget.Fit, None without a budget."""
    from unlearn import budget  # budget imports this module
    return budget.check(ws, apply)


@dataclass(frozen=True)
class Phase:
    name: str
    when: str  # what exists when it runs, and what has not happened yet
    check: Callable


# The phases of checking, in the order unlearn.workspace.Workspace runs them (tests/test_validation.py checks that
# order); what each checks is its function's docstring.
PHASES = (
    Phase("config", "the config is composed; nothing is built or written", check_config),
    Phase("outputs", "the run folder is named; no file is written", check_outputs),
    Phase("split", "the data is loaded and split; nothing is trained", check_split),
    Phase("task", "the method, the task and the model are built; nothing is trained", check_task),
    Phase("budget", "the task is built and its time estimated against budget.minutes; nothing is trained",
          check_budget),
    Phase("lock", "the run folder is claimed; nothing is trained", check_lock),
)
