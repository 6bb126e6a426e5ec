"""Console scripts installed by ``make install`` work from any directory, keep the one-line error
contract, and Hydra's shell completion answers for them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
SCRIPTS = ["localize-train", "localize-evaluate", "localize-predict", "localize-export", "localize-baselines",
           "localize-report", "localize-sweep", "localize-continual", "localize-audit", "localize-select"]


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "WANDB_MODE": "offline", **env})


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_console_script_is_installed(name):
    assert (BIN / name).is_file(), f"{name} missing: run `make install` (pyproject [project.scripts])"


def test_train_script_runs_outside_the_repo_with_the_one_line_error_and_its_fix(tmp_path):
    bad = _run(["localize-train", "+locale=ja", "task=ner", "adapter=nope"], tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    line = bad.stderr.strip().splitlines()[-1]
    assert "adapter/nope" in line and "lora" in line
    fixed = _run(["localize-train", "+locale=ja", "task=ner", "adapter=lora", "--cfg", "job"], tmp_path)
    assert fixed.returncode == 0 and "peft.LoraConfig" in fixed.stdout


def test_shell_completion_answers_for_the_script(tmp_path):
    out = _run(["localize-train", "-sc", "query=bash"], tmp_path, COMP_LINE="localize-train adapter=lo")
    assert out.returncode == 0 and "adapter=lora" in out.stdout.split()
    install = _run(["localize-train", "-sc", "install=bash"], tmp_path)
    assert install.returncode == 0 and "complete" in install.stdout and "localize-train" in install.stdout


def test_report_script_help(tmp_path):
    out = _run(["localize-report", "--help"], tmp_path)
    assert out.returncode == 0 and "--metric" in out.stdout
