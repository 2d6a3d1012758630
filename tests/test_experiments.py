"""Experiment files: each composes and instantiates with every model that can read its data; the Table 6
ablation is a real multirun whose rows map to the right method and alpha."""
import pytest
import torch
import yaml
from hydra.utils import to_absolute_path
from omegaconf import OmegaConf

from tests.conftest import CONF, TINY, compose_cfg
from unlearn.workspace import build, run_experiment

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
SMALL = {"resnet18": ["model.width=4"], "vgg16_bn": ["model.width=4"], "cnn": ["model.width=4"],
         "vit": ["model.depth=1", "model.width=16", "model.heads=2", "model.mlp_dim=16"],
         "bert": ["model.pretrained=minilm", "model.random_init=true",
                  "model.config_overrides={num_hidden_layers:1,hidden_size:32,num_attention_heads:2,"
                  "intermediate_size:64}"],
         "mlp": [], "bow": [], "minilm": [], "fastcnn": ["model.widths=[4,8]"]}
ROWS = {  # Table 6 row -> (method, sign of alpha, the term of Eq. 10 left out): one method per family, one budget
    "ga": ("ugradsl", 0, "retain"), "ugradsl_no_retain_nls": ("ugradsl", -1, "retain"),
    "ugradsl_no_nls": ("ugradsl", 0, None), "ugradsl_nls": ("ugradsl", -1, None), "ugradsl_pls": ("ugradsl", 1, None),
    "ft": ("ugradsl_plus", None, "forget"), "ugradsl_plus_no_nls": ("ugradsl_plus", 0, None),
    "ugradsl_plus_nls": ("ugradsl_plus", -1, None), "ugradsl_plus_pls": ("ugradsl_plus", 1, None),
}
SHAPE = {"image": [3, 32, 32], "text": [256]}


def _sign(x):
    return (x > 0) - (x < 0)


KIND = {m: yaml.safe_load((CONF / "model" / f"{m}.yaml").read_text())["modality"] for m in MODELS}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_instantiates_with_every_compatible_model(experiment, tmp_path, subtests):
    """Every model whose modality is the experiment's data's (image models on image data, text on text), one
    subtest each; the pairs are found here, not at collection (composing every experiment there cost each xdist
    worker ~2.4 s)."""
    modality = compose_cfg([f"experiment={experiment}"], tmp_path).dataset.modality
    models = [m for m in MODELS if KIND[m] == modality]
    assert models, f"no model reads {modality} data"
    for model in models:
        with subtests.test(model=model):
            cfg = compose_cfg([f"experiment={experiment}", f"model={model}", *SMALL[model]], tmp_path)
            assert "width" not in OmegaConf.to_container(cfg.model) or model in ("resnet18", "vgg16_bn", "cnn", "vit")
            method = build(cfg.method)
            assert method.recipe.lr == cfg.method.lr
            embedded = model == "minilm"  # frozen MiniLM reads the data set's cached sentence embeddings
            net = build(cfg.model, num_classes=10, input_shape=[384] if embedded else SHAPE[cfg.dataset.modality])
            x = torch.randn(2, 384) if embedded else (torch.randn(2, 3, 32, 32) if cfg.dataset.modality == "image"
                                                      else torch.randint(1000, 2000, (2, 16)))
            assert net.eval()(x).shape == (2, 10)
    root = to_absolute_path(cfg.dataset.root) if "root" in cfg.dataset else None
    if root is not None and not __import__("os").path.exists(root):
        pytest.skip(f"data of {experiment} is absent ({root}); models and method were built")


def test_experiments_leave_model_sizing_to_the_regime(tmp_path):
    for name in EXPERIMENTS:
        spec = yaml.safe_load((CONF / "experiment" / f"{name}.yaml").read_text()) or {}
        assert "model" not in spec and "train" not in spec, f"{name} sets model or train values itself"
    assert compose_cfg(["experiment=cifar10_classwise", "model=cnn"], tmp_path).model.width == 32  # regime_model/cifar_cpu_cnn
    assert compose_cfg(["experiment=cifar10_classwise"], tmp_path).model.width == 8  # cifar_cpu_resnet18
    assert compose_cfg(["experiment=cifar10_classwise", "model=mlp"], tmp_path).model.hidden == 256


