"""unlearn/tune_regime.py's two selection criteria: the plain rows' (largest Sum while RA and TA stay near the
original's) and the (R) rows' (smallest Avg. Gap), and the tuned file it writes for root sweep axes."""
import pandas as pd
import pytest
import yaml

from tests.conftest import ROOT
from unlearn import tune_regime as tune


def runs(rows):
    """Tuning rows of UGradSL on the tier: (lr, smooth_rate, UA, RA, TA, avg_gap); the original has RA 99, TA 80."""
    frame = pd.DataFrame(rows, columns=["method.lr", "smooth_rate", "UA", "RA", "TA", "avg_gap"])
    frame["MIA"] = frame["UA"]
    frame["sum"] = frame[["UA", "MIA", "RA", "TA"]].sum(axis=1)
    frame["original/RA"], frame["original/TA"] = 99.0, 80.0
    frame["method"], frame["table"], frame["dataset"], frame["paradigm"] = "ugradsl", "tuning", "cifar10_fast_cpu", "random"
    frame["method.batch_size"], frame["method.epochs"], frame["p"] = 64, 5, 0.8
    return frame


ROWS = [(0.001, -0.5, 10.0, 99.0, 80.0, 3.0),   # closest to Retrain, forgets little
        (0.01, -0.5, 40.0, 96.0, 76.0, 9.0),    # forgets most within 5 points of RA and TA: the plain row
        (0.01, -1.0, 90.0, 50.0, 40.0, 30.0)]   # forgets everything by losing RA and TA: never chosen


def test_score_keeps_ra_and_ta_within_keep_points():
    scores = tune.score(runs(ROWS), "sum")
    assert scores.idxmax() == 1
    assert scores[2] < scores[0] < scores[1]  # a point that loses RA/TA ranks below every kept point
    assert list(tune.score(runs(ROWS), "avg_gap")) == [-3.0, -9.0, -30.0]


@pytest.mark.parametrize("criterion, lr, first_mean", [("sum", 0.01, 252.0), ("avg_gap", 0.001, 3.0)])
def test_choose_by_criterion(monkeypatch, tmp_path, criterion, lr, first_mean):
    monkeypatch.setattr(tune, "read_runs", lambda path: (runs(ROWS), []))
    chosen, scores = tune.choose("cifar_fast_cpu", "ugradsl", tmp_path, ["random"], criterion)
    assert chosen["method.lr"] == lr and chosen["method.epochs"] == 5 and isinstance(chosen["method.epochs"], int)
    assert scores["mean"].iloc[0] == pytest.approx(first_mean)  # best first, avg_gap shown as the gap itself


def test_choose_names_missing_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(tune, "read_runs", lambda path: (runs(ROWS), []))
    with pytest.raises(SystemExit, match="no tuning runs of ugradsl on cifar_fast_cpu \\(classwise\\)"):
        tune.choose("cifar_fast_cpu", "ugradsl", tmp_path, ["classwise"], "sum")


def test_write_puts_sweep_axes_at_the_root(monkeypatch, tmp_path):
    monkeypatch.setattr(tune, "read_runs", lambda path: (runs(ROWS), []))
    monkeypatch.setattr(tune, "TUNED", tmp_path)
    chosen, scores = tune.choose("cifar_fast_cpu", "ugradsl", tmp_path, ["random"], "sum")
    path = tune.write("cifar_fast_cpu", "ugradsl", chosen, scores, ["python run.py -m x=1"], "sum")
    text = path.read_text()
    assert text.startswith("# @package _global_\n") and "largest Sum" in text and "#   python run.py -m x=1" in text
    values = yaml.safe_load(text)
    assert values == {"method": {"batch_size": 64, "epochs": 5, "lr": 0.01}, "smooth_rate": -0.5, "p": 0.8}
    assert "Sum - 1000" in text and "lr=0.01 smooth_rate=-1 p=0.8: random -730.00" in text  # every point's score is in the file


