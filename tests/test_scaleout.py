"""Long runs survive, models come from outside, steps run faster: resume after a kill, original.checkpoint,
precision / channels_last / compile on CPU, and lazily decoded batches prefetched in the background."""
import math
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from torch import nn

from tests.conftest import HANG_GUARD, ROOT, TINY, compose_cfg, yaml_model
from tests.test_data_vision import write_imagefolder
from unlearn.data import lazy as lazy_images
from unlearn.data.imagefolder import load_imagefolder
from unlearn.steps import Compute, PLAIN
from unlearn.train import KILL_AFTER_EPOCH, Checkpoints, Recipe, batches, fit
from unlearn.validate import ConfigError
from unlearn.workspace import Workspace, run_experiment

RECIPE = Recipe(epochs=4, lr=0.05, batch_size=32, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
                scheduler="cosine")


def _cnn(data):
    torch.manual_seed(0)
    return yaml_model("cnn", data.num_classes, data.input_shape, width=8)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- the plain loop is unchanged -------------------------------------------------------------------------------

def plain_fit(model, data, idx, recipe, seed):
    """The training loop as it was before Compute / checkpoints existed (unlearn/train.py before this change)."""
    g = torch.Generator().manual_seed(seed)
    opt = recipe.optimizer_for(model.parameters())
    sched = recipe.scheduler_for(opt, recipe.epochs * math.ceil(len(idx) / recipe.batch_size))
    model.train()
    for _ in range(recipe.epochs):
        for b in batches(idx, recipe.batch_size, g):
            x, y = data.prepare(data.x_train[b], train=True, generator=g), data.y_train[b]
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
    return model.eval()


def test_fp32_is_bit_identical_to_the_plain_loop(synthetic):
    idx = torch.arange(len(synthetic.y_train))
    want = _state(plain_fit(_cnn(synthetic), synthetic, idx, RECIPE, 0))
    got = _state(fit(_cnn(synthetic), synthetic, idx, RECIPE, 0, compute=PLAIN))
    assert _same(want, got)
    bf16 = _state(fit(_cnn(synthetic), synthetic, idx, RECIPE, 0,
                      compute=Compute(precision="bf16", channels_last=False, compile=False, cudnn="deterministic")))
    assert not _same(want, bf16)  # autocast is really in effect: the comparison above can fail


# channels_last is not here: on CPU it is refused before any work (below), because torch's CPU convolution
# backward in NHWC corrupts the heap on AVX2 machines (resnet18 width 4 aborted the suite with SIGABRT).
OPTIONS = [["precision=bf16"], ["precision=fp16"], ["precision=bf16", "method=scrub"],
           ["precision=fp16", "method=salun"], ["cudnn=benchmark"]]


