""""(R)" selection toward Retrain: a tiny Optuna study on synthetic data runs, its best trial becomes an (R) row
of the table (in its data file, with the study's summary; the preset is never edited), and the evaluation it optimises never touches the test set."""
import math
import shutil

import pytest

import unlearn.data.synthetic as synthetic
from tests.conftest import TINY, compose_cfg
from unlearn import paths
from unlearn.tables import preset as presets
from unlearn.tables import select
from unlearn.tables.preset import for_data, load
from unlearn.workspace import run_experiment

SHRINK = ["dataset=synthetic", "model=cnn", "device=cpu", "wandb.mode=disabled", "method.epochs=1"]


@pytest.fixture
def tmp_presets(tmp_path, monkeypatch):
    """A copy of the table presets that selection may rewrite, table 13 without the (R) rows it ships with."""
    folder = tmp_path / "presets"
    shutil.copytree(presets.PRESETS, folder)
    (folder / "selected" / "table13.yaml").unlink()
    monkeypatch.setattr(presets, "PRESETS", folder)
    monkeypatch.setattr(select, "PRESETS", folder)
    return folder


def test_a_tiny_study_runs_and_writes_its_choice_as_an_r_row(tmp_path, tmp_presets):
    db = f"sqlite:///{tmp_path}/optuna.db"
    argv = ["ga", "table13", "--blocks", "CIFAR-10", "--trials", "2", "--storage", db, "--results",
            str(tmp_path / "selection.csv"), "--", *SHRINK, f"cache_dir={tmp_path}/cache",
            f"hydra.sweep.dir={tmp_path}/sweep"]
    assert select.main(argv) == 0
    params, summary = select.best(select.study_name("table13", "CIFAR-10", "ga", "cpu"), db)
    assert summary["trials"] == 2 and set(params) == {"method.lr"}  # method.epochs=1 fixed by the command line
    text = (tmp_presets / "selected" / "table13.yaml").read_text()
    assert "GA (R) on CIFAR-10: Optuna study 'r-table13-cifar10-ga-cpu'" in text and "2 completed trials" in text
    preset = load("table13", "cpu")
    row = next(r for r in preset.rows if r.id == "ga_r_cifar10")
    assert row.label == "GA (R)" and row.paper_row == "GA (R)"
    assert [o.split("=")[0] for o in row.overrides] == ["method.lr"]
    lr = float(next(o for o in row.overrides if o.startswith("method.lr=")).split("=")[1])
    assert lr == pytest.approx(params["method.lr"], rel=1e-3)
    blocks = {b.name: b.skip_rows for b in preset.blocks}
    assert blocks == {"CIFAR-10": [], "CIFAR-100": ["ga_r_cifar10"]}  # the other block skips it
    # every trial ran on the validation split
    import pandas as pd
    trials = pd.read_csv(tmp_path / "selection.csv")
    assert len(trials) == 2 and (trials["table"] == "table13-selection").all()
    assert set(trials["eval.split"]) == {"validation"}
    # selecting again replaces the row, keeping one per (method, block)
    assert select.main([*argv[:2], "--no-study", *argv[2:]]) == 0
    assert (tmp_presets / "selected" / "table13.yaml").read_text().count("id: ga_r_cifar10,") == 1


def test_rows_are_written_in_the_papers_order_and_the_preset_reads_them(tmp_presets):
    summary = {"trials": 3, "best_avg_gap": 1.5, "direction": "minimize", "best_trial": 1}
    for method, block in (("ugradsl", "CIFAR-100"), ("ft", "CIFAR-10"), ("ga", "CIFAR-100")):
        select.write_row("table13", method, block, select.row_text(method, block, {"method.lr": 0.01}, summary,
                                                                   scale="cpu", storage="s", name="n", seed=0))
    preset = load("table13", "cpu")
    ids = [r.id for r in preset.rows]
    assert ids == ["retrain", "ft_r_cifar10", "ga_r_cifar100", "ugradsl_r_cifar100", "ugradsl", "ugradsl_plus"]
    assert preset.blocks[0].skip_rows == preset.blocks[0].foreign_rows == ["ga_r_cifar100", "ugradsl_r_cifar100"]
    assert (tmp_presets / "table13.yaml").read_text() == (paths.PRESETS / "table13.yaml").read_text()  # untouched
    with pytest.raises(ValueError, match="allowed"):
        select.write_row("table13", "ga", "ImageNet", ["  - {id: ga_r_imagenet, method: ga}"])
    assert select.main(["nosuch", "table13"]) == 2
    assert select.main(["ga", "table13", "--blocks", "ImageNet"]) == 2


