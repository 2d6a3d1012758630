"""The fast CIFAR-10 CPU tier (issue 19): the FastCNN network through the real configs, the recipe's clean
final epochs (augmentation off), and the tier search script on the real data when it is present."""
import dataclasses
import math
import runpy

import pytest
import torch

from tests.conftest import ROOT, SHARED_DATA, compose_cfg, yaml_model
from unlearn.data.synthetic import load_synthetic
from unlearn.steps import Compute
from unlearn.train import Recipe, fit
from unlearn.workspace import build

EXPERIMENT = "experiment=cifar10_random_fast_cpu"


def _data(per_class: int = 24):
    """Synthetic 3x32x32 blobs with augmentation on, the shape of CIFAR-10."""
    return dataclasses.replace(load_synthetic(num_classes=4, per_class=per_class, test_per_class=4, channels=3,
                                              size=32), augment=True)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_fastcnn_contract_and_backward(shape):
    model = yaml_model("fastcnn", 7, shape, widths=[4, 8, 8], stem_stride=1)
    x = torch.randn(3, *shape)
    out = model(x)
    assert out.shape == (3, 7) and model.features(x).shape == (3, 8)
    torch.testing.assert_close(model.fc(model.features(x)), out)  # methods edit the head through `fc`
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("bad", [{"widths": []}, {"widths": [8, 0]}, {"temperature": 0}, {"stem_stride": 3}])
def test_fastcnn_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="model."):
        yaml_model("fastcnn", 10, (3, 32, 32), **{"widths": [4, 8], "stem_stride": 1, **bad})


def test_tier_experiment_composes_and_its_recipe_trains_fastcnn(tmp_path):
    """The real experiment config: its model, recipe and step mechanics train on synthetic 32x32 data."""
    cfg = compose_cfg([EXPERIMENT], tmp_path)
    assert cfg.model.name == "fastcnn" and cfg.dataset.name == "cifar10_fast_cpu" and cfg.paradigm.name == "random"
    assert cfg.train.clean_epochs >= 1 and cfg.dataset.augment
    data = _data(per_class=8)  # 2 steps per epoch: bf16 is emulated, and slow, on CPUs without avx512_bf16
    torch.manual_seed(0)
    model = build(cfg.model, num_classes=data.num_classes, input_shape=list(data.input_shape))
    # one augmented epoch: crops and flips scramble the blobs' white-noise prototypes, so the fit is in the clean ones
    recipe = Recipe(**{**cfg.train, "epochs": 6, "clean_epochs": 5, "batch_size": 16})
    compute = Compute(precision=cfg.precision, channels_last=cfg.channels_last, compile=False, cudnn=cfg.cudnn)
    curve = []
    fit(model, data, torch.arange(len(data.y_train)), recipe, seed=0, log=lambda m, s: curve.append(m),
        compute=compute)
    assert len(curve) == 6 and all(math.isfinite(p["train/loss"]) for p in curve)
    assert curve[-1]["train/loss"] < curve[0]["train/loss"]  # it learns the blobs


def _prepare_calls(clean_epochs: int, epochs: int = 3) -> list[bool]:
    data, calls = _data(), []
    prepare = data.prepare

    def spy(x, train=False, generator=None):
        calls.append(train)
        return prepare(x, train=train, generator=generator)

    object.__setattr__(data, "prepare", spy)
    recipe = Recipe(epochs=epochs, lr=0.01, batch_size=48, optimizer="sgd", momentum=0.9, weight_decay=0.0,
                    scheduler="cosine", clean_epochs=clean_epochs)
    fit(yaml_model("fastcnn", 4, (3, 32, 32), widths=[4], stem_stride=2), data, torch.arange(96), recipe, seed=0)
    return calls


def test_clean_epochs_turn_augmentation_off_at_the_end():
    # first: the whitening stem's fit reads the training images once, as stored; then 2 batches per epoch
    assert _prepare_calls(0) == [False] + [True] * 6  # augmented throughout
    assert _prepare_calls(1) == [False] + [True] * 4 + [False] * 2  # the last epoch sees the images as stored
    assert _prepare_calls(3) == [False] + [False] * 6


