"""budget.minutes: the run is priced by the cost probe before training, a recipe that fits is named from the probe's
measured throughput, and budget.apply=true runs it. The probe is replaced by a fixed price per parameter, so no
test depends on how fast this machine is."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from unlearn import budget, estimate
from unlearn.identity import config_id
from unlearn.validate import ConfigError
from unlearn.workspace import Workspace, run_experiment

PER_PARAM = 1e-9  # the patched probe: seconds per image of a training step, per model parameter


@pytest.fixture
def priced(monkeypatch):
    """The timed probe replaced: a training step costs PER_PARAM x parameters per image, inference a tenth."""
    def speed(model, *args, **kwargs):
        n = sum(p.numel() for p in model.parameters())
        return n * PER_PARAM, n * PER_PARAM / 10, 2
    monkeypatch.setattr(estimate, "speed", speed)
    return speed


def _seconds(ws, width: int, epochs: int) -> float:
    """The run's price by hand for GA on the tiny split: the two references over `epochs`, GA's one epoch on D_f,
    five evaluation passes over D_f + D_r + the test set."""
    s = ws.split
    f, r, t = len(s.forget), len(s.retain), len(s.test)
    n = sum(p.numel() for p in budget._model(ws, "width", width).parameters())
    return n * PER_PARAM * ((f + r) * epochs + r * epochs + f * 1) + n * PER_PARAM / 10 * (f + r + t) * 5


def test_search_takes_epochs_then_width_then_images_then_fewer_epochs():
    cost = lambda epochs, width, share: (width or 32) / 8 * share * epochs * 10 + 5  # affine in epochs, as a run is
    widths, shares = [32, 16, 8], [(30, 0.6), (20, 0.4), (10, 0.2)]
    assert budget.search(cost, 500, 20, widths, shares) == ({"epochs": 12}, 485, True)  # (500 - 5) // 40
    assert budget.search(cost, 300, 20, widths, shares) == ({"epochs": 14, "width": 16}, 285, True)  # 32: 7 < 10
    assert budget.search(cost, 90, 20, widths, shares) == ({"epochs": 10, "width": 8, "per_class": 30}, 65, True)
    assert budget.search(cost, 20, 20, widths, shares) == ({"epochs": 7, "width": 8, "per_class": 10}, 19, True)
    assert budget.search(cost, 5, 20, widths, shares) == ({"epochs": 1, "width": 8, "per_class": 10}, 7, False)
    assert budget.search(cost, 300, 20, [None], []) == ({"epochs": 7}, 285, True)  # no knob but the epochs


@pytest.mark.parametrize("key, value, allowed", [
    ("budget.minutes", "-1", "minutes > 0"), ("budget.minutes", "0", "minutes > 0"),
    ("budget.minutes", "true", "minutes > 0"), ("budget.minutes", "inf", "minutes > 0"),
    ("budget.apply", "yes", "true or false")])
def test_bad_budget_values_are_refused_in_one_line(tiny_cfg, key, value, allowed):
    with pytest.raises(ConfigError) as e:
        Workspace(tiny_cfg(f"{key}={value}"))
    assert str(e.value).startswith(f"{key}=") and allowed in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="progress.probe_batches=0"):
        Workspace(tiny_cfg("budget.minutes=5", "progress.probe_batches=0"))


def test_the_suggestion_is_priced_from_the_probe(tiny_cfg, priced, caplog):
    caplog.set_level(logging.INFO, logger="unlearn")
    setting = ("method=ga", "model.width=32", "train.epochs=20")
    ws = Workspace(tiny_cfg(*setting))  # no budget: no verdict
    assert ws.budget is None
    full = _seconds(ws, 32, 20)
    ws = Workspace(tiny_cfg(*setting, f"budget.minutes={full / 60 * 1.01}"))  # fits
    assert ws.budget.changes == {} and ws.budget.seconds == pytest.approx(full)
    # 3/4 of the price: fewer epochs at the same width, the most that fit
    ws = Workspace(tiny_cfg(*setting, f"budget.minutes={full * 0.75 / 60}"))
    fixed, per_epoch = _seconds(ws, 32, 0), _seconds(ws, 32, 1) - _seconds(ws, 32, 0)
    epochs = math.floor((full * 0.75 - fixed) / per_epoch)
    assert 10 <= epochs < 20 and ws.budget.changes == {"train.epochs": epochs}
    assert ws.budget.predicted == pytest.approx(_seconds(ws, 32, epochs)) and ws.cfg.train.epochs == 20  # not applied
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "budget.minutes" in r.getMessage()]
    assert warned and f"train.epochs={epochs}" in warned[-1] and "budget.apply=true" in warned[-1]
    # the price of width 16 at every epoch: width 32 cannot reach half its epochs, width 16 keeps them all
    half = _seconds(ws, 16, 20)
    ws = Workspace(tiny_cfg(*setting, f"budget.minutes={half / 60 * 1.001}"))
    assert ws.budget.changes == {"model.width": 16} and ws.budget.predicted == pytest.approx(half)


def test_a_budget_nothing_fits_is_said_and_refused_when_applied(tiny_cfg, priced):
    ws = Workspace(tiny_cfg("method=ga", "budget.minutes=1e-9"))
    assert not ws.budget.fits and "nothing tried fits" in ws.budget.line()
    with pytest.raises(ConfigError, match="nothing tried fits.*allowed: a larger budget.minutes"):
        Workspace(tiny_cfg("method=ga", "budget.minutes=1e-9", "budget.apply=true"))


def test_an_applied_budget_runs_the_recipe_it_named(tiny_cfg, priced, caplog):
    """End to end on CPU: the run prints the recipe, trains the original with it and records it as what ran."""
    caplog.set_level(logging.INFO, logger="unlearn")
    setting = ("method=ga", "model.width=32", "train.epochs=20")
    probe = Workspace(tiny_cfg(*setting))
    minutes = _seconds(probe, 16, 20) / 60 * 1.001
    cfg = tiny_cfg(*setting, f"budget.minutes={minutes}", "budget.apply=true", "progress.log_every=0")
    run_experiment(cfg)
    said = [r.getMessage() for r in caplog.records if "applied (budget.apply=true)" in r.getMessage()]
    assert len(said) == 1 and "model.width=16" in said[0]
    ran = json.loads((Path(cfg.run_dir) / "metrics.json").read_text())
    assert ran["model.width"] == 16 and ran["train.epochs"] == 20
    assert ran["config_id"] == config_id(tiny_cfg(*setting[:1], "train.epochs=20", "model.width=16"))  # what ran
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("original: epoch 20/20")]
    assert any("within the budget" in r.getMessage() for r in caplog.records)  # the recipe run is priced again


def test_images_per_class_are_priced_by_the_share_of_d_tr_they_keep():
    """per_class_train caps each class before the validation split takes its share: a cap of k keeps
    min(count, k x (1 - fraction)) of a class's images here."""
    import torch
    from omegaconf import OmegaConf
    from types import SimpleNamespace

    def ws(split, counts, labels="fine"):
        cfg = OmegaConf.create({"dataset": {"per_class_train": None},
                                "eval": {"split": split, "validation_fraction": 0.1}})
        y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
        return SimpleNamespace(cfg=cfg, data=SimpleNamespace(y_train=y), paradigm=SimpleNamespace(labels=labels))

    shares = budget._shares(ws("test", [100, 50]))
    assert [k for k, _ in shares] == [75, 56, 42, 31, 23, 17, 12]
    assert shares[0][1] == pytest.approx((75 + 50) / 150) and shares[-1][1] == pytest.approx(24 / 150)
    held = budget._shares(ws("validation", [90, 45]))  # 100 and 50 before the 10% held out
    assert held[0] == (75, pytest.approx((67.5 + 45) / 135))
    assert budget._shares(ws("test", [100, 50], labels="coarse")) == []  # superclass counts are not per class