def _poisoned_test_set(monkeypatch):
    """Synthetic data whose test inputs are NaN: any metric computed on them is NaN."""
    real = synthetic.load_synthetic

    def load_synthetic(**kw):
        data = real(**kw)
        data.x_test = data.x_test * math.nan
        return data
    monkeypatch.setattr(synthetic, "load_synthetic", load_synthetic)


def test_the_selection_objective_never_touches_the_test_set(tmp_path, monkeypatch):
    _poisoned_test_set(monkeypatch)
    block = load("table13", "cpu").blocks[0].overrides
    cmd = select.study_command("ga", block, table="table13", name="n", storage="s", trials=1, seed=0,
                               results="r.csv", extra=[])
    assert "eval.split=validation" in cmd and "objective=avg_gap" in cmd
    keep = [o for o in cmd[4:] if not o.startswith(("hydra.", "hparams_search=", "results_csv="))]
    keep = for_data(keep, TINY)  # shrunk to TINY's data set, which brings its own regime
    m = run_experiment(compose_cfg([*keep, *TINY, "method=ga"], tmp_path))
    assert all(math.isfinite(v) for k, v in m.items() if isinstance(v, float)), \
        [k for k, v in m.items() if isinstance(v, float) and not math.isfinite(v)]
    # the control: the same run on the test split reads the poisoned inputs
    with pytest.raises(ValueError, match="NaN"):  # the MIA's attack refuses the NaN outputs of the test inputs
        run_experiment(compose_cfg([*[o for o in keep if o != "eval.split=validation"], *TINY, "method=ga"], tmp_path))


def test_a_block_without_its_data_is_skipped_before_any_study_and_none_at_all_is_an_error(
        tmp_path, tmp_presets, monkeypatch, capsys):
    db = f"sqlite:///{tmp_path}/optuna.db"
    # no block has data: a clear error naming each block, and no study is started
    nowhere = tmp_path / "nowhere"
    assert select.main(["ga", "table13", "--storage", db, "--", f"dataset.root={nowhere}"]) == 2
    err = capsys.readouterr().err
    assert "block 'CIFAR-10' will not be selected" in err and "block 'CIFAR-100' will not be selected" in err
    assert str(nowhere) in err and "no block of table13 to select on has its data" in err
    assert not (tmp_path / "optuna.db").exists()
    # one block absent (CIFAR-100 here): the other is selected, the absent one is reported and not studied
    cifar100 = load("table13", "cpu").blocks[1].overrides
    monkeypatch.setattr(select, "missing_data", lambda block, extra, scale: "absent" if block == cifar100 else None)
    studied = []
    monkeypatch.setattr(select.subprocess, "run", lambda cmd: studied.append(cmd) or
                        select.subprocess.CompletedProcess(cmd, 0))
    monkeypatch.setattr(select, "best", lambda name, storage: ({"method.lr": 0.01}, {
        "trials": 3, "best_avg_gap": 1.0, "direction": "minimize", "best_trial": 2}))
    assert select.main(["ga", "table13", "--storage", db]) == 0
    assert [c for c in studied[0] if c.startswith("hydra.sweeper.study_name=")] == \
        ["hydra.sweeper.study_name=r-table13-cifar10-ga-cpu"] and len(studied) == 1
    assert "block 'CIFAR-100' will not be selected: absent" in capsys.readouterr().err
    ids = [r.id for r in load("table13", "cpu").rows]
    assert "ga_r_cifar10" in ids and "ga_r_cifar100" not in ids
    # --no-study only reads the stored study: it needs no data, so it never checks for it
    monkeypatch.setattr(select, "missing_data", lambda *a: pytest.fail("--no-study checked the data"))
    assert select.main(["ga", "table13", "--no-study", "--blocks", "CIFAR-100", "--storage", db]) == 0
    assert "id: ga_r_cifar100," in (tmp_presets / "selected" / "table13.yaml").read_text() and len(studied) == 1


