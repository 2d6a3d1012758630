"""The `unlearn` command as an installed copy meets it: sub-commands, the help page, a missing launcher or sweeper
plugin named with its extra, the package version in every result, W&B's one line, figure CSVs without a machine's
absolute paths."""
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import pandas as pd
import pytest

from tests.conftest import HANG_GUARD, ROOT, TINY, compose_cfg
from unlearn import __main__ as console, cli, help as helppage
from unlearn.results_csv import append_row

matplotlib.use("Agg")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
CONSOLE = Path(sys.executable).parent / "unlearn"  # the console script of this environment's install


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """`unlearn ARGV` in-process: (exit status, stdout, stderr)."""
    try:
        console.main(list(argv))
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


# ---- help ----------------------------------------------------------------------------------------------------------

def test_help_lists_the_user_facing_groups_with_every_option_and_five_examples(capsys):
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for group in ("dataset", "model", "paradigm", "method", "experiment", "train", "hparams_search", "hydra/launcher"):
        lines = out.split(f"\n  {group}: ", 1)[1].splitlines()[1:]
        listed = " ".join(line.strip() for line in lines[:next(i for i, x in enumerate(lines) if x[:6] != " " * 6)])
        assert [o.strip() for o in listed.split(",")] == helppage.options(group), group
    assert "tuned" not in out and "dataset_model" not in out and "regime_model" not in out and "optim:" not in out  # internal groups
    examples = out.split("Examples\n", 1)[1].splitlines()
    assert len(examples) == 5 and all(line.startswith("  unlearn ") for line in examples)
    assert "smooth_rate=-0.5" in out and "paradigm.forget_class=" in out
    assert max(len(line) for line in out.splitlines()) <= 120


def test_the_help_page_is_read_from_the_config_folder(tmp_path):
    """A new option file shows up without editing the page (it cannot go stale)."""
    for group in helppage.GROUPS:
        (tmp_path / group).mkdir(parents=True)
    (tmp_path / "method" / "my_method.yaml").write_text("name: my_method\n")
    assert "      my_method" in helppage.help_groups(tmp_path)
    (tmp_path / "config.yaml").write_text("seed: 7  # the seed; more words\n  # continued\n")
    comments = helppage.key_comments(tmp_path / "config.yaml")
    assert comments == {"seed": ("7", "the seed; more words continued")}


def test_hydra_prints_the_same_page_from_the_template():
    """`python -m unlearn.app --help` (Hydra composes the config, then fills hydra.help.template)."""
    hydra = subprocess.run([sys.executable, "-m", "unlearn.app", "--help"], cwd=ROOT, env=ENV, capture_output=True,
                           text=True, timeout=HANG_GUARD)
    assert hydra.returncode == 0, hydra.stderr
    assert hydra.stdout == helppage.page() + "\n"


def test_the_console_help_loads_no_torch():
    probe = ("import sys; from unlearn.__main__ import main; sys.argv = ['unlearn', '--help']; main(); "
             "print('torch loaded:', 'torch' in sys.modules)")
    fast = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=HANG_GUARD)
    assert fast.returncode == 0, fast.stderr
    assert fast.stdout == helppage.page() + "\ntorch loaded: False\n"


# ---- sub-commands ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command, expect", [(["collect", "--help"], "usage: unlearn collect"),
                                             (["dashboard", "--help"], "usage: unlearn dashboard"),
                                             (["table", "list"], "table1: "),
                                             (["figure", "list"], "fig1: ")])
def test_each_sub_command_runs_its_module(command, expect, capsys):
    code, out, err = run_cli(command, capsys)
    assert code == 0, err
    assert expect in out


def test_collect_summarises_a_results_csv(tmp_path, capsys):
    runs = tmp_path / "runs.csv"
    for seed in (0, 1):
        append_row(runs, {"table": "-", "dataset": "synthetic", "model": "cnn", "paradigm": "random", "method": "ga",
                          "smooth_rate": "", "p": "", "seed": seed, "config_id": "abc",
                          "timestamp": f"2026-01-01T00:00:0{seed}", "UA": 1.5 + seed})
    code, out, err = run_cli(["collect", str(runs), "--long", str(tmp_path / "long.csv")], capsys)
    assert code == 0, err
    assert "2.00 ± 0.71" in out  # UA 1.5 and 2.5 over two seeds
    assert pd.read_csv(tmp_path / "long.csv")["value"].tolist() == [1.5, 2.5]


