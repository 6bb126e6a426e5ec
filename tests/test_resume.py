"""A run killed mid-epoch resumes in place and ends with the same metrics as an uninterrupted run."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl

from localize.train import train

RUN = ["+locale=ja", "task=ner", "adapter=lora", "trainer.max_epochs=3", "trainer.limit_train_batches=4",
       "callbacks.early_stopping.patience=10"]


class CrashAfter(pl.Callback):
    """Simulates a killed job: raises after ``steps`` optimizer steps."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.steps:
            raise RuntimeError("killed")


def test_resume_matches_uninterrupted_run(make_cfg, tmp_path):
    straight = train(make_cfg(RUN))["metrics"]
    run_dir = tmp_path / "run"
    for p in sorted(run_dir.rglob("*"), reverse=True):  # fresh dir for the interrupted run
        p.unlink() if p.is_file() else p.rmdir()

    crashed = make_cfg(RUN + ["+callbacks.crash._target_=test_resume.CrashAfter", "+callbacks.crash.steps=6"])
    with pytest.raises(RuntimeError, match="killed"):
        train(crashed)  # killed in epoch 1, after epoch 0's checkpoint
    assert (run_dir / "checkpoints" / "last.ckpt").exists() and not (run_dir / "run.json").exists()

    resumed = train(make_cfg(RUN + [f"resume={run_dir}"]))["metrics"]
    for key in ("test/f1", "test/accuracy", "test/loss", "val/loss"):
        assert resumed[key] == pytest.approx(straight[key], abs=1e-6), key


def test_missing_checkpoint_names_the_fix(make_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="resume=<run dir>"):
        train(make_cfg(RUN + [f"resume={tmp_path}/nowhere"]))
