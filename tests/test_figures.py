"""What the figures read: every run saves per-sample predictions (predictions.npz) of the unlearned model and
its two references, consistent with its metrics; the reference models' cached metrics carry a version."""
import numpy as np
import pytest

import unlearn.references
from tests.conftest import HANG_GUARD, TINY, compose_cfg
from unlearn.workspace import run_experiment


def test_a_run_saves_per_sample_predictions_matching_its_metrics(tmp_path):
    cfg = compose_cfg([*TINY, "method=ga", "paradigm=random"], tmp_path)
    m = run_experiment(cfg)
    run_dir = next(p for p in tmp_path.iterdir() if (p / "metrics.json").exists())
    z = np.load(run_dir / "predictions.npz")
    assert z["forget_true"].dtype == np.int16 and z["forget_index"].dtype == np.int32
    assert len(z["forget_true"]) == m["forget/size"]
    for model, prefix in (("unlearned", ""), ("original", "original/"), ("retrain", "retrain/")):
        for split, metric in (("forget", "UA"), ("test", "TA")):
            pred, true = z[f"{model}_{split}_pred"], z[f"{split}_true"]
            assert pred.dtype == np.int16 and z[f"{model}_{split}_prob"].dtype == np.float16
            acc = 100 * (pred == true).mean()
            assert (100 - acc if metric == "UA" else acc) == pytest.approx(m[prefix + metric]), (model, split)
        assert z[f"{model}_forget_loss"].mean() == pytest.approx(m[prefix + "forget/loss"], rel=1e-4)
        assert np.allclose(np.exp(-z[f"{model}_test_loss"]), z[f"{model}_test_prob"], atol=1e-3)


def test_cached_reference_metrics_are_recomputed_when_their_version_changes(tmp_path, monkeypatch):
    run_experiment(compose_cfg([*TINY, "method=ga"], tmp_path))
    cached = lambda: sorted(p.name for p in (tmp_path / "cache").glob("metrics-*.pt"))  # noqa: E731
    first = cached()
    run_experiment(compose_cfg([*TINY, "method=ga"], tmp_path))
    assert cached() == first  # reused
    monkeypatch.setattr(unlearn.references, "METRICS_VERSION", 10 ** 6)
    run_experiment(compose_cfg([*TINY, "method=ga"], tmp_path))
    assert len(cached()) == 2 * len(first)  # a new key: old dicts without the new metrics are not reused


# --- figures: specs, sweeps, drawing, landscape ---

import subprocess  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402
from omegaconf import open_dict  # noqa: E402

from tests.conftest import ROOT  # noqa: E402
from unlearn.figures import draw, landscape  # noqa: E402
from unlearn.figures import sweep as sweeps  # noqa: E402
from unlearn.figures.__main__ import save  # noqa: E402
from unlearn.results_csv import read_runs  # noqa: E402
from unlearn.tables import plan as planning  # noqa: E402
from unlearn.tables.preset import load  # noqa: E402

SHRINK = ["dataset=synthetic", "model=cnn", "device=cpu", "wandb.mode=disabled", "method.epochs=1"]


def test_figure_sweeps_share_the_tables_runs_and_cross_their_grid():
    fig3 = sweeps.jobs(sweeps.load_spec("fig3"), "cpu", [0])
    assert sorted(fig3["smooth_rate"]) == [-1.0, -0.5, -0.2, 0.0, 0.2, 0.5]
    assert fig3["config_id"].nunique() == 6 and set(fig3["cfg"].map(lambda c: c.method.smooth_rate)) == \
        {-1.0, -0.5, -0.2, 0.0, 0.2, 0.5}
    table8 = planning.plan(load("table8", "cpu", ["ugradsl_plus"]), [0])
    cifar = next(j for j in table8 if j.block.name == "CIFAR-10")
    assert fig3.loc[fig3["smooth_rate"] == -0.5, "config_id"].item() == cifar.config_id  # table 8's run is reused
    size = sweeps.jobs(sweeps.load_spec("figforget"), "cpu", [0])
    assert set(size["cfg"].map(lambda c: c.paradigm.forget_fraction)) == {0.01, 0.05, 0.1, 0.2, 0.5}
    with pytest.raises(ValueError, match="allowed"):
        sweeps.load_spec("fig99")


def _tiny_runs(tmp_path):
    spec = sweeps.Spec(name="tiny", title="tiny", source="", sweeps=[
        sweeps.Sweep(table="table8", blocks=["CIFAR-10"], rows=["ugradsl"],
                     grid={"p": [0.5, 0.8], "smooth_rate": [-0.5, 0.5]}),
        sweeps.Sweep(table="table8", blocks=["CIFAR-10"], rows=["ga", "retrain"],
                     grid={"paradigm.forget_fraction": [0.1, 0.3]})])
    plan = sweeps.jobs(spec, "cpu", [0, 1], [*SHRINK, f"results_csv={tmp_path}/runs.csv"])
    plan = plan[(plan["sweep"] == 0) | (plan["seed"] == 0)]  # bands over two seeds (grid), one seed (size)
    for n, cfg in enumerate(plan["cfg"]):
        with open_dict(cfg):
            cfg.cache_dir, cfg.run_dir = str(tmp_path / "cache"), str(tmp_path / f"run{n}")
        run_experiment(cfg)
    runs, problems = read_runs(tmp_path / "runs.csv")
    assert not problems and len(runs) == len(plan)
    return spec, sweeps.attach(plan, runs)


