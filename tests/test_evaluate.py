"""localize.evaluate on tiny runs trained here: a run's own test split, other data, checkpoints."""
from __future__ import annotations

import json
import os

import pytest

from conftest import NER, ROOT, compose_cfg
from localize.evaluate import evaluate


def _eval_cfg(run: str, out, overrides: list[str] = ()):
    return compose_cfg([f"run={run}", "trainer=cpu", "logger=none", *overrides], out, config_name="evaluate")


def test_evaluate_lora_run_reproduces_its_test_scores(lora_run, tmp_path):
    recorded = json.loads(open(os.path.join(lora_run, "run.json")).read())
    rec = evaluate(_eval_cfg(lora_run, tmp_path / "ev"))
    assert rec["metrics"]["test/f1"] == recorded["metrics"]["test/f1"]
    assert rec["metrics"]["test/loss"] == pytest.approx(recorded["metrics"]["test/loss"], abs=1e-6)
    on_disk = json.loads((tmp_path / "ev" / "run.json").read_text())
    assert on_disk["job_type"] == "evaluate" and on_disk["evaluated_run"] == os.path.abspath(lora_run)
    assert on_disk["locale"] == "ja" and on_disk["train_locale"] == "ja" and on_disk["adapter"] == "lora"
    assert on_disk["data"]["sizes"]["test"] == recorded["data"]["sizes"]["test"]
    # test_predictions.jsonl: one row per test example, its gold and predicted tag per word.
    rows = [json.loads(l) for l in (tmp_path / "ev" / "test_predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["index"] for r in rows] == list(range(on_disk["data"]["sizes"]["test"]))
    assert all(len(r["pred"]) == len(r["gold"]) > 0 and r["id"] for r in rows)
    assert on_disk["test_predictions"] == {"file": "test_predictions.jsonl", "kind": "spans", "options": {},
                                           "n": len(rows), "with_ids": True}


@pytest.mark.parametrize("adapter", ["full", "full_frozen_emb", "adalora"])  # adalora: its loss reads training state
def test_evaluate_reproduces_the_test_scores_of_other_methods(train_run, adapter, tmp_path):
    run = train_run(adapter, [f"adapter={adapter}"])
    recorded = json.loads(open(os.path.join(run, "run.json")).read())
    rec = evaluate(_eval_cfg(run, tmp_path / "ev"))
    assert rec["metrics"]["test/f1"] == recorded["metrics"]["test/f1"]
    if adapter != "adalora":  # AdaLoRA's loss adds its orthogonal regulariser, over the ranks kept once saved
        assert rec["metrics"]["test/loss"] == pytest.approx(recorded["metrics"]["test/loss"], abs=1e-6)


def test_evaluate_on_other_data(lora_run, locper_run, tmp_path):
    """A run scored on another dataset with a subset of its labels (the transfer-matrix case)."""
    conll = os.path.join(os.path.dirname(locper_run), "locper.conll")
    rec = evaluate(_eval_cfg(lora_run, tmp_path / "ev", ["+locale=ja", f"data.path={conll}",
                                                           "data.split_sizes=[0.8,0.1,0.1]"]))
    assert rec["data"]["source"] == conll and rec["data"]["sizes"]["test"] == 49
    assert set(rec["labels"]) > {"B-LOCATION", "B-PERSON"}  # the model's label set, not the data's


def test_evaluate_data_with_unknown_labels_names_the_fix(locper_run, tmp_path):
    from localize.data.errors import DataError

    with pytest.raises(DataError, match="knows only"):
        evaluate(_eval_cfg(locper_run, tmp_path / "ev", ["+locale=ja"]))  # hironsan: 8 types, model knows 2


def test_evaluate_base_model_untrained_head(tmp_path):
    cfg = compose_cfg(["model=tiny_random", *NER, "trainer=cpu", "logger=none", "+trainer.limit_test_batches=1"],
                      tmp_path / "ev", config_name="evaluate")
    rec = evaluate(cfg)
    assert rec["head"].startswith("untrained") and rec["evaluated_run"] is None and "test/f1" in rec["metrics"]


def test_evaluate_lightning_checkpoint(lora_run, tmp_path):
    recorded = json.loads(open(os.path.join(lora_run, "run.json")).read())
    best = os.path.join(lora_run, "checkpoints", "best.ckpt")
    rec = evaluate(_eval_cfg(lora_run, tmp_path / "ev", [f"ckpt_path={best}"]))
    assert rec["metrics"]["test/loss"] == pytest.approx(recorded["metrics"]["test/loss"], abs=1e-6)


def test_evaluate_refuses_another_base_model(lora_run, tmp_path):
    with pytest.raises(ValueError, match="trained on base model 'tiny_random'.*drop model="):
        evaluate(_eval_cfg(lora_run, tmp_path / "ev", ["model=minilm"]))


def test_evaluate_config_takes_locale_from_the_command_line():
    cfg = compose_cfg(["run=/x", "+locale=ko"], "/tmp/x", config_name="evaluate")
    assert cfg.run == "/x" and cfg.locale.code == "ko" and cfg.data.split_sizes is None  # null: the run's own


def test_transfer_matrix_writes_csv_and_heatmap(lora_run, locper_run, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("transfer", os.path.join(ROOT, "experiments", "transfer", "transfer.py"))
    transfer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(transfer)
    conll = os.path.join(os.path.dirname(locper_run), "locper.conll")
    evals = {"own": ["+locale=ja"], "locper": ["+locale=ja", f"data.path={conll}", "data.split_sizes=[0.8,0.1,0.1]"]}
    matrix = transfer.transfer_matrix({"all": lora_run, "none": None}, evals, str(tmp_path / "t"),
                                      overrides=["logger=none", "trainer=cpu"])
    assert list(matrix.index) == ["all"] and list(matrix.columns) == ["own", "locper"]
    recorded = json.loads(open(os.path.join(lora_run, "run.json")).read())["metrics"]["test/f1"]
    assert matrix.loc["all", "own"] == pytest.approx(recorded)  # the diagonal is the run's own split
    assert {"matrix.csv", "results.csv", "heatmap.png"} <= set(os.listdir(tmp_path / "t"))


def test_evaluate_applies_module_settings_to_the_rebuilt_run(lora_run, tmp_path, monkeypatch):
    """``module.decoding=argmax`` on evaluate reaches the run's rebuilt module (it used to be ignored; the run
    itself decoded with the default Viterbi)."""
    from localize import evaluate as evaluate_mod
    from localize.models.decoding import DECODERS

    built = []
    real = evaluate_mod.load_run
    monkeypatch.setattr(evaluate_mod, "load_run", lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    assert json.loads(open(os.path.join(lora_run, "run.json")).read())["config"]["module"]["decoding"] == "viterbi"
    rec = evaluate(_eval_cfg(lora_run, tmp_path / "ev", ["module.decoding=argmax"]))
    assert built[0].decode is DECODERS["argmax"] and rec["config"]["module"]["decoding"] == "argmax"
    assert "test/f1" in rec["metrics_ci"]  # scored end to end with the per-word decoder
