"""localize.export: merged HF folder (+ int8) that loads without localize."""
from __future__ import annotations

import json
import os

import pytest
import torch

from conftest import TEXTS, compose_cfg
from localize.export import export, load_quantized
from localize.runs import load_predictor


def test_export_merged_folder_matches_peft_model(lora_run, tmp_path):
    from transformers import AutoModelForTokenClassification, pipeline

    out = tmp_path / "hf"
    report = export(lora_run, str(out))
    assert report["merged"] and report["max_abs_logit_diff"] < 1e-4
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(out))
    assert not any(f.startswith("adapter_") for f in os.listdir(out))

    peft_module = load_predictor(lora_run)
    plain = AutoModelForTokenClassification.from_pretrained(out).eval()
    assert plain.config.id2label == dict(enumerate(peft_module.label_names))
    enc = peft_module.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        want = peft_module.module.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        got = plain(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)

    tagger = pipeline("token-classification", model=str(out), device="cpu")
    text = TEXTS[0]
    found = tagger(text)
    ids = peft_module.tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        argmax = peft_module.module.model(**{k: ids[k] for k in ("input_ids", "attention_mask")}).logits.argmax(-1)[0]
    expected = {(i, peft_module.label_names[int(k)]) for i, k in enumerate(argmax.tolist())
                if peft_module.label_names[int(k)] != "O" and 0 < i < len(argmax) - 1}
    assert {(f["index"], f["entity"]) for f in found} == expected


def test_export_refuses_prefix_and_existing_out(train_run, lora_run, tmp_path):
    prefix = train_run("prefix", ["adapter=prefix"])
    with pytest.raises(ValueError, match="cannot be merged.*adapter=lora"):
        export(prefix, str(tmp_path / "p"))
    (tmp_path / "full_dir").mkdir()
    (tmp_path / "full_dir" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="overwrite=true"):
        export(lora_run, str(tmp_path / "full_dir"))


def test_export_int8_reports_size_latency_metric(train_run, tmp_path):
    # An fp32 run: the export scores its fp32 model in fp32, so the run's own test F1 comes back exactly
    # (a bf16-mixed run's differs in the last digits: tests/test_hardware.py exports one).
    lora_run = train_run("lora_fp32", ["adapter=lora", "trainer.precision=32-true"])
    report = export(lora_run, str(tmp_path / "q"), quantize="int8")
    q = report["int8"]
    assert q["int8_mb"] < q["fp32_mb"] and q["fp32_ms_per_batch"] > 0 and q["int8_ms_per_batch"] > 0
    assert set(q["metrics"]["change"]) >= {"test/f1", "test/loss"}
    assert q["metrics"]["fp32"]["test/f1"] == pytest.approx(
        json.loads(open(os.path.join(lora_run, "run.json")).read())["metrics"]["test/f1"], abs=1e-6)
    model = load_quantized(str(tmp_path / "q"))
    enc = load_predictor(lora_run).tokenizer(TEXTS[:1], return_tensors="pt")
    assert model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.shape[-1] == 17


def test_export_config_composes():
    cfg = compose_cfg(["run=/x", "out=/y", "quantize=int8"], config_name="export")
    assert (cfg.run, cfg.out, cfg.quantize) == ("/x", "/y", "int8")
