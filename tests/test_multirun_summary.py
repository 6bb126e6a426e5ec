"""A multirun ends with one line per job and the report command (localize.report.tables.MultirunSummary)."""
from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT


def test_multirun_prints_one_line_per_job_and_the_report_command(tmp_path):
    cmd = [sys.executable, "-m", "localize.train", "-m", "+locale=ja", "task=ner", "model=tiny_random",
           "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
           "logger=none", "seed=1,2", f"paths.log_dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "WANDB_MODE": "offline"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("[localize] multirun "))
    assert "2 run(s) recorded" in lines[head]
    jobs = lines[head + 1:head + 3]
    assert [j.split(":")[0].strip() for j in jobs] == ["ner-ja-tiny_random-full_frozen_emb-s1",
                                                        "ner-ja-tiny_random-full_frozen_emb-s2"]
    assert all("test/f1=" in j and "s/epoch" in j and "[" in j for j in jobs)  # the value and its CI
    assert lines[head + 3].startswith("[localize] compare them: python -m localize.report ")
