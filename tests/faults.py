"""The test suite's watcher of unlearn.stages: kill this process at a named stage, deterministically.

A subprocess run gets it through its environment, `{**env, **faults.at("retrain/2")}`: the stage is an fnmatch
pattern, the signal SIGKILL unless named (SIGTERM: a polite stop). Loaded by file path (unlearn.stages), so it
imports nothing from the tests package.
"""
import fnmatch
import os
import signal

STAGE, SIGNAL = "UNLEARN_FAULT", "UNLEARN_FAULT_SIGNAL"


def kill(stage: str) -> None:
    pattern = os.environ.get(STAGE)
    if pattern is not None and fnmatch.fnmatchcase(stage, pattern):
        os.kill(os.getpid(), getattr(signal, os.environ.get(SIGNAL, "SIGKILL")))


def at(stage: str, signame: str = "SIGKILL") -> dict[str, str]:
    """The environment variables that kill a run with `signame` when it reaches `stage`."""
    return {"UNLEARN_WATCH": f"{os.path.abspath(__file__)}:kill", STAGE: stage, SIGNAL: signame}
