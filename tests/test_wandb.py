"""W&B as the runner uses it, offline: one run per job from its first curve to its last file, named, grouped
and tagged, finished as failed when the job raises, quiet on the console; the dashboards' report objects;
the runs frame pulled back from W&B (a recorded fixture replayed through a fake `wandb.Api`).

Offline runs are read from their `.wandb` file after `wandb.teardown()`, which returns only once wandb-core
has written and closed every run file (`run.finish()` returns earlier: the writer still holds its last
32 KiB block). Regenerate the pull-back fixture with `.venv/bin/python -m tests.test_wandb`.
"""
import json
import os
import runpy
import struct
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import ROOT, TINY, compose_cfg
from unlearn.results_csv import read_runs
from unlearn.validate import ConfigError
from unlearn.workspace import Workspace, run_experiment

wandb = pytest.importorskip("wandb")
FIXTURE = Path(__file__).parent / "data"


def records(path: Path) -> list:
    """The protobuf records of a `.wandb` file (a LevelDB-style log: 7-byte header, 32 KiB blocks of chunks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, buf, out = 7, b"", []
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or kind == 0:  # block trailer or zero padding
            pos += left
            continue
        buf = (b"" if kind in (1, 2) else buf) + data[pos + 7:pos + 7 + n]  # FULL/FIRST start, MIDDLE/LAST go on
        pos += 7 + n
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
    return out


def _key(item) -> str:
    return item.key or ".".join(item.nested_key)


def offline_run(run_dir: Path) -> dict:
    """What an offline run folder holds: the run record's fields, config, summary, history, artifacts, exit."""
    (path,) = run_dir.glob("run-*.wandb")
    run = {"config": {}, "summary": {}, "history": [], "artifacts": {}, "exit_code": None}
    for rec in records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            run.update(id=r.run_id, name=r.display_name, group=r.run_group, job_type=r.job_type, tags=list(r.tags),
                       project=r.project, start=r.start_time.seconds + r.start_time.nanos / 1e9)
            run["config"].update({i.key: json.loads(i.value_json) for i in r.config.update})
        elif kind == "config":
            run["config"].update({i.key: json.loads(i.value_json) for i in rec.config.update})
        elif kind == "summary":
            run["summary"].update({_key(i): json.loads(i.value_json) for i in rec.summary.update})
        elif kind == "history":
            run["history"].append({_key(i): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "artifact":
            a = rec.artifact
            run["artifacts"][a.name] = {"type": a.type, "files": sorted(e.path for e in a.manifest.contents)}
        elif kind == "exit":
            run["exit_code"] = rec.exit.exit_code
    run["config"].pop("_wandb", None)
    return run


def offline_runs(wandb_dir: Path) -> list[dict]:
    wandb.teardown()  # blocks until wandb-core has closed every run file: no sleep, no polling
    return [offline_run(d) for d in sorted((wandb_dir / "wandb").glob("offline-run-*"))]


@pytest.fixture
def offline(tiny_cfg, tmp_path, monkeypatch):
    """Factory: a tiny config logging to W&B offline under tmp_path (the suite disables W&B by default)."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return lambda *extra: tiny_cfg("wandb.mode=offline", f"wandb.dir={tmp_path}", "wandb.project=unit", *extra)


def test_offline_run_covers_the_job_with_curves_names_and_artifacts(offline, tmp_path):
    cfg = offline("method.epochs=2", "eval.every_epoch=true", "wandb.log_models=true", "wandb.tags=[mine]")
    ws = Workspace(cfg)
    metrics = ws.run()
    (run,) = offline_runs(tmp_path)
    saved = json.loads((ws.out_dir / "metrics.json").read_text())
    row = pd.read_csv(tmp_path / "runs.csv").iloc[0]

    assert run["exit_code"] == 0
    assert run["name"] == "synthetic-classwise-ugradsl-s0" and run["job_type"] == "classwise"
    assert run["group"] == saved["config_id"] == row["config_id"]
    assert {"mine", "synthetic", "cnn", "ugradsl"} <= set(run["tags"])
    assert saved["wandb"]["path"] == row["wandb_run"] == f"unit/{run['id']}"
    assert saved["wandb"]["dir"].endswith(run["id"]) and Path(saved["wandb"]["dir"]).is_dir()
    config = run["config"]  # the CSV row's identity, Hydra run dir and git commit included
    assert config["run_dir"] == str(ws.out_dir.resolve()) and config["git_commit"] == row["git_commit"]
    assert config["timestamp"] == row["timestamp"] and config["params"]["method"]["lr"] == row["method.lr"]
    summary = {k: v for k, v in run["summary"].items() if not k.startswith("_")}
    assert summary == pytest.approx(metrics)  # metrics only: curves stay in the history

    # The run spans the job: its history starts with the original model's first epoch, and it holds every
    # phase's curve, with the per-epoch UA/RA probe ending on the final evaluation's values.
    history = [h for h in run["history"] if any(not k.startswith("_") for k in h)]
    assert history[0]["original/epoch"] == 1
    for phase, keys in (("original", {"loss", "acc"}), ("retrain", {"loss", "acc"}),
                        ("unlearn", {"loss", "lr", "UA", "RA"})):
        points = [h for h in history if f"{phase}/epoch" in h]
        assert [p[f"{phase}/epoch"] for p in points] == list(range(1, len(points) + 1)) and points
        assert all({f"{phase}/{k}" for k in keys} <= set(p) for p in points), phase
    last = [h for h in history if "unlearn/UA" in h][-1]
    assert last["unlearn/UA"] == pytest.approx(metrics["UA"]) and last["unlearn/RA"] == pytest.approx(metrics["RA"])
    assert run["artifacts"][f"results-{row['config_id']}-s0"] == {
        "type": "results", "files": ["config.yaml", "curves.csv", "metrics.json", "predictions.npz"]}
    assert run["artifacts"][f"model-{row['config_id']}-s0"] == {"type": "model", "files": ["unlearned.pt"]}
    stored = torch.load(ws.out_dir / "unlearned.pt", weights_only=True)
    assert stored["model"]["name"] == "cnn" and stored["state_dict"]


def test_a_four_job_sweep_gives_four_grouped_comparable_runs_that_each_cover_their_job(offline, tmp_path):
    """The jobs of `-m method=ga,ugradsl seed=0,1` in launch order, sharing one cache as a sweep does: the GA
    jobs train both references inside their runs, the UGradSL jobs load them from the cache."""
    jobs = [(m, s) for m in ("ga", "ugradsl") for s in (0, 1)]
    saved = {}
    for method, seed in jobs:
        ws = Workspace(offline(f"method={method}", f"seed={seed}", "method.epochs=2"))
        ws.run()
        saved[method, seed] = json.loads((ws.out_dir / "metrics.json").read_text())
    runs = {(r["config"]["method"], r["config"]["seed"]): r for r in offline_runs(tmp_path)}
    assert sorted(runs) == sorted(jobs)  # one W&B run per job, none left open or doubled
    for (method, seed), run in runs.items():
        meta = saved[method, seed]
        assert run["exit_code"] == 0 and run["name"] == f"synthetic-classwise-{method}-s{seed}"
        assert run["group"] == meta["config_id"] and {"synthetic", "cnn", method} <= set(run["tags"])
        assert run["artifacts"][f"results-{meta['config_id']}-s{seed}"]["type"] == "results"
        history = [h for h in run["history"] if any(not k.startswith("_") for k in h)]
        assert [h["unlearn/epoch"] for h in history if "unlearn/epoch" in h] == [1, 2]
        curves = {h.get("original/epoch") for h in history} | {h.get("retrain/epoch") for h in history}
        # the references' curves are in every job's run: trained inside the job (ga, first) or replayed from the
        # cache (ugradsl), each epoch once
        assert 1 in curves and [h["original/epoch"] for h in history if "original/epoch" in h] == sorted(
            h["original/epoch"] for h in history if "original/epoch" in h)
        assert history[0].get("original/epoch", 1) == 1  # nothing of the job precedes its run
        assert run["summary"]["retrain/UA"] == pytest.approx(meta["metrics"]["retrain/UA"])
    groups = {}
    for (method, _), run in runs.items():
        groups.setdefault(run["group"], set()).add(method)
    assert sorted(map(sorted, groups.values())) == [["ga"], ["ugradsl"]]  # seeds of a configuration group together
    keys = {frozenset(r["config"]) for r in runs.values()}
    params = {frozenset(r["config"]["params"]) for r in runs.values()}
    assert len(keys) == 1 and len(params) == 1  # the same columns in every run: comparable side by side


def test_failed_job_leaves_no_open_run_and_records_the_failure(offline, tmp_path, monkeypatch):
    ws = Workspace(offline())
    monkeypatch.setattr(ws, "evaluate", lambda model: (_ for _ in ()).throw(RuntimeError("disk on fire")))
    with pytest.raises(RuntimeError, match="disk on fire"):
        ws.run()
    assert wandb.run is None
    (run,) = offline_runs(tmp_path)
    assert run["exit_code"] == 1
    assert not (ws.out_dir / "metrics.json").exists()
    curves = pd.read_csv(ws.out_dir / "curves.csv")  # what the job got to, for a post-mortem
    assert set(curves["phase"]) == {"original", "retrain", "unlearn"}
    assert run["artifacts"] == {f"results-{run['config']['config_id']}-s0": {"type": "results",
                                                                          "files": ["curves.csv"]}}


def test_curves_file_is_long_and_every_epoch_probes_change_no_result(tiny_cfg):
    plain_cfg = tiny_cfg("method.epochs=3")
    plain = run_experiment(plain_cfg)
    probed_cfg = tiny_cfg("method.epochs=3", "eval.every_epoch=true")
    probed = run_experiment(probed_cfg)
    assert {k: v for k, v in probed.items() if "RTE" not in k} == {k: v for k, v in plain.items() if "RTE" not in k}
    from unlearn.identity import config_id
    assert config_id(probed_cfg) == config_id(plain_cfg)
    curves = pd.read_csv(Path(probed_cfg.run_dir) / "curves.csv")
    assert list(curves.columns) == ["phase", "epoch", "step", "metric", "value"]
    probes = curves[curves["metric"].isin(["UA", "RA"])]
    assert (probes["phase"] == "unlearn").all() and sorted(set(probes["epoch"])) == [1, 2, 3]
    assert probes[(probes["epoch"] == 3) & (probes["metric"] == "UA")]["value"].item() == pytest.approx(probed["UA"])
    assert set(curves["phase"]) == {"original", "retrain", "unlearn"}  # cached references replay their curves
    plain_curves = pd.read_csv(Path(plain_cfg.run_dir) / "curves.csv")
    assert set(plain_curves["phase"]) == {"original", "retrain", "unlearn"}
    assert not plain_curves["metric"].isin(["UA", "RA"]).any()


@pytest.mark.parametrize("override", ["eval.every_epoch=ture", "wandb.log_models=1", "wandb.silent=null"])
def test_recording_switches_must_be_booleans(tiny_cfg, override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        Workspace(tiny_cfg(override))


def test_run_name_names_what_varies():
    from unlearn.wandb_log import run_name
    ident = {"dataset": "digits", "paradigm": "random", "method": "ga", "seed": 2,
             "overrides": "method=ga method.lr=0.01 +method.extra=1 seed=2 wandb.mode=offline cache_dir=/x "
                          "paradigm.forget_fraction=0.2 eval.every_epoch=true"}
    assert run_name(ident) == "digits-random-ga-lr=0.01,extra=1,paradigm.forget_fraction=0.2-s2"
    assert run_name({**ident, "overrides": ""}) == "digits-random-ga-s2"


def test_artifacts_log_the_allow_listed_files_present(tmp_path):
    from unlearn.wandb_log import log_files

    class Run:
        logged = []

        def log_artifact(self, art):
            self.logged.append(art)

    for name in ("metrics.json", "predictions.npz", "unlearned.pt", "app.log", "scratch.csv"):
        (tmp_path / name).write_text("x")
    ident = {k: "v" for k in ("table", "dataset", "model", "paradigm", "method", "git_commit", "run_dir")}
    run = Run()
    assert log_files(run, tmp_path, {**ident, "config_id": "abc", "seed": 1}) == [
        "metrics.json", "predictions.npz", "unlearned.pt"]
    assert [(a.name, a.type, sorted(a.manifest.entries)) for a in run.logged] == [
        ("results-abc-s1", "results", ["metrics.json", "predictions.npz"]), ("model-abc-s1", "model", ["unlearned.pt"])]


# ---- pull-back: scripts/collect.py --from-wandb, replaying runs recorded offline through a fake Api ----

class FakeRun:
    def __init__(self, rec: dict, entity: str):
        self.id, self.name, self.state = rec["id"], rec["name"], rec["state"]
        self.config, self.summary, self.path = rec["config"], rec["summary"], [entity, rec["project"], rec["id"]]


class FakeApi:
    """`wandb.Api()` answering `runs(path, filters)` from the recorded fixture (equality filters on config)."""

    calls: list = []

    def __init__(self, entity: str = ""):
        self.entity = entity
        self.recorded = json.loads((FIXTURE / "wandb_runs.json").read_text())

    def runs(self, path, filters=None, **_):
        self.calls.append((path, filters))
        keep = lambda r: all(r["config"].get(k.removeprefix("config.")) == v for k, v in (filters or {}).items())
        return [FakeRun(r, self.entity) for r in self.recorded if keep(r)]


def test_pull_back_rebuilds_the_runs_frame_of_the_csv():
    from unlearn.report import summary
    from unlearn.wandb_log import pull_runs
    csv_runs, _ = read_runs(FIXTURE / "wandb_runs.csv")
    pulled, problems = pull_runs("me/unit", [], api=FakeApi())
    assert problems == [f"run {r['id']} ({r['name']}) is failed, skipped"
                        for r in FakeApi().recorded if r["state"] == "failed"] and problems
    pulled = pulled.sort_values("timestamp").reset_index(drop=True)
    pd.testing.assert_frame_equal(pulled[csv_runs.columns], csv_runs, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(summary(pulled), summary(csv_runs))
    only, _ = pull_runs("me/unit", ["method=ga", "seed=1"], api=FakeApi())
    assert FakeApi.calls[-1] == ("me/unit", {"config.method": "ga", "config.seed": 1})
    assert list(zip(only["method"], only["seed"])) == [("ga", 1)]
    slow, _ = pull_runs("me/unit", ["method.lr=0.0001"], api=FakeApi())  # hyperparameters filter here
    assert FakeApi.calls[-1] == ("me/unit", {}) and set(slow["method"]) == {"ga"} and len(slow) == 2


def test_collect_from_wandb_command(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(wandb, "Api", lambda: FakeApi("me"))
    monkeypatch.setattr(sys, "argv", ["collect.py", "--from-wandb", "me/unit", "--filter", "method=ft",
                                      "--long", str(tmp_path / "long.csv")])
    runpy.run_path(str(ROOT / "scripts" / "collect.py"), run_name="__main__")
    assert FakeApi.calls[-1] == ("me/unit", {"config.method": "ft"})
    long = pd.read_csv(tmp_path / "long.csv")  # FT seed 0 failed: only seed 1 is summarised
    assert set(long["method"]) == {"ft"} and set(long["seed"]) == {1} and {"UA", "retrain/UA"} <= set(long["metric"])
    out = capsys.readouterr()
    assert "is failed, skipped" in out.err and "ft" in out.out


@pytest.mark.parametrize("path, filters, match", [("unit", [], "ENTITY/PROJECT"),
                                                  ("me/unit", ["table"], "KEY=VALUE"),
                                                  ("me/unit", ["method.lrr=1"], "no such column")])
def test_pull_back_rejects_bad_arguments(path, filters, match):
    from unlearn.wandb_log import pull_runs
    with pytest.raises(ValueError, match=match):
        pull_runs(path, filters, api=FakeApi())


def record_fixture(out: Path = FIXTURE) -> None:
    """Run three tiny jobs (two seeds of GA, one of FT) and one failing job offline; keep their W&B records
    (what the public API would return) and their results CSV."""
    import tempfile
    os.environ.pop("WANDB_MODE", None)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = ["wandb.mode=offline", f"wandb.dir={tmp}", "wandb.project=unit", "table=fixture",
                "method.epochs=1", *TINY[:3]]
        for extra in (["method=ga", "seed=0"], ["method=ga", "seed=1"], ["method=ft", "seed=1"]):
            run_experiment(compose_cfg([*base, *extra], tmp))
        ws = Workspace(compose_cfg([*base, "method=ft", "seed=0"], tmp))
        ws.evaluate = lambda model: 1 / 0
        try:
            ws.run()
        except ZeroDivisionError:
            pass
        runs = [{"id": r["id"], "name": r["name"], "project": r["project"], "config": r["config"],
                 "state": "finished" if r["exit_code"] == 0 else "failed", "summary": r["summary"]}
                for r in offline_runs(tmp)]
        out.mkdir(exist_ok=True)
        (out / "wandb_runs.json").write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
        (out / "wandb_runs.csv").write_bytes((tmp / "runs.csv").read_bytes())


if __name__ == "__main__":
    record_fixture()


# ---- dashboards: scripts/wandb_dashboard.py builds one report per paper table (nothing is uploaded) ----

@pytest.fixture
def dashboard(monkeypatch):
    pytest.importorskip("wandb_workspaces")
    import wandb_workspaces.reports.v2.interface as interface
    # Serialising a runset looks up the project's internal id on the server: answer it here, offline.
    monkeypatch.setattr(interface, "_get_api", lambda: None)
    monkeypatch.setattr(interface, "execute_graphql", lambda api, query, variables: {"project": {"internalId": "p1"}})
    return runpy.run_path(str(ROOT / "scripts" / "wandb_dashboard.py"), run_name="dashboard")


def test_dashboard_builds_a_report_for_every_paper_table(dashboard):
    specs = dashboard["table_specs"]()
    assert list(specs) == [f"table{i}" for i in range(1, 15)]
    available = sorted(p.stem for p in (ROOT / "conf" / "dataset").glob("*.yaml"))
    for table, spec in specs.items():
        report = dashboard["build_report"](table, spec, "me", "unit", available)
        grids = [b for b in report.blocks if type(b).__name__ == "PanelGrid"]
        assert report.entity == "me" and report.project == "unit" and table in report.title
        assert len(grids) == len(spec["blocks"]) >= 1, table
        for grid, block in zip(grids, spec["blocks"]):
            (runset,) = grid.runsets
            assert f"Config(\"table\") == '{table}'" in runset.filters and runset.groupby == ["config.method"]
            assert all(f"'{d}'" in runset.filters for d in dashboard["dataset_names"](block, available))
            bars = {tuple(m.name for m in p.metrics): p for p in grid.panels if type(p).__name__ == "BarPlot"}
            for m in ("UA", "MIA", "RA", "TA"):
                if m in spec["columns"]:
                    assert bars[(m, f"retrain/{m}")].groupby.name == "method", (table, m)
            assert ("RTE_min", "retrain/RTE_min") in bars
            sweeps = {p.x.name for p in grid.panels if type(p).__name__ == "ScatterPlot"}
            assert {"smooth_rate", "p"} <= sweeps
            assert ("params.method.epochs" in sweeps) == (table == "table14")
        model = report._to_model()  # the spec W&B would receive: every panel and filter serialises
        spec_json = json.dumps(model.model_dump(by_alias=True, mode="json"))
        assert '"config:smooth_rate.value"' in spec_json and "summary_metrics.retrain/UA" in spec_json


def test_dashboard_blocks_cover_the_paper_data_sets(dashboard):
    available = ["cifar10", "cifar100", "cifar100_super_cpu", "cifar10_jpg", "digits", "newsgroups20"]
    assert dashboard["dataset_names"]("CIFAR-10", available) == ["cifar10", "cifar10_jpg"]
    assert dashboard["dataset_names"]("CIFAR-100", available) == ["cifar100", "cifar100_super_cpu"]


def test_dashboard_command_dry_run_and_bad_table(dashboard, capsys):
    dashboard["main"](["--entity", "me", "--table", "table6", "--table", "table14", "--dry-run"])
    out = capsys.readouterr().out
    assert out.startswith("table6: 1 blocks") and "table14: 1 blocks" in out and "not uploaded" in out
    with pytest.raises(SystemExit):
        dashboard["main"](["--entity", "me", "--table", "table15", "--dry-run"])
    assert "unknown table(s) ['table15']" in capsys.readouterr().err
