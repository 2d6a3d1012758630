"""`unlearn tune`: values selected on a validation split for one setting, stored under the setting's identity, and
applied by later runs of that setting (the command line wins)."""
from __future__ import annotations

import pytest
import yaml

from tests.conftest import compose_cfg
from unlearn import tune, tuned


def _cfg(tmp_path, *overrides):
    return compose_cfg(["dataset=synthetic", "model=cnn", "method=ugradsl", f"tuned_dir={tmp_path}/tuned",
                        *overrides], tmp_path)


def test_setting_key_is_the_data_not_its_name(tmp_path):
    """Two image folders share the name `imagefolder` but not their key; the forgotten class does not split it."""
    a = _cfg(tmp_path, "dataset.num_classes=4")
    b = _cfg(tmp_path, "dataset.num_classes=6")
    assert a.dataset.name == b.dataset.name
    assert tuned.setting_key(a) != tuned.setting_key(b)
    assert tuned.setting_key(a) == tuned.setting_key(_cfg(tmp_path, "dataset.num_classes=4", "paradigm.forget_class=2"))
    assert tuned.setting_key(a) != tuned.setting_key(_cfg(tmp_path, "dataset.num_classes=4", "model.width=4"))


def test_tuned_values_apply_and_the_command_line_wins(tmp_path):
    cfg = _cfg(tmp_path, "p=0.95")
    path = tuned.tuned_file(cfg)
    tune.write(path, {"method.lr": 0.0123, "smooth_rate": -0.9, "p": 0.6}, {"trials": 3}, cfg, "unlearn tune x")
    used = tuned.apply_tuned(cfg, ["dataset=synthetic", "p=0.95"])
    assert used == path
    assert cfg.method.lr == 0.0123 and cfg.method.smooth_rate == -0.9  # through ${smooth_rate}
    assert cfg.method.p == 0.95  # set on the command line: kept
    other = _cfg(tmp_path, "dataset.num_classes=6")  # another setting: nothing applied
    assert tuned.apply_tuned(other, []) is None and other.method.lr != 0.0123
    searching = _cfg(tmp_path)  # a search's trials try their own values
    assert tuned.apply_tuned(searching, ["hparams_search=ugradsl"]) is None and searching.method.lr != 0.0123
    doc = yaml.safe_load(path.read_text())
    assert doc["selected"]["criterion"].startswith("min Avg. Gap") and doc["setting"]["names"]["dataset"] == "synthetic"


def test_untuned_defaults_on_user_data_are_named_with_the_command(tmp_path):
    cfg = _cfg(tmp_path)
    line = ["method=ugradsl", "dataset=synthetic", "seed=3"]
    assert tuned.untuned_warning(cfg, {"tuned": "synthetic/ugradsl"}, line) is None  # a regime of the project's
    cfg.regime.name = "default"  # a user's own data (dataset=imagefolder | hf)
    warning = tuned.untuned_warning(cfg, {}, line)
    assert warning and "unlearn tune method=ugradsl dataset=synthetic" in warning and "seed=3" not in warning
    assert f"lr {cfg.method.lr}" in warning
    # Hydra names the optional tuned choice even when the file is absent: that is no tuning
    assert tuned.untuned_warning(cfg, {"tuned": "default/ugradsl"}, line)
    assert tuned.untuned_warning(cfg, {}, [*line, "method.lr=0.1"]) is None  # the user chose
    tune.write(tuned.tuned_file(cfg), {"method.lr": 0.01}, {}, cfg, "unlearn tune")
    assert tuned.untuned_warning(cfg, {}, line) is None  # tuned for this setting


def test_tune_refuses_bad_arguments_before_any_trial(tmp_path, capsys):
    assert tune.main(["method=ugradsl", "--trials", "0"]) == 2
    assert tune.main(["method=ugradsl", "seed=1"]) == 2
    assert tune.main(["method=retrain"]) == 2
    assert "no search space" in capsys.readouterr().err


