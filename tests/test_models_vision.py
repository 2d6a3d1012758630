"""Vision models: shapes and the `features`/`fc` contract on 1- and 3-channel inputs, configs, checkpoints."""
import pytest
import torch

from tests.conftest import compose_cfg, state_round_trip, yaml_model
from unlearn.workspace import build

MAKERS = {
    "resnet18": lambda k, s: yaml_model("resnet18", k, s, width=4),
    "resnet18_imagenet_stem": lambda k, s: yaml_model("resnet18", k, s, width=4, stem="imagenet"),
    "vgg16_bn": lambda k, s: yaml_model("vgg16_bn", k, s, width=4),
    "vit": lambda k, s: yaml_model("vit", k, s, patch_size=4, depth=2, width=16, heads=2, mlp_dim=32),
}


@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_shapes_contract_and_backward(name, shape):
    model = MAKERS[name](7, shape)
    x = torch.randn(3, *shape)
    out = model(x)
    assert out.shape == (3, 7) and model.features(x).shape == (3, model.fc.in_features)
    torch.testing.assert_close(model.fc(model.features(x)), out)
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_resnet18_imagenet_stem_on_imagenet_size():
    model = yaml_model("resnet18", 1000, (3, 224, 224), width=8, stem="imagenet").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_standard_sizes():
    assert 14.7e6 < sum(p.numel() for p in yaml_model("vgg16_bn", 10, (3, 32, 32)).parameters()) < 14.8e6  # VGG-16 convs + BN
    vit = yaml_model("vit", 10, (3, 32, 32))
    assert vit.seq_length == 65 and len(vit.encoder.layers) == 6 and not hasattr(vit, "heads")


@pytest.mark.parametrize("name", ["resnet18", "vgg16_bn", "vit"])
def test_checkpoint_round_trip(tmp_path, name):
    model = MAKERS[name](5, (3, 8, 8))
    model.train()(torch.randn(4, 3, 8, 8))  # moves BN running stats away from their initial values
    fresh = state_round_trip(model, MAKERS[name](5, (3, 8, 8)), tmp_path)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(fresh.eval()(x), model.eval()(x))


@pytest.mark.parametrize("name", ["resnet18", "vgg16_bn", "vit"])
def test_model_yaml_builds(tmp_path, name):
    cfg = compose_cfg([f"model={name}"], tmp_path)
    model = build(cfg.model, num_classes=10, input_shape=[3, 32, 32])
    assert model.fc.out_features == 10


@pytest.mark.parametrize("make, match", [
    (lambda: yaml_model("vgg16_bn", 10, (3, 32, 32), width=0), "width=0"),
    (lambda: yaml_model("vit", 10, (3, 32, 32), patch_size=5), "patch_size=5"),
    (lambda: yaml_model("vit", 10, (3, 32, 32), width=30, heads=4), "width=30"),
    (lambda: yaml_model("vit", 10, (3, 32, 32), depth=0), "depth=0"),
])
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_imagenet_sizing_is_picked_per_model(tmp_path):
    assert compose_cfg(["dataset=imagenet"], tmp_path).model.stem == "imagenet"
    vit = compose_cfg(["dataset=imagenet", "model=vit"], tmp_path).model
    assert vit.patch_size == 16 and 224 % vit.patch_size == 0
