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


# ----------------------------------------------------------------------------- portable exports
def _exported_text(folder) -> dict[str, str]:
    """Every text file an export wrote except ``export.json`` (localize's own record of local paths)."""
    return {f: open(os.path.join(folder, f), encoding="utf-8").read() for f in os.listdir(folder)
            if f.endswith((".json", ".md")) and f != "export.json"}


def test_export_card_and_tokenizer_config_are_portable(lora_run, tmp_path):
    from localize.model_card import MACHINE_KEYS
    from localize.models.backbones import resolve_path
    from localize.model_card import package_licence

    out = tmp_path / "hf"
    report = export(lora_run, str(out))
    record = json.loads(open(os.path.join(lora_run, "run.json")).read())
    card = (out / "README.md").read_text(encoding="utf-8")
    f1, ci = record["metrics"]["test/f1"], record["metrics_ci"]["test/f1"]
    assert f"| test/f1 | {f1:.4f} | [{ci['low']:.4f}, {ci['high']:.4f}] |" in card
    assert "test/loss" not in card
    assert "hironsan (packaged corpus" in card and f"data licence: {package_licence('hironsancorpus')}" in card
    assert package_licence("hironsancorpus") == "MIT"
    assert 'aggregation_strategy="simple"' in card and 'unicodedata.normalize("NFKC", text)' in card
    assert report["aggregation_strategy"] == "simple" and report["card"] == "README.md"
    tok_config = json.loads((out / "tokenizer_config.json").read_text())
    assert not set(MACHINE_KEYS) & set(tok_config) and tok_config["tokenizer_class"]
    local = [lora_run, resolve_path("minilm"), os.path.expanduser("~")]
    for name, text in _exported_text(out).items():
        assert not [p for p in local if p in text], name


def test_adapter_export_names_public_base_and_loads_with_peft(lora_run, tmp_path):
    import peft

    from localize.runs import build_untrained, read_run

    with pytest.raises(ValueError, match="base_model_id=<org>/<name>"):  # tiny_random has no public id
        export(lora_run, str(tmp_path / "none"), merge=False)
    with pytest.raises(ValueError, match="base_model_id='my model' is not a hub model id"):
        export(lora_run, str(tmp_path / "bad"), merge=False, base_model_id="my model")
    with pytest.raises(ValueError, match="merge='no' is not a boolean"):
        export(lora_run, str(tmp_path / "bad"), merge="no")
    with pytest.raises(ValueError, match="leave out merge=false, or leave out quantize"):
        export(lora_run, str(tmp_path / "bad"), merge=False, base_model_id="org/base", quantize="int8")

    out = tmp_path / "adapter"
    report = export(lora_run, str(out), merge=False, base_model_id="org/tiny-bert")
    assert report["format"] == "adapter" and not report["merged"] and report["max_abs_logit_diff"] == 0.0
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md"} <= set(os.listdir(out))
    assert "model.safetensors" not in os.listdir(out)
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "org/tiny-bert"
    card = (out / "README.md").read_text(encoding="utf-8")
    assert 'from_pretrained("org/tiny-bert"' in card and "PeftModel.from_pretrained(base, folder)" in card

    # What the card tells a user to do, with the base built here instead of downloaded.
    info = read_run(lora_run)
    net = peft.PeftModel.from_pretrained(build_untrained(info, adapter=False).model, str(out)).eval()
    want = load_predictor(lora_run)
    enc = want.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        got = net(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        ref = want.module.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)


def test_adapter_export_refuses_full_finetune(train_run, tmp_path):
    with pytest.raises(ValueError, match="full fine-tune.*leave out merge=false"):
        export(train_run("full", ["adapter=full"]), str(tmp_path / "a"), merge=False, base_model_id="org/base")


def test_embedded_bases_have_public_ids(e5_path):
    from localize.model_card import PUBLIC_BASES, base_model
    from localize.models.backbones import EMBEDDED

    assert set(PUBLIC_BASES) == set(EMBEDDED)  # a new embedded model needs its public id here
    base = base_model(compose_cfg(["+locale=ja", "task=ner", "model=e5_small"]))
    assert (base.hub_id, base.licence, base.local_path) == ("intfloat/multilingual-e5-small", "MIT", str(e5_path))
    hub = base_model(compose_cfg(["+locale=ja", "task=ner", "model=xlmr_base"]))
    assert (hub.hub_id, hub.local_path) == ("FacebookAI/xlm-roberta-base", None)
    assert base_model(compose_cfg(["task=ner", "model=e5_small"]), "org/mine").hub_id == "org/mine"


def test_export_config_takes_merge_and_base_id():
    cfg = compose_cfg(["run=/x", "out=/y", "merge=false", "base_model_id=org/name"], config_name="export")
    assert (cfg.merge, cfg.base_model_id) == (False, "org/name")
    assert compose_cfg(["run=/x", "out=/y"], config_name="export").merge is True
