"""Core models: output and feature shapes, the `features`/`fc` contract, backward pass."""
import math

import pytest
import torch

from tests.conftest import yaml_model


@pytest.mark.parametrize("make", [
    lambda s: yaml_model("resnet18", 7, s, width=4), lambda s: yaml_model("cnn", 7, s, width=4),
    lambda s: yaml_model("mlp", 7, s, hidden=16),
], ids=["resnet18", "cnn", "mlp"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_shapes_and_contract(make, shape):
    model = make(shape)
    x = torch.randn(5, *shape)
    out = model(x)
    assert out.shape == (5, 7)
    torch.testing.assert_close(model.fc(model.features(x)), out)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_resnet18_standard_width_has_resnet18_size():
    n = sum(p.numel() for p in yaml_model("resnet18", 10, (3, 32, 32)).parameters())
    assert 11.1e6 < n < 11.2e6  # the CIFAR ResNet-18 of the paper has ~11.17M parameters


def test_bad_width():
    with pytest.raises(ValueError, match="width=0"):
        yaml_model("resnet18", 10, (3, 32, 32), width=0)


@pytest.mark.parametrize("model, sizing", [
    ("resnet18", ["model.width=4"]), ("vgg16_bn", ["model.width=4"]), ("cnn", ["model.width=4"]),
    ("mlp", ["model.hidden=16"]),
    ("vit", ["model.depth=1", "model.width=16", "model.heads=2", "model.mlp_dim=16", "model.patch_size=4"]),
])
def test_every_vision_model_runs_end_to_end(model, sizing, tiny_cfg):
    from unlearn.workspace import run_experiment
    metrics = run_experiment(tiny_cfg(f"model={model}", *sizing, "train.epochs=1"))
    assert all(math.isfinite(metrics[k]) for k in ("UA", "MIA", "RA", "TA", "original/TA", "retrain/TA"))
