"""Mutation check of the mechanism tests: swap each method's update for GA's and for FT's and run its tests.

    .venv/bin/python scripts/mutation_check.py [method ...]

For every method in conf/method/ (or those named), its tests run once unchanged (they must pass) and once per
mutant; a mutant is killed when at least one of them fails. A method's tests are found, with no registration,
as every argument-free `test_*` function of tests/methods/test_<method>.py (what `unlearn new-method` writes),
plus those registered for it in tests/test_mechanisms.py (`@pins`).
Mutants replace, in this process only (unittest.mock.patch):
- loss-based methods: `loss` by GA's (-CE on the forget batch, or on the retain batch when a method sees
  none) or FT's (CE on the retain batch, or on the forget batch when it sees none); the method's hooks
  (relabelling, masks, penalties' schedule) stay;
- SCRUB: `max_loss` and `min_loss` both by -CE (GA) or CE (FT);
- one-shot methods (IU, FF) and Retrain: the whole update by GA's or FT's loop on the given model.
Mutants identical to the method (GA's GA, FT's FT) are skipped. Exit status 1 if a mutant survives or a
registered test fails unmutated.
"""
from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import sys
import time
import traceback
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests package lives next to the installed `unlearn`

torch.set_num_threads(1)

from tests import test_mechanisms  # noqa: E402
from unlearn.methods.base import LossMethod  # noqa: E402
from unlearn.methods.ft import FT  # noqa: E402
from unlearn.methods.ga import GA  # noqa: E402
from unlearn.methods.retrain import Retrain  # noqa: E402
from unlearn.help import CONF  # noqa: E402
from unlearn.methods.scrub import SCRUB  # noqa: E402

TESTS = ROOT / "tests" / "methods"  # tests/methods/test_<method>.py: a method's mechanism tests, found by name
LOOP = dict(epochs=2, lr=0.05, batch_size=16, optimizer="sgd", momentum=0.9, weight_decay=5e-4, scheduler="none",
            accumulate=1)  # the GA / FT loop a one-shot mutant runs


def methods(conf: Path = CONF) -> list[str]:
    return sorted(p.stem for p in (conf / "method").glob("*.yaml"))


def discovered(name: str, tests: Path = TESTS) -> list:
    """The argument-free `test_*` functions of `tests`/test_<name>.py, in file order; [] without that file."""
    path = tests / f"test_{name}.py"
    if not path.is_file():
        return []
    spec = importlib.util.spec_from_file_location(f"mutation_check_tests.test_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = [f for n, f in vars(module).items() if n.startswith("test_") and inspect.isfunction(f)
             and f.__module__ == module.__name__ and not inspect.signature(f).parameters]
    return sorted(found, key=lambda f: f.__code__.co_firstlineno)


def tests_of(name: str, tests: Path = TESTS) -> list:
    """Every test that pins `name`'s mechanism: those found by file name, then those registered with `@pins`."""
    return [*discovered(name, tests), *test_mechanisms.PINS.get(name, [])]


def method_class(name: str, conf: Path = CONF) -> type:
    target = OmegaConf.load(conf / "method" / f"{name}.yaml")["_target_"]
    module, cls = target.rsplit(".", 1)
    return getattr(importlib.import_module(module), cls)


def ga_loss(self, run, forget, retain):
    x, y = forget if forget is not None else retain
    return -F.cross_entropy(run.model(x), y)


def ft_loss(self, run, forget, retain):
    x, y = retain if retain is not None else forget
    return F.cross_entropy(run.model(x), y)


def patches(cls: type, kind: str) -> list:
    """unittest.mock patchers that turn `cls` into its `kind` ("GA" or "FT") mutant."""
    if issubclass(cls, LossMethod):
        return [mock.patch.object(cls, "loss", ga_loss if kind == "GA" else ft_loss)]
    if issubclass(cls, SCRUB):
        sign = -1.0 if kind == "GA" else 1.0
        swap = lambda self, s, t, y: sign * F.cross_entropy(s, y)  # noqa: E731
        return [mock.patch.object(cls, "max_loss", swap), mock.patch.object(cls, "min_loss", swap)]
    loop = GA if kind == "GA" else FT

    def update(self, model, task):
        return loop(**LOOP)(model, task)

    if issubclass(cls, Retrain):  # Retrain ignores the model it is given; its mutant unlearns that model
        return [mock.patch.object(cls, "__call__", update)]
    return [mock.patch.object(cls, "unlearn", lambda self, model, task: update(self, copy.deepcopy(model), task))]


CRASH = "crash"  # the prefix of a failure that was an exception, not an assertion


def run_tests(tests) -> str | None:
    """None if every test passes, else '<test>: <why>' for the first failure ('crash ...' for an exception)."""
    for test in tests:
        try:
            test()
        except AssertionError as e:
            return f"{test.__name__}: assertion {str(e).splitlines()[0][:80] if str(e) else ''}".rstrip()
        except Exception as e:  # fails the test, yet says nothing about the mechanism (main counts it as a problem)
            return f"{CRASH} {test.__name__}: {type(e).__name__} {str(e).splitlines()[0][:80] if str(e) else ''}".rstrip()
    return None


def main(names: list[str], conf: Path = CONF, tests_dir: Path = TESTS) -> int:
    start, bad = time.perf_counter(), 0
    print(f"{'method':<18} {'mutant':<6} result")
    for name in names:
        tests = tests_of(name, tests_dir)
        if not tests:
            print(f"{name:<18} {'-':<6} NO TEST: no {tests_dir / f'test_{name}.py'} and no @pins({name!r}) in "
                  f"tests/test_mechanisms.py (unlearn new-method writes the first)")
            bad += 1
            continue
        failure = run_tests(tests)
        if failure:
            print(f"{name:<18} {'none':<6} BROKEN: registered test fails unmutated ({failure})")
            bad += 1
            continue
        cls = method_class(name, conf)
        for kind in ("GA", "FT"):
            if cls is (GA if kind == "GA" else FT):
                print(f"{name:<18} {kind:<6} skipped (the method itself)")
                continue
            ps = patches(cls, kind)
            for p in ps:
                p.start()
            try:
                failure = run_tests(tests)
            except Exception:
                traceback.print_exc()
                failure = f"{CRASH} outside the tests"
            finally:
                for p in reversed(ps):
                    p.stop()
            if failure and failure.startswith(CRASH):  # a mutant that crashes the test is not shown to be caught:
                print(f"{name:<18} {kind:<6} CRASHED, not killed by an assertion ({failure})")  # make it run
                bad += 1
            elif failure:
                print(f"{name:<18} {kind:<6} killed by {failure}")
            else:
                print(f"{name:<18} {kind:<6} SURVIVED ({len(tests)} tests passed)")
                bad += 1
    print(f"{'no surviving mutant' if bad == 0 else f'{bad} problem(s)'}; {time.perf_counter() - start:.1f} s "
          f"on {torch.get_num_threads()} torch thread(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    known = methods()
    unknown = [n for n in sys.argv[1:] if n not in known]
    if unknown:
        sys.exit(f"mutation_check: unknown method(s) {unknown}; allowed: {known}")
    sys.exit(main(sys.argv[1:] or known))