def test_writing_a_row_waits_for_the_presets_lock(tmp_presets):
    """Selections running side by side (make -j2 table13) take turns on the (R) rows' file, so none drops a row."""
    import threading

    from filelock import FileLock
    summary = {"trials": 3, "best_avg_gap": 1.5, "direction": "minimize", "best_trial": 1}
    text = select.row_text("rl", "CIFAR-10", {"method.lr": 0.01}, summary, scale="cpu", storage="s", name="n", seed=0)
    path = tmp_presets / "selected" / "table13.yaml"
    with FileLock(str(path) + ".lock"):
        writer = threading.Thread(target=select.write_row, args=("table13", "rl", "CIFAR-10", text))
        writer.start()
        writer.join(timeout=1.0)
        assert writer.is_alive() and not path.exists()  # blocked while another holds it
    writer.join()
    assert "id: rl_r_cifar10," in path.read_text()


def test_r_rows_run_only_at_the_scale_they_were_selected_at(tmp_path, tmp_presets, capsys):
    """Values chosen for the CPU copies (2,500 images, a width-8 ResNet) are not the paper scale's (R) values."""
    from unlearn.tables import __main__ as tables
    summary = {"trials": 3, "best_avg_gap": 1.5, "direction": "minimize", "best_trial": 1}
    select.write_row("table13", "rl", "CIFAR-10", select.row_text("rl", "CIFAR-10", {"method.lr": 0.01}, summary,
                                                                  scale="cpu", storage="s", name="n", seed=0))
    cpu, paper = load("table13", "cpu"), load("table13", "paper")
    assert next(r for r in cpu.rows if r.id == "rl_r_cifar10").selected_at == "cpu" and not cpu.elsewhere
    assert "rl_r_cifar10" not in [r.id for r in paper.rows] and paper.elsewhere == {"rl_r_cifar10": "cpu"}
    assert [r.id for r in paper.rows] == ["retrain", "ugradsl", "ugradsl_plus"]
    with pytest.raises(ValueError, match=r"selected toward Retrain at \['cpu'\] scale, not paper"):
        load("table13", "paper", ["rl_r_cifar10"])
    path = tmp_presets / "selected" / "table13.yaml"
    good = path.read_text()
    path.write_text(good.replace("selected_at: cpu", "selected_at: gpu"))  # a typo must not hide the row everywhere
    with pytest.raises(ValueError, match=r"rows \{'rl_r_cifar10': 'gpu'\} have an invalid selected_at; allowed"):
        load("table13", "cpu")
    path.write_text(good)
    (tmp_path / "none.csv").write_text("")  # no runs yet (a missing --results is refused as a typo)
    assert tables.main(["print", "table13", "--scale", "paper", "--results", str(tmp_path / "none.csv"),
                        "--out", str(tmp_path / "tables")]) == 0
    out = capsys.readouterr()
    assert "rows ['rl_r_cifar10'] are left out at paper scale" in out.err and "RL (R)" not in out.out


def test_the_rows_comment_names_a_local_study_by_a_relative_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert select.shown(f"sqlite:///{tmp_path}/results/optuna.db") == "sqlite:///results/optuna.db"
    assert select.shown("sqlite:////elsewhere/optuna.db") == "sqlite:////elsewhere/optuna.db"
    assert select.shown("postgresql://user@host/db") == "postgresql://user@host/db"
    summary = {"trials": 3, "best_avg_gap": 1.5, "direction": "minimize", "best_trial": 1}
    text = select.row_text("rl", "CIFAR-10", {"method.lr": 0.01}, summary, scale="cpu",
                           storage=f"sqlite:///{tmp_path}/results/optuna.db", name="n", seed=0)
    assert "Optuna study 'n' (sqlite:///results/optuna.db), 3 completed trials" in text[0]