def test_ablation_is_a_multirun_of_every_table6_row():
    spec = yaml.safe_load((CONF / "experiment" / "ablation.yaml").read_text())
    assert spec["hydra"]["mode"] == "MULTIRUN"
    assert spec["hydra"]["sweeper"]["params"]["+ablation"] == "glob(*)"  # every row of conf/ablation/, once
    rows = sorted(p.stem for p in (CONF / "ablation").glob("*.yaml"))
    preset = yaml.safe_load((CONF / "tables" / "table6.yaml").read_text())["rows"]
    assert rows == sorted(ROWS) == sorted(r["overrides"][0].removeprefix("+ablation=") for r in preset)


@pytest.mark.parametrize("row", ROWS)
def test_ablation_row_runs_with_its_method_and_alpha(row, tmp_path):
    cfg = compose_cfg(["experiment=ablation", f"+ablation={row}", *TINY], tmp_path)
    method, sign, without = ROWS[row]
    assert cfg.method.name == method and cfg.paradigm.name == "random" and cfg.table == "table6"
    assert cfg.method.without == without
    if sign is not None:  # FT (no forget term) has no alpha that acts
        assert _sign(cfg.method.smooth_rate) == sign
    metrics = run_experiment(cfg)
    assert all(v == v and abs(v) != float("inf") for k, v in metrics.items() if k in ("UA", "RA", "sum"))


@pytest.mark.parametrize("regime", [[], ["dataset=digits"]])  # the method YAMLs' budget, and a regime's tuned one
def test_ablation_rows_of_a_family_share_one_budget(regime, tmp_path):
    """Table 6 compares components, not budgets: every GA-based row runs UGradSL's epochs, lr, batch and p, every
    FT-based row UGradSL+'s (the regime's tuned values where it has them)."""
    budget = lambda cfg: (cfg.method.epochs, cfg.method.lr, cfg.method.batch_size, cfg.method.p)  # noqa: E731
    families = {}
    for row, (method, _, _) in ROWS.items():
        cfg = compose_cfg(["experiment=ablation", f"+ablation={row}", *regime], tmp_path)
        families.setdefault(method, set()).add(budget(cfg))
    assert {m: len(b) for m, b in families.items()} == {"ugradsl": 1, "ugradsl_plus": 1}
    assert families["ugradsl"] != families["ugradsl_plus"]


def test_sizing_lives_in_the_regime_and_shape_in_the_data_set(tmp_path):
    """regime_model/<regime>_<model>.yaml names an existing regime and model, and serves every data set of the
    regime (ResNet-18 is narrow on every cifar_cpu copy); dataset_model/ keeps only what the data's shape asks
    (ImageNet's stem, cached text embeddings), never a width or a recipe."""
    regimes = {p.stem for p in (CONF / "regime").glob("*.yaml")}
    models = {p.stem for p in (CONF / "model").glob("*.yaml")}
    for path in (CONF / "regime_model").glob("*.yaml"):
        assert any(path.stem == f"{r}_{m}" for r in regimes for m in models), path.name
    for path in (CONF / "dataset_model").glob("*.yaml"):
        spec = yaml.safe_load(path.read_text())
        assert "train" not in spec and "width" not in spec.get("model", {}), path.name
    regime = yaml.safe_load((CONF / "regime" / "cifar_cpu.yaml").read_text())
    for data in regime["datasets"]:
        cfg = compose_cfg([f"dataset={data}", "model=resnet18"], tmp_path)
        assert cfg.model.width == 8 and cfg.regime.name == "cifar_cpu", data
    imagenet = compose_cfg(["dataset=imagenet_cpu", "model=resnet18"], tmp_path).model
    assert (imagenet.width, imagenet.stem) == (8, "imagenet")
    assert compose_cfg(["dataset=imagenet", "model=resnet18"], tmp_path).model.width == 64  # the paper's network
