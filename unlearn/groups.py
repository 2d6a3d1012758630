"""Building a config group's object (a data set, model, paradigm or method) from its node, with its own validation
errors named by group: one definition for the run, the table planner and the budget's probe models."""
from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf


def build(node: DictConfig, **runtime):
    """Instantiate a group config; its `name` and `modality` keys label it and are not constructor arguments."""
    spec = OmegaConf.to_container(node, resolve=True)  # resolve ${...} against the root first
    for key in ("name", "modality"):
        spec.pop(key, None)
    try:
        return instantiate(spec, **runtime)
    except InstantiationException as e:  # surface our own validation errors, named by group
        cause = e.__cause__
        if isinstance(cause, FileNotFoundError):  # MissingDataError: its own message says what and how to get it
            raise cause from None
        if isinstance(cause, ValueError):
            raise ValueError(f"{node._key()}: {cause}") from None
        if isinstance(cause, TypeError) and "argument" in str(cause):  # a misspelt or missing key
            raise ValueError(f"{node._key()}: {cause}") from None
        raise