def test_clean_epochs_checked_and_keyed_only_when_used():
    base = dict(epochs=4, lr=0.1, batch_size=8, optimizer="sgd", momentum=0.9, weight_decay=0.0, scheduler="cosine")
    assert "clean_epochs" not in Recipe(**base).to_dict()  # recipes without it keep their cache keys
    assert Recipe(**base, clean_epochs=2).to_dict()["clean_epochs"] == 2
    for bad in (5, -1, 1.5, True):
        with pytest.raises(ValueError, match="clean_epochs"):
            Recipe(**base, clean_epochs=bad)


@pytest.mark.shared_data
@pytest.mark.slow  # decodes a few hundred JPEGs and trains two tiny models: ~30 s on a loaded machine
def test_search_script_runs_a_candidate_on_real_cifar10(tmp_path):
    script = runpy.run_path(str(ROOT / "scripts" / "search_cifar_tier.py"), run_name="tier")
    row = script["run"]("tiny", [f"dataset.root={SHARED_DATA}/cifar10-jpg", "dataset.per_class_train=20",
                                 "dataset.per_class_test=10", "train.epochs=2", "train.clean_epochs=1",
                                 "model.widths=[8,8,8]", "model.stem_stride=2"], str(tmp_path / "cache"))
    assert set(script["COLUMNS"]) <= set(row) and row["images"] == 200 and row["threads"] == 1
    assert all(0 <= float(row[k]) <= 100 for k in ("train_acc", "test_acc", "retrain_UA", "original_MIA"))


def test_whitening_stem_decorrelates_its_training_patches_and_is_kept_by_the_state_dict():
    """FastCNN's stem filters are fitted to the images `fit` trains on: the 2x2 patches they see come out with
    unit variance and no correlation (the first half of the channels; the second half is their negative)."""
    torch.manual_seed(0)
    mix = torch.randn(12, 12)
    x = (torch.randn(4000, 12) @ mix).view(4000, 3, 2, 2)  # correlated 2x2 patches, one per image
    model = yaml_model("fastcnn", 4, (3, 2, 2), widths=[4], stem_stride=1)
    model.init_from_data(x)
    out = model.stem(x).flatten(1) - model.stem.bias  # [4000, 24]
    cov = out[:, :12].T @ out[:, :12] / len(out)
    torch.testing.assert_close(cov, torch.eye(12), atol=0.02, rtol=0)
    torch.testing.assert_close(out[:, 12:], -out[:, :12])
    assert not any(p is model.stem.weight for p in model.parameters())  # fixed: no optimiser or method moves it
    copy = yaml_model("fastcnn", 4, (3, 2, 2), widths=[4], stem_stride=1)
    copy.load_state_dict(model.state_dict())
    torch.testing.assert_close(copy.stem.weight, model.stem.weight)


def test_fit_fits_the_stem_on_its_own_samples_only_and_not_when_resuming(tmp_path):
    """Retrain's filters come from D_r alone: `fit` passes the samples it trains on; a resumed run keeps the
    filters of its checkpoint."""
    from unlearn.train import Checkpoints
    data = _data()
    seen = []
    model = yaml_model("fastcnn", 4, (3, 32, 32), widths=[4], stem_stride=2)
    fit_stem = model.init_from_data
    model.init_from_data = lambda x: (seen.append(len(x)), fit_stem(x))
    recipe = Recipe(epochs=2, lr=0.01, batch_size=48, optimizer="sgd", momentum=0.9, weight_decay=0.0,
                    scheduler="onecycle", nesterov=True, label_smoothing=0.2, clean_epochs=1)
    ck = Checkpoints(tmp_path / "resume.pt", {"k": 1}, every=1)
    fit(model, data, torch.arange(40), recipe, seed=0, checkpoints=ck)
    assert seen == [40]
    ck.save({**torch.load(tmp_path / "resume.pt", weights_only=True), "epoch": 1})  # as if stopped after epoch 1
    fit(model, data, torch.arange(40), recipe, seed=0, checkpoints=Checkpoints(tmp_path / "resume.pt", {"k": 1}, 1))
    assert seen == [40]