def test_a_tuned_file_sets_the_sweep_axes_and_the_command_line_still_wins(tmp_path):
    """conf/tuned/cifar_fast_cpu/ugradsl.yaml (written by write() above) sets smooth_rate and p at the root: they
    reach the method on the tier, a command-line value beats them, and other regimes keep config.yaml's."""
    from tests.conftest import compose_cfg
    tuned = yaml.safe_load((ROOT / "conf" / "tuned" / "cifar_fast_cpu" / "ugradsl.yaml").read_text())
    cfg = compose_cfg(["experiment=cifar10_random_fast_cpu", "method=ugradsl"], tmp_path)
    assert (cfg.method.smooth_rate, cfg.method.p, cfg.method.lr) == (tuned["smooth_rate"], tuned["p"],
                                                                      tuned["method"]["lr"])
    cfg = compose_cfg(["experiment=cifar10_random_fast_cpu", "method=ugradsl", "smooth_rate=-0.3", "p=0.6"], tmp_path)
    assert (cfg.method.smooth_rate, cfg.method.p) == (-0.3, 0.6)
    cfg = compose_cfg(["method=ugradsl"], tmp_path)  # digits: its tuned file sets method keys only
    assert (cfg.method.smooth_rate, cfg.method.p) == (-0.5, 0.8)


def test_write_per_paradigm_goes_beside_the_regimes_file(monkeypatch, tmp_path):
    """--per-paradigm: the choice on one paradigm goes to conf/tuned/<regime>/<paradigm>/<method>.yaml, always
    `_global_` (config.yaml merges it with that package), saying which paradigm and the command that redoes it."""
    frame = runs(ROWS).assign(paradigm="classwise")
    monkeypatch.setattr(tune, "read_runs", lambda path: (frame, []))
    monkeypatch.setattr(tune, "TUNED", tmp_path)
    chosen, scores = tune.choose("cifar_fast_cpu", "ugradsl", tmp_path, ["classwise"], "sum")
    path = tune.write("cifar_fast_cpu", "ugradsl", chosen, scores, ["python run.py -m y=2"], "sum", paradigm="classwise")
    assert path == tmp_path / "cifar_fast_cpu" / "classwise" / "ugradsl.yaml"
    text = path.read_text()
    assert text.startswith("# @package _global_\n") and "for class-wise forgetting alone" in text
    assert "--paradigms classwise --per-paradigm" in text and "classwise 252.00" in text
    assert yaml.safe_load(text)["method"]["lr"] == 0.01


def test_per_paradigm_runs_each_paradigm_in_its_own_setting(monkeypatch, tmp_path, capsys):
    """The tier's class-wise runs use its class-wise experiment (the random one fixes forget_fraction), and
    --per-paradigm writes one file per paradigm from that paradigm's runs only."""
    frame = pd.concat([runs(ROWS).assign(paradigm="classwise"),
                       runs([(0.001, -0.5, 30.0, 98.0, 79.0, 1.0)]).assign(paradigm="random_in_class")])
    monkeypatch.setattr(tune, "read_runs", lambda path: (frame, []))
    monkeypatch.setattr(tune, "TUNED", tmp_path)
    tune.main(["cifar_fast_cpu", "ugradsl", "--paradigms", "classwise,random_in_class", "--per-paradigm",
               "--choose-only", "--results", str(tmp_path / "runs.csv")])
    err = capsys.readouterr().err
    assert "experiment=cifar10_classwise_fast_cpu paradigm=classwise" in err
    assert "experiment=cifar10_random_fast_cpu paradigm=random_in_class" in err
    lrs = {p: yaml.safe_load((tmp_path / "cifar_fast_cpu" / p / "ugradsl.yaml").read_text())["method"]["lr"]
           for p in ("classwise", "random_in_class")}
    assert lrs == {"classwise": 0.01, "random_in_class": 0.001}
    assert not (tmp_path / "cifar_fast_cpu" / "ugradsl.yaml").exists()  # the regime's file is left alone


def test_unknown_paradigm_is_refused_before_any_run(tmp_path):
    with pytest.raises(SystemExit, match="--paradigms group: allowed"):
        tune.main(["cifar_fast_cpu", "ga", "--paradigms", "group", "--dry-run"])


def test_selection_page_says_whether_any_paradigm_has_its_own_values():
    """docs/selection.md says no paradigm has its own tuned file yet; the sentence must go when one is written."""
    own = sorted((ROOT / "conf" / "tuned").glob("*/*/*.yaml"))
    said = "no paradigm has its own file yet" in (ROOT / "docs" / "selection.md").read_text()
    assert said == (not own), own
