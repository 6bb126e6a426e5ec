"""What a run leaves in W&B (offline here): run.json and model/ as artifacts, a test-predictions table,
run.json's peak memory in the summary, a search's group and job_type; no secret in any artifact."""
from __future__ import annotations

import glob
import json
import os
from types import SimpleNamespace

import pytest

from conftest import FAST, NER, compose_cfg
from localize.tracking import wandb as wb


@pytest.fixture
def logged_artifacts(monkeypatch):
    """Every artifact a W&B run logs, still logged for real (offline: staged with the run)."""
    from wandb.sdk.wandb_run import Run

    logged, real = [], Run.log_artifact
    monkeypatch.setattr(Run, "log_artifact", lambda self, art, *a, **k: logged.append(art) or real(self, art, *a, **k))
    return logged


def _files(artifact) -> dict[str, bytes]:
    return {name: open(entry.local_path, "rb").read() for name, entry in artifact.manifest.entries.items()}


def test_train_run_logs_record_model_table_and_peak_memory(tmp_path, monkeypatch, logged_artifacts):
    import wandb

    from localize.train import train

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))  # artifact staging stays in the test
    run_dir = tmp_path / "run"
    fast = [o for o in FAST if not o.startswith("logger=")]
    wandb.finish()  # an earlier test's train() may have left its run open: Lightning would reuse it
    try:
        record = train(compose_cfg(fast + NER + ["adapter=lora", "logger=wandb"], run_dir))
        # Offline, the summary lives only in the binary .wandb log: read it from the run before it closes.
        summary = {k: wandb.run.summary[k] for k in ("perf/peak_rss_mb", "perf/peak_rss_scope")}
    finally:
        wandb.finish()
    on_disk = (run_dir / "run.json").read_bytes()
    assert json.loads(on_disk)["wandb_id"] == record["wandb_id"]

    by_type = {a.type: a for a in logged_artifacts}
    assert sorted(by_type) == ["adapter", "run-record", "run_table"]  # run_table: W&B's own copy of the Table
    name = record["run_name"]
    assert by_type["run-record"].name.startswith(wb.artifact_name("run", name))
    assert _files(by_type["run-record"]) == {"run.json": on_disk}  # byte for byte: nothing to redact
    assert by_type["run-record"].metadata["metrics"] == record["metrics"]
    model = {os.path.relpath(p, run_dir / "model"): open(p, "rb").read()
             for p in glob.glob(str(run_dir / "model" / "**" / "*"), recursive=True) if os.path.isfile(p)}
    assert "adapter_config.json" in model and _files(by_type["adapter"]) == model

    offline = glob.glob(str(run_dir / "wandb" / "offline-run-*" / "files"))
    assert len(offline) == 1
    (table_file,) = glob.glob(os.path.join(offline[0], "media", "table", "test", "predictions_*.table.json"))
    table = json.loads(open(table_file, encoding="utf-8").read())
    rows = [json.loads(l) for l in (run_dir / "test_predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert 0 < len(table["data"]) == min(len(rows), wb.TABLE_ROWS)
    assert table["columns"] == list(rows[0])
    assert table["data"] == [[wb.table_cell(r[c]) for c in table["columns"]] for r in rows[:wb.TABLE_ROWS]]
    assert json.loads(table["data"][0][table["columns"].index("pred")]) == rows[0]["pred"]

    assert summary["perf/peak_rss_mb"] == record["perf"]["peak_rss_mb"]
    assert summary["perf/peak_rss_scope"] == record["perf"]["peak_rss_scope"]

    # Evaluating the run: job_type evaluate in the training runs' group; its record only (no model/ of its own).
    from localize.evaluate import evaluate

    logged_artifacts.clear()
    ev_dir = tmp_path / "ev"
    try:
        evaluate(compose_cfg([f"run={run_dir}", "trainer=cpu", "logger=wandb"], ev_dir, config_name="evaluate"))
        job = (wandb.run.job_type, wandb.run.group)
    finally:
        wandb.finish()
    assert job == ("evaluate", "ner-ja")
    (rec_art,) = [a for a in logged_artifacts if a.type == "run-record"]
    assert [a.type for a in logged_artifacts] == ["run_table", "run-record"]
    assert _files(rec_art) == {"run.json": (ev_dir / "run.json").read_bytes()}


def test_no_secret_reaches_an_artifact(tmp_path, monkeypatch):
    """A token in run.json, in a JSON/text file of model/ or in a safetensors header is blanked in the
    artifact; the run dir itself is left as it is."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    secret = "hf_" + "a1B2c3D4e5F6g7H8i9J0k1L2"
    run_dir, model = tmp_path / "run", tmp_path / "run" / "model"
    model.mkdir(parents=True)
    record = {"run_name": "r/1 x", "job_type": "train", "metrics": {"test/f1": 0.5}, "perf": {"peak_rss_mb": 12.5},
              "config": {"hf_token": secret, "note": f"pushed with {secret}"}}
    (run_dir / "run.json").write_text(json.dumps(record), encoding="utf-8")
    (model / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4, "base": secret}))
    (model / "README.md").write_text(f"token={secret}\n")
    save_file({"w": torch.ones(2)}, str(model / "adapter_model.safetensors"), metadata={"base_model": secret})

    class FakeRun:
        def __init__(self):
            self.summary, self.logged, self.artifacts = {}, [], []

        def log(self, data):
            self.logged.append(data)

        def log_artifact(self, art):
            self.artifacts.append(art)

    run = FakeRun()
    monkeypatch.setattr(wb, "wandb_run", lambda loggers: run)
    wb.log_run_end([], str(run_dir))
    assert [a.type for a in run.artifacts] == ["run-record", "adapter"]
    assert [a.name for a in run.artifacts] == ["run-r-1-x", "adapter-r-1-x"]
    files = {**_files(run.artifacts[0]), **_files(run.artifacts[1])}
    assert sorted(files) == ["README.md", "adapter_config.json", "adapter_model.safetensors", "run.json"]
    for name, data in files.items():
        assert secret.encode() not in data, name
    assert json.loads(files["run.json"])["config"] == {"hf_token": "***", "note": "pushed with ***"}
    assert json.loads(files["adapter_config.json"]) == {"peft_type": "LORA", "r": 4, "base": "***"}
    with safe_open(run.artifacts[1].manifest.entries["adapter_model.safetensors"].local_path, "pt") as f:
        assert f.metadata() == {"base_model": "***"} and f.get_tensor("w").tolist() == [1.0, 1.0]
    assert secret in (run_dir / "run.json").read_text()  # the local record is not rewritten
    assert run.summary["perf/peak_rss_mb"] == 12.5 and run.logged == []  # no test_predictions.jsonl: no table
    run.artifacts.clear()
    wb.log_run_end([SimpleNamespace(localize_log_model=False)], str(run_dir))  # logger.wandb.log_model=false
    assert [a.type for a in run.artifacts] == ["run-record"]


def test_search_runs_are_grouped_by_their_search(monkeypatch):
    from hydra.core.hydra_config import HydraConfig

    from localize.config import compose

    monkeypatch.delenv("WANDB_SWEEP_ID", raising=False)
    assert wb.search_group("ner-ja", "train") == ("ner-ja", "train")
    monkeypatch.setenv("WANDB_SWEEP_ID", "abc123")  # set by `wandb agent` for each run it starts
    assert wb.search_group("ner-ja", "train") == ("sweep-abc123", "sweep")
    assert wb.search_group("ner-ja", "evaluate") == ("ner-ja", "evaluate")
    monkeypatch.delenv("WANDB_SWEEP_ID")
    cfg = compose(["hparams_search=ner_lora_optuna", "+locale=ja"], "train", out_dir="/tmp/x", return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        assert wb.search_group("ner-ja", "train") == ("study-ner_lora", "sweep")
    finally:
        HydraConfig.instance().cfg = None
