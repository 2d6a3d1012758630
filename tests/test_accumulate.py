"""Gradient accumulation (`train.accumulate`, `method.accumulate`): micro-batches give the whole batch's step."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import TINY, compose_cfg, yaml_method, yaml_model
from unlearn.data.synthetic import load_synthetic
from unlearn.identity import config_id, params
from unlearn.methods.base import Task
from unlearn.paradigms import Split
from unlearn.steps import micro_slices
from unlearn.train import Recipe, fit
from unlearn.validate import ConfigError, check_config
from unlearn.workspace import Workspace

BASE = dict(epochs=1, lr=0.5, optimizer="sgd", momentum=0.9, weight_decay=5e-4, scheduler="none")


def _data():
    return load_synthetic(per_class=10, test_per_class=2)  # 40 training samples, 4 classes, no augmentation


def _model(data, seen: list | None = None):
    torch.manual_seed(0)  # an MLP: no BatchNorm, so micro-batches see no other batch statistics
    model = yaml_model("mlp", data.num_classes, data.input_shape, hidden=16, depth=1)
    if seen is not None:  # the batch sizes of its forward passes (copies of the model share the list)
        model.register_forward_pre_hook(lambda module, args: seen.append(len(args[0])))
    return model


def _close(a: torch.nn.Module, b: torch.nn.Module, moved_from: torch.nn.Module):
    pa, pb, p0 = (torch.cat([p.detach().flatten() for p in m.parameters()]) for m in (a, b, moved_from))
    assert (pa - p0).norm() > 1e-3  # the step moved the weights: the comparison below is not vacuous
    assert torch.allclose(pa, pb, rtol=1e-5, atol=1e-6), float((pa - pb).abs().max())


@pytest.mark.parametrize("n", [16, 18])  # one full batch; a full batch and a short one (2 rows, 2 micro-batches)
def test_fit_with_accumulate_takes_the_whole_batch_step(n):
    data = _data()
    idx = torch.arange(n)
    start, seen = _model(data), {1: [], 4: []}
    runs = {k: fit(_model(data, seen[k]), data, idx, Recipe(**BASE, batch_size=16, accumulate=k), seed=0)
            for k in (1, 4)}
    _close(runs[4], runs[1], start)
    assert seen == {1: [16, 2][:len(seen[1])], 4: [4, 4, 4, 4, 1, 1][:len(seen[4])]}
    assert len(seen[1]) == 1 + (n > 16)


def test_accumulate_is_checked_with_a_one_line_message():
    for bad in (0, -2, 3, 2.0, True):
        with pytest.raises(ValueError, match=r"^accumulate=.* is invalid; allowed: an integer >= 1 dividing "
                                             r"batch_size=16") as e:
            Recipe(**BASE, batch_size=16, accumulate=bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"^accumulate=5 is invalid"):
        yaml_method("ga", batch_size=16, accumulate=5)
    with pytest.raises(ValueError, match=r"^scrub: accumulate=8 is invalid; .* forget_batch_size=12$"):
        yaml_method("scrub", batch_size=16, forget_batch_size=12, accumulate=8)  # SCRUB's D_f batch is cut as well


def test_bad_accumulate_stops_a_run_before_any_work(tmp_path):
    for key in ("train", "method"):
        cfg = compose_cfg([*TINY, "method=ga", f"{key}.batch_size=16", f"{key}.accumulate=3"], tmp_path)
        with pytest.raises(ConfigError, match=r"accumulate=3 is invalid; allowed: an integer >= 1 dividing "
                                              r"batch_size=16"):
            Workspace(cfg)
        assert not (tmp_path / "cache").exists()


def test_micro_slices_cover_the_batch_without_empty_parts():
    assert [(s.start, s.stop) for s in micro_slices(16, 4)] == [(0, 4), (4, 8), (8, 12), (12, 16)]
    assert [(s.start, s.stop) for s in micro_slices(2, 4)] == [(0, 1), (1, 2)]
    assert [s.stop - s.start for s in micro_slices(7, 2)] in ([3, 4], [4, 3])


def _task(data):
    """D_f = 16 samples, D_r = 16 samples: with batch 16, one step per pass."""
    split = Split(forget=torch.arange(0, 40, 2)[:16].sort().values, retain=torch.arange(1, 40, 2)[:16],
                  test=torch.arange(len(data.y_test)))
    return Task(data, split, torch.device("cpu"), 0)


@pytest.mark.parametrize("name, keys", [
    ("ga", {}),
    ("ugradsl", {"smooth_rate": -0.5, "p": 0.7}),
    ("ugradsl_plus", {"smooth_rate": -0.5, "p": 0.7}),
    ("scrub", {"forget_batch_size": 16, "max_steps": 1}),
    ("rl", {"loop": "combined"}),  # a mixed batch of D_f and D_r, cut in its order
    ("l1_sparse", {"l1_coef": 1e-3}),  # a penalty that is not a mean over rows
])
def test_method_with_accumulate_takes_the_whole_batch_step(name, keys):
    data, seen = _data(), []
    original = _model(data, seen)
    keys = {"epochs": 1, "lr": 0.1, "batch_size": 16, **keys}
    out = {}
    for k in (1, 4):
        seen.clear()
        out[k] = yaml_method(name, **keys, accumulate=k)(original, _task(data))
        assert max(seen) <= 16 // k  # every forward pass saw at most one micro-batch
    _close(out[4], out[1], original)


def test_accumulate_at_its_default_keeps_every_config_id(tmp_path):
    cfg = compose_cfg(["dataset=synthetic", "method=ga"], tmp_path)
    assert "train.accumulate" not in params(cfg) and "method.accumulate" not in params(cfg)
    before = config_id(cfg)
    for key in ("train", "method"):
        changed = OmegaConf.create(OmegaConf.to_container(cfg))
        changed[key].accumulate = 2
        assert f"{key}.accumulate" in params(changed) and config_id(changed) != before


def test_the_20_newsgroups_paper_regime_accumulates_its_recipe_and_every_sgd_method(tmp_path):
    """regime/text_paper.yaml sets accumulate for the original, Retrain and every method built on optim/sgd.yaml
    (BERT's batch of 256 x 256 tokens in micro-batches); the command line wins; other regimes keep 1."""
    paper = ["experiment=newsgroups20_paper"]
    for method in ("ga", "scrub", "ugradsl_plus", "retrain"):
        cfg = compose_cfg([*paper, f"method={method}"], tmp_path)
        assert (cfg.train.accumulate, cfg.method.accumulate) == (8, 8), method
        assert cfg.method.batch_size % 8 == 0
        check_config(cfg)  # the regime's own key passes the unknown-key check (CI once refused every text run)
    assert "accumulate" not in compose_cfg([*paper, "method=ff"], tmp_path).method  # FF, IU: chunked, no steps
    cfg = compose_cfg([*paper, "method=ga", "method.accumulate=1", "train.accumulate=2"], tmp_path)
    assert (cfg.train.accumulate, cfg.method.accumulate) == (2, 1)
    cfg = compose_cfg([*TINY, "method=ga"], tmp_path)
    assert (cfg.train.accumulate, cfg.method.accumulate) == (1, 1)
