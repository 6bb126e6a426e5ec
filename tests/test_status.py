"""A failed or degenerate run never looks finished (run.json ``status``); settings that cannot take
effect are refused before training, and each message's fix gets the run past it; run dirs never
collide; an unwritable log dir gets its one-line message from the CLI."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch

from conftest import FAST, NER, ROOT
from localize.report import collect, summarize, write_report
from localize.runs import read_run
from localize.tracking.status import DEGENERATE, FAILED, FINISHED, TrainingFailed, count_labels, run_status
from localize.train import train

# Past the checks, as fast as possible: one training batch, no test pass.
QUICK = ["trainer.limit_train_batches=1", "test=false"]


class NanWeights(pl.Callback):
    """Poisons the weights after the first optimizer step: the next loss is NaN."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step >= 1:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(float("nan"))


class CollapseToO(pl.Callback):
    """What too high a learning rate does to NER: the head's bias makes every word ``O``."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        with torch.no_grad():
            pl_module.model.classifier.bias[pl_module.label_names.index("O")] = 1e4


def _record(run_dir) -> dict:
    return json.loads((run_dir / "run.json").read_text())


# ----------------------------------------------------------------------------- (a) non-finite loss
def test_non_finite_loss_stops_training_and_records_failed(make_cfg, tmp_path):
    cfg = make_cfg(NER + ["+callbacks.nan._target_=test_status.NanWeights"])
    with pytest.raises(TrainingFailed, match=r"train/loss is nan at epoch 0, step 2: training stopped") as e:
        train(cfg)
    assert "\n" not in str(e.value) and "adapter.lr=" in str(e.value)
    record = _record(tmp_path / "run")
    assert record["status"] == FAILED and record["status_reason"] == str(e.value)
    assert "test/f1" not in record["metrics"] and not (tmp_path / "run" / "model").exists()
    with pytest.raises(ValueError, match=r"not a finished run: its run.json says status 'failed' \(train/loss is nan"):
        read_run(str(tmp_path / "run"))


# ----------------------------------------------------------------------------- (b) refused settings
REFUSED = [
    # (override, error type, message, the fix the message names)
    ("data.max_length=2", ValueError, r"data.max_length=2 leaves no room for text: the tokenizer \(minilm\) adds 2 "
                                      r"special token\(s\)", r"set (data\.max_length=\d+) or more"),
    ("data.max_length=1", ValueError, r"data.max_length=1 leaves no room", r"set (data\.max_length=\d+) or more"),
    ("trainer.max_epochs=0", ValueError, r"trainer.max_epochs=0 trains nothing", r"set (trainer\.max_epochs=\d+) or more"),
    ("data.max_train_examples=0", ValueError, r"data.max_train_examples=0 is not a cap",
     r"set (data\.max_train_examples=null)"),
    ("data.max_train_examples=-5", ValueError, r"data.max_train_examples=-5 is not a cap",
     r"set (data\.max_train_examples=null)"),
    ("data.max_eval_examples=0", ValueError, r"data.max_eval_examples=0 is not a cap",
     r"set (data\.max_eval_examples=null)"),
    ("data.max_eval_examples=-1", ValueError, r"data.max_eval_examples=-1 is not a cap",
     r"set (data\.max_eval_examples=null)"),
]


@pytest.mark.parametrize("override,error,message,fix", REFUSED, ids=[r[0] for r in REFUSED])
def test_setting_that_cannot_take_effect_is_refused_and_its_fix_works(make_cfg, tmp_path, override, error,
                                                                       message, fix):
    with pytest.raises(error, match=message) as e:
        train(make_cfg(NER + QUICK + [override]))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before training
    applied = re.search(fix, str(e.value))[1]
    record = train(make_cfg(NER + QUICK + [applied]))
    assert record["perf"]["epochs"] >= 1 and math.isfinite(record["metrics"]["val/loss"])


def test_minimum_max_length_is_measured_from_the_tokenizer(make_cfg):
    """3 = [CLS] + one text token + [SEP]: 2 leaves no text (NaN losses), 3 trains with finite losses."""
    record = train(make_cfg(NER + QUICK + ["data.max_length=3"]))
    assert record["status"] in (FINISHED, DEGENERATE) and math.isfinite(record["metrics"]["train/loss"])


# ----------------------------------------------------------------------------- (c) status
def test_finished_run_records_status(train_run):
    record = json.loads(open(os.path.join(train_run("lora", ["adapter=lora"]), "run.json")).read())
    assert record["status"] == FINISHED and record["status_reason"] is None


@pytest.mark.parametrize("adapter", ["lora", "full"])
def test_collapsed_model_is_degenerate_and_refused(make_cfg, tmp_path, adapter):
    """LoRA at too high a learning rate "collapsed to all-O" and was recorded like any other run."""
    record = train(make_cfg(NER + [f"adapter={adapter}", "+callbacks.collapse._target_=test_status.CollapseToO"]))
    assert record["status"] == DEGENERATE
    assert re.match(r"predicts 'O' for all \d+ dev items \(the dev data has \d+ labels\)", record["status_reason"])
    assert _record(tmp_path / "run")["status"] == DEGENERATE  # on disk too
    with pytest.raises(ValueError, match="says status 'degenerate' \\(predicts 'O'"):
        read_run(str(tmp_path / "run"))


def test_run_status_rules():
    labels = ["neg", "pos"]
    assert run_status({"val/loss": 0.5, "test/f1_macro": 0.7}, {"pred": [3, 4], "gold": [4, 3]}, labels) == (FINISHED, None)
    assert run_status({"val/loss": float("nan")})[0] == DEGENERATE
    assert run_status({"val/f1": float("nan")}, monitor="val/f1") == (DEGENERATE, "val/f1 is nan")
    assert run_status({"test/f1_macro": float("inf")})[0] == DEGENERATE
    status, reason = run_status({}, {"pred": [0, 7], "gold": [4, 3]}, labels)  # one class for every dev text
    assert status == DEGENERATE and reason.startswith("predicts 'pos' for all 7 dev items")
    # A dev set with one gold label: predicting it is not a collapse.
    assert run_status({}, {"pred": [0, 7], "gold": [0, 7]}, labels) == (FINISHED, None)


def test_count_labels_ignores_padding():
    pred, gold = torch.tensor([[1, 1, 0], [2, 2, 2]]), torch.tensor([[1, 0, -100], [2, -100, -100]])
    counts = count_labels(pred, gold, 3)
    assert counts["pred"].tolist() == [0, 2, 1] and counts["gold"].tolist() == [1, 1, 1]


# ----------------------------------------------------------------------------- (d) report
def test_report_shows_every_status_keeps_degenerate_runs_in_means_and_failed_out(tmp_path):
    from test_report import make_run

    root = tmp_path / "logs"
    make_run(root, "lora", 1, 0.5, 1_000, 0.5, 2.0)
    make_run(root, "lora", 2, 0.7, 1_000, 0.5, 4.0)
    for seed, status, reason in ((3, DEGENERATE, "predicts 'O' for all 500 dev items"), (4, FAILED, "train/loss is nan")):
        run = make_run(root, "lora", seed, 0.0, 1_000, 0.5, 100.0)
        record = json.loads((run / "run.json").read_text())
        (run / "run.json").write_text(json.dumps({**record, "status": status, "status_reason": reason}))
    make_run(root, "full", 1, 0.8, 100_000, 40.0, 10.0)

    df = collect(str(root))
    assert sorted(df["status"]) == [DEGENERATE, FAILED, FINISHED, FINISHED, FINISHED]
    lora = summarize(df).set_index("method").loc["lora"]
    # The degenerate run's F1 0 is the method's real outcome (issue: degenerate runs stay in the figures);
    # the failed run has no test metrics and is only counted.
    assert lora["n"] == 3 and lora["seeds"] == [1, 2, 3] and lora["mean"] == pytest.approx(0.4)
    assert lora["s_per_epoch"] == pytest.approx((2.0 + 4.0 + 100.0) / 3)  # costs too
    assert lora["not_finished"] == 2 and lora["statuses"] == "1 degenerate, 1 failed"
    assert summarize(df).set_index("method").loc["full", "not_finished"] == 0

    paths = write_report(str(root), str(tmp_path / "out"))
    assert paths["runs"] == 5 and paths["finished"] == 3 and paths["not_finished"] == 2
    md = open(paths["markdown"]).read()
    assert "| lora | tiny | ja | ner | n/a | 1,2,3 | 3 | test/f1 | 0.4000 ± 0.3606 |" in md
    assert "| 1 degenerate, 1 failed |" in md and "2 failed or degenerate run(s)" in md
    runs = md.split("## Runs")[1]
    assert "| ner-ja-tiny-lora-s3 | lora | 3 | degenerate | predicts 'O' for all 500 dev items |" in runs
    assert "| ner-ja-tiny-lora-s4 | lora | 4 | failed | train/loss is nan |" in runs
    assert runs.count("| finished |") == 3


# ----------------------------------------------------------------------------- item 5: run dirs, log dir
def _dirs(overrides: list[str]) -> tuple[str, str]:
    """A composed run's hydra.run.dir and hydra.sweep.dir, as Hydra resolves them."""
    from omegaconf import OmegaConf

    from localize.config import compose

    cfg = compose(FAST + NER + overrides, return_hydra_config=True)
    run = OmegaConf.select(cfg, "hydra.run.dir")
    assert OmegaConf.select(cfg, "hydra.run.dir") == run  # one value per run, however often it is read
    return run, OmegaConf.select(cfg, "hydra.sweep.dir")


