"""`unlearn new-method NAME`: three files that run, whose test the mutation check finds by itself and that kills
both mutants. The files are written to a temporary folder that the method package and Hydra search for the test
only, so no other test ever sees the method."""
from __future__ import annotations

import importlib.util
import math
import sys

import pytest

import unlearn.methods
from tests import test_mechanisms
from tests.conftest import ROOT, TINY, compose_cfg
from unlearn import new_method
from unlearn.__main__ import main as cli
from unlearn.workspace import run_experiment

NAME = "tmpl_demo"


def _mutation_check():
    spec = importlib.util.spec_from_file_location("mutation_check", ROOT / "scripts" / "mutation_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def generated(tmp_path, monkeypatch):
    """The template's files for NAME under tmp_path, importable as unlearn.methods.NAME and composable as
    method=NAME; returns their folders."""
    dirs = {"conf": tmp_path / "conf", "package": tmp_path / "pkg", "tests": tmp_path / "tests"}
    written = new_method.write(NAME, conf=dirs["conf"], package=dirs["package"], tests=dirs["tests"])
    assert set(written) == {"yaml", "module", "test"} and all(p.is_file() for p in written.values())
    monkeypatch.setattr(unlearn.methods, "__path__", [*unlearn.methods.__path__, str(dirs["package"] / "methods")])
    monkeypatch.setattr(test_mechanisms, "SEARCH_PATH", [str(dirs["conf"])])
    test_mechanisms._spec.cache_clear()
    yield dirs
    test_mechanisms._spec.cache_clear()
    sys.modules.pop(f"unlearn.methods.{NAME}", None)


def test_the_mutation_check_finds_the_generated_test_and_it_kills_both_mutants(generated, capsys):
    mc = _mutation_check()
    found = mc.tests_of(NAME, generated["tests"])
    assert [t.__name__ for t in found] == [f"test_{NAME}_gradient_is_its_loss",
                                            f"test_{NAME}_the_loop_runs_its_loss_and_stays_finite"]
    assert NAME not in test_mechanisms.PINS  # found by the file's name, not registered
    assert mc.main([NAME], conf=generated["conf"], tests_dir=generated["tests"]) == 0
    out = capsys.readouterr().out
    assert f"{NAME:<18} GA     killed by test_{NAME}_gradient_is_its_loss" in out
    assert f"{NAME:<18} FT     killed by test_{NAME}_gradient_is_its_loss" in out


def test_a_method_without_a_test_is_named_by_the_mutation_check(generated, capsys):
    (generated["tests"] / f"test_{NAME}.py").unlink()
    assert _mutation_check().main([NAME], conf=generated["conf"], tests_dir=generated["tests"]) == 1
    assert f"NO TEST: no {generated['tests']}/test_{NAME}.py and no @pins('{NAME}')" in capsys.readouterr().out


def test_a_mutant_that_only_crashes_a_test_counts_as_a_problem(generated, capsys):
    """A crash is no evidence that a test watches the mechanism (the IU/FF mutants once 'died' of a TypeError)."""
    (generated["tests"] / f"test_{NAME}.py").write_text(
        "CALLS = []\n\n\n"
        f"def test_{NAME}_passes_unmutated_then_crashes():\n"
        "    CALLS.append(1)\n"
        "    if len(CALLS) > 1:\n"
        "        raise RuntimeError('a crash, not an assertion')\n")
    assert _mutation_check().main([NAME], conf=generated["conf"], tests_dir=generated["tests"]) == 1
    out = capsys.readouterr().out
    assert f"{NAME:<18} GA     CRASHED, not killed by an assertion" in out and "RuntimeError" in out, out


def test_the_generated_method_runs_end_to_end_on_synthetic_data(generated, tmp_path):
    cfg = compose_cfg([*TINY, f"method={NAME}", f"hydra.searchpath=[file://{generated['conf']}]"], tmp_path)
    assert cfg.method.weight == 0.5 and cfg.method.batch_size == 256  # its own value, and sgd.yaml's inherited
    metrics = run_experiment(cfg)
    assert all(math.isfinite(metrics[k]) for k in ("UA", "RA", "TA", "MIA"))
    assert (tmp_path / "runs.csv").read_text().count(NAME) >= 1


def test_new_method_refuses_a_bad_or_taken_name_in_one_line(generated, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^method name 'Bad-Name' is invalid; allowed: lower case letters"):
        new_method.write("Bad-Name", conf=tmp_path)
    with pytest.raises(ValueError, match=rf"^method '{NAME}' exists already \(.*{NAME}\.yaml"):
        new_method.write(NAME, conf=generated["conf"], package=generated["package"], tests=generated["tests"])
    import sys
    argv = list(sys.argv)
    with pytest.raises(SystemExit) as stop:
        cli(["new-method", "ga"])  # the real tree: ga's files exist, nothing is written
    assert stop.value.code == 2
    assert sys.argv == argv  # the sub-command's argv was the caller's only while it ran
    err = capsys.readouterr().err
    assert err.startswith("error: method 'ga' exists already") and len(err.strip().splitlines()) == 1
