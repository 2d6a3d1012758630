"""torch.compile's compilations are left out of RTE and kept in their own column, compile_s."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch._dynamo.callback import CallbackTrigger, callback_handler

from tests.conftest import TINY, compose_cfg
from unlearn.steps import CompileClock, Compute
from unlearn.workspace import Workspace, run_experiment


class FakeTime:
    """A clock the test moves by hand: the accounting is checked without timing anything."""

    def __init__(self):
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now


class Compiling:
    """A method that works 2 s, compiles for 5 s (as Dynamo reports a compilation), then works 1 s more."""

    def __init__(self, clock: FakeTime):
        self.clock = clock

    def __call__(self, model, task):
        self.clock.now += 2
        with callback_handler.install_callbacks(CallbackTrigger.DYNAMO, "0/0"):
            self.clock.now += 5
        self.clock.now += 1
        return model

    def runtime(self, seconds, task):
        return seconds


@pytest.mark.parametrize("compile_on, rte, compile_s", [(True, 3.0, 5.0), (False, 8.0, 0.0)])
def test_rte_leaves_out_the_compilations(monkeypatch, compile_on, rte, compile_s):
    clock = FakeTime()
    monkeypatch.setattr("unlearn.workspace.time", clock)
    monkeypatch.setattr("unlearn.steps.time", clock)
    ws = Workspace.__new__(Workspace)  # only what `unlearn` reads
    ws.method, ws.device = Compiling(clock), torch.device("cpu")
    ws.task = SimpleNamespace(compute=Compute(precision="fp32", channels_last=False, compile=compile_on,
                                             cudnn="deterministic"))
    model, seconds = ws.unlearn(torch.nn.Linear(2, 2))
    assert seconds == rte and ws.compile_seconds == compile_s


def test_the_clock_hears_real_compilations_and_only_inside():
    f = torch.compile(torch.nn.Linear(3, 2), backend="eager")  # Dynamo without inductor: fast on any CPU
    with CompileClock(True) as clock:
        f(torch.randn(4, 3)).sum().backward()
        f(torch.randn(4, 3))  # cached: no compilation
    assert clock.count == 1 and clock.seconds > 0
    f(torch.randn(7, 3))  # a new shape recompiles, outside the clock
    assert clock.count == 1 and not callback_handler.start_callbacks


@pytest.mark.slow  # inductor compiles for about a minute on 2 CPU cores
def test_a_compiled_run_reports_its_compile_seconds(tmp_path):
    tiny = [o for o in TINY if not o.startswith("model=")] + ["model=mlp", "compile=true", "method=ga"]
    metrics = run_experiment(compose_cfg(tiny, tmp_path))
    assert metrics["compile_s"] > 0 and math.isfinite(metrics["RTE_s"]) and metrics["RTE_s"] >= 0
