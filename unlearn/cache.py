"""Content-addressed checkpoints: a model is keyed by a hash of the config that determines it."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from filelock import FileLock
from torch import nn


def config_hash(key: dict) -> str:
    """A short, stable hash of a JSON-able config dict (key order does not matter)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_checkpoint(path: Path, model: nn.Module, key: dict, info: dict) -> None:
    """Write weights + the config that produced them atomically (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"state_dict": state, "key": json.dumps(key, sort_keys=True, default=str), "info": info}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
