"""localize.predict: raw text → the run's datamodule encoding → predict_step → JSON lines / .po."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import FAST, ROOT, TEXTS, compose_cfg
from localize.predict import predict
from localize.runs import load_predictor
from localize.train import train


def test_predict_text_output(lora_run):
    module = load_predictor(lora_run)
    out = module.predict_texts(TEXTS)
    assert [o["text"] for o in out] == TEXTS
    first = out[0]
    assert first["segmenter"] == "fugashi"  # MeCab + IPAdic: the hironsan corpus's own words
    assert [t["text"] for t in first["tokens"]][:8] == ["2005", "年", "7", "月", "14", "日", "、", "南アフリカ"]
    for o in out:
        for t in o["tokens"]:
            assert o["text"][t["start"]:t["end"]] == t["text"]
        for e in o["entities"]:
            assert o["text"][e["start"]:e["end"]] == e["text"] and e["label"] in {l[2:] for l in module.label_names}
    assert out[2] == {"text": "", "tokens": [], "entities": [], "segmenter": "fugashi", "truncated_words": 0}


def test_char_fallback_when_segmenter_missing(lora_run, monkeypatch):
    from localize.data import segment

    monkeypatch.setitem(segment.SEGMENTERS, "fugashi", segment._external(lambda: None, "fugashi", "pip install"))
    with pytest.warns(UserWarning, match="characters"):
        out = load_predictor(lora_run).predict_texts(["東京都に住む"])
    assert out[0]["segmenter"] == "char" and [t["text"] for t in out[0]["tokens"]] == list("東京都に住む")


def test_predict_with_bank_config(lora_run, locper_run, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    dst = tmp_path / "out.jsonl"
    cfg = compose_cfg(["+locale=ja", f"adapters.ja={locper_run}", f"+adapters.xx={lora_run}", f"input={src}",
                       f"output={dst}"], config_name="predict")
    assert predict(cfg) == len(TEXTS)
    lines = [json.loads(l) for l in dst.read_text(encoding="utf-8").splitlines()]
    assert [l["text"] for l in lines] == TEXTS
    assert lines == load_predictor(locper_run).predict_texts(TEXTS)


def test_predict_cli_writes_clean_jsonl_to_stdout(lora_run):
    proc = subprocess.run([sys.executable, "-m", "localize.predict", "+locale=ja", f"adapters.ja={lora_run}"],
                          input="東京都に住む山田太郎\nＡＢＣ株式会社\n", capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "WANDB_MODE": "disabled"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(l) for l in proc.stdout.splitlines()]  # nothing but JSON on stdout
    assert [l["text"] for l in lines] == ["東京都に住む山田太郎", "ＡＢＣ株式会社"]


def test_predict_po_needs_output(lora_run, tmp_path):
    po = tmp_path / "a.po"
    po.write_text('msgid "Open"\nmsgstr ""\n')
    cfg = compose_cfg([f"run={lora_run}", f"input={po}"], config_name="predict")
    with pytest.raises((ValueError, ImportError), match="output=|translation"):
        predict(cfg)


def test_predict_fills_po_with_a_translation_run(runs_root, tmp_path):
    """predict.py stays generic: a translation run's predict_texts fills a catalog via fill_po."""
    mt = [o for o in FAST if not o.startswith("model=")] + [
        "+locale=ja", "task=translation", "model=tiny_causal", f"data.path={ROOT}/tests/fixtures/mt/small.po",
        "data.split_sizes=[null,6,6]", "module.generation.max_new_tokens=6", "adapter=lora"]
    run = runs_root / "mt"
    if not (run / "run.json").exists():
        train(compose_cfg(mt, run))
    out = tmp_path / "todo.ja.po"
    cfg = compose_cfg([f"run={run}", f"input={ROOT}/tests/fixtures/mt/todo.po", f"output={out}", "batch_size=4"],
                      config_name="predict")
    counts = predict(cfg)
    assert counts["filled"] + counts["empty"] == 5 and counts["kept"] == 1 and out.exists()  # todo.po: 5 to do, 1 done


def test_predict_decoding_key_overrides_the_runs_decoder(lora_run, tmp_path):
    """``decoding=argmax`` (what export.json names to match an HF pipeline) tags each token on its own;
    the default decodes as the run was scored (Viterbi: only valid IOB2). A random tiny model emits
    I-X after O freely, so the two differ on the test texts."""
    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    tags = {}
    for decoding in ("argmax", None):
        dst = tmp_path / f"{decoding}.jsonl"
        cfg = compose_cfg([f"run={lora_run}", f"input={src}", f"output={dst}"]
                          + ([f"decoding={decoding}"] if decoding else []), config_name="predict")
        predict(cfg)
        tags[decoding] = [[t["tag"] for t in json.loads(l)["tokens"]] for l in dst.read_text(encoding="utf-8").splitlines()]
    argmax = load_predictor(lora_run, extra_overrides=["module.decoding=argmax"]).predict_texts(TEXTS)
    assert tags["argmax"] == [[t["tag"] for t in o["tokens"]] for o in argmax]
    assert tags["argmax"] != tags[None]
    assert all(not (t.startswith("I-") and p in ("O", None)) for seq in tags[None] for p, t in zip([None] + seq, seq))


