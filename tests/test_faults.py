"""Faults from outside the config: a killed or interrupted job, corrupt checkpoint bytes, W&B down,
two runs started together, a full disk. Each ends in a run that can be finished, or one clear
error; never in a failed run that looks finished (a run.json) or a half-written ``model/`` that
looks whole.

The README's "Faults covered" table lists these with the fault tests that live elsewhere
(tests/test_resume.py, test_status.py, test_security.py, test_user_errors.py, test_train.py).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from conftest import FAST, ROOT
from localize.cli import is_user_error, one_line
from localize.train import resume_checkpoint, train
from test_resume import RUN, _csv_rows, _weights

TESTS = str(Path(__file__).resolve().parent)
ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "PYTHONPATH": os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH")) if p)}
# The step RUN's jobs are stopped at: epoch 1 (of 0, 1, 2; 4 batches each), after epoch 0's last.ckpt.
STOP_STEP = 6


class KillAt(pl.Callback):
    """SIGKILL of the job's own process after ``step`` optimizer steps: nothing runs after it (no
    ``finally``, no Lightning teardown), as when the OOM killer or a scheduler ends a job."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class InterruptAt(pl.Callback):
    """Ctrl+C (``KeyboardInterrupt``) after ``step`` optimizer steps."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            raise KeyboardInterrupt


def _cli(overrides: list[str], **kwargs) -> subprocess.CompletedProcess | subprocess.Popen:
    cmd = [sys.executable, "-m", "localize.train", *FAST, *RUN, *overrides]
    if kwargs.pop("background", False):
        return subprocess.Popen(cmd, cwd=ROOT, env={**ENV, **kwargs.pop("env", {})}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)


def _only_run_dir(log_dir: Path) -> Path:
    runs = [p for p in (log_dir / "runs").glob("*/*") if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


# ----------------------------------------------------------------------------- SIGKILL mid-epoch
@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(tmp_path):
    """The CLI job is SIGKILLed inside epoch 1; ``resume=<run dir>`` in a new process ends with the
    uninterrupted process's weights and metrics.csv history."""
    straight = _cli([f"paths.log_dir={tmp_path}/straight"])
    assert straight.returncode == 0, straight.stderr[-3000:]
    straight_dir = _only_run_dir(tmp_path / "straight")

    killed = _cli([f"paths.log_dir={tmp_path}/killed", "+callbacks.kill._target_=test_faults.KillAt",
                   f"+callbacks.kill.step={STOP_STEP}"])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    run_dir = _only_run_dir(tmp_path / "killed")
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    assert not (run_dir / "run.json").exists() and not (run_dir / "model").exists()  # never looks finished
    assert {r[0] for r in _csv_rows(run_dir) if r[2] == "val/f1"} == {"0"}

    resumed = _cli([f"paths.log_dir={tmp_path}/killed", f"resume={run_dir}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _only_run_dir(tmp_path / "killed") == run_dir  # finished in place
    weights, straight_weights = _weights(run_dir), _weights(straight_dir)
    assert weights.keys() == straight_weights.keys()
    for name, value in weights.items():
        torch.testing.assert_close(value, straight_weights[name], rtol=0, atol=1e-6, msg=name)
    assert _csv_rows(run_dir) == _csv_rows(straight_dir)
    record, straight_record = _record(run_dir), _record(straight_dir)
    assert record["status"] == "finished" and record["perf"]["epochs"] == straight_record["perf"]["epochs"] == 3
    for key in ("test/f1", "test/loss", "val/loss"):
        assert record["metrics"][key] == pytest.approx(straight_record["metrics"][key], abs=1e-6), key


# ----------------------------------------------------------------------------- Ctrl+C
def test_keyboard_interrupt_leaves_no_record_and_a_resumable_checkpoint(make_cfg, tmp_path):
    short = RUN + ["trainer.max_epochs=2", "test=false"]  # stopped in epoch 1 of 0, 1
    run_dir = tmp_path / "run"
    handler = signal.getsignal(signal.SIGINT)
    try:  # Lightning's graceful shutdown ignores SIGINT from then on, and exits with code 1
        with pytest.raises(SystemExit):
            train(make_cfg(short + ["+callbacks.stop._target_=test_faults.InterruptAt", "+callbacks.stop.step=5"]))
    finally:
        signal.signal(signal.SIGINT, handler)
    assert not (run_dir / "run.json").exists() and not (run_dir / "model").exists()
    assert resume_checkpoint(str(run_dir)).endswith("last.ckpt")  # our checks pass: whole and tensors only

    record = train(make_cfg(short + [f"resume={run_dir}"]))
    assert record["status"] == "finished" and record["perf"]["epochs"] == 2
    assert (run_dir / "model" / "adapter_model.safetensors").exists()
    assert [r[0] for r in _csv_rows(run_dir) if r[2] == "val/f1"] == ["0", "1"]  # one row per epoch: none redone


# ----------------------------------------------------------------------------- corrupt checkpoint bytes
def _flip_tensor_byte(path: Path) -> str:
    """Flip one byte in the middle of the largest tensor storage (``archive/data/<n>``) of a
    checkpoint: the zip stays valid and torch's reader loads the file with one weight changed."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + info.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert zipfile.is_zipfile(path)
    return info.filename


def test_flipped_tensor_byte_in_last_ckpt_is_one_clear_error_before_training(make_cfg, tmp_path):
    """tests/test_user_errors.py flips a byte of ``data.pkl`` (torch fails to unpickle it); a byte of
    a tensor's storage torch reads without complaint: our CRC check finds it."""
    run_dir = tmp_path / "run"
    train(make_cfg(RUN[:4] + ["test=false"]))
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)  # torch itself: no error, before and after the flip
    member = _flip_tensor_byte(ckpt)
    assert torch.load(ckpt, weights_only=True)
    (run_dir / "run.json").unlink()

    with pytest.raises(ValueError) as err:
        train(make_cfg(RUN[:4] + [f"resume={run_dir}"]))
    msg = str(err.value)
    assert "\n" not in msg and str(ckpt) in msg and member in msg and "CRC" in msg, msg
    assert "checkpoints/best.ckpt" in msg and "retrain" in msg and "weights_only" not in msg, msg
    assert is_user_error(err.value)  # the CLI prints it as one line, exit code 2
    assert not (run_dir / "run.json").exists()
    # The fix named: the run's other checkpoint passes the same check.
    assert resume_checkpoint(str(run_dir / "checkpoints" / "best.ckpt")).endswith("best.ckpt")


def test_crc_check_skips_checkpoints_written_without_crcs(tmp_path):
    from localize.models.weights import load_checkpoint

    path = tmp_path / "no_crc.ckpt"
    torch.serialization.set_crc32_options(False)
    try:
        torch.save({"state_dict": {"w": torch.arange(100.0)}}, path)
    finally:
        torch.serialization.set_crc32_options(True)
    assert load_checkpoint(str(path))["state_dict"]["w"][7] == 7


# ----------------------------------------------------------------------------- W&B down
def test_wandb_init_raising_falls_back_to_local(make_cfg, tmp_path, monkeypatch):
    """W&B's own init fails (network down); test_train.py covers the logger failing to build and an
    invalid W&B setting."""
    import wandb
    from wandb.errors import CommError

    def down(*args, **kwargs):
        raise CommError("Network error (ConnectionError): [Errno 101] Network is unreachable")

    monkeypatch.setattr(wandb, "init", down)
    with pytest.warns(UserWarning, match=r"W&B unavailable \(CommError: .*Network is unreachable\); logging locally"):
        record = train(make_cfg(RUN[:4] + ["logger=default"]))
    run_dir = tmp_path / "run"
    assert record["wandb_id"] is None and _record(run_dir)["status"] == "finished"
    assert (run_dir / "csv" / "metrics.csv").exists() and not (run_dir / "wandb_id").exists()


def test_unwritable_wandb_offline_dir_does_not_cost_the_run(make_cfg, tmp_path):
    """``<run dir>/wandb`` cannot be created (a file is in its place; permission bits would not stop
    root): one warning naming the path, and the run finishes with its local record."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "wandb").write_text("not a dir")
    with pytest.warns(UserWarning, match=rf"W&B unavailable \(NotADirectoryError: .*{run_dir / 'wandb'}.*\); "
                                         r"logging locally only"):
        record = train(make_cfg(RUN[:4] + ["logger=default"]))
    assert record["wandb_id"] is None and _record(run_dir)["status"] == "finished"
    assert (run_dir / "csv" / "metrics.csv").exists() and (run_dir / "model").is_dir()
    assert (run_dir / "wandb").read_text() == "not a dir"


# ----------------------------------------------------------------------------- two runs at once
@pytest.mark.slow
def test_two_runs_of_one_name_started_together_both_finish(tmp_path):
    """Same overrides, same second: the run dir's time part is pinned to one value for both, so only
    its ``${run_id:}`` part can tell them apart."""
    pinned = f"hydra.run.dir={tmp_path}/runs/twin/2026-01-01_00-00-00_${{run_id:}}"
    jobs = [_cli([f"paths.log_dir={tmp_path}", pinned, "trainer.max_epochs=1"], background=True,
                 env={"OMP_NUM_THREADS": "1"}) for _ in range(2)]
    for job in jobs:
        _, stderr = job.communicate(timeout=600)
        assert job.returncode == 0, stderr[-3000:]
    dirs = sorted(p for p in (tmp_path / "runs" / "twin").iterdir() if p.is_dir())
    assert len(dirs) == 2 and all(p.name.startswith("2026-01-01_00-00-00_") for p in dirs), dirs
    for run_dir in dirs:
        record = _record(run_dir)  # each its own: its dir, one epoch of rows, its own files
        assert record["status"] == "finished" and record["config"]["paths"]["output_dir"] == str(run_dir)
        assert (run_dir / "model" / "adapter_model.safetensors").exists()
        assert (run_dir / "checkpoints" / "best.ckpt").exists() and not list(run_dir.glob("checkpoints/*-v1.ckpt"))
        assert len([r for r in _csv_rows(run_dir) if r[2] == "val/f1"]) == 1
    # Same seed, same data: the two runs are the same run, twice.
    assert _record(dirs[0])["metrics"]["test/f1"] == _record(dirs[1])["metrics"]["test/f1"]


# ----------------------------------------------------------------------------- disk full
def test_disk_full_while_saving_the_model(make_cfg, tmp_path, monkeypatch):
    """ENOSPC half-way through writing ``model/``: one line naming the folder and the fix; no run.json,
    no ``model/`` (the temp is gone); the fix (free space, then ``resume=<run dir>``) finishes the run."""
    import localize.tracking.storage as storage

    real = storage.atomic_folder

    @contextlib.contextmanager
    def full_disk(path, **kwargs):
        with real(path, **kwargs) as tmp:
            yield tmp  # save_pretrained writes the folder; the disk fills as its largest file is written
            big = max(tmp.iterdir(), key=lambda p: p.stat().st_size)
            big.write_bytes(big.read_bytes()[: big.stat().st_size // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(big))

    monkeypatch.setattr(storage, "atomic_folder", full_disk)
    run_dir = tmp_path / "run"
    with pytest.raises(OSError) as err:
        train(make_cfg(RUN[:4]))
    msg = one_line(err.value)
    assert msg == str(err.value) and err.value.errno == errno.ENOSPC and is_user_error(err.value)
    assert f"could not save the model to {run_dir / 'model'} (No space left on device)" in msg, msg
    assert "resume=<run dir>" in msg, msg
    assert not (run_dir / "run.json").exists() and not (run_dir / "model").exists()
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".tmp-")]

    monkeypatch.undo()
    record = train(make_cfg(RUN[:4] + [f"resume={run_dir}"]))
    assert record["status"] == "finished" and record["metrics"]["test/f1"] >= 0
    assert (run_dir / "model" / "adapter_model.safetensors").exists() and (run_dir / "run.json").exists()

