"""Checks of the whole config and of the output paths, before anything is built, trained or written.

Group configs check their own values when they are constructed (methods, recipes, paradigms, loaders);
this module checks what no constructor sees: the top-level keys, `eval`, `train`, model/data modality
and whether the results CSV, cache and run folders can be written.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf

from unlearn.checks import finite, integer, require
from unlearn.train import Recipe

DEVICES = ("auto", "cpu", "cuda")
WANDB_MODES = ("offline", "online", "disabled")
IDENTITY = ("table", "dataset", "model", "paradigm", "method", "seed", "config_id")  # a results CSV has these


class ConfigError(ValueError):
    """A user-set value is invalid; the message names the key and what is allowed."""


def _value(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key, throw_on_missing=False)


def check_config(cfg: DictConfig) -> None:
    """Fail on any invalid top-level, `eval` or `train` value, naming the key and what is allowed."""
    v = {k: _value(cfg, k) for k in ("smooth_rate", "p", "seed", "device", "threads", "wandb.mode", "lock_timeout",
                                      "eval.batch_size", "eval.mia_shadow_size", "eval.split")}
    try:
        require([
            ("smooth_rate", finite(v["smooth_rate"]) and v["smooth_rate"] <= 1,
             "a finite number <= 1 (alpha < 0: NLS, 0: CE, (0, 1]: PLS)"),
            ("p", finite(v["p"]) and 0 <= v["p"] <= 1, "a number in [0, 1] (weight of the gradient-descent term)"),
            ("seed", integer(v["seed"], 0) and v["seed"] < 2 ** 32, "an integer in [0, 2^32)"),
            ("device", v["device"] in DEVICES, f"one of {DEVICES}"),
            ("threads", v["threads"] is None or integer(v["threads"], 1), "null (torch's default) or an integer >= 1"),
            ("wandb.mode", v["wandb.mode"] in WANDB_MODES, f"one of {WANDB_MODES}"),
            ("lock_timeout", finite(v["lock_timeout"]) and v["lock_timeout"] > 0, "a finite number of seconds > 0"),
            ("eval.batch_size", integer(v["eval.batch_size"], 1), "an integer >= 1"),
            ("eval.split", v["eval.split"] in ("test", "validation"), "test or validation"),
            ("eval.mia_shadow_size", v["eval.mia_shadow_size"] is None or integer(v["eval.mia_shadow_size"], 1),
             "null (= the test-set size) or an integer >= 1"),
        ], v)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    try:
        Recipe(**cfg.train)
    except (ValueError, TypeError) as e:  # a bad value, or a missing / misspelt key
        raise ConfigError(f"train.{e}" if isinstance(e, ValueError) else f"train: {e}") from None
    data_kind, model_kind = _value(cfg, "dataset.modality"), _value(cfg, "model.modality")
    if data_kind and model_kind and data_kind != model_kind:
        raise ConfigError(f"model={cfg.model.name} reads {model_kind} data but dataset={cfg.dataset.name} is "
                          f"{data_kind}; pick a {data_kind} model (model/*.yaml with modality: {data_kind})")


def _writable(path: Path, what: str) -> None:
    """`path` (a folder, existing or not) can be created and written."""
    p = path
    while not p.exists():
        p = p.parent
    if not p.is_dir() or not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}={str(path)!r} cannot be written ({p} is not a writable folder)")


def check_results_csv(path: Path) -> None:
    """An existing results CSV must be readable and carry the identity columns (a torn last line is fine)."""
    if not path.exists():
        return
    if path.is_dir() or not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(f"results_csv={str(path)!r} is not a readable and writable file")
    with path.open(newline="") as f:
        first = f.readline()
    if first and not first.endswith("\n"):
        return  # a torn header alone: the writer moves it aside
    header = next(csv.reader([first]), []) if first else []
    missing = [c for c in IDENTITY if c not in header]
    if header and missing:
        raise ConfigError(f"results_csv={str(path)!r} has another header (no identity columns {missing}); it was "
                          f"not written by this version of unlearn. Use another results_csv or move the file")


def check_outputs(cfg: DictConfig, run_dir: Path) -> None:
    """The results CSV, the cache and the run folder can be written, and the run folder holds no other run."""
    if cfg.results_csv is not None:  # null = no shared CSV (each run's metrics.json only)
        csv_path = Path(to_absolute_path(cfg.results_csv))
        _writable(csv_path.parent, "results_csv")
        check_results_csv(csv_path)
    _writable(Path(to_absolute_path(cfg.cache_dir)), "cache_dir")
    _writable(run_dir, "run_dir")
    if (run_dir / "metrics.json").exists():
        raise ConfigError(f"run_dir={str(run_dir)!r} already holds the metrics.json of another run; choose an empty "
                          f"run_dir (or leave it null for a fresh Hydra folder)")
