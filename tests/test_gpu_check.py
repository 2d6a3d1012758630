"""scripts/gpu_check.py, the first GPU run's report, kept working on the CPU at toy sizes."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch

from tests.conftest import HANG_GUARD, ROOT

spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals of a machine without a GPU")
def test_refuses_to_measure_without_a_gpu(tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path)]) == 2
    assert gpu_check.main(["--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "--smoke" in capsys.readouterr().err
    assert not (tmp_path / "summary.txt").exists()  # refused before anything was written


def test_step_throughput_reports_every_model_and_precision(tmp_path):
    (tmp_path / "summary.txt").write_text("")
    gpu_check.step_throughput(tmp_path, "cpu", smoke=True)
    lines = (tmp_path / "summary.txt").read_text().splitlines()
    assert [line.split(":")[0].split(" {")[0] for line in lines] == [
        "step resnet18", "step resnet18", "step resnet18", "step vgg16_bn", "step vit"]
    assert all("images/s" in line for line in lines)


@pytest.mark.slow
def test_smoke_run_goes_through_every_step(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--smoke", "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=HANG_GUARD)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "all steps ran" in summary
    for method in ("ugradsl", "iu", "ff"):
        assert f"synthetic_block / {method}" in summary
    assert summary.count("  UA ") == 3 and "**SVHN**" in summary  # step 5: a table block through the runner


def test_the_table_step_builds_the_runners_command_and_reports_its_block_or_its_failure(tmp_path, monkeypatch):
    """Step 5's own logic, with the runner stubbed (the real runner is the slow test below and tests/test_tables):
    one block, its rows, one seed, its own results CSV and cache; the printed block goes to the summary; a
    failing runner's last lines do, and the step returns False."""
    (tmp_path / "summary.txt").write_text("")
    calls = []

    def runner(cmd, **kw):
        calls.append(cmd)
        if "model=bad" in cmd:
            return subprocess.CompletedProcess(cmd, 2, "", "planning...\nerror: model=bad is invalid\n")
        (tmp_path / "tables").mkdir(exist_ok=True)
        (tmp_path / "tables" / "table8_cpu.md").write_text("**SVHN**\n| ga | 1 |\n**CIFAR-10**\n| ga | 2 |\n")
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(gpu_check.subprocess, "run", runner)
    assert gpu_check.table_block(tmp_path, "cpu", "cpu", "SVHN", "retrain,ga", ["model=cnn"])
    cmd = calls[0]
    assert cmd[1:5] == ["-m", "unlearn.tables", "run", "table8"] and cmd[cmd.index("--blocks") + 1] == "SVHN"
    assert cmd[cmd.index("--rows") + 1] == "retrain,ga" and cmd[cmd.index("--seeds") + 1] == "0"
    assert "model=cnn" in cmd and f"cache_dir={tmp_path}/cache" in cmd and "device=cpu" in cmd
    summary = (tmp_path / "summary.txt").read_text()
    assert "**SVHN**\n| ga | 1 |" in summary and "CIFAR-10" not in summary.split("**SVHN**", 1)[1]
    assert not gpu_check.table_block(tmp_path, "cpu", "cpu", "SVHN", "retrain", ["model=bad"])
    assert "error: model=bad is invalid" in (tmp_path / "summary.txt").read_text()


@pytest.mark.slow  # ~35 s: the runner and two jobs as subprocesses (the stubbed test above runs by default)
def test_the_table_step_runs_a_paper_table_block_through_the_runner(tmp_path):
    """Step 5 as --smoke runs it: Table 8's SVHN block (digits on the CPU) through `unlearn.tables run --blocks`,
    its printed rows in the summary; a failing block is reported with the runner's last lines, not raised."""
    (tmp_path / "summary.txt").write_text("")
    assert gpu_check.table_block(tmp_path, "cpu", "cpu", "SVHN", "retrain,ga", ["model=cnn", "train.epochs=1"])
    summary = (tmp_path / "summary.txt").read_text()
    assert "table8 / SVHN (cpu scale) through the table runner" in summary and "--blocks SVHN" in summary
    section = summary.split("**SVHN**", 1)[1]
    assert "| retrain | " in section and "| ga | " in section and "ImageNet" not in section
    assert not gpu_check.table_block(tmp_path, "cpu", "cpu", "SVHN", "retrain", ["model=no_such_model"])
    assert "model=no_such_model is invalid" in (tmp_path / "summary.txt").read_text()