def test_recipe_keys_of_the_fast_recipes_checked_and_keyed_only_when_used():
    base = dict(epochs=4, lr=0.1, batch_size=8, optimizer="sgd", momentum=0.9, weight_decay=0.0, scheduler="cosine")
    assert not {"nesterov", "label_smoothing"} & set(Recipe(**base).to_dict())  # old recipes keep their cache keys
    used = Recipe(**base, nesterov=True, label_smoothing=0.2).to_dict()
    assert used["nesterov"] is True and used["label_smoothing"] == 0.2
    for key, bad in (("nesterov", "yes"), ("label_smoothing", 1.0), ("label_smoothing", -0.1)):
        with pytest.raises(ValueError, match=key):
            Recipe(**{**base, key: bad})
    with pytest.raises(ValueError, match="nesterov"):
        Recipe(**{**base, "optimizer": "adam", "nesterov": True})


def test_onecycle_schedule_warms_up_then_falls_to_zero():
    recipe = Recipe(epochs=1, lr=1.0, batch_size=8, optimizer="sgd", momentum=0.9, weight_decay=0.0,
                    scheduler="onecycle")
    opt = recipe.optimizer_for([torch.nn.Parameter(torch.zeros(1))])
    sched = recipe.scheduler_for(opt, 100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.2) and max(lrs) == pytest.approx(1.0, abs=0.01)
    assert 20 <= lrs.index(max(lrs)) <= 25 and lrs[-1] < 0.02


def test_lookahead_averages_every_fifth_step_ends_on_the_average_and_resumes(tmp_path):
    """The weights are pulled to their running average on steps 5, 10, ... and set to it at the last step; a run
    stopped after an epoch and resumed ends with the weights of the uninterrupted one."""
    from unlearn.train import Checkpoints
    from unlearn.steps import Lookahead
    model = torch.nn.Linear(2, 1, bias=False)
    avg = Lookahead(model, total=12)
    seen = []
    for step in range(1, 13):
        with torch.no_grad():
            model.weight.add_(1.0)  # an optimiser step
        before = model.weight.clone()
        avg.step(step)
        seen.append(not torch.equal(before, model.weight))
    # step 5 takes the average's first snapshot (nothing moves), step 10 pulls, the last step sets the average
    assert seen == [s in (10, 12) for s in range(1, 13)]
    data = _data()
    recipe = Recipe(epochs=2, lr=0.05, batch_size=16, optimizer="sgd", momentum=0.9, weight_decay=0.0,
                    scheduler="onecycle", lookahead=True)

    def run(checkpoints=None):
        torch.manual_seed(0)
        m = yaml_model("fastcnn", 4, (3, 32, 32), widths=[4], stem_stride=2)
        return fit(m, data, torch.arange(48), recipe, seed=0, checkpoints=checkpoints)

    whole = run()
    ck = Checkpoints(tmp_path / "r.pt", {"k": 1}, every=1)
    run(ck)
    state = torch.load(tmp_path / "r.pt", weights_only=True)
    assert "lookahead" in state
    # stopped right after epoch 1 (its checkpoint written), then resumed
    ck1 = Checkpoints(tmp_path / "r1.pt", {"k": 2}, every=1)
    import unittest.mock as mock
    with mock.patch("unlearn.train._kill_drill", side_effect=lambda e: (_ for _ in ()).throw(KeyboardInterrupt)
                    if e == 1 else None):
        with pytest.raises(KeyboardInterrupt):
            run(ck1)
    resumed = run(Checkpoints(tmp_path / "r1.pt", {"k": 2}, every=1))
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_bias_lr_scale_steps_one_dimensional_parameters_faster_with_the_same_decay():
    base = dict(epochs=1, lr=0.1, batch_size=8, optimizer="sgd", momentum=0.0, weight_decay=0.01, scheduler="none")
    layer = torch.nn.Linear(3, 2)
    groups = Recipe(**base, bias_lr_scale=8.0).optimizer_for(layer.parameters()).param_groups
    assert [g["lr"] for g in groups] == pytest.approx([0.1, 0.8])
    assert [g["lr"] * g["weight_decay"] for g in groups] == pytest.approx([0.001, 0.001])
    assert groups[0]["params"][0] is layer.weight and groups[1]["params"][0] is layer.bias
    assert len(Recipe(**base).optimizer_for(layer.parameters()).param_groups) == 1
    with pytest.raises(ValueError, match="bias_lr_scale"):
        Recipe(**base, bias_lr_scale=0)


