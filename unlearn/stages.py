"""Named stages of a run, for a harness outside the package to watch.

Stages: `<phase>/<epoch>` after a training curve point (original/2, retrain/1, unlearn/1), `save:<file name>`
between writing a cache or resume file's temp file and renaming it, `csv` right after a results row is appended.
A watcher is a function of the stage's name in a Python file that $UNLEARN_WATCH names (`path/to/file.py:function`),
loaded at the first stage a process reaches; without one a stage costs a list check. The test suite's watcher
(tests/faults.py) kills the run at a chosen stage; nothing here knows what a watcher does.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Callable

WATCH = "UNLEARN_WATCH"  # environment variable: `path/to/file.py:function`, the watcher of every stage
_watchers: list[Callable[[str], None]] | None = None  # loaded once per process, from $UNLEARN_WATCH


def reached(stage: str) -> None:
    """Tell the watchers (if any) that this process reached `stage`."""
    global _watchers
    if _watchers is None:
        _watchers = load(os.environ.get(WATCH))
    for watch in _watchers:
        watch(stage)


def load(spec: str | None) -> list[Callable[[str], None]]:
    """The watcher named by `spec` (`file.py:function`), as a list; empty without one."""
    if not spec:
        return []
    path, _, name = spec.rpartition(":")
    found = importlib.util.spec_from_file_location("unlearn_stage_watcher", path) if path.endswith(".py") else None
    if found is None or not os.path.isfile(path):
        raise ValueError(f"{WATCH}={spec!r} is invalid; allowed: path/to/file.py:function")
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    return [getattr(module, name)]
