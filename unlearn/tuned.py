"""Values `unlearn tune` selected for a setting, applied to every later run of it: where they live (keyed by what
they were chosen for) and when a run says it has none. The search itself is unlearn/tune.py."""
from __future__ import annotations

import logging
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from unlearn.cli import override_key
from unlearn.identity import config_hash, params
from unlearn.paths import CONF

log = logging.getLogger("unlearn")
SETTING_SECTIONS = ("dataset", "model", "train")  # what a method's values depend on, besides the paradigm


def setting(cfg: DictConfig) -> dict:
    """What tuned values were chosen for: the data set's, model's and recipe's parameters and the paradigm's kind
    (not which class or group is forgotten: one set of values serves every class of class-wise forgetting)."""
    flat = {k: v for k, v in params(cfg).items() if k.split(".", 1)[0] in SETTING_SECTIONS}
    names = {s: cfg[s].get("name") for s in ("dataset", "model", "paradigm")}
    return {"names": names, "params": flat}


def setting_key(cfg: DictConfig) -> str:
    return f"{cfg.dataset.get('name')}-{config_hash(setting(cfg))[:10]}"


def tuned_file(cfg: DictConfig) -> Path:
    return Path(str(cfg.tuned_dir)).expanduser() / setting_key(cfg) / f"{cfg.method.name}.yaml"


def apply_tuned(cfg: DictConfig, command_line: list[str]) -> Path | None:
    """Apply `<tuned_dir>/<setting>/<method>.yaml` to `cfg` (keys the command line sets win); returns the file used.

    Not applied inside a search (`hparams_search`), whose trials must try their own values."""
    if cfg.get("tuned_dir") is None or any(override_key(o) == "hparams_search" for o in command_line):
        return None
    path = tuned_file(cfg)
    if not path.is_file():
        return None
    values = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("values") or {}
    given = {override_key(o) for o in command_line}
    applied = {k: v for k, v in values.items() if k not in given}
    for k, v in applied.items():
        OmegaConf.update(cfg, k, v, force_add=False)
    log.info("tuned values for this data from %s: %s", path, ", ".join(f"{k}={v}" for k, v in applied.items())
             or "none (the command line sets them all)")
    return path


def untuned_warning(cfg: DictConfig, choices: dict, command_line: list[str]) -> str | None:
    """A one-line warning when a method runs its paper-scale defaults on a user's data (regime `default`, which
    the project's own data sets never use) and no tuned file covers it."""
    tuned = choices.get("tuned")  # Hydra records the optional choice (default/<method>) even when no file exists
    if OmegaConf.select(cfg, "regime.name", default=None) != "default" or cfg.method.name == "retrain" or (
            tuned and (CONF / "tuned" / f"{tuned}.yaml").is_file()):
        return None
    if any(override_key(o) == "hparams_search" for o in command_line):
        return None
    if cfg.get("tuned_dir") is not None and tuned_file(cfg).is_file():
        return None
    if any(override_key(o).startswith("method.") for o in command_line):
        return None  # the user chose the method's values
    kept = ("seed", "wandb", "results_csv", "cache_dir", "run_dir")  # not part of the setting
    setting_args = " ".join(o for o in command_line if not override_key(o).startswith(kept))
    lr, epochs = cfg.method.get("lr"), cfg.method.get("epochs")
    budget = f" (lr {lr}, {epochs} epochs)" if lr is not None and epochs is not None else ""
    return (f"method={cfg.method.name} runs its paper-scale values{budget}, which are not tuned for this data and may "
            f"not forget: select values on a validation split with `unlearn tune {setting_args}`")
