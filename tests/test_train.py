"""End-to-end runs on the tiny model: records, determinism, resume, bad input, secrets, W&B fallback."""
from __future__ import annotations

import json
import os

import pytest
import torch

from localize.data.errors import DataError
from localize.train import train

NER = ["+locale=ja", "task=ner"]


def test_run_writes_record_and_trainable_state(make_cfg, tmp_path):
    rec = train(make_cfg(NER + ["adapter=lora"]))
    run = tmp_path / "run"
    on_disk = json.loads((run / "run.json").read_text())
    assert on_disk["metrics"]["test/f1"] == rec["metrics"]["test/f1"]
    assert 0 < on_disk["params"]["trainable_share"] < 0.1
    assert (run / "model" / "adapter_config.json").exists()  # standard peft folder
    assert on_disk["storage"]["stored_mb"] < on_disk["storage"]["full_model_mb"]
    assert on_disk["perf"]["train_tokens_per_s"] > 0 and on_disk["perf"]["peak_rss_mb"] > 0
    assert on_disk["perf"]["peak_rss_scope"] in {"job", "process"}
    assert on_disk["config"]["adapter"]["name"] == "lora" and on_disk["versions"]["torch"]


def test_same_seed_same_metrics(make_cfg, tmp_path):
    a = train(make_cfg(NER))["metrics"]
    b = train(make_cfg(NER))["metrics"]
    assert a["test/f1"] == b["test/f1"] and a["val/loss"] == b["val/loss"]


def test_secrets_never_recorded(make_cfg, tmp_path, monkeypatch):
    key = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("WANDB_API_KEY", key)
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = make_cfg(NER + ["+extra.hf_token=hf_abcdefghijklmnopqrstuvwxyz"])
    train(cfg)
    text = (tmp_path / "run" / "run.json").read_text()
    assert key not in text and "hf_abcdefghijklmnopqrstuvwxyz" not in text


def test_wandb_failure_falls_back_to_local(make_cfg, tmp_path, monkeypatch):
    import pytorch_lightning.loggers as loggers

    def boom(*a, **k):
        raise RuntimeError("W&B server unreachable")

    monkeypatch.setattr(loggers, "WandbLogger", boom)
    with pytest.warns(UserWarning, match="W&B unavailable"):
        rec = train(make_cfg(NER + ["logger=default"]))
    assert rec["wandb_id"] is None and (tmp_path / "run" / "run.json").exists()


def test_invalid_wandb_setting_falls_back_to_local(make_cfg, tmp_path, monkeypatch):
    # A real W&B failure (its settings validation rejects the mode), not a mock.
    monkeypatch.setenv("WANDB_MODE", "bogus")
    with pytest.warns(UserWarning, match="W&B unavailable"):
        rec = train(make_cfg(NER + ["logger=default"]))
    on_disk = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["wandb_id"] is None and on_disk["metrics"]["test/f1"] == rec["metrics"]["test/f1"]
    assert (tmp_path / "run" / "csv" / "metrics.csv").exists()


def test_wandb_offline_run_is_kept(make_cfg, tmp_path):
    rec = train(make_cfg(NER + ["logger=default"]))
    assert rec["wandb_id"] and (tmp_path / "run" / "wandb_id").read_text() == rec["wandb_id"]
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


@pytest.mark.parametrize("override,error,match", [
    # Refused by localize.validate before anything is built (tests/test_user_errors.py applies each fix).
    (["adapter.lr=0"], ValueError, r"adapter\.lr=0 must be > 0 \(learning rate\)\. Fix: adapter\.lr=0\.0003"),
    (["data.batch_size=0"], ValueError, r"data\.batch_size=0 must be >= 1 .*Fix: data\.batch_size=16"),
    (["adapter=lora", "adapter.peft.r=0"], ValueError, r"adapter\.peft\.r=0 must be >= 1 \(LoRA rank\)"),
    (["ckpt_path=/nonexistent/last.ckpt"], FileNotFoundError, "ckpt_path="),
    (["ckpt_path=/etc/hostname"], ValueError, "checkpoint"),
])
def test_bad_hyperparameters_fail_clearly(make_cfg, override, error, match):
    with pytest.raises(error, match=match):
        train(make_cfg(NER + override))


def test_locale_without_offline_data_names_the_fix(make_cfg, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="data.path="):
        train(make_cfg(["+locale=ko", "task=ner"]))


def test_unwritable_output_dir(make_cfg, tmp_path):
    if os.geteuid() == 0:
        target = "/proc/localize-cannot-write"  # root ignores permission bits; /proc refuses anyway
    else:
        target = str(tmp_path / "ro")
        os.makedirs(target, mode=0o500)
    cfg = make_cfg(NER)
    cfg.paths.output_dir = target
    with pytest.raises(PermissionError, match="paths.log_dir"):
        train(cfg)


def test_no_record_when_run_crashes(make_cfg, tmp_path, monkeypatch):
    from localize.models.token_cls import TokenClassificationLitModule

    def crash(self, batch, batch_idx):
        raise RuntimeError("killed")

    monkeypatch.setattr(TokenClassificationLitModule, "test_step", crash)
    with pytest.raises(RuntimeError, match="killed"):
        train(make_cfg(NER))
    assert not (tmp_path / "run" / "run.json").exists()


def test_redaction_keeps_ordinary_token_settings():
    from localize.tracking.record import redact

    out = redact({"tokenizer": "e5_small", "max_new_tokens": 48, "num_virtual_tokens": 20,
                  "hf_token": "abc", "WANDB_API_KEY": "x", "nested": {"auth_token": "y", "password": "z"}})
    assert out["tokenizer"] == "e5_small" and out["max_new_tokens"] == 48 and out["num_virtual_tokens"] == 20
    assert out["hf_token"] == out["WANDB_API_KEY"] == out["nested"]["auth_token"] == out["nested"]["password"] == "***"


def test_tokenising_does_not_pickle_the_trainer_and_its_wandb_logger(make_cfg, capfd):
    """datasets used to fingerprint the tokenising method by pickling the datamodule with its trainer,
    whose W&B logger printed `wandb.require('service')` each time (x3 per run: train, dev, test)."""
    import wandb

    try:
        train(make_cfg(NER + ["logger=default", "data.cache_tokenized=false"]))
    finally:
        wandb.finish()
    out, err = capfd.readouterr()
    assert "require('service')" not in out + err
