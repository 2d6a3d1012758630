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
from tests.test_shared_files import full_disk  # noqa: F401  (a fixture)
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
    (["stage=train"], "stage='train' is invalid; allowed: one of ('all', 'references'"),
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
    (["cache_dir=null"], "cache_dir=None is invalid; allowed: a folder"),  # was a TypeError
    # W&B: checked before any work (it would fall back to /tmp/wandb, or retry for minutes, without a word)
    (["wandb.mode=offline", "wandb.dir={tmp}/afile"], "wandb.dir='{tmp}/afile' cannot be written"),
    (["wandb.mode=offline", "wandb.dir={tmp}/afile/sub"], "wandb.dir='{tmp}/afile/sub' cannot be written"),
    (["wandb.mode=offline", "wandb.dir=null"], "wandb.dir=None is invalid; allowed: a folder"),
    (["wandb.mode=offline", "wandb.project=a/b"], "wandb.project='a/b' is invalid; allowed: 1 to 128 characters "
                                                  "without /"),
    (["wandb.mode=online"], "wandb.mode=online needs a W&B API key"),  # no key: the test's environment has none
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
def tmp(tmp_path, monkeypatch):
    """A folder holding the files the bad paths point at: a plain file, a folder named like a CSV, a foreign and
    a binary CSV, a run folder of an earlier run."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir.csv").mkdir()
    (tmp_path / "foreign.csv").write_text("name,score\nalice,3\n")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x01table,seed\n")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "metrics.json").write_text("{}")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)  # no W&B login, whoever runs the tests
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
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


CLI_REJECTED = {  # name: (arguments, what the line names); one per phase of checking (stage=, cache_dir=null and
    # the other config checks' cases run in-process above: a process costs ~4 s of imports)
    "top-level": ([*TINY, "smooth_rate=nan"], "smooth_rate=nan is invalid"),
    "constructor": ([*TINY, "method.lr=abc"], "method: lr='abc' is invalid"),
    "after the split": ([*TINY, "paradigm=random", "paradigm.forget_fraction=0.99"], "D_r is empty"),
    "sweep": (["-m", *TINY, "seed=-1,0"], "seed=-1 is invalid"),
    # refused before Hydra composes anything (were Hydra internals or tracebacks, some leaving .hydra/ behind)
    "group path": ([*TINY, "method=../model/cnn"], "method=../model/cnn is invalid; allowed: one of ['be'"),
    "group list": ([*TINY, "dataset=[synthetic,digits]"], "dataset=[synthetic,digits] is invalid: a run takes one"),
    "unset variable": ([*TINY, "smooth_rate=${oc.env:UNSET_IN_TESTS}"], "smooth_rate=${oc.env:UNSET_IN_TESTS} "
                                                                        "cannot be resolved"),
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


BAD_OVERRIDES = [  # (command line, what the one line names): checked before Hydra composes anything
    (["smooth_rate=${oc.env:UNSET_IN_TESTS}"], "smooth_rate=${oc.env:UNSET_IN_TESTS} cannot be resolved (KeyError "
                                               "raised while resolving interpolation: \"Environment variable"),
    (["smooth_rate=${oc.nope:X}"], "smooth_rate=${oc.nope:X} cannot be resolved (Unsupported interpolation type"),
    (["method=../dataset/synthetic"], "method=../dataset/synthetic is invalid; allowed: one of ['be', 'bs', "),
    (["method=../model/cnn"], "method=../model/cnn is invalid; allowed: one of"),
    (["dataset=[synthetic,digits]"], "dataset=[synthetic,digits] is invalid: a run takes one dataset; allowed: one "
                                     "of ['celeba'"),
    (["-m", "method=[ga,ft]"], "(several, as a sweep: -m method=ga,ft)"),
    (["-m", "method=ga,fft"], "method=fft is invalid; allowed: one of"),  # every value of a sweep
    (["+ablation=nope"], "ablation=nope is invalid; allowed: one of ['ft', 'ga',"),
    (["seed=(1"], "override 'seed=(1' is invalid ("),
]
GOOD_OVERRIDES = [["smooth_rate=${oc.env:HOME}"], ["-m", "method=ga,ft", "seed=0,1"], ["+ablation=ft"],
                  ["tuned=digits/ga"], ["experiment=null"], ["~experiment"], ["hydra/launcher=joblib"],
                  ["method=glob(*)"], ["smooth_rate=${p}"], ["run_dir=runs/${now:%Y}"],
                  ["--cfg", "job", "method=x"]]  # Hydra flags: Hydra's


@pytest.mark.parametrize("argv, expected", BAD_OVERRIDES, ids=[" ".join(b[0]) for b in BAD_OVERRIDES])
def test_bad_overrides_are_one_line_before_hydra(argv, expected):
    from unlearn.cli import override_problem
    message = override_problem(argv)
    assert message is not None and expected in message and "\n" not in message, message


def test_good_overrides_pass_the_early_check():
    from unlearn.cli import override_problem
    assert [override_problem(argv) for argv in GOOD_OVERRIDES] == [None] * len(GOOD_OVERRIDES)


def test_wandb_online_without_a_reachable_server_is_refused_at_once(tmp, monkeypatch):
    """A key but no route to the server: refused in a few seconds at most (W&B itself retried for ~100 s)."""
    import socket
    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
        cfg = compose_cfg([*TINY, "wandb.mode=online"], tmp)
        assert f"wandb.mode=online but W&B's server 127.0.0.1:{port} cannot be reached" in rejected(cfg, tmp)


def _non_utf8_name(images: Path) -> str:
    os.rename(images / "train" / "a" / "0.png", os.fsencode(images / "train" / "a") + b"/\xff\xfe.png")
    return "has a name that is not UTF-8; allowed: UTF-8 file and folder names"


def _dangling_link(images: Path) -> str:
    (images / "train" / "a" / "9.png").symlink_to(images / "gone.png")
    return f"image file {images}/train/a/9.png is a broken symlink (to {images}/gone.png)"


BAD_IMAGE_FILES = {"non-UTF-8 file name": _non_utf8_name, "dangling symlink": _dangling_link}


@pytest.mark.parametrize("case", BAD_IMAGE_FILES)
def test_bad_image_files_are_named_before_any_work(case, tmp):
    from tests.test_faults import write_images
    write_images(tmp / "images")
    expected = BAD_IMAGE_FILES[case](tmp / "images")
    cfg = compose_cfg([*TINY, "dataset=imagefolder", f"dataset.root={tmp}/images", "dataset.num_workers=0"], tmp)
    assert expected in rejected(cfg, tmp)


def test_a_results_csv_saved_by_a_spreadsheet_is_accepted(tmp):
    """A UTF-8 BOM and CRLF line ends (Excel's "CSV UTF-8"): a results CSV of ours, checked, read and appended to."""
    from unlearn.results_csv import IDENTITY, append_row, read_runs
    from unlearn.validate import check_results_csv
    path = tmp / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ",".join([*IDENTITY, "UA"]).encode() + b"\r\nt,d,m,p,ga,0,abc,1.5\r\n")
    check_results_csv(path)
    append_row(path, {"table": "t", "dataset": "d", "model": "m", "paradigm": "p", "method": "ga", "seed": 1,
                      "config_id": "abc", "UA": 2.5})
    runs, problems = read_runs(path)
    assert not problems and list(runs.columns) == [*IDENTITY, "UA"] and list(runs["UA"]) == [1.5, 2.5]