def test_run_is_the_hydra_app_and_an_unknown_command_is_refused(monkeypatch, capsys):
    import unlearn.app
    seen = []
    monkeypatch.setattr(unlearn.app, "main", lambda: seen.append(list(sys.argv[1:])))
    monkeypatch.setattr(sys, "argv", ["unlearn"])
    run_cli(["run", "method=ga", "seed=1"], capsys)
    run_cli(["-m", "method=ga,ft"], capsys)
    assert seen == [["method=ga", "seed=1"], ["-m", "method=ga,ft"]]
    code, _, err = run_cli(["colect", "runs.csv"], capsys)
    assert code == 2 and "unknown command 'colect'; allowed: run, collect, dashboard, table, figure" in err


def test_the_help_page_names_every_sub_command(capsys):
    _, out, _ = run_cli(["--help"], capsys)
    usage = out.split("Usage\n", 1)[1].split("\n\n")[0]
    assert "unlearn TOOL [ARGS ...]" in usage and ", ".join(helppage.SUBCOMMANDS) in " ".join(usage.split())


@pytest.mark.parametrize("name", sorted(helppage.SUBCOMMANDS))
def test_every_sub_command_answers_help_under_its_own_name(name, capsys):
    code, out, _ = run_cli([name, "--help"], capsys)
    assert code == 0 and f"usage: unlearn {name}" in " ".join(out.split())


@pytest.mark.parametrize("override, key", [
    ("method.lr=0.1", "method.lr"), ("+ablation=ga", "ablation"), ("++seed=1", "seed"), ("~wandb.tags", "wandb.tags"),
    ("hydra/launcher=slurm", "hydra/launcher"), ("run_dir='a=b'", "run_dir"), ("-m", "-m")])
def test_an_override_names_its_key_as_hydras_parser_does(override, key):
    assert cli.override_key(override) == key
    if not override.startswith("-"):
        from hydra.core.override_parser.overrides_parser import OverridesParser
        assert OverridesParser.create().parse_override(override).key_or_group == key


def test_override_values_are_in_command_line_order_and_a_deletion_sets_nothing():
    given = ["results_csv=a.csv", "+run_dir=x", "~results_csv", "method.epochs=3", "++results_csv=null"]
    assert cli.override_values(given, "results_csv") == ["a.csv", "null"]
    assert cli.override_values(given, "run_dir", "method.epochs") == ["x", "3"]
    assert cli.override_values(given, "seed") == []


# ---- a launcher or sweeper whose Hydra plugin is not installed -------------------------------------------------------

@pytest.mark.parametrize("group, option, plugins", [
    ("hydra/launcher", "local", {"joblib"}), ("hydra/launcher", "slurm", {"submitit"}),
    ("hydra/launcher", "local_submitit", {"submitit"}), ("hydra/launcher", "ray_local", {"ray"}),
    ("hydra/launcher", "joblib", {"joblib"}), ("hydra/launcher", "basic", set()),
    ("hparams_search", "ga", {"optuna"}), ("hydra/sweeper", "optuna_study", {"optuna"})])
def test_the_plugin_a_preset_needs_is_read_from_it(group, option, plugins):
    assert cli.plugins_needed(group, option) == plugins


def test_every_shipped_launcher_and_search_preset_names_its_plugin():
    for group in ("hydra/launcher", "hparams_search"):
        for option in helppage.options(group):
            assert len(cli.plugins_needed(group, option)) == 1, (group, option)


@pytest.mark.parametrize("args, extra", [(["-m", "hydra/launcher=local", "seed=0,1"], "launchers"),
                                         (["-m", "hydra/launcher=slurm"], "launchers"),
                                         (["-m", "hparams_search=ga"], "optuna")])
def test_a_missing_plugin_is_named_with_the_extra_to_install(args, extra, monkeypatch, capsys):
    import unlearn.app
    monkeypatch.setattr(cli, "installed", lambda module: False)
    monkeypatch.setattr(unlearn.app, "main", lambda: pytest.fail("the app ran"))
    code, _, err = run_cli(args, capsys)
    assert code == 2 and f"pip install 'unlearn[{extra}]'" in err and "needs Hydra's" in err


def test_installed_plugins_pass():
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")  # the dev install has the launchers and optuna extras
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cli.check_plugins(["-m", "hydra/launcher=local", "hparams_search=ga"])  # no exit
    assert cli.installed("hydra_plugins.no_such_plugin_here") is False
    assert cli.installed("no_such_namespace.plugin") is False


# ---- what a run records ---------------------------------------------------------------------------------------------