def test_predict_config_composes_with_a_bank():
    cfg = compose_cfg(["+locale=ja", "adapters.ja=/x"], config_name="predict")
    assert cfg.adapters.ja == "/x" and cfg.locale.code == "ja" and cfg.adapters.ko is None


# ----------------------------------------------------------------------------- confidence scores
def test_ner_word_scores_are_label_probabilities_of_the_predicted_tag(lora_run):
    """predict's word scores are what ``label_probabilities`` (the seam select/audit use) gives the
    predicted tag at that word; an entity's score is the mean of its words'."""
    import torch

    pred = load_predictor(lora_run)
    texts = TEXTS[:2]
    out = pred.predict_texts(texts)
    batch = pred.datamodule._collator()(pred.datamodule.encode_texts(texts))
    with torch.no_grad():
        probs = pred.module.label_probabilities(batch)
    labels = list(pred.label_names)
    for o, p in zip(out, probs):
        assert len(o["tokens"]) == len(p["words"]) > 0 and o["truncated_words"] == 0
        for k, tok in enumerate(o["tokens"]):
            assert tok["score"] == pytest.approx(float(p["probs"][k][labels.index(tok["tag"])]), abs=1e-6)
            assert 0 < tok["score"] <= 1


def test_ner_entity_score_is_the_mean_of_its_words():
    import torch

    from localize.data.ner import NerDataModule

    labels = ["O", "B-LOC", "I-LOC", "B-PER"]
    dm = NerDataModule(tokenizer="unused", labels=labels)
    text, spans = "aa bb cc dd", [(0, 2), (3, 5), (6, 8), (9, 11)]
    pred = {"tags": torch.tensor([1, 2, 0, 3, -100]), "scores": torch.tensor([0.9, 0.5, 0.8, 0.4, float("nan")])}
    out = dm.decode_outputs([text], [{"spans": spans, "segmenter": "whitespace"}], [pred])[0]
    assert [(e["text"], e["label"]) for e in out["entities"]] == [("aa bb", "LOC"), ("dd", "PER")]
    assert [e["score"] for e in out["entities"]] == pytest.approx([0.7, 0.4])
    assert [t["score"] for t in out["tokens"]] == pytest.approx([0.9, 0.5, 0.8, 0.4])


def test_classification_scores_every_label_and_the_top_one():
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from localize.data.classification import ClassificationDataModule
    from localize.models.seq_cls import predict_probabilities

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32, num_labels=3)).eval()
    batch = {"input_ids": torch.tensor([[2, 5, 7], [2, 9, 0]]), "attention_mask": torch.tensor([[1, 1, 1], [1, 1, 0]])}
    with torch.no_grad():
        probs = predict_probabilities(model, batch)
        want = model(**batch).logits.softmax(-1)
    torch.testing.assert_close(probs, want)
    dm = ClassificationDataModule(tokenizer="unused", labels=["neg", "neu", "pos"])
    out = dm.decode_outputs(["a", "b"], [{}, {}], [torch.tensor([0.2, 0.1, 0.7]), torch.tensor([0.5, 0.3, 0.2])])
    assert [(o["label"], o["score"]) for o in out] == [("pos", pytest.approx(0.7)), ("neg", pytest.approx(0.5))]
    assert out[0]["probabilities"] == pytest.approx({"neg": 0.2, "neu": 0.1, "pos": 0.7})


# ----------------------------------------------------------------------------- adapters.<x>=<full FT run>
def test_adapters_key_serves_a_full_fine_tune_alone(train_run, tmp_path, caplog):
    import logging

    full = train_run("full", ["adapter=full"])
    src, dst = tmp_path / "in.txt", tmp_path / "out.jsonl"
    src.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    cfg = compose_cfg(["+locale=ja", f"adapters.ja={full}", f"input={src}", f"output={dst}"], config_name="predict")
    with caplog.at_level(logging.INFO, logger="localize.predict"):
        assert predict(cfg) == len(TEXTS)
    assert [r.getMessage() for r in caplog.records if "full fine-tune" in r.getMessage()] == [
        "adapters.ja is a full fine-tune: served on its own, not on a shared backbone"]
    lines = [json.loads(l) for l in dst.read_text(encoding="utf-8").splitlines()]
    assert lines == load_predictor(full).predict_texts(TEXTS)


def test_full_fine_tune_among_adapters_names_the_fix(train_run, lora_run):
    full = train_run("full", ["adapter=full"])
    cfg = compose_cfg(["+locale=ja", f"adapters.ja={lora_run}", f"+adapters.xx={full}"], config_name="predict")
    with pytest.raises(ValueError, match=rf"adapters.xx is a full fine-tune .*run={full} "):
        predict(cfg)