# --- the other commands: one line on stderr, exit status 2, before any work -----------------------------------------

BAD_TOOL_ARGS = [  # (arguments of `unlearn`, what the line names); {tmp} is a folder, {tmp}/none.csv is not there
    (["collect", "{tmp}"], "the runs CSV '{tmp}' is a folder; allowed: the results CSV of the runs (a file)"),
    (["collect", "{tmp}/none.csv"], "the runs CSV '{tmp}/none.csv' is not there"),
    (["table", "print", "table1", "--seeds", "0,,1"], "--seeds '0,,1' is invalid; allowed: comma-separated integers"),
    (["table", "print", "table1", "--results", "{tmp}/none.csv"], "--results '{tmp}/none.csv' is not there"),
    (["table", "print", "table1", "--results", "{tmp}"], "--results '{tmp}' is a folder"),
    (["table", "run", "table1", "--results", "{tmp}", "--dry-run"], "--results '{tmp}' is a folder"),
    (["figure", "draw", "fig3", "--seeds", "1,x"], "--seeds '1,x' is invalid"),
    (["figure", "draw", "fig3", "--results", "{tmp}/none.csv"], "--results '{tmp}/none.csv' is not there"),
]


def _unlearn(argv: list[str], monkeypatch, capsys) -> str:
    """`unlearn ARGV` in this process: the stderr line of a refused command (asserting exit status 2)."""
    from unlearn.__main__ import main
    monkeypatch.setattr(sys, "argv", ["unlearn"])  # main names the sub-command in sys.argv
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("argv, expected", BAD_TOOL_ARGS, ids=[" ".join(b[0]) for b in BAD_TOOL_ARGS])
def test_bad_tool_arguments_are_one_line(argv, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert expected.format(tmp=tmp_path) in _unlearn([a.format(tmp=tmp_path) for a in argv], monkeypatch, capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


PRESET_TYPOS = [  # (text of presets/table1.yaml, typed instead, what the line names)
    ("\ncolumns:", "\ncolums:", "table1.yaml: the preset has the unknown key 'colums' (did you mean columns?)"),
    ("    cpu: [regime=cifar_fast_cpu,", "    cpuu: [regime=cifar_fast_cpu,",
     "table1.yaml: block 'CIFAR-10' has the unknown key 'cpuu' (did you mean cpu?)"),
    ("experiment=cifar10_classwise_fast_cpu,", "experiment=cifar10_classwise_fast_cpuu,",
     "table1.yaml, block 'CIFAR-10', row 'retrain': experiment=cifar10_classwise_fast_cpuu is invalid; allowed: one of"),
    ("    cpu: [regime=cifar_fast_cpu,\n", "    cpu: [\n",
     "table1.yaml: block 'CIFAR-10' at cpu scale names no regime first (['experiment=cifar10_classwise_fast_cpu'"),
    ("title: Class-wise forgetting", "title: [Class-wise", "table1.yaml: not valid YAML ("),
]


@pytest.mark.parametrize("good, typo, expected", PRESET_TYPOS, ids=[t[1].strip() for t in PRESET_TYPOS])
def test_preset_typos_name_the_file_and_key(good, typo, expected, tmp_path, monkeypatch, capsys):
    import shutil
    from unlearn.tables import preset
    shutil.copytree(preset.PRESETS, tmp_path / "presets")
    path = tmp_path / "presets" / "table1.yaml"
    assert good in path.read_text()
    path.write_text(path.read_text().replace(good, typo))
    monkeypatch.setattr(preset, "PRESETS", tmp_path / "presets")
    (tmp_path / "runs.csv").write_text("")
    err = _unlearn(["table", "print", "table1", "--rows", "retrain", "--results", str(tmp_path / "runs.csv"),
                    "--out", str(tmp_path / "out")], monkeypatch, capsys)
    assert expected in err and str(path) in err
    assert not (tmp_path / "out").exists()


FULL_DISK_TOOLS = {  # the command (with {tmp}/runs.csv, {tmp}/out) and the file it names
    "table": (["table", "print", "table1", "--rows", "retrain", "--seeds", "0", "--results", "{tmp}/runs.csv",
               "--out", "{tmp}/out"], "{tmp}/out/table1_cpu.md"),
    "collect": (["collect", "{tmp}/runs.csv", "--long", "{tmp}/out/long.csv"], "{tmp}/out/long.csv"),
}


@pytest.mark.parametrize("tool", FULL_DISK_TOOLS)
def test_a_full_disk_ends_a_tool_with_one_line(tool, tmp_path, monkeypatch, capsys, full_disk):
    """The tables and collect's long CSV are written whole or not at all; a full disk is one line, exit 2."""
    (tmp_path / "runs.csv").write_text("" if tool == "table" else "table,dataset,model,paradigm,method,smooth_rate,"
                                       "p,seed,config_id,UA\nt,d,m,p,ga,-0.5,0.8,0,abc,1.5\n")
    (tmp_path / "out").mkdir()
    full_disk(tmp_path / "out")
    argv, path = FULL_DISK_TOOLS[tool]
    err = _unlearn([a.format(tmp=tmp_path) for a in argv], monkeypatch, capsys)
    assert f"error: disk full while writing {path.format(tmp=tmp_path)} (No space left on device)" in err
    assert not list((tmp_path / "out").iterdir())  # no partial file, no temp file


def test_a_full_disk_leaves_no_partial_figure(tmp_path, full_disk):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from unlearn.cache import DiskFullError
    from unlearn.figures.__main__ import save
    (tmp_path / "out").mkdir()
    full_disk(tmp_path / "out")
    fig = plt.figure()
    with pytest.raises(DiskFullError, match=f"disk full while writing {tmp_path}/out/fig3.png"):
        save(fig, "fig3", tmp_path / "out", pd.DataFrame({"UA": [1.0]}))
    plt.close(fig)
    assert not list((tmp_path / "out").iterdir())


# --- locks that cannot be taken: a folder in the way, a file system without flock (Lustre without -o flock) ------

def _no_flock(monkeypatch, code: int) -> None:
    """flock fails with `code` on every lock file, as on a file system that does not support it."""
    import fcntl
    real = fcntl.flock

    def flock(fd, operation):
        if operation & fcntl.LOCK_EX:
            raise OSError(code, os.strerror(code))
        return real(fd, operation)
    monkeypatch.setattr(fcntl, "flock", flock)


def _take_cache_lock(tmp: Path) -> Path:
    from unlearn.cache import cached
    cached("x", {"a": 1}, tmp / "cache", lambda: pytest.fail("computed without its lock"))
    return tmp / "cache"


def _take_csv_lock(tmp: Path) -> Path:
    from unlearn.results_csv import append_row
    append_row(tmp / "runs.csv", {"table": "t", "seed": 0})
    return tmp / "runs.csv"


def _take_run_dir(tmp: Path) -> Path:
    from unlearn.rundir import Claim
    Claim(tmp / "run")
    return tmp / "run" / "status.lock"


LOCK_TAKERS = {"cache": _take_cache_lock, "results CSV": _take_csv_lock, "run folder": _take_run_dir}


@pytest.mark.parametrize("where", LOCK_TAKERS)
@pytest.mark.parametrize("code", ["ENOLCK", "EOPNOTSUPP", "ENOSYS"])
def test_a_file_system_without_flock_is_named_in_one_line(where, code, tmp_path, monkeypatch):
    """Every job would fail (or, with filelock's fallback, hold locks that outlive a killed job): said at once,
    naming the lock file and what to do."""
    import errno
    from unlearn.locks import LockError
    _no_flock(monkeypatch, getattr(errno, code))
    with pytest.raises(LockError) as e:
        LOCK_TAKERS[where](tmp_path)
    message = e.value.strerror
    assert "\n" not in message and f"cannot lock {tmp_path}/" in message, message
    assert "does not support flock" in message and "results_csv=null" in message and "cache_dir" in message
    assert not (tmp_path / "runs.csv").exists()  # nothing written without the lock


def test_a_folder_in_place_of_a_lock_file_is_named(tmp_path):
    from unlearn.cache import cached
    from unlearn.locks import LockError
    from unlearn.identity import config_hash
    lock = tmp_path / f"x-{config_hash({'a': 1})}.pt.lock"
    lock.mkdir()
    with pytest.raises(LockError, match=rf"lock file {lock} is a folder, not a file; remove it \(rmdir {lock}\)"):
        cached("x", {"a": 1}, tmp_path, lambda: pytest.fail("computed without its lock"))


@pytest.mark.parametrize("error", ["disk full", "no flock", "unreadable"])
def test_the_run_command_prints_file_errors_in_one_line(error, tmp_path, capsys):
    """A full disk, a lock that cannot be taken or another user's unreadable cache file, met by a run: one line,
    exit status 2 (the run folder is kept once claimed; here nothing was)."""
    import errno
    from unlearn import cache, locks
    from unlearn.cli import rejecting_bad_config
    raised = {"disk full": cache.disk_full(tmp_path / "metrics.json", OSError(errno.ENOSPC, "No space left")),
              "no flock": locks.lock_failure(tmp_path / "x.lock", OSError(errno.ENOLCK, "No locks available")),
              "unreadable": cache.unreadable(tmp_path / "x.pt", PermissionError(errno.EACCES, "Permission denied"))}
    job = rejecting_bad_config(lambda cfg: (_ for _ in ()).throw(raised[error]))
    with pytest.raises(SystemExit) as e:
        job(OmegaConf.create({"run_dir": str(tmp_path / "run")}))
    err = capsys.readouterr().err
    assert e.value.code == 2 and err == f"error: {raised[error].strerror}\n", err


def test_a_results_csv_without_flock_is_refused_before_any_work(tmp, monkeypatch):
    """The CSV's lock is first needed after training: it is tried when the job sets up, and the run folder's claim
    is given back (nothing left in it)."""
    import errno
    from unlearn import locks
    cfg = compose_cfg(TINY, tmp)
    real = locks.file_lock

    def file_lock(path, **options):  # only the CSV's file system lacks flock
        lock = real(path, **options)
        if path.endswith("runs.csv.lock"):
            lock.acquire = lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOLCK, "No locks available"))
        return lock
    monkeypatch.setattr(locks, "file_lock", file_lock)
    with pytest.raises(locks.LockError, match=f"cannot lock {tmp}/runs.csv.lock: its file system does not support"):
        Workspace(cfg)
    assert not (Path(cfg.run_dir) / "status").exists()  # the claim given back
    assert not (tmp / "runs.csv").exists()