@pytest.mark.parametrize("options", OPTIONS, ids=[" ".join(o) for o in OPTIONS])
def test_each_step_option_trains_on_cpu_with_finite_metrics(options, tmp_path):
    cfg = compose_cfg(TINY + options, tmp_path)
    ws = Workspace(cfg)
    metrics = ws.run()
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["original/RA"] > 50  # the original model learnt the data under these mechanics
    if "precision=bf16" in options:  # not the plain loop: its own cache key
        assert "compute" in ws.refs.original_key()


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_channels_last_on_cpu_is_refused_before_work(device, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # device=auto resolves to the CPU
    with pytest.raises(ConfigError, match=r"channels_last=true is a GPU option .* allowed on CPU: channels_last=false"):
        Workspace(compose_cfg([o for o in TINY if o not in ("device=cpu", "model=cnn")]
                              + ["model=resnet18", "model.width=4", "channels_last=true", f"device={device}"],
                              tmp_path))
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs.csv").exists()


def test_channels_last_passes_the_checks_where_cuda_runs(tmp_path, monkeypatch):
    """On a CUDA machine the option is accepted, enters the reference cache key, and converts conv weights to
    NHWC (checked without a backward pass, which is what crashes on the CPU)."""
    from unlearn.validate import check_config
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = compose_cfg([o for o in TINY if not o.startswith("device=")] + ["channels_last=true", "device=cuda"],
                      tmp_path)
    check_config(cfg)
    compute = Compute(precision="fp32", channels_last=True, compile=False, cudnn="deterministic")
    assert not compute.plain
    model = compute.prepare(yaml_model("cnn", 4, (3, 8, 8), width=4))
    conv = next(p for p in model.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


@pytest.mark.slow  # torch.compile spends about a minute compiling on 2 CPU cores
def test_compile_trains_on_cpu(tmp_path):
    """An MLP, not a conv net: on CPU, inductor lays convolutions out channels_last, the layout whose backward
    corrupts memory on AVX2 CPUs."""
    tiny = [o for o in TINY if not o.startswith("model=")] + ["model=mlp", "compile=true"]
    metrics = run_experiment(compose_cfg(tiny, tmp_path))
    assert all(math.isfinite(v) for v in metrics.values())


def test_plain_loop_keeps_its_cache_keys(tmp_path):
    ws = Workspace(compose_cfg(TINY, tmp_path))
    assert "compute" not in ws.refs.original_key() and "compute" not in ws.refs.retrain_key()


@pytest.mark.parametrize("key, value, match", [("precision", "fp8", "precision='fp8'"),
                                               ("cudnn", "fast", "cudnn='fast'"),
                                               ("checkpoint_every", "-1", "checkpoint_every=-1")])
def test_bad_step_options_fail_before_work(key, value, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        Workspace(compose_cfg(TINY + [f"{key}={value}"], tmp_path))
    assert not (tmp_path / "cache").exists()


# --- resuming ---------------------------------------------------------------------------------------------------

KILLED = """
import sys, torch
from pathlib import Path
torch.set_num_threads(1)
from tests.conftest import compose_cfg, TINY
from unlearn.workspace import Workspace
Workspace(compose_cfg(TINY + sys.argv[2:], Path(sys.argv[1]))).refs.original()
"""


def test_killed_training_resumes_to_the_same_weights(tmp_path):
    """SIGKILL after epoch 2 of 4 (checkpoints every epoch), resume in another process: the final original model
    is bit-identical to an uninterrupted run."""
    extra = ["checkpoint_every=1"]
    whole = Workspace(compose_cfg(TINY + extra, tmp_path / "whole")).refs.original()[0]
    env = {**os.environ, KILL_AFTER_EPOCH: "2", "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    out = subprocess.run([sys.executable, "-c", KILLED, str(tmp_path / "cut"), *extra], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=HANG_GUARD)
    assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]
    cache = tmp_path / "cut" / "cache"
    (resume,) = cache.glob("original-*.resume.pt")
    assert torch.load(resume, weights_only=True)["epoch"] == 2 and not list(cache.glob("original-" + "?" * 16 + ".pt"))
    ws = Workspace(compose_cfg(TINY + extra, tmp_path / "cut"))
    resumed = ws.refs.original()[0]
    assert _same(_state(whole), _state(resumed))
    assert not resume.exists()  # the finished model is cached; its resume state is gone
    curve = [p["epoch"] for p in ws.recorder.curves if p["phase"] == "original" and p["metric"] == "loss"]
    assert curve == [1, 2, 3, 4]  # the epochs before the kill come back from the checkpoint


def test_resume_in_process_replays_the_curve_and_matches(synthetic, tmp_path):
    idx = torch.arange(len(synthetic.y_train))
    want = _state(fit(_cnn(synthetic), synthetic, idx, RECIPE, 0))
    ckpt = Checkpoints(tmp_path / "run.resume.pt", {"run": 1}, every=1)

    def stop_after_epoch_3(point, step):
        if point["train/epoch"] == 3:
            raise KeyboardInterrupt  # interrupted right after the epoch-3 checkpoint
    with pytest.raises(KeyboardInterrupt):
        fit(_cnn(synthetic), synthetic, idx, RECIPE, 0, log=stop_after_epoch_3, checkpoints=ckpt)
    curve = []
    got = fit(_cnn(synthetic), synthetic, idx, RECIPE, 0, log=lambda p, s: curve.append(p["train/epoch"]),
              checkpoints=ckpt)
    assert _same(want, _state(got)) and curve == [1, 2, 3, 4]
    other = Checkpoints(tmp_path / "run.resume.pt", {"run": 2}, every=1)  # another run's key: not resumed
    assert other.load() is None


# --- original models from outside --------------------------------------------------------------------------------

def test_original_from_a_state_dict_file(tmp_path):
    ws = Workspace(compose_cfg(TINY, tmp_path / "a"))
    trained = _state(ws.refs.original()[0])
    torch.save({"state_dict": trained}, tmp_path / "model.pt")
    shutil.copy(tmp_path / "model.pt", tmp_path / "copy.pt")
    ext = Workspace(compose_cfg(TINY + [f"original.checkpoint={tmp_path}/model.pt"], tmp_path / "b"))
    model, info = ext.refs.original()
    assert _same(trained, _state(model)) and info["train_seconds"] == 0.0 and info["source"].endswith("model.pt")
    assert not [p for p in ext.recorder.curves if p["phase"] == "original"]  # nothing was trained
    key = ext.refs.original_key()
    assert "train" not in key and len(key["checkpoint"]["sha256"]) == 64
    same = Workspace(compose_cfg(TINY + [f"original.checkpoint={tmp_path}/copy.pt"], tmp_path / "b"))
    assert same.refs.original_key() == key  # keyed by content, not by path
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in trained.items()}, tmp_path / "model.pt")
    changed = Workspace(compose_cfg(TINY + [f"original.checkpoint={tmp_path}/model.pt"], tmp_path / "b"))
    assert changed.refs.original_key() != key


@pytest.mark.parametrize("content, match", [(None, "no such file"), ("garbage", "cannot be read"),
                                            ({"x": 1}, "holds no state dict"),
                                            ({"fc.weight": torch.zeros(3, 3)}, "does not fit")])
def test_bad_original_checkpoint_fails_before_work(content, match, tmp_path):
    path = tmp_path / "bad.pt"
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(ConfigError, match=f"original.checkpoint=.*{match}"):
        Workspace(compose_cfg(TINY + [f"original.checkpoint={path}"], tmp_path))
    assert not (tmp_path / "cache").exists()


def test_original_by_torchvision_name_from_the_hub_cache(tmp_path, monkeypatch):
    """torchvision:<Weights>.<NAME> reads the hub cache (never downloads) and maps torchvision's ResNet names."""
    import torchvision
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    over = ["model=resnet18", "model.width=4"]
    with pytest.raises(ConfigError, match="is absent"):
        Workspace(compose_cfg(TINY + over + ["original.checkpoint=torchvision:ResNet18_Weights.IMAGENET1K_V1"],
                              tmp_path))
    ours = _state(Workspace(compose_cfg(TINY + over, tmp_path / "a")).refs.original()[0])
    theirs = {("conv1." + k[7:] if k.startswith("stem.0.") else "bn1." + k[7:] if k.startswith("stem.1.") else k): v
              for k, v in ours.items()}
    url = torchvision.models.get_weight("ResNet18_Weights.IMAGENET1K_V1").url
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(theirs, tmp_path / "torch" / "hub" / "checkpoints" / url.rsplit("/", 1)[-1])
    ws = Workspace(compose_cfg(TINY + over + ["original.checkpoint=torchvision:ResNet18_Weights.IMAGENET1K_V1"],
                               tmp_path / "b"))
    assert _same(ours, _state(ws.refs.original()[0]))


# --- lazily decoded data: the next batch decodes while the current one computes -----------------------------------

@pytest.fixture
def lazy(tmp_path):
    write_imagefolder(tmp_path / "set", n=(8, 2))
    return load_imagefolder(str(tmp_path / "set"), image_size=8, in_memory=False, num_workers=2)


def test_prefetch_decodes_ahead_and_load_uses_it(lazy, monkeypatch):
    view = lazy.x_train[torch.tensor([3, 1])]
    want = view.load()
    view.prefetch()
    pending = [lazy_images._PENDING[(f, 8)] for f in view.files]
    monkeypatch.setattr(lazy_images, "load_image", lambda *a, **k: pytest.fail("decoded again instead of prefetched"))
    assert torch.equal(view.load(), want)
    assert all(f.done() for f in pending) and not any((f, 8) in lazy_images._PENDING for f in view.files)


def test_training_on_lazy_data_prefetches_every_batch_and_changes_nothing(lazy, monkeypatch):
    recipe = Recipe(epochs=2, lr=0.05, batch_size=5, optimizer="sgd", momentum=0.9, weight_decay=0.0,
                    scheduler="none")
    idx = torch.arange(len(lazy.y_train))
    calls = []
    prefetch = lazy_images.LazyImages.prefetch
    monkeypatch.setattr(lazy_images.LazyImages, "prefetch", lambda self: calls.append(len(self)) or prefetch(self))
    ahead = _state(fit(_cnn(lazy), lazy, idx, recipe, 0))
    assert calls == [5, 5, 5, 5, 4, 5, 5, 5, 5, 4]  # per epoch: the first batch, then each next one (24 images)
    monkeypatch.setattr(lazy_images.LazyImages, "prefetch", lambda self: None)
    assert _same(ahead, _state(fit(_cnn(lazy), lazy, idx, recipe, 0)))