def test_run_dirs_of_runs_started_in_one_second_differ():
    (run_a, sweep_a), (run_b, sweep_b) = _dirs([]), _dirs([])
    assert run_a != run_b and sweep_a != sweep_b
    stamp = r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[0-9a-f]{6}"
    assert re.fullmatch(rf"logs/runs/ner-ja-tiny_random-full_frozen_emb-s42/{stamp}", run_a), run_a
    assert re.fullmatch(rf"logs/multiruns/{stamp}", sweep_a), sweep_a
    assert _dirs(["resume=/some/run"])[0] == "/some/run"  # resume= keeps the run's own dir


def test_multirun_jobs_share_one_sweep_dir(tmp_path):
    """The sweep dir holds ${run_id:}: every job of one multirun must still land in the same one."""
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    # localize.baselines: a Hydra app on conf/train.yaml (same run dirs) that trains nothing: seconds.
    cmd = [sys.executable, "-m", "localize.baselines", "-m", *NER, "model=tiny_random", "seed=1,2",
           f"paths.log_dir={tmp_path}"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    sweeps = list((tmp_path / "multiruns").iterdir())
    assert len(sweeps) == 1 and re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[0-9a-f]{6}", sweeps[0].name)
    jobs = sorted(p.name.split("-")[0] for p in sweeps[0].iterdir() if (p / "baseline_majority" / "run.json").exists())
    assert jobs == ["0", "1"]


def test_unwritable_log_dir_message_from_the_cli_and_its_fix(tmp_path):
    """Hydra creates the run dir before the job starts: the check runs before it (a Hydra callback)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a dir")  # a path under a regular file is unwritable, even for root
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    base = [sys.executable, "-m", "localize.train", *NER, *FAST, *QUICK]
    done = subprocess.run(base + [f"paths.log_dir={blocker}/logs"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr[-3000:]
    assert re.fullmatch(rf"localize: output dir '{blocker}/logs/runs/\S+' is not writable \(Not a directory\): "
                        r"set paths.log_dir=<writable dir> or LOCALIZE_LOG_DIR", lines[0]), lines[0]
    # The fix gets past it: the run dir is made and the job starts. It is stopped at its next check
    # (data.max_train_examples=0 is refused as the datamodule is built) to keep the test short.
    fixed = subprocess.run(base + [f"paths.log_dir={tmp_path}/logs", "data.max_train_examples=0"], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=300)
    assert fixed.returncode == 2 and "data.max_train_examples=0 is not a cap" in fixed.stderr, fixed.stderr[-3000:]
    assert "not writable" not in fixed.stderr
    assert [p for p in (tmp_path / "logs" / "runs").glob("*/*") if p.is_dir()]  # the run dir
