"""Content-addressed checkpoints: a model is keyed by a hash of the config that determines it."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import torch
from filelock import FileLock
from hydra.utils import to_absolute_path
from torch import nn

log = logging.getLogger("unlearn")


def config_hash(key: dict) -> str:
    """A short, stable hash of a JSON-able config dict (key order does not matter)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def atomic_save(payload, path: Path) -> None:
    """torch.save to a temp file in the same folder, then rename: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_checkpoint(path: Path, model: nn.Module, key: dict, info: dict) -> None:
    """Write weights + the config that produced them atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_save({"state_dict": state, "key": json.dumps(key, sort_keys=True, default=str), "info": info}, path)


def cached_tensors(kind: str, key: dict, cache_dir: str | Path | None, compute) -> dict:
    """Load `<kind>-<hash>.pt` from `cache_dir` or run `compute() -> dict of tensors` and save it.

    Decoded images, token ids, embeddings and the reference models' metrics use this. The stored key is compared on load, so a stale
    file is recomputed, never used silently; a file lock makes parallel jobs compute once.
    `cache_dir=None` disables caching.
    """
    if cache_dir is None:
        return compute()
    path = Path(to_absolute_path(str(cache_dir))) / f"{kind}-{config_hash(key)}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    wanted = json.dumps(key, sort_keys=True, default=str)
    with FileLock(str(path) + ".lock"):
        if path.exists():
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if payload.get("key") == wanted:
                log.info("%s: loaded from cache %s", kind, path)
                return payload["tensors"]
            log.warning("%s: cache file %s has a different key; recomputing", kind, path)
        log.info("%s: not cached, computing (%s)", kind, path.name)
        tensors = compute()
        atomic_save({"key": wanted, "tensors": tensors}, path)
        return tensors


def load_checkpoint(path: Path, model: nn.Module, key: dict) -> dict:
    """Load weights into `model`, refusing a checkpoint whose stored config differs from `key`."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    stored = payload.get("key")
    wanted = json.dumps(key, sort_keys=True, default=str)
    if stored != wanted:
        raise ValueError(f"checkpoint {path} was made from a different config; delete it or fix the cache.\n"
                         f"stored: {stored}\nwanted: {wanted}")
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"checkpoint {path} does not fit the model: {e}") from e
    return payload.get("info", {})


def cached(kind: str, key: dict, cache_dir: str | Path, model: nn.Module, train, log) -> tuple[nn.Module, dict]:
    """Load `<kind>-<hash>.pt` from `cache_dir` or run `train(model) -> (model, info)` and save it.

    A file lock makes parallel jobs of a sweep train each key once.
    """
    path = Path(cache_dir) / f"{kind}-{config_hash(key)}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists():
            info = load_checkpoint(path, model, key)
            log.info("%s model: loaded from cache %s", kind, path)
            return model.eval(), {**info, "cache_hit": True, "path": str(path)}
        log.info("%s model: not cached, training (%s)", kind, path.name)
        model, info = train(model)
        save_checkpoint(path, model, key, info)
        return model.eval(), {**info, "cache_hit": False, "path": str(path)}