def test_a_recipe_is_changed_once_even_when_the_second_probe_prices_it_over(tiny_cfg, priced, monkeypatch):
    """The set-up after budget.apply probes again (a loaded machine's probes differ, here by 50%): the recipe is kept
    and the line says so, instead of a second change."""
    setting = ("method=ga", "model.width=32", "train.epochs=20")
    minutes = _seconds(Workspace(tiny_cfg(*setting)), 16, 20) / 60 * 1.001
    factor = [1.0]
    monkeypatch.setattr(budget, "_retune", lambda cfg: factor.__setitem__(0, 1.5))  # right after the change
    monkeypatch.setattr(estimate, "speed", lambda model, *a, **k: (*(x * factor[0] for x in priced(model)[:2]), 2))
    ws = Workspace(tiny_cfg(*setting, f"budget.minutes={minutes}", "budget.apply=true"))
    assert ws.cfg.model.width == 16 and ws.cfg.train.epochs == 20  # the first choice, not re-fitted to width 8
    assert ws.budget.again and ws.budget.warn and "second probe" in ws.budget.line()


def test_the_budget_is_no_part_of_a_results_identity(tiny_cfg):
    assert config_id(tiny_cfg()) == config_id(tiny_cfg("budget.minutes=5", "budget.apply=true"))
