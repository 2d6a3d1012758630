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