def test_every_figure_draws_from_saved_runs(tmp_path):
    spec, frame = _tiny_runs(tmp_path)
    assert len(frame) == 12 and frame["run_dir"].notna().all()
    grid, size = frame[frame["sweep"] == 0], frame[frame["sweep"] == 1]
    figures = {"fig1": (draw.fig1, size[size["paradigm.forget_fraction"] == 0.1]),
               "fig3": (draw.fig3, grid[grid["p"] == 0.8]), "fig4": (draw.fig4, grid),
               "figloss": (draw.figloss, grid), "figforget": (draw.figforget, size), "figgrid": (draw.figgrid, grid)}
    for name, (fn, df) in figures.items():
        paths = save(fn(df, spec), name, tmp_path / "figures", df)
        assert all(p.stat().st_size > 1000 for p in paths), name
    with pytest.raises(ValueError, match="no finished runs"):
        draw.fig3(grid.iloc[:0], spec)


@pytest.mark.slow  # two CLI runs with Hydra subprocesses: ~1 min idle, 2 under load
def test_figure_cli_runs_only_missing_jobs_then_draws(tmp_path):
    args = ["--results", str(tmp_path / "runs.csv"), "--out", str(tmp_path / "figs"), "--seeds", "0", "--wandb",
            "disabled", "--", *SHRINK, f"cache_dir={tmp_path}/cache", f"hydra.sweep.dir={tmp_path}/sweep"]
    cli = lambda: subprocess.run([sys.executable, "-m", "unlearn.figures", "run", "fig4", *args], cwd=ROOT,  # noqa: E731
                                 capture_output=True, text=True, timeout=HANG_GUARD)
    out = cli()
    assert out.returncode == 0, out.stderr[-3000:]
    assert "1 to run" in out.stderr and (tmp_path / "figs" / "fig4.png").exists() and (tmp_path / "figs" / "fig4.pdf").exists()
    again = cli()
    assert again.returncode == 0 and "0 to run" in again.stderr


def test_landscape_directions_are_filter_normalised_and_the_centre_is_the_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.Flatten(),
                                torch.nn.Linear(3 * 4 * 4, 2)).eval()
    d1, d2 = landscape.directions(model, seed=0)
    assert set(d1) == {"0.weight", "3.weight"}  # no direction for biases and batch norm
    for name, p in model.named_parameters():
        if name in d1:
            assert torch.allclose(d1[name].flatten(1).norm(dim=1), p.flatten(1).norm(dim=1), rtol=1e-5)
    assert not torch.allclose(d1["0.weight"], d2["0.weight"])

    class Raw:
        def prepare(self, x):
            return x
    x, y = torch.randn(20, 1, 6, 6), torch.randint(0, 2, (20,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grid = landscape.surface(model, Raw(), {"retain": (x, y)}, points=5, span=0.5, seed=0)
    assert grid["retain"].shape == (5, 5)
    assert grid["retain"][2, 2] == pytest.approx(landscape.mean_loss(model, Raw(), x, y, 64), rel=1e-6)
    assert grid["retain"][0, 0] != pytest.approx(grid["retain"][2, 2])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # weights restored
    with pytest.raises(ValueError, match="odd integer"):
        landscape.surface(model, Raw(), {"retain": (x, y)}, points=4, span=0.5, seed=0)


@pytest.mark.parametrize("name", ["fig4", "figlandscape"])
def test_dry_run_plans_and_draws_nothing(name, tmp_path, monkeypatch, capsys):
    import argparse

    from unlearn.figures import __main__ as cli
    monkeypatch.setattr(cli, "landscape_grid", lambda *a: pytest.fail("the dry run computed the loss surface"))
    monkeypatch.setattr(sweeps.subprocess, "run", lambda *a, **k: pytest.fail("the dry run launched a job"))
    args = argparse.Namespace(command="run", seeds="0", scale="cpu", results=str(tmp_path / "runs.csv"),
                              out=str(tmp_path / "figs"), overrides=SHRINK, rerun=False, dry_run=True,
                              wandb="disabled")
    assert cli.make(name, args) == 0
    said = capsys.readouterr().err
    assert not (tmp_path / "figs").exists() and ("would compute" if name == "figlandscape" else "1 to run") in said


def test_the_fig3_sentence_matches_its_csv():
    """docs/figures.md states Fig. 3's tier numbers (UA, MIA, TA per alpha): they are the committed CSV's means."""
    import pandas as pd
    from tests.conftest import ROOT
    means = pd.read_csv(ROOT / "results/figures/fig3.csv").groupby("smooth_rate")[["UA", "MIA", "TA"]].mean()
    text = " ".join((ROOT / "docs/figures.md").read_text().split())
    ua = means["UA"]
    assert ua.is_monotonic_decreasing and means["MIA"].is_monotonic_decreasing  # "falls steadily"
    for alpha, value in ((-1.0, ua[-1.0]), (-0.5, ua[-0.5]), (0.0, ua[0.0]), (0.5, ua[0.5])):
        assert f"{value:.1f}" in text, (alpha, value)
    assert f"MIA from {means['MIA'][-1.0]:.1f} to {means['MIA'][0.5]:.1f}" in text
    assert f"TA rises from {means['TA'][-1.0]:.1f} to {means['TA'][0.5]:.1f}" in text