def test_crop_pad_and_mode_translate_by_at_most_the_pad_and_reflect_the_border():
    from unlearn.data import crop_flip
    x = torch.arange(1, 1 + 6 * 6, dtype=torch.float32).view(1, 1, 6, 6).repeat(64, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    out = crop_flip(x, g, pad=2, mode="reflect")
    assert (out > 0).all()  # reflected borders: no zero padding enters the image
    assert not (crop_flip(x, torch.Generator().manual_seed(0), pad=2) > 0).all()  # zeros do
    # every output is the image (or its mirror) shifted by at most 2 pixels each way
    padded = torch.nn.functional.pad(x[:1], (2, 2, 2, 2), mode="reflect")[0, 0]
    views = [padded[i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
    views += [v.flip(1) for v in views]
    assert all(any(torch.equal(o[0], v) for v in views) for o in out)
    assert torch.equal(crop_flip(x, g, pad=0).abs().sum((1, 2, 3)), x.sum((1, 2, 3)))  # flips only
    data = _data()
    for key, bad in (("crop_pad", -1), ("crop_pad", 1.5), ("crop_mode", "wrap")):
        with pytest.raises(ValueError, match=f"dataset.{key}"):
            dataclasses.replace(data, **{key: bad})


def test_tier_page_shows_the_search_csv_and_its_bottom_line_comes_from_the_chosen_row():
    """docs/tier.md's table is the search script's --markdown of the committed CSV, and every number of its
    bottom line is the chosen tier's (airbench_20k) row."""
    import csv
    script = runpy.run_path(str(ROOT / "scripts" / "search_cifar_tier.py"), run_name="tier")
    with (ROOT / "results" / "tier" / "cifar10_tier_search.csv").open() as f:
        rows = list(csv.DictReader(f))
    page = (ROOT / "docs" / "tier.md").read_text()
    assert script["markdown"](rows) in page
    row = next(r for r in rows if r["candidate"] == "airbench_20k")
    bottom = page.split("## The recipe")[0]
    for key in ("train_acc", "original_UA", "test_acc", "retrain_UA", "original_MIA", "original_cpu_minutes"):
        assert f"{row[key]}" in bottom, key
    assert float(row["train_acc"]) >= 99 and float(row["test_acc"]) >= 80 and float(row["retrain_UA"]) <= 20


def test_tier_page_names_the_cpu_and_precision_every_committed_tier_run_used():
    """docs/tier.md says which CPU the committed tier tables ran on; the runs behind them (their .runs.csv) say
    it too, for every tier job (a rerun elsewhere must change the page), and the page shows the precision bench."""
    import pandas as pd
    page = (ROOT / "docs" / "tier.md").read_text()
    section = page.split("## bf16 and the CPU it runs on")[1]
    named = section.split("record `precision` bf16 and `cpu_capability` AVX512")[0].split("the `.runs.csv` of")[1]
    tables = [int(t) for t in named.replace("Tables", "").replace("and", ",").split(",") if t.strip()]
    assert tables == [1, 5, 6, 8, 10]
    for t in tables:
        runs = pd.read_csv(ROOT / "results" / "tables" / f"table{t}_cpu.runs.csv")
        tier = runs[runs["dataset"] == "cifar10_fast_cpu"]
        assert len(tier) and set(tier["precision"]) == {"bf16"} and set(tier["cpu_capability"]) == {"AVX512"}, t
    assert '--8<-- "results/bench/tier_precision.md"' in section
    import csv
    with (ROOT / "results" / "tier" / "cifar10_tier_search.csv").open() as f:
        rows = {r["candidate"]: r for r in csv.DictReader(f)}
    fp32, bf16 = rows["airbench_20k_fp32"], rows["airbench_20k"]
    assert fp32["precision"] == "fp32" and fp32["cpu"].endswith("bf16 no")  # measured where bf16 is emulated
    said = " ".join(section.split("row `airbench_20k_fp32`")[1].split("CPU-minutes per training")[0].split())
    for value in (fp32["train_acc"], fp32["test_acc"], fp32["retrain_UA"], fp32["original_MIA"], bf16["train_acc"],
                  bf16["test_acc"], bf16["retrain_UA"], bf16["original_MIA"], fp32["original_cpu_minutes"],
                  fp32["retrain_cpu_minutes"]):
        assert value in said, value
