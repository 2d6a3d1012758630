"""What a result is: the hyperparameters that actually ran, flattened, and a `config_id` hash of them.

Two runs with the same `config_id` differ only by their seed (and the machine), so a report may average
them; two with different ids never are. Top-level sweep axes (`smooth_rate`, `p`) enter only through the
method's own keys, so a method that ignores them is not split (or labelled) by them.
"""
from __future__ import annotations

import hashlib
import json
import re

from omegaconf import DictConfig, OmegaConf

SECTIONS = ("dataset", "model", "paradigm", "train", "method", "eval")  # what determines a result
NOT_IDENTITY = {"dataset": {"cache_dir", "num_workers", "download"},  # where/how data is read, not what it is
                "model": {"num_classes", "input_shape"}, "method": {"_target_"}, "paradigm": {"_target_"},
                "eval": {"every_epoch"}}  # per-epoch probes only add curves; they change no result
META = ("name", "modality")  # labels in group configs that are not constructor arguments


def config_hash(obj) -> str:
    """A short, stable hash of a JSON-able object (dict key order does not matter)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _cell(v):
    """A CSV-friendly scalar: lists and dicts as compact JSON, so every value fits one cell."""
    return json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v


def params(cfg: DictConfig) -> dict:
    """Flattened `section.key` values of what ran, resolved (`method.lr`, `paradigm.forget_class`, ...)."""
    out = {}
    for section in SECTIONS:
        node = OmegaConf.to_container(cfg[section], resolve=False)
        resolved = {k: cfg[section][k] for k in node if not OmegaConf.is_missing(cfg[section], k)}
        for k in sorted(resolved):
            if k in NOT_IDENTITY.get(section, ()) or k in META or (k == "_target_" and section == "dataset"):
                continue
            v = resolved[k]
            out[f"{section}.{k}"] = _cell(OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v)
    return out


def config_id(cfg: DictConfig) -> str:
    """Hash of everything that determines a result except the seed: group choices plus `params(cfg)`."""
    names = {s: cfg[s].get("name") for s in SECTIONS if s != "train" and s != "eval"}
    return config_hash({"names": names, "params": params(cfg)})[:10]


def axes(cfg: DictConfig) -> dict:
    """The paper's sweep axes as the method used them: blank (None) for a method without alpha or p."""
    return {"smooth_rate": cfg.method.get("smooth_rate"), "p": cfg.method.get("p")}


def dirname(overrides: str, limit: int = 120) -> str:
    """A safe folder name from Hydra's `override_dirname`: no path separators or `..`, bounded length."""
    name = re.sub(r"[^A-Za-z0-9._,=+-]+", "_", overrides).replace("..", "_").strip("._") or "default"
    if len(name) > limit:
        name = f"{name[:limit - 11]}_{config_hash(overrides)[:10]}"
    return name


def register_resolvers() -> None:
    """`${unlearn.dirname:...}` for Hydra's run and sweep folder names (conf/config.yaml)."""
    if not OmegaConf.has_resolver("unlearn.dirname"):
        OmegaConf.register_new_resolver("unlearn.dirname", dirname)