def test_the_checks_run_in_the_phases_validate_lists(tmp_path, monkeypatch):
    """unlearn.validate.PHASES is the order Workspace checks in: each phase's function runs once, in that order."""
    from unlearn import validate, workspace
    ran = []
    for phase in validate.PHASES:
        assert phase.check is getattr(validate, f"check_{phase.name}")  # the list names the functions that run

        def record(*args, _phase=phase, **kwargs):
            ran.append(_phase.name)
            return _phase.check(*args, **kwargs)
        monkeypatch.setattr(workspace, phase.check.__name__, record)
    Workspace(compose_cfg(TINY, tmp_path))
    assert ran == [p.name for p in validate.PHASES]


def test_a_rule_two_places_need_says_the_same_at_the_top_and_in_the_method(tmp_path):
    """smooth_rate is checked at the top level (any method) and by the methods that take it, from one rule."""
    from tests.conftest import yaml_method
    from unlearn.checks import SMOOTH_RATE
    from unlearn.validate import check_config
    with pytest.raises(ConfigError) as top:
        check_config(compose_cfg([*TINY, "method=ga", "smooth_rate=2"], tmp_path))
    with pytest.raises(ValueError) as method:
        yaml_method("ugradsl_no_retain", smooth_rate=2)
    assert str(top.value) == f"smooth_rate=2 is invalid; allowed: {SMOOTH_RATE.allowed}"
    assert str(method.value) == f"ugradsl_no_retain: {top.value}"