def test_every_run_records_the_package_version(tmp_path, monkeypatch):
    from unlearn import results
    cfg = compose_cfg(TINY, tmp_path)
    ident = results.Recorder(cfg, tmp_path / "run").identity()
    assert ident["unlearn_version"] == importlib.metadata.version("unlearn")

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert results.package_version() == "unknown"


def test_wandb_says_where_the_run_is_recorded():
    from unlearn.wandb_log import recorded_at
    offline = SimpleNamespace(offline=True, dir="/x/wandb/offline-run-1/files", url=None)
    assert recorded_at(offline) == ("W&B: run recorded offline in /x/wandb/offline-run-1 "
                                    "(upload it with: wandb sync /x/wandb/offline-run-1)")
    assert recorded_at(SimpleNamespace(offline=False, dir="/y", url="https://wandb.ai/me/p/runs/1")) == \
        "W&B: run recorded at https://wandb.ai/me/p/runs/1"


@pytest.mark.slow  # a whole run through the console script with W&B offline (~30 s on a loaded 2-core machine)
def test_the_console_script_runs_a_class_named_run_and_says_where_wandb_recorded_it(tmp_path):
    env = {k: v for k, v in ENV.items() if not k.startswith("WANDB_")}
    out = subprocess.run([str(CONSOLE), "run", *TINY, "paradigm.forget_class=c1", "wandb.mode=offline",
                          f"wandb.dir={tmp_path}", f"cache_dir={tmp_path}/cache", f"results_csv={tmp_path}/runs.csv",
                          f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=HANG_GUARD)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "forget_class=c1: class 1 (c1); classes: 0 c0, 1 c1, 2 c2, 3 c3" in text
    assert f"W&B: run recorded offline in {tmp_path}/wandb/offline-run-" in text
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["drawn"] == '{"forget_class": 1}' and saved["unlearn_version"] == importlib.metadata.version("unlearn")


# ---- figure CSVs -----------------------------------------------------------------------------------------------------

def test_the_figure_writer_never_writes_an_absolute_path(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from unlearn.figures.__main__ import save
    monkeypatch.chdir(tmp_path)
    frame = pd.DataFrame({"run_dir": [str(tmp_path / "results" / "runs" / "a"), "/elsewhere/results/runs/b"],
                          "dataset.root": ["/data/cifar10", "../shared/data"], "UA": [1.0, 2.0], "cfg": [None, None]})
    fig = plt.figure()
    save(fig, "figx", tmp_path / "out", frame)
    plt.close(fig)
    written = pd.read_csv(tmp_path / "out" / "figx.csv")
    assert written["run_dir"].tolist() == ["results/runs/a", os.path.relpath("/elsewhere/results/runs/b", tmp_path)]
    assert written["dataset.root"].tolist()[1] == "../shared/data" and written["UA"].tolist() == [1.0, 2.0]
    assert not any(str(v).startswith("/") for v in written.to_numpy().ravel())


def test_committed_figure_csvs_hold_no_absolute_path():
    for path in sorted((ROOT / "results" / "figures").glob("*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        absolute = [(c, v) for c in frame.columns for v in frame[c] if os.path.isabs(v)]
        assert not absolute, (path.name, absolute[:2])


BLOCK_JOBLIB = """
import importlib.abc, runpy, sys
class Absent(importlib.abc.MetaPathFinder):  # as if hydra-joblib-launcher were not installed
    def find_spec(self, name, path=None, target=None):
        if name.startswith("hydra_plugins.hydra_joblib_launcher"):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Absent())
"""


@pytest.mark.parametrize("entry", ["from unlearn.__main__ import main; main()",
                                   "runpy.run_module('unlearn.app', run_name='__main__')"], ids=["unlearn", "app"])
def test_without_the_joblib_plugin_the_local_launcher_names_its_extra(entry, tmp_path):
    """The issue's case end to end: Hydra alone would answer "Could not load 'hydra/launcher/joblib'"."""
    argv = ["unlearn", "-m", "hydra/launcher=local", *TINY, f"cache_dir={tmp_path}/cache"]
    out = subprocess.run([sys.executable, "-c", f"{BLOCK_JOBLIB}sys.argv = {argv!r}\n{entry}"], cwd=tmp_path, env=ENV,
                         capture_output=True, text=True, timeout=HANG_GUARD)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip() == ("error: hydra/launcher=local needs Hydra's joblib plugin "
                                  "(hydra_plugins.hydra_joblib_launcher), which is not installed: "
                                  "pip install 'unlearn[launchers]'")
    assert not (tmp_path / "results").exists()  # refused before Hydra made a sweep folder
