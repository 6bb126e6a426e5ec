"""localize.hardware: the default precision follows the matrix units, an explicit one wins, every method
trains under bf16 autocast, and run.json says what ran."""
from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import FAST, NER, compose_cfg
from localize import hardware


@pytest.mark.parametrize("caps, want", [
    ({"avx512_bf16": True, "amx_bf16": False}, "bf16-mixed"),
    ({"avx512_bf16": False, "amx_bf16": True}, "bf16-mixed"),
    ({"avx512_bf16": False, "amx_bf16": False, "avx2": True}, "32-true"),  # bf16 emulated: slower than fp32
    ({}, "32-true"),
])
def test_auto_precision_follows_native_bf16(monkeypatch, caps, want):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: caps)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hardware.auto_precision("cpu") == want
    assert hardware.auto_precision("auto") == want
    assert hardware.auto_precision("mps") == "32-true"


def test_composed_precision_is_auto_and_an_explicit_one_wins(monkeypatch):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True})
    assert compose_cfg(NER + ["trainer=cpu"]).trainer.precision == "bf16-mixed"
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True})
    assert compose_cfg(NER + ["trainer=cpu"]).trainer.precision == "32-true"
    assert compose_cfg(NER + ["trainer=cpu", "trainer.precision=32-true"]).trainer.precision == "32-true"
    assert compose_cfg(NER + ["trainer=gpu"]).trainer.precision == "bf16-mixed"  # the GPU config pins it


@pytest.mark.parametrize("task, adapter", [("ner", "full"), ("ner", "lora"), ("ner", "adalora"),
                                           ("ner", "prefix"), ("sentiment", "lora")])
def test_every_method_trains_under_bf16_autocast(tmp_path, task, adapter):
    """bf16-mixed with gradient clipping (trainer default 1.0), AdaLoRA's rank update (its schedule fits the 4 steps), prefix tuning:
    finite losses, and run.json records the precision that ran and what the detection found."""
    from localize.train import train

    locale = "+locale=ja" if task == "ner" else "+locale=zh"
    over = [locale, f"task={task}", f"adapter={adapter}", "trainer.precision=bf16-mixed",
            "trainer.gradient_clip_val=0.5", "++trainer.limit_train_batches=4"]
    record = train(compose_cfg(FAST + over, tmp_path / "run"))
    assert record["machine"]["precision"] == "bf16-mixed"
    assert record["status"] in ("finished", "degenerate")  # a 4-step tiny model may still predict only O
    assert math.isfinite(record["metrics"]["train/loss"]) and math.isfinite(record["metrics"]["test/loss"])
    on_disk = json.loads((tmp_path / "run" / "run.json").read_text())
    assert on_disk["machine"]["torch_threads"] >= 1 and "cpu_bf16_features" in on_disk["machine"]


def test_int8_export_of_a_bf16_run(tmp_path):
    from localize.export import export
    from localize.train import train

    train(compose_cfg(FAST + NER + ["adapter=lora", "trainer.precision=bf16-mixed"], tmp_path / "run"))
    report = export(str(tmp_path / "run"), str(tmp_path / "q"), quantize="int8")
    assert report["int8"]["int8_mb"] < report["int8"]["fp32_mb"]
    assert math.isfinite(report["int8"]["metrics"]["int8"]["test/f1"])


def test_threads_sets_this_processs_compute_threads_and_is_recorded(tmp_path, monkeypatch):
    """threads=1 (jobs sharing the CPU): torch runs 1 thread, OMP_NUM_THREADS says so for Lightning's DDP
    launcher, run.json records both; threads=0 is refused with a fix that works."""
    from localize.train import train
    from localize.validate import check_config

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", str(before))  # restored after the test
    with pytest.raises(ValueError, match=r"threads=0 .*Fix: threads=1"):
        check_config(compose_cfg(FAST + NER + ["threads=0"], tmp_path / "bad"))
    try:
        record = train(compose_cfg(FAST + NER + ["threads=1"], tmp_path / "run"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert record["machine"]["torch_threads"] == 1 and record["machine"]["omp_num_threads"] == "1"
    assert record["status"] in ("finished", "degenerate")


def test_compile_traces_the_model_and_trains_as_eager_does(tmp_path):
    """module.compile: dynamo traces the model (backend eager here, so the unit suite builds no C++), the run
    trains to the eager run's losses, and the saved model keeps the eager parameter names (it reloads)."""
    from torch._dynamo.utils import counters

    from localize.runs import load_run
    from localize.train import train

    over = FAST + NER + ["++trainer.limit_train_batches=3", "trainer.max_epochs=1"]
    eager = train(compose_cfg(over, tmp_path / "eager"))
    counters.clear()
    compiled = train(compose_cfg(over + ["module.compile={backend: eager}"], tmp_path / "compiled"))
    assert counters["stats"]["unique_graphs"] > 0
    for key in ("train/loss", "test/loss"):
        assert compiled["metrics"][key] == pytest.approx(eager["metrics"][key], rel=1e-4)
    assert load_run(str(tmp_path / "compiled")).hparams.compile == {"backend": "eager"}
