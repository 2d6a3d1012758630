"""eval.mia_solver: the binned MIA fit is a configuration choice that enters the identity only when it is used."""
from __future__ import annotations

import pytest

from tests.conftest import TINY, compose_cfg
from unlearn.identity import config_id
from unlearn.validate import ConfigError, check_config
from unlearn.workspace import run_experiment


def test_the_default_solver_keeps_every_config_id(tmp_path):
    plain = compose_cfg(TINY, tmp_path)
    assert plain.eval.mia_solver == "svc"
    # the id of the default is the id the results had before the key existed: the key is left out of it
    assert "eval.mia_solver" not in __import__("unlearn.identity", fromlist=["params"]).params(plain)
    binned = compose_cfg([*TINY, "eval.mia_solver=binned"], tmp_path)
    assert config_id(binned) != config_id(plain)


def test_a_bad_solver_is_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match=r"eval.mia_solver.*one of \('svc', 'binned'\)"):
        check_config(compose_cfg([*TINY, "eval.mia_solver=fast"], tmp_path))


def test_binned_equals_svc_on_shadow_sets_it_fits_exactly(tmp_path):
    """Tiny shadow sets (<= 2,048 points) are fitted exactly by both: the same metrics, different config ids."""
    a = run_experiment(compose_cfg([*TINY, "method=ga"], tmp_path))
    b = run_experiment(compose_cfg([*TINY, "method=ga", "eval.mia_solver=binned"], tmp_path))
    for key in ("MIA", "mia/entropy", "mia/m_entropy", "retrain/MIA", "original/MIA"):
        assert a[key] == b[key], key
