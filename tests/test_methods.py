"""Every method config composes, runs on synthetic data and returns finite metrics; bad values fail early."""
import math

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import CONF
from unlearn.methods.base import Task
from unlearn.workspace import Workspace, run_experiment

METHODS = sorted(p.stem for p in (CONF / "method").glob("*.yaml"))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs(method, tiny_cfg):
    cfg = tiny_cfg(f"method={method}", "paradigm=random", "paradigm.forget_fraction=0.25")
    ws = Workspace(cfg)
    original = ws.refs.original()[0]
    before = {k: v.clone() for k, v in original.state_dict().items()}
    unlearned = ws.method(original, ws.task) if method != "retrain" else ws.refs.retrain()[0]
    after = unlearned.state_dict()
    assert after.keys() == before.keys()
    assert all(after[k].shape == before[k].shape for k in before)
    assert all(torch.equal(original.state_dict()[k], before[k]) for k in before), "original was modified"
    metrics = run_experiment(cfg)
    for key in ("UA", "MIA", "RA", "TA", "H", "RTE_min", "avg_gap", "sum"):
        assert math.isfinite(metrics[key]), key


def _loss(model, ws, idx):
    with torch.no_grad():
        x = ws.data.prepare(ws.data.x_train[idx])
        return F.cross_entropy(model.eval()(x), ws.data.y_train[idx]).item()


def test_gradient_ascent_raises_forget_loss(tiny_cfg):
    ws = Workspace(tiny_cfg("method=ga", "method.epochs=3", "method.lr=0.01"))
    original = ws.refs.original()[0]
    assert _loss(ws.method(original, ws.task), ws, ws.split.forget) > _loss(original, ws, ws.split.forget) + 0.1


def test_ugradsl_retain_term_holds_d_r_while_d_f_is_unlearned(tiny_cfg):
    keys = ("method.epochs=5", "method.lr=0.01", "method.batch_size=32", "smooth_rate=-1", "p=0.5",
            "paradigm=classwise", "train.epochs=8")  # an original that fits D_tr
    ws = Workspace(tiny_cfg("method=ugradsl", *keys))
    ascent_only = Workspace(tiny_cfg("method=ugradsl_no_retain", *keys))  # the same ascent step, no D_r term
    original = ws.refs.original()[0]
    f0, r0 = _loss(original, ws, ws.split.forget), _loss(original, ws, ws.split.retain)
    mixed, alone = ws.method(original, ws.task), ascent_only.method(original, ascent_only.task)
    assert _loss(mixed, ws, ws.split.forget) > f0 + 0.5  # D_f is unlearned
    assert _loss(mixed, ws, ws.split.retain) < r0 < _loss(alone, ws, ws.split.retain)  # D_r held only with its term


def test_methods_are_deterministic(tiny_cfg):
    ws = Workspace(tiny_cfg("method=ugradsl_plus"))
    original = ws.refs.original()[0]
    a, b = ws.method(original, ws.task), ws.method(original, ws.task)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# Bad hyperparameters and what they are told: tests/test_validation.py


def test_task_carries_a_model_factory(tiny_cfg):
    ws = Workspace(tiny_cfg())
    assert isinstance(ws.task, Task)
    a, b = ws.task.build_model(), ws.task.build_model()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
