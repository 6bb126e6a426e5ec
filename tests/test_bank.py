"""AdapterBank: one backbone, an adapter (+ head, + its run's text encoding) per locale; storage."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from conftest import TEXTS
from localize.adapters import bank as bank_mod
from localize.adapters.bank import AdapterBank
from localize.runs import load_predictor
from localize.tracking.storage import storage_report


def test_bank_serves_two_label_sets_on_one_backbone(lora_run, locper_run, monkeypatch):
    loads = []
    real = bank_mod.build_backbone
    monkeypatch.setattr(bank_mod, "build_backbone", lambda *a, **k: loads.append(a) or real(*a, **k))
    bank = AdapterBank.from_runs({"all": lora_run, "locper": locper_run})
    assert len(loads) == 1 and bank.backbone_loads == 1
    assert len(bank.adapters["all"].labels) == 17 and len(bank.adapters["locper"].labels) == 5

    alone = {name: load_predictor(run) for name, run in (("all", lora_run), ("locper", locper_run))}
    enc = alone["all"].tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    for name in ("all", "locper", "all", "locper"):  # switch back and forth
        bank.set_adapter(name)
        with torch.inference_mode():
            got = bank.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            want = alone[name].module.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        torch.testing.assert_close(got, want)
        assert bank.predict_texts(TEXTS, name) == alone[name].predict_texts(TEXTS)
    assert len(loads) == 1  # switching never reloads the backbone
    tags = {t["tag"] for out in bank.predict_texts(TEXTS, "locper") for t in out["tokens"]}
    assert tags <= set(bank.adapters["locper"].labels)


def test_bank_refuses_other_base_and_full_runs(lora_run, train_run, tmp_path):
    other = tmp_path / "other_seed"  # tiny_random's weights come from the seed: another backbone
    shutil.copytree(lora_run, other)
    record = json.loads((other / "run.json").read_text())
    record["overrides"].append("seed=7")  # the run is rebuilt from conf/ + its overrides
    (other / "run.json").write_text(json.dumps(record))
    bank = AdapterBank.from_runs({"ja": lora_run})
    with pytest.raises(ValueError, match="different base model"):
        bank.add("other", str(other))
    with pytest.raises(ValueError, match="full fine-tune"):
        bank.add("full", train_run("full", ["adapter=full"]))
    with pytest.raises(KeyError, match="adapters.ko="):
        bank.set_adapter("ko")


def test_storage_report(lora_run, locper_run):
    rep = storage_report({"a": lora_run, "b": locper_run})
    assert rep["n"] == 2 and rep["n_full_models_mb"] == pytest.approx(2 * rep["full_model_mb"])
    assert rep["backbone_plus_adapters_mb"] == pytest.approx(rep["full_model_mb"] + sum(rep["adapters_mb"].values()))
    assert rep["saving_factor"] > 1


def test_bank_decodes_as_each_run_does_and_refuses_a_crf_run_naming_the_fix(lora_run, train_run):
    """The bank's tags are the run's own predict_step's (the run's module.decoding, Viterbi by default: no
    I-X after O); a CRF run's transitions are not in the shared model, so the bank refuses it, and the
    command it names (the run on its own) predicts with them."""
    bank = AdapterBank.from_runs({"ja": lora_run})
    assert bank.predict_texts(TEXTS, "ja") == load_predictor(lora_run).predict_texts(TEXTS)
    crf_run = train_run("crf", ["adapter=lora", "module.crf=true"])
    with pytest.raises(ValueError, match=r"CRF head .*\(python -m localize.predict run=") as e:
        AdapterBank.from_runs({"ja": crf_run})
    assert "\n" not in str(e.value)
    assert [line["text"] for line in load_predictor(crf_run).predict_texts(TEXTS)] == TEXTS
