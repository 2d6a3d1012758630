"""A run says what it is doing: per-epoch lines in the log, the cost up front, a diverged loss stopped at its step
(and never cached), oversubscribed threads and an original model outside the paper's regime named."""
import logging
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from tests.conftest import HANG_GUARD, ROOT, TINY
from unlearn import estimate, progress
from unlearn.methods.base import Method
from unlearn.metrics import regime_note
from unlearn.estimate import Phase, cost_block
from unlearn.progress import Diverged, Progress, warn_oversubscription
from unlearn.workspace import Workspace, run_experiment


@pytest.fixture(autouse=True)
def log_file_mode(monkeypatch, caplog):
    """As in a log file or a SLURM log: stderr is no terminal, INFO lines are captured."""
    monkeypatch.setattr(progress, "terminal", lambda: False)
    monkeypatch.setattr(progress, "LOG_EVERY", progress.LOG_EVERY)  # configure() sets it; restored after
    caplog.set_level(logging.INFO, logger="unlearn")


def lines(caplog, pattern: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if re.search(pattern, r.getMessage())]


def test_every_phase_logs_one_line_per_epoch_outside_a_terminal(tiny_cfg, caplog):
    run_experiment(tiny_cfg("method=ga", "method.epochs=2", "train.epochs=3", "progress.log_every=0"))
    for phase, total in (("original", 3), ("retrain", 3), ("unlearn GA", 2)):
        got = lines(caplog, rf"^{phase}: epoch \d+/{total} ")
        assert [int(re.search(r"epoch (\d+)/", s).group(1)) for s in got] == list(range(1, total + 1)), got
        assert all(re.search(r"loss -?[\d.e+-]+ .*elapsed \d+:\d\d:\d\d  ETA \d+:\d\d:\d\d$", s) for s in got), got


def test_lines_are_spaced_by_log_every_with_the_first_and_last_always(monkeypatch, caplog):
    clock = iter(range(0, 1000, 3))  # each call of the clock is 3 s later
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(progress, "LOG_EVERY", 10.0)
    with Progress("original", 8) as p:
        for _ in p.epochs():
            p.done(loss=1.0)
    assert [re.search(r"epoch (\d+)/8", s).group(1) for s in lines(caplog, "^original: epoch")] == ["1", "5", "8"]
    with Progress("evaluate", 2, unit="batch", quiet=True) as p:  # a short evaluation says nothing
        p.done(); p.done()
    assert not lines(caplog, "^evaluate")
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)  # every epoch; a long evaluation still every 10 s
    with Progress("evaluate", 8, unit="batch", quiet=True) as p:
        for _ in range(8):
            p.done()
    assert [re.search(r"batch (\d+)/8", s).group(1) for s in lines(caplog, "^evaluate")] == ["4", "8"]


def test_a_bar_is_drawn_only_in_a_terminal_counting_steps_or_epochs(monkeypatch):
    with Progress("original", 2, steps_per_epoch=3) as p:
        assert p.bar is None
    monkeypatch.setattr(progress, "terminal", lambda: True)
    for steps_per_epoch, total in ((3, 6), (None, 2)):  # a loop that does not know its steps counts epochs
        with Progress("original", 2, steps_per_epoch=steps_per_epoch) as p:
            for _ in p.epochs():
                for _ in range(3):
                    p.check(torch.tensor(1.0))
                p.done(loss=1.0)
            assert p.bar.total == total and p.bar.n == total


def test_the_cost_is_logged_per_phase_before_training(tiny_cfg, caplog):
    Workspace(tiny_cfg("method=ga", "method.epochs=2", "train.epochs=3"))
    block = "\n".join(lines(caplog, "^cost estimate"))
    assert re.search(r"original +160 images x +3 epochs", block), block
    assert re.search(r"retrain +120 images x +3 epochs", block), block
    assert re.search(r"unlearning +40 images x +2 epochs .*GA", block), block  # GA drives D_f
    assert re.search(r"evaluation +\d+ images x +5 passes", block) and "total" in block, block
    assert not lines(caplog, "estimated to take")


def test_a_huge_run_says_its_estimate_up_front(tiny_cfg, caplog):
    # a threshold of 3.6 s against 160 images x 10^6 epochs: far above it on any machine, however fast (the
    # estimate comes from timed steps, so the test must not depend on how fast this machine is)
    Workspace(tiny_cfg("train.epochs=1000000", "progress.warn_hours=0.001"))
    warning = lines(caplog, "estimated to take")
    assert len(warning) == 1 and "progress.warn_hours=0.001" in warning[0] and "1000000 epochs" in warning[0]


def test_cost_block_arithmetic():
    block, seconds = cost_block([Phase("original", 1000, 30), Phase("retrain", 900, 30, cached=True),
                                 Phase("evaluation", 2000, 3, inference=True)], train_s=0.002, infer_s=0.001, how="x")
    assert seconds == pytest.approx(1000 * 30 * 0.002 + 2000 * 3 * 0.001)
    assert re.search(r"original +1,000 images x +30 epochs +~1 min", block)
    assert re.search(r"retrain .* cached$", block, re.M) and "total" in block


