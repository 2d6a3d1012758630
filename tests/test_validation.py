"""Every bad input is rejected before any work, in one line that names the key and what is allowed, and
nothing is written: no results CSV, no cache file, nothing in the run folder. The command line prints that
line alone on stderr, exits 2 and leaves no Hydra folder behind."""
import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from tests.conftest import CONF, HANG_GUARD, ROOT, TINY, compose_cfg
from unlearn.app import check_run_keys
from unlearn.validate import ConfigError
from unlearn.workspace import Workspace

ENV = {**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
NUMBERS = ("nan", "inf", "-inf", "abc", "null")  # as typed on the command line
SHOWN = {"nan": "nan", "inf": "inf", "-inf": "-inf", "abc": "'abc'", "null": "None"}  # as the message shows them

BAD = [  # (overrides; "{tmp}" is the test's folder, what the one-line message must contain)
    # the paper's sweep axes
    *[([f"smooth_rate={v}"], f"smooth_rate={SHOWN[v]} is invalid; allowed: a finite number <= 1") for v in NUMBERS],
    (["smooth_rate=1.5"], "smooth_rate=1.5 is invalid"),
    *[([f"p={v}"], f"p={SHOWN[v]} is invalid; allowed: a number in [0, 1]") for v in NUMBERS],
    (["p=1.2"], "p=1.2 is invalid"), (["p=-0.1"], "p=-0.1 is invalid"),
    # seed and the run's own keys
    (["seed=-1"], "seed=-1 is invalid; allowed: an integer in [0, 2^32)"),
    (["seed=4294967296"], "seed=4294967296 is invalid; allowed: an integer in [0, 2^32)"),
    (["seed=0.5"], "seed=0.5 is invalid"), (["seed=abc"], "seed='abc' is invalid"),
    (["device=tpu"], "device='tpu' is invalid; allowed: one of ('auto', 'cpu', 'cuda')"),
    (["threads=0"], "threads=0 is invalid; allowed: null (torch's default) or an integer >= 1"),
    (["threads=1.5"], "threads=1.5 is invalid"),
    (["lock_timeout=0"], "lock_timeout=0 is invalid; allowed: a finite number of seconds > 0"),
    (["lock_timeout=nan"], "lock_timeout=nan is invalid"), (["lock_timeout=null"], "lock_timeout=None is invalid"),
    (["checkpoint_every=-1"], "checkpoint_every=-1 is invalid; allowed: an integer >= 0"),
    (["precision=fp64"], "precision='fp64' is invalid; allowed: one of ('fp32', 'bf16', 'fp16')"),
    (["channels_last=maybe"], "channels_last='maybe' is invalid; allowed: true or false"),
    (["channels_last=true"], "channels_last=true is a GPU option (NHWC convolutions for tensor cores) and this run "
                             "is on the CPU"),  # its CPU conv backward corrupts memory on AVX2 CPUs
    (["cudnn=fast"], "cudnn='fast' is invalid"),
    (["wandb.mode=on"], "wandb.mode='on' is invalid; allowed: one of ('offline', 'online', 'disabled')"),
    (["wandb.silent=ture"], "wandb.silent='ture'; allowed: true or false"),
    (["stage=train"], "stage='train' is invalid; allowed: one of ('all', 'references')"),
    (["objective=loss"], "objective='loss' is invalid"),
    # the recipe of the original model and Retrain
    (["train.lr=nan"], "train.lr=nan is invalid; allowed: a finite number > 0"),
    (["train.lr=null"], "train.lr=None is invalid"), (["train.lr=abc"], "train.lr='abc' is invalid"),
    (["train.weight_decay=inf"], "train.weight_decay=inf is invalid; allowed: a finite number >= 0"),
    (["train.momentum=1"], "train.momentum=1 is invalid; allowed: a number in [0, 1)"),
    (["train.epochs=0"], "train.epochs=0 is invalid; allowed: an integer >= 1"),
    (["train.optimizer=lbfgs"], "train.optimizer='lbfgs' is invalid"),
    # evaluation
    (["eval.batch_size=0"], "eval.batch_size=0 is invalid; allowed: an integer >= 1"),
    (["eval.batch_size=null"], "eval.batch_size=None is invalid"),
    (["eval.mia_shadow_size=0"], "eval.mia_shadow_size=0 is invalid; allowed: null (= the test-set size) or an "
                                 "integer >= 1"),
    (["eval.mia_shadow_size=nan"], "eval.mia_shadow_size=nan is invalid"),
    (["eval.split=train"], "eval.split='train' is invalid; allowed: test or validation"),
    (["eval.validation_fraction=1.5"], "eval.validation_fraction=1.5 is invalid; allowed: a number in (0, 1)"),
    (["eval.validation_fraction=nan"], "eval.validation_fraction=nan is invalid"),
    (["eval.every_epoch=ture"], "eval.every_epoch='ture'; allowed: true or false"),
    # unknown keys under known groups (Hydra's own hint for a typo is to add it with +): refused, nearest named
    (["+eval.mia_shadow_sise=5"], "eval.mia_shadow_sise is not a key of eval (did you mean eval.mia_shadow_size?"),
    (["+wandb.projct=x"], "wandb.projct is not a key of wandb (did you mean wandb.project?"),
    (["+original.checkpont=x"], "original.checkpont is not a key of original (did you mean original.checkpoint?"),
    (["+train.lrr=0.1"], "train.lrr is not a key of train (did you mean train.lr?"),
    (["+method.lrr=0.1"], "method.lrr is not a key of method (did you mean method.lr?"),
    (["+model.widht=4"], "model.widht is not a key of model (did you mean model.width?"),
    (["+paradigm.forget_clas=1"], "paradigm.forget_clas is not a key of paradigm (did you mean paradigm.forget_class?"),
    # the split
    (["paradigm=classwise", "paradigm.forget_class=7"], "forget_class=7 is invalid; allowed: an integer in [0, 4)"),
    (["paradigm=random", "paradigm.forget_fraction=1.0"], "forget_fraction=1.0 is invalid; allowed: a number in (0, 1)"),
    *[(["paradigm=random", f"paradigm.forget_fraction={v}"], f"forget_fraction={SHOWN[v]} is invalid")
      for v in NUMBERS],
    (["paradigm=random", "paradigm.forget_fraction=0.001"], "the forget set is empty"),
    (["paradigm=random", "paradigm.forget_fraction=0.99"], "D_r is empty"),
    (["paradigm=random", "paradigm.forget_fraction=0.97"], "D_r has 4 samples, too few for the MIA shadow set"),
    (["dataset=digits", "paradigm=group"], "paradigm=group forgets a subgroup of a superclass, but dataset=digits "
                                           "has no coarse"),
    (["paradigm=group", "paradigm.forget_group=nine"], "forget_group='nine' is invalid"),
    # data and model
    (["model=bow"], "model=bow reads text data but dataset=synthetic is image"),
    (["model=vit", "model.patch_size=16"], "patch_size=16 is invalid; allowed: a positive divisor of the (square) "
                                           "image side, input is 8x8"),
    (["dataset.num_classes=1"], "need num_classes >= 2"),
    (["dataset.size=1"], "model=cnn (width=8) cannot read synthetic inputs of shape [1, 1, 1]"),  # too small
    (["original.checkpoint={tmp}/none.pt"], "no such file"),
    # where results go
    (["results_csv={tmp}/afile/runs.csv"], "results_csv='{tmp}/afile/runs.csv' cannot be written"),
    (["cache_dir={tmp}/afile/cache"], "cache_dir='{tmp}/afile/cache' cannot be written"),
    (["run_dir={tmp}/afile/run"], "run_dir='{tmp}/afile/run' cannot be written"),
    (["results_csv={tmp}/adir.csv"], "results_csv='{tmp}/adir.csv' is not a readable and writable file"),
    (["results_csv={tmp}/foreign.csv"], "results_csv='{tmp}/foreign.csv' has another header (no identity columns"),
    (["results_csv={tmp}/binary.csv"], "results_csv='{tmp}/binary.csv' is not a text CSV"),
    (["run_dir={tmp}/used"], "run_dir='{tmp}/used' already holds the metrics.json of another run"),
]

BAD_HYPERPARAMETERS = [  # (method, override, what the message must name): choices and ranges
    ("ugradsl", "method.lr=-0.1", "lr=-0.1"), ("ugradsl", "method.epochs=0", "epochs=0"),
    ("ugradsl", "method.optimizer=rmsprop", "optimizer='rmsprop'"), ("ugradsl", "method.batch_size=0", "batch_size=0"),
    ("ugradsl", "method.smooth_rate_mode=auto", "smooth_rate_mode='auto'"),
    ("ugradsl", "method.distance=l1", "distance='l1'"),
    ("ugradsl", "method.delta=0", "delta=0"),
    ("scrub", "method.temperature=0", "temperature=0"), ("scrub", "method.max_steps=-1", "max_steps=-1"),
    ("scrub", "method.lr=-1", "lr=-1"),
    ("salun", "method.mask_fraction=0", "mask_fraction=0"), ("salun", "method.mask_fraction=1.5", "mask_fraction=1.5"),
    ("salun", "method.mask_fraction=-0.2", "mask_fraction=-0.2"),
    ("iu", "method.damping=0", "damping=0"), ("iu", "method.num_samples=0", "num_samples=0"),
    ("iu", "method.scale=-1", "scale=-1"), ("ff", "method.alpha=0", "alpha=0"),
    ("ff", "method.max_std=-1", "max_std=-1"), ("ff", "method.num_samples=0", "num_samples=0"),
    ("ff", "method.head=drop", "head='drop'"), ("be", "method.lr=-0.1", "lr=-0.1"),
    ("be", "method.epochs=0", "epochs=0"), ("bs", "method.bound=0", "bound=0"), ("bs", "method.lr=-1", "lr=-1"),
    ("ff", "method.variant=sparse", "variant='sparse'"), ("ff", "method.fisher_batch=0", "fisher_batch=0"),
    ("rl", "method.labels=random", "labels='random'"), ("rl", "method.loop=mixed", "loop='mixed'"),
    ("salun", "method.mask_apply=weights", "mask_apply='weights'"), ("salun", "method.loop=both", "loop='both'"),
    ("bs", "method.space=normalised", "space='normalised'"), ("bs", "method.relabel=epoch", "relabel='epoch'"),
    ("be", "method.shadow=drop", "shadow='drop'"), ("be", "method.shadow_init=zeros", "shadow_init='zeros'"),
    ("iu", "method.solver=exact", "solver='exact'"), ("scrub", "method.augment=1", "augment=1"),
]
METHODS = sorted(p.stem for p in (CONF / "method").glob("*.yaml"))


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for a folder)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture
def tmp(tmp_path):
    """A folder holding the files the bad paths point at: a plain file, a folder named like a CSV, a foreign and
    a binary CSV, a run folder of an earlier run."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.csv").mkdir()
    (tmp_path / "foreign.csv").write_text("name,score\nalice,3\n")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x01table,seed\n")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "metrics.json").write_text("{}")
    return tmp_path


def rejected(cfg, root: Path) -> str:
    """The one-line ConfigError a config gets from the runner's checks, having verified that nothing under `root`
    was written."""
    before = snapshot(root)
    with pytest.raises(ConfigError) as e:
        check_run_keys(cfg)
        Workspace(cfg)
    assert snapshot(root) == before, "a rejected config wrote files"
    message = str(e.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize("overrides, expected", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_is_rejected_before_any_work(overrides, expected, tmp):
    cfg = compose_cfg([*TINY, *(o.format(tmp=tmp) for o in overrides)], tmp)
    assert expected.format(tmp=tmp) in rejected(cfg, tmp)


def test_a_small_d_r_passes_with_a_shadow_set_it_can_fill(tmp):
    cfg = compose_cfg([*TINY, "paradigm=random", "paradigm.forget_fraction=0.97", "eval.mia_shadow_size=4"], tmp)
    assert len(Workspace(cfg).split.retain) == 4


@pytest.mark.parametrize("method, override, expected", BAD_HYPERPARAMETERS)
def test_bad_hyperparameters_are_rejected(method, override, expected, tmp, tiny_cfg):
    assert expected in rejected(tiny_cfg(f"method={method}", override), tmp)


def _numbers(node: dict) -> dict[str, type]:
    """A method's numeric hyperparameters as its YAML sets them: float or int (bools are neither)."""
    return {k: type(v) for k, v in node.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


@pytest.mark.parametrize("method", METHODS)
def test_every_numeric_hyperparameter_rejects_non_numbers(method, tmp):
    """Generated from the method's YAML: every float key rejects NaN, +-inf, a string and null; every integer key
    rejects -1, a fraction, a string and null, each with its key named and nothing written."""
    base = compose_cfg([*(o for o in TINY if not o.startswith("method.")), f"method={method}"], tmp)
    numbers = _numbers(OmegaConf.to_container(base.method, resolve=True))
    assert numbers, f"{method} has no numeric hyperparameter"
    failures = []
    for key, kind in numbers.items():
        bad = [math.nan, math.inf, -math.inf, "abc", None] if kind is float else [-1, 2.5, "abc", None]
        for value in bad:
            cfg = copy.deepcopy(base)
            with open_dict(cfg):
                cfg.method[key] = value
            try:
                message = rejected(cfg, tmp)
            except BaseException as e:  # noqa: BLE001 - collected, reported together below
                failures.append(f"method.{key}={value!r}: {type(e).__name__}: {e}")
                continue
            if f"{key}={value!r}" not in message:
                failures.append(f"method.{key}={value!r}: message does not name it: {message}")
    assert not failures, "\n".join(failures)


def _cli(args, cwd: Path) -> subprocess.Popen:
    cwd.mkdir(parents=True)
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


CLI_REJECTED = {  # name: (arguments, what the line names)
    "top-level": ([*TINY, "smooth_rate=nan"], "smooth_rate=nan is invalid"),
    "constructor": ([*TINY, "method.lr=abc"], "method: lr='abc' is invalid"),
    "after the split": ([*TINY, "paradigm=random", "paradigm.forget_fraction=0.99"], "D_r is empty"),
    "run key": ([*TINY, "stage=train"], "stage='train' is invalid"),
    "sweep": (["-m", *TINY, "seed=-1,0"], "seed=-1 is invalid"),
}


def test_cli_prints_one_line_exits_2_and_leaves_nothing(tmp_path):
    """Rejected before any work, by `run.py` as a user starts it (Hydra's own run and sweep folders, relative to
    the launch folder): exactly one line on stderr, exit status 2, and the launch folder stays empty."""
    procs = {name: _cli(args, tmp_path / name.replace(" ", "_")) for name, (args, _) in CLI_REJECTED.items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=HANG_GUARD)
        expected = CLI_REJECTED[name][1]
        assert proc.returncode == 2, (name, err[-2000:])
        assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, (name, err[-2000:])
        assert "Traceback" not in out + err
        left = [str(p.relative_to(tmp_path)) for p in (tmp_path / name.replace(" ", "_")).rglob("*")]
        assert not left, (name, left)  # no .hydra/, no run.log, no empty results/ folders


def test_cli_missing_data_prints_its_text(tmp_path):
    proc = _cli([*TINY, "dataset=imagefolder", f"dataset.root={tmp_path}/nowhere"], tmp_path / "launch")
    out, err = proc.communicate(timeout=HANG_GUARD)
    assert proc.returncode == 2, err[-2000:]
    assert err.startswith(f"error: dataset nowhere: folder {tmp_path}/nowhere/train does not exist")
    assert "MissingDataError(" not in err and "Traceback" not in err
    assert not list((tmp_path / "launch").iterdir())


def test_an_undecodable_image_is_named_before_any_work(tmp):
    from tests.test_faults import write_images
    write_images(tmp / "images")
    bad = tmp / "images" / "train" / "b" / "2.png"
    bad.write_bytes(b"not a png")  # decoded in a DataLoader worker process
    cfg = compose_cfg(["dataset=imagefolder", f"dataset.root={tmp}/images", "dataset.num_workers=2", "model=cnn",
                       "device=cpu", "wandb.mode=disabled"], tmp)
    with pytest.raises(ConfigError) as e:
        Workspace(cfg)
    assert f"dataset: image file {bad} cannot be decoded (UnidentifiedImageError" in str(e.value)
    assert "\n" not in str(e.value)
    written = [p.name for p in (tmp / "cache").rglob("*") if p.is_file()]
    assert all(name.endswith(".lock") for name in written), written  # decoding had started: only its lock is left


def test_empty_index_sets_raise_instead_of_looping(synthetic):
    """Behind the split's checks: drawing batches from, or training on, an empty D_r fails at once (it once looped
    forever, allocating memory)."""
    import torch
    from unlearn.train import Cycler, Recipe, fit
    from tests.conftest import yaml_model
    empty = torch.empty(0, dtype=torch.long)
    with pytest.raises(ValueError, match="cannot draw batches from an empty index"):
        Cycler(empty, torch.Generator().manual_seed(0))
    recipe = Recipe(epochs=1, lr=0.1, batch_size=8, optimizer="sgd", momentum=0.0, weight_decay=0.0, scheduler="none")
    model = yaml_model("cnn", synthetic.num_classes, synthetic.input_shape)
    with pytest.raises(ValueError, match="retrain: no training samples"):
        fit(model, synthetic, empty, recipe, seed=0, desc="retrain")
