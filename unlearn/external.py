"""The original model's weights from outside (`original.checkpoint`): a state-dict file or torchvision weights from
the hub cache, checked against the configured model and keyed by the file's SHA-256 (`References` caches it)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import torch
from hydra.utils import to_absolute_path
from torch import nn

from unlearn.cache import weights_digest
from unlearn.progress import nonfinite


class External:
    """The original model's weights from outside (`original.checkpoint`): a state-dict file (raw, or under a
    `state_dict` / `model` key; a DataParallel `module.` prefix is dropped), or `torchvision:<Weights>.<NAME>`
    read from the torch hub cache. Checked against the configured model on construction."""

    def __init__(self, spec: str, build_model: Callable[[], nn.Module]):
        self.spec = str(spec)
        if self.spec.startswith("torchvision:"):
            path = _torchvision_file(self.spec.removeprefix("torchvision:"))
        else:
            path = Path(to_absolute_path(self.spec))
            if not path.is_file():
                raise ValueError(f"original.checkpoint={self.spec!r}: no such file; allowed: a state-dict file "
                                 f"(torch.save(model.state_dict(), PATH)) or torchvision:<Weights>.<NAME>")
        self.path = path
        self.sha256 = _sha256(path)
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is reported the same way
            raise ValueError(f"original.checkpoint={self.spec!r} cannot be read as a state dict: "
                             f"{type(e).__name__}: {str(e)[:200]}") from None
        self.state = _as_state_dict(raw, self.spec)
        if bad := nonfinite(self.state):
            raise ValueError(f"original.checkpoint={self.spec!r} holds non-finite weights ({', '.join(bad[:3])}); "
                             f"allowed: a state dict of finite tensors")
        try:
            build_model().load_state_dict(self.state)
        except RuntimeError as e:
            raise ValueError(f"original.checkpoint={self.spec!r} does not fit the configured model: "
                             f"{str(e)[:400]}") from None

    def stored(self) -> dict:
        info = {"train_seconds": 0.0, "digest": weights_digest(self.state), "source": self.spec,
                "sha256": self.sha256, "trained_at": "external"}
        return {"state_dict": self.state, "info": info}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _as_state_dict(raw, spec: str) -> dict:
    for wrapper in ("state_dict", "model"):
        if isinstance(raw, dict) and isinstance(raw.get(wrapper), dict):
            raw = raw[wrapper]
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ValueError(f"original.checkpoint={spec!r} holds no state dict (a dict of parameter name -> tensor)")
    state = {k.removeprefix("module."): v for k, v in raw.items()}
    if "conv1.weight" in state and "fc.weight" in state:  # torchvision's ResNet names -> unlearn's ResNet18
        state = {("stem.0." + k[6:] if k.startswith("conv1.") else "stem.1." + k[4:] if k.startswith("bn1.")
                  else k): v for k, v in state.items()}
    return state


def _torchvision_file(name: str) -> Path:
    """The hub-cache file of torchvision weights `name` (e.g. ResNet18_Weights.IMAGENET1K_V1); never downloads."""
    import torchvision
    try:
        weights = torchvision.models.get_weight(name)
    except (ValueError, KeyError, AttributeError) as e:
        raise ValueError(f"original.checkpoint=torchvision:{name}: unknown torchvision weights ({e}); allowed: "
                         f"<Weights>.<NAME>, e.g. torchvision:ResNet18_Weights.IMAGENET1K_V1") from None
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not path.is_file():
        raise ValueError(f"original.checkpoint=torchvision:{name}: {path} is absent (torchvision downloads it on "
                         f"first use; this runner never downloads). On a machine with internet run python -c "
                         f"\"import torchvision; torchvision.models.get_weight('{name}').get_state_dict()\" and "
                         f"copy the file there (or set TORCH_HOME)")
    return path
