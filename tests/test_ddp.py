"""DDP on CPU (gloo): one run dir, one W&B run, and every test sample scored exactly once."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytorch_lightning as pl
from hydra.utils import instantiate

from conftest import ROOT, compose_cfg

# 11 test sentences on 2 ranks: DistributedSampler pads with a duplicate that must not be scored.
OVERRIDES = ["+locale=ja", "task=ner", "model=tiny_random", "trainer.max_epochs=1", "data.split_sizes=[40,9,11]",
             "data.batch_size=8"]


def test_ddp_cpu_matches_single_process_evaluation(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "LOCALIZE_LOG_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "localize.train", *OVERRIDES, "trainer=ddp", "trainer.accelerator=cpu",
           "trainer.devices=2", "logger=default"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = glob.glob(str(tmp_path / "runs" / "*" / "*"))
    assert len(runs) == 1, runs  # not one run dir per rank
    assert len(glob.glob(os.path.join(runs[0], "wandb", "offline-run-*"))) == 1
    record = json.loads(open(os.path.join(runs[0], "run.json")).read())
    assert record["metrics"]["test/n_sentences"] == 11
    # Each rank gets its share of the cores (Lightning's launcher, unless OMP_NUM_THREADS is set): two
    # ranks with all the cores each would oversubscribe the CPU.
    share = int(os.environ["OMP_NUM_THREADS"]) if "OMP_NUM_THREADS" in os.environ else max(1, os.cpu_count() // 2)
    assert record["machine"]["torch_threads"] == share and record["machine"]["world_size"] == 2

    cfg = compose_cfg(OVERRIDES + ["logger=none"], tmp_path / "single")
    pl.seed_everything(cfg.seed)  # tiny_random: frozen random embeddings are rebuilt from the seed
    dm = instantiate(cfg.data)
    module = instantiate(cfg.module, **dm.module_kwargs())
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         precision=record["machine"]["precision"])  # the precision the DDP run tested with
    single = trainer.test(module, datamodule=dm, ckpt_path=os.path.join(runs[0], "checkpoints", "best.ckpt"))[0]
    assert single["test/n_sentences"] == 11
    assert single["test/f1"] == record["metrics"]["test/f1"]
    assert single["test/accuracy"] == record["metrics"]["test/accuracy"]
