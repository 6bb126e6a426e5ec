"""The one atomic writer (localize.tracking.atomic) and the one run-record builder (tracking.record)."""
from __future__ import annotations

import json
import os
import stat
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from localize.tracking import atomic
from localize.tracking.atomic import atomic_file, atomic_folder
from localize.tracking.record import atomic_write_json, build_record


class Boom(RuntimeError):
    pass


def _left(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---- atomic writer ----------------------------------------------------------------------------
def test_failure_inside_the_writer_leaves_no_file_and_no_temp(tmp_path):
    target = tmp_path / "out" / "run.json"
    with pytest.raises(Boom):
        with atomic_file(target) as f:
            f.write('{"half": ')
            raise Boom
    assert _left(tmp_path / "out") == []  # no target, no .tmp-*


def test_failure_keeps_the_previous_file_untouched(tmp_path):
    target = tmp_path / "preds.jsonl"
    target.write_text("old\n")
    with pytest.raises(Boom):
        with atomic_file(target) as f:
            f.write("new, half")
            raise Boom
    assert target.read_text() == "old\n" and _left(tmp_path) == ["preds.jsonl"]


def test_success_replaces_by_rename_and_fsyncs(tmp_path, monkeypatch):
    target = tmp_path / "plot.png"
    target.write_bytes(b"old")
    replaced, synced = [], []
    real_replace, real_fsync = os.replace, os.fsync
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: replaced.append((a, b)) or real_replace(a, b))
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    with atomic_file(target, "wb") as f:
        f.write(b"new")
        assert target.read_bytes() == b"old"  # readers see the old file until the rename
    assert target.read_bytes() == b"new" and _left(tmp_path) == ["plot.png"]
    (src, dst), = replaced
    assert os.path.dirname(src) == str(tmp_path) and os.path.basename(src).startswith(".tmp-")
    assert dst == str(target) and synced  # data fsynced before the rename


def test_file_gets_umask_permissions_not_mkstemp_0600(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "a.txt") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_atomic_write_json_failure_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_json(str(tmp_path / "run.json"), {"bad": object.__new__(type("X", (), {"__str__": None}))})
    assert _left(tmp_path) == []
    atomic_write_json(str(tmp_path / "run.json"), {"é": 1})
    assert json.loads((tmp_path / "run.json").read_text(encoding="utf-8")) == {"é": 1}


def test_folder_failure_leaves_no_folder_and_no_temp(tmp_path):
    with pytest.raises(Boom):
        with atomic_folder(tmp_path / "model") as tmp:
            (tmp / "weights.bin").write_bytes(b"half")
            raise Boom
    assert _left(tmp_path) == []


def test_folder_success_replaces_an_existing_folder_whole(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "stale.bin").write_text("old")
    with pytest.raises(Boom):  # a failed rewrite keeps the old folder as it was
        with atomic_folder(model) as tmp:
            (tmp / "new.bin").write_text("half")
            raise Boom
    assert _left(model) == ["stale.bin"]
    with atomic_folder(model, mode=0o755) as tmp:
        (tmp / "new.bin").write_text("new")
        assert _left(model) == ["stale.bin"]
    assert _left(model) == ["new.bin"] and _left(tmp_path) == ["model"]
    assert stat.S_IMODE(model.stat().st_mode) == 0o755


# ---- run-record builder ------------------------------------------------------------------------
def _cfg(**over):
    cfg = {"run_name": "ner-ja-tiny-lora-s1", "task": {"name": "ner"}, "locale": {"code": "ja"},
           "model": {"name": "tiny"}, "adapter": {"name": "lora"}, "seed": 1, "tags": ["t"], **over}
    return OmegaConf.create(cfg)


class _Module:
    label_names = ["O", "B-X", "I-X"]
    param_counts = {"total": 10, "trainable": 1, "trainable_share": 0.1}

    def extra_results(self):
        return {"per_type": {"X": 0.5}}


def test_build_record_fills_the_common_fields():
    logger = SimpleNamespace(experiment=SimpleNamespace(id="abc"))
    rec = build_record(_cfg(), job_type="train", metrics={"test/f1": 0.5}, start=0.0, module=_Module(),
                       datamodule=SimpleNamespace(data_info={"source": "hironsan"}),
                       trainer=SimpleNamespace(loggers=[SimpleNamespace(experiment=object()), logger]),
                       git={"commit": "c", "dirty": False}, config={"k": 1}, perf={"epochs": 2},
                       storage={"stored_mb": 1.0})
    assert {k: rec[k] for k in ("job_type", "run_name", "task", "locale", "model", "adapter", "seed", "tags")} == {
        "job_type": "train", "run_name": "ner-ja-tiny-lora-s1", "task": "ner", "locale": "ja", "model": "tiny",
        "adapter": "lora", "seed": 1, "tags": ["t"]}
    assert rec["metrics"] == {"test/f1": 0.5} and rec["results"] == {"per_type": {"X": 0.5}}
    assert rec["labels"] == _Module.label_names and rec["params"] == _Module.param_counts
    assert rec["data"] == {"source": "hironsan"} and rec["scoring"] == "strict IOB2" and rec["wandb_id"] == "abc"
    assert rec["git"] == {"commit": "c", "dirty": False} and rec["config"] == {"k": 1}
    assert rec["storage"] == {"stored_mb": 1.0}
    assert rec["perf"]["epochs"] == 2 and rec["perf"]["wall_s"] > 0 and rec["perf"]["peak_rss_mb"] > 0
    assert "python" in rec["versions"] and "cpus" in rec["machine"]
    json.dumps(rec)


def test_build_record_entry_point_fields_override_and_defaults():
    cfg = _cfg(task={"name": "sentiment"}, locale=None, tags=None)
    rec = build_record(cfg, job_type="baseline", metrics={}, start=0.0, config={}, model="none",
                       adapter="baseline_majority")
    assert (rec["model"], rec["adapter"], rec["locale"], rec["tags"]) == ("none", "baseline_majority", None, [])
    assert rec["scoring"] is None and rec["wandb_id"] is None and rec["data"] == {}
    assert "labels" not in rec and "results" not in rec  # no module: nothing invented