@pytest.mark.parametrize("method, override, phase, lr", [
    ("ga", "train.lr=1e5", "original", "train.lr=100000"),
    ("ga", "method.lr=1e6", "unlearn GA", "method.lr=1e+06"),
    ("scrub", "method.lr=1e6", "unlearn SCRUB", "method.lr=1e+06"),  # a method with a loop of its own
])
def test_a_diverged_loss_stops_at_its_step_naming_phase_and_lr_and_caches_nothing(tiny_cfg, tmp_path, method,
                                                                                   override, phase, lr):
    cfg = tiny_cfg(f"method={method}", "method.epochs=20", override)
    with pytest.raises(Diverged) as e:
        run_experiment(cfg)
    message = str(e.value)
    assert message.startswith(f"{phase}: the loss is ") and lr in message, message
    assert re.search(r"at epoch \d+/\d+, batch \d+(/\d+)?, lr [\d.e+-]+: ", message), message
    cached = {p.name.split("-")[0] for p in (tmp_path / "cache").glob("*.pt")}
    assert cached == (set() if phase == "original" else {"original", "retrain"}), cached
    assert not (tmp_path / "runs.csv").exists()


def test_deferred_checks_name_the_steps_between_two_checks():
    with Progress("retrain", 1, check_every=3) as p, pytest.raises(Diverged, match="between steps 1 and 3"):
        for _ in p.epochs():
            for loss in (1.0, float("nan"), 2.0):
                p.check(torch.tensor(loss))


def test_a_cached_non_finite_model_is_moved_aside_and_trained_again(tiny_cfg, tmp_path, caplog):
    ws = Workspace(tiny_cfg())
    ws.refs.original()
    path = ws.refs.cache_path("original")
    payload = torch.load(path, weights_only=True)
    first = next(iter(payload["value"]["state_dict"]))
    payload["value"]["state_dict"][first] = torch.full_like(payload["value"]["state_dict"][first], float("nan"))
    torch.save(payload, path)  # as an older version would have cached it
    model, _ = Workspace(tiny_cfg()).refs.original()
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
    assert lines(caplog, "non-finite weights .*moved it aside") and list(path.parent.glob("original-*.nonfinite"))


def test_an_update_to_non_finite_weights_stops_the_method():
    class Blowup(Method):
        def unlearn(self, model, task):
            with torch.no_grad():
                model.weight.fill_(float("inf"))
            return model
    with pytest.raises(Diverged, match="Blowup: the unlearned model has non-finite weights"):
        Blowup()(nn.Linear(2, 2), SimpleNamespace(seed=0, device=torch.device("cpu")))


def test_oversubscribed_threads_give_one_warning_naming_them(monkeypatch, caplog):
    import unlearn.cpus
    monkeypatch.setattr(torch, "get_num_threads", lambda: 256)
    monkeypatch.setattr(unlearn.cpus, "cores", lambda: 2)
    line = warn_oversubscription(256)
    assert lines(caplog, "oversubscribed") == [line] and "threads=256 on 2 CPU cores" in line
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert warn_oversubscription(2) is None


def test_the_regime_line_names_the_train_accuracy_and_threshold():
    m = {"original/UA": 10.0, "original/RA": 90.0, "forget/size": 10.0, "retain/size": 90.0}
    note = regime_note(m, 99.0)
    assert "outside the paper's regime" in note and "90.0%" in note and "min_train_acc=99" in note
    assert regime_note({**m, "original/UA": 0.0, "original/RA": 100.0}, 99.0) is None


def test_the_run_ends_with_the_regime_line_when_the_original_does_not_fit(tiny_cfg, caplog):
    run_experiment(tiny_cfg("min_train_acc=100", "train.epochs=1"))
    assert len(lines(caplog, "outside the paper's regime")) == 1


@pytest.mark.slow  # a Python start-up with torch and Hydra: ~30 s on a loaded 2-core machine
def test_cli_a_diverged_run_is_one_line_and_exit_status_2(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *TINY, "train.lr=1e5", f"cache_dir={tmp_path}/c",
                           "results_csv=null", f"run_dir={tmp_path}/run"], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=HANG_GUARD)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("error: original: the loss is nan at epoch"), proc.stderr
    assert not list((tmp_path / "c").glob("*.pt"))


@pytest.mark.parametrize("mode", ["RUN", "MULTIRUN"])
def test_a_diverged_job_exits_2_alone_and_fails_as_a_job_in_a_sweep(monkeypatch, capsys, mode):
    """In a sweep the sweeper sees a failed job (an Optuna search records a failed trial and goes on); a
    SystemExit there would end the whole search."""
    from hydra.types import RunMode
    from unlearn import cli
    monkeypatch.setattr(cli.HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(cli.HydraConfig, "get", staticmethod(lambda: SimpleNamespace(mode=RunMode[mode])))

    def job(cfg):
        raise Diverged("original: the loss is nan at epoch 2/4")
    if mode == "MULTIRUN":
        with pytest.raises(Diverged):
            cli.rejecting_bad_config(job)(None)
        return
    with pytest.raises(SystemExit) as e:
        cli.rejecting_bad_config(job)(None)
    assert e.value.code == 2 and capsys.readouterr().err == "error: original: the loss is nan at epoch 2/4\n"


def test_the_probe_times_more_steps_only_for_a_run_whose_estimate_matters(tiny_cfg, monkeypatch):
    ws = Workspace(tiny_cfg("progress.probe_batches=0"))
    monkeypatch.setattr(estimate, "PROBE_MIN_SECONDS", 1e9)  # only the step cap ends a refined probe
    monkeypatch.setattr(estimate, "PROBE_MAX_STEPS", 5)
    args = (ws.new_model(), ws.data, ws.split.retain, ws.recipe, ws.refs.compute, 2, 64)
    before = torch.get_rng_state()
    assert estimate.speed(*args, refine=lambda s: False)[2] == 2
    assert estimate.speed(*args, refine=lambda s: True)[2] == 5
    assert torch.equal(torch.get_rng_state(), before)  # the probe leaves the run's random state alone