def test_tune_then_run_uses_the_selected_values(tmp_path, monkeypatch):
    """End to end on synthetic data: one trial of GA's study on the validation split writes the tuned file, and
    the next run of the same setting applies its values (they reach the run's results)."""
    import json
    import subprocess
    import sys

    from tests.conftest import HANG_GUARD
    monkeypatch.chdir(tmp_path)
    setting = ["method=ga", "dataset=synthetic", "model=cnn", f"cache_dir={tmp_path}/cache", "wandb.mode=disabled"]
    assert tune.main([*setting, "--trials", "1", "--storage", f"sqlite:///{tmp_path}/optuna.db",
                      "--tuned-dir", str(tmp_path / "tuned"), "--results", str(tmp_path / "tune.csv")]) == 0
    (path,) = (tmp_path / "tuned").glob("synthetic-*/ga.yaml")
    values = yaml.safe_load(path.read_text())["values"]
    assert set(values) == {"method.lr", "method.epochs"}  # hparams_search/ga.yaml's space
    done = subprocess.run([sys.executable, "-m", "unlearn.app", *setting, f"tuned_dir={tmp_path}/tuned",
                           f"run_dir={tmp_path}/run", f"results_csv={tmp_path}/runs.csv"],
                          capture_output=True, text=True, timeout=HANG_GUARD)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"tuned values for this data from {path}" in done.stdout + done.stderr
    ran = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert ran["method.lr"] == values["method.lr"] and ran["method.epochs"] == values["method.epochs"]


@pytest.mark.slow  # tune then run with the tuned values: test_tune_then_run_...; compare: tests/test_compare.py
def test_tune_and_compare_on_digits(tmp_path, monkeypatch, capsys):
    """The same commands on the embedded digits data (an MLP keeps it quick): the tuned values are applied by
    compare's runs, which print the Retrain-relative table."""
    from unlearn import compare
    monkeypatch.chdir(tmp_path)
    setting = ["dataset=digits", "model=mlp", "train.epochs=3", f"cache_dir={tmp_path}/cache", "wandb.mode=disabled"]
    assert tune.main(["method=ga", *setting, "--trials", "1", "--storage", f"sqlite:///{tmp_path}/o.db",
                      "--tuned-dir", str(tmp_path / "tuned"), "--results", str(tmp_path / "tune.csv")]) == 0
    (path,) = (tmp_path / "tuned").glob("digits-*/ga.yaml")
    lr = yaml.safe_load(path.read_text())["values"]["method.lr"]
    assert compare.main([*setting, f"tuned_dir={tmp_path}/tuned", "--methods", "ga", "--seeds", "0", "--no-tune",
                         "--results", str(tmp_path / "runs.csv"), "--out", str(tmp_path / "out"), "--",
                         f"hydra.sweep.dir={tmp_path}/sweep"]) == 0
    import pandas as pd
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert runs.loc[runs["method"] == "ga", "method.lr"].item() == pytest.approx(lr)
    assert "| ga |" in capsys.readouterr().out


def test_a_budget_fixes_one_recipe_that_fits_for_every_trial(tmp_path, monkeypatch, capsys):
    """budget.apply in `unlearn tune`: one probe (patched: a price per parameter, not this machine's speed) picks the
    recipe; every trial's command names it, the tuned file is keyed by it and the printed command reuses it."""
    import subprocess
    from types import SimpleNamespace

    from unlearn import estimate
    from unlearn.tables import select
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(estimate, "speed", lambda model, *a, **k: (
        sum(p.numel() for p in model.parameters()) * 1e-8, 0.0, 2))
    trials = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: trials.append(cmd) or SimpleNamespace(returncode=0))
    monkeypatch.setattr(select, "best", lambda name, storage: ({"method.lr": 0.01}, {"best_avg_gap": 1.0, "trials": 2}))
    setting = ["method=ga", "dataset=synthetic", "model=cnn", "model.width=32", "train.epochs=20",
               f"cache_dir={tmp_path}/cache", "wandb.mode=disabled", "budget.minutes=0.05"]
    assert tune.main([*setting, "budget.apply=true", "--trials", "2", "--tuned-dir", str(tmp_path / "tuned")]) == 0
    err = capsys.readouterr()
    fitted = [o for o in trials[0] if o.startswith(("train.epochs=", "model.width=")) and o not in setting]
    assert fitted and "tune: budget.minutes=0.05" in err.err and " ".join(fitted) in err.err
    recipe = [[o for o in cmd if not o.startswith("hydra.sweeper.sampler.seed=")] for cmd in trials]
    assert len(trials) == 2 and recipe[0] == recipe[1]  # one recipe, not a probe per trial
    assert not any(o.startswith("budget.apply") for o in trials[0])
    chosen = compose_cfg([*setting, *fitted, f"tuned_dir={tmp_path}/tuned"], tmp_path)
    assert tuned.tuned_file(chosen).is_file()  # keyed by the recipe that ran
    assert " ".join(fitted) in err.out.splitlines()[-1]  # "run with them: unlearn ..."
    assert tune.main([*setting, "budget.minutes=1e-12", "budget.apply=true"]) == 2  # nothing fits: before any trial
    assert tune.main([*setting, "budget.apply=maybe"]) == 2 and len(trials) == 2
    assert "budget.apply='maybe' is invalid" in capsys.readouterr().err
