"""A run killed mid-epoch resumes in place and ends like an uninterrupted run: same metrics, same
weights, the whole metrics.csv history and perf numbers that cover both parts.

The interruption is a crash inside epoch 1 (not ``max_epochs=1`` then ``max_epochs=3``): the LR
schedule is laid out over ``max_epochs``, so a run stopped by a smaller budget is another run.
"""
from __future__ import annotations

import csv
import json

import pytest
import pytorch_lightning as pl
import torch
from safetensors.torch import load_file

from localize.train import train

RUN = ["+locale=ja", "task=ner", "adapter=lora", "module.prior_bias=false",  # not all-O after 12 tiny steps
       "trainer.max_epochs=3", "trainer.limit_train_batches=4",
       "callbacks.early_stopping.patience=10"]


class CrashAfter(pl.Callback):
    """Simulates a killed job: raises after ``steps`` optimizer steps."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.steps:
            raise RuntimeError("killed")


def _csv_rows(run_dir, keys=("train/loss", "val/loss", "val/f1")) -> list[tuple]:
    """(epoch, step, key, value) of every logged training/dev value, in file order."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return [(r["epoch"], r["step"], k, round(float(r[k]), 6)) for r in csv.DictReader(f)
                for k in keys if r.get(k) not in (None, "")]


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model" / "adapter_model.safetensors"))


def test_resume_matches_uninterrupted_run(make_cfg, tmp_path):
    straight_record = train(make_cfg(RUN))
    straight = straight_record["metrics"]
    run_dir = tmp_path / "run"
    straight_rows, straight_weights = _csv_rows(run_dir), _weights(run_dir)
    assert {r[0] for r in straight_rows if r[2] == "val/f1"} == {"0", "1", "2"}
    for p in sorted(run_dir.rglob("*"), reverse=True):  # fresh dir for the interrupted run
        p.unlink() if p.is_file() else p.rmdir()

    crashed = make_cfg(RUN + ["+callbacks.crash._target_=test_resume.CrashAfter", "+callbacks.crash.steps=6"])
    with pytest.raises(RuntimeError, match="killed"):
        train(crashed)  # killed in epoch 1, after epoch 0's checkpoint
    assert (run_dir / "checkpoints" / "last.ckpt").exists() and not (run_dir / "run.json").exists()

    crashed_rows = _csv_rows(run_dir)
    assert {r[0] for r in crashed_rows if r[2] == "val/f1"} == {"0"}
    assert any(r[0] == "1" for r in crashed_rows)  # the lost part of epoch 1 was logged, then redone

    resumed_record = train(make_cfg(RUN + [f"resume={run_dir}"]))
    resumed = resumed_record["metrics"]
    for key in ("test/f1", "test/accuracy", "test/loss", "val/loss"):
        assert resumed[key] == pytest.approx(straight[key], abs=1e-6), key
    # The resumed run's final weights are the uninterrupted run's.
    weights = _weights(run_dir)
    assert weights.keys() == straight_weights.keys()
    for name, value in weights.items():
        torch.testing.assert_close(value, straight_weights[name], rtol=0, atol=1e-6, msg=name)
    # metrics.csv keeps epoch 0 from the first part, without the rows of the redone part of epoch 1:
    # the history is the uninterrupted run's, row for row.
    assert _csv_rows(run_dir) == straight_rows
    # perf covers both parts: all epochs and tokens, and the first part's wall time.
    perf, straight_perf = resumed_record["perf"], straight_record["perf"]
    assert perf["epochs"] == straight_perf["epochs"] == 3
    assert perf["train_tokens"] == straight_perf["train_tokens"]
    assert perf["prior_wall_s"] > 0 and perf["wall_s"] > perf["prior_wall_s"]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


def test_missing_checkpoint_names_the_fix(make_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="resume=<run dir>"):
        train(make_cfg(RUN + [f"resume={tmp_path}/nowhere"]))
