"""Where the configuration lives: the one definition of the config folder (and of the table presets and figure
specs in it: conf/tables/, conf/figures/), found the same way from a checkout, an editable install and a wheel.

A checkout keeps the configs at the repository root (`conf/`, beside `unlearn/`); the wheel ships the same folder
inside the package (`unlearn/conf/`, pyproject.toml's package-dir), so both layouts are looked for.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def conf_dir(package: Path = PACKAGE) -> Path:
    """The config folder of the package at `package`: inside it (a wheel) or beside it (a checkout)."""
    for folder in (package / "conf", package.parent / "conf"):
        if (folder / "config.yaml").is_file():
            return folder
    raise FileNotFoundError(f"no config folder (conf/config.yaml) in {package} or beside it in {package.parent}")


CONF = conf_dir()
PRESETS = CONF / "tables"  # the paper tables' presets, <table>.yaml (unlearn.tables.preset)
SPECS = CONF / "figures"  # the figures' specs, <fig>.yaml (unlearn.figures.sweep)
