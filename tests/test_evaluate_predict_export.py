"""Evaluate / predict / export / adapter bank on tiny runs trained here (each run a few seconds)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import CONF, FAST, ROOT, compose_cfg
from localize.adapters import bank as bank_mod
from localize.adapters.bank import AdapterBank, load_run, read_run, storage_report
from localize.evaluate import evaluate
from localize.export import export, load_quantized
from localize.predict import predict
from localize.train import train

NER = ["+locale=ja", "task=ner"]
TEXTS = ["2005年7月14日、南アフリカ共和国ダーバンで開催中の第29回世界遺産会議で", "東京都に住む山田太郎", "", "ＡＢＣ株式会社"]


def _write_conll(path, keep: set[str]) -> None:
    """hironsan with only the ``keep`` entity types (the rest tagged O): another label set."""
    from localize.data.ner_readers import read_hironsan

    lines = []
    for ex in read_hironsan():
        if not all(w.strip() for w in ex["tokens"]):  # CoNLL cannot hold the corpus's U+3000 words
            continue
        lines += [f"{w}\t{t if t == 'O' or t[2:] in keep else 'O'}" for w, t in zip(ex["tokens"], ex["tags"])] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


def _train(root, name: str, overrides: list[str]) -> str:
    out = root / name
    if not (out / "run.json").exists():
        train(compose_cfg(FAST + NER + overrides, out))
    return str(out)


@pytest.fixture(scope="module")
def lora_run(root):
    return _train(root, "lora", ["adapter=lora"])


@pytest.fixture(scope="module")
def locper_run(root):
    """Same base (same seed: tiny_random's weights are drawn from it), another label set."""
    conll = root / "locper.conll"
    _write_conll(conll, {"LOCATION", "PERSON"})
    return _train(root, "locper", ["adapter=lora", f"data.path={conll}", "data.split_sizes=[0.8,0.1,0.1]"])


def _eval_cfg(run: str, out, overrides: list[str] = ()):
    return compose_cfg([f"run={run}", "trainer=cpu", "logger=none", *overrides], out, config_name="evaluate")


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_lora_run_reproduces_its_test_scores(lora_run, tmp_path):
    recorded = json.loads(open(os.path.join(lora_run, "run.json")).read())
    rec = evaluate(_eval_cfg(lora_run, tmp_path / "ev"))
    assert rec["metrics"]["test/f1"] == recorded["metrics"]["test/f1"]
    assert rec["metrics"]["test/loss"] == pytest.approx(recorded["metrics"]["test/loss"], abs=1e-6)
    on_disk = json.loads((tmp_path / "ev" / "run.json").read_text())
    assert on_disk["job_type"] == "evaluate" and on_disk["evaluated_run"] == os.path.abspath(lora_run)
    assert on_disk["locale"] == "ja" and on_disk["train_locale"] == "ja" and on_disk["adapter"] == "lora"
    assert on_disk["data"]["sizes"]["test"] == recorded["data"]["sizes"]["test"]


@pytest.mark.parametrize("adapter", ["full", "full_frozen_emb"])
def test_evaluate_full_fine_tune_runs(root, adapter, tmp_path):
    run = _train(root, adapter, [f"adapter={adapter}"])
    recorded = json.loads(open(os.path.join(run, "run.json")).read())
    rec = evaluate(_eval_cfg(run, tmp_path / "ev"))
    assert rec["metrics"]["test/loss"] == pytest.approx(recorded["metrics"]["test/loss"], abs=1e-6)
    assert rec["metrics"]["test/f1"] == recorded["metrics"]["test/f1"]


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


def test_run_dir_errors_name_the_fix(lora_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_run(tmp_path / "nowhere")
    (tmp_path / "crashed" / "checkpoints").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no run.json.*localize.train"):
        evaluate(_eval_cfg(str(tmp_path / "crashed"), tmp_path / "ev"))
    with pytest.raises(FileNotFoundError, match="found one in"):
        read_run(os.path.dirname(lora_run))  # the parent of a run dir

    broken = tmp_path / "no_model"
    shutil.copytree(lora_run, broken)
    shutil.rmtree(broken / "model")
    with pytest.raises(FileNotFoundError, match="holds no saved model.*ckpt_path="):
        load_run(str(broken))

    corrupt = tmp_path / "corrupt"
    shutil.copytree(lora_run, corrupt)
    weights = corrupt / "model" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt"):
        load_run(str(corrupt))

    with pytest.raises(FileNotFoundError, match="ckpt_path="):
        evaluate(_eval_cfg(lora_run, tmp_path / "ev", ["ckpt_path=/nonexistent/best.ckpt"]))

    bad_record = tmp_path / "bad_record"
    shutil.copytree(lora_run, bad_record)
    (bad_record / "run.json").write_text('{"run_name": ')
    with pytest.raises(ValueError, match="unreadable"):
        read_run(str(bad_record))


def test_evaluate_lightning_checkpoint(lora_run, tmp_path):
    recorded = json.loads(open(os.path.join(lora_run, "run.json")).read())
    best = os.path.join(lora_run, "checkpoints", "best.ckpt")
    rec = evaluate(_eval_cfg(lora_run, tmp_path / "ev", [f"ckpt_path={best}"]))
    assert rec["metrics"]["test/loss"] == pytest.approx(recorded["metrics"]["test/loss"], abs=1e-6)


def test_evaluate_refuses_another_base_model(lora_run, tmp_path):
    with pytest.raises(ValueError, match="trained on base model 'tiny_random'.*drop model="):
        evaluate(_eval_cfg(lora_run, tmp_path / "ev", ["model=minilm"]))


# ----------------------------------------------------------------------------- adapter bank
def test_bank_serves_two_label_sets_on_one_backbone(lora_run, locper_run, monkeypatch):
    loads = []
    real = bank_mod.build_backbone
    monkeypatch.setattr(bank_mod, "build_backbone", lambda *a, **k: loads.append(a) or real(*a, **k))
    bank = AdapterBank.from_runs({"all": lora_run, "locper": locper_run})
    assert len(loads) == 1 and bank.backbone_loads == 1
    assert len(bank.adapters["all"].labels) == 17 and len(bank.adapters["locper"].labels) == 5

    alone = {name: load_run(run) for name, run in (("all", lora_run), ("locper", locper_run))}
    enc = alone["all"].tokenizer(TEXTS[:2], padding=True, return_tensors="pt")
    for name in ("all", "locper", "all", "locper"):  # switch back and forth
        bank.set_adapter(name)
        with torch.inference_mode():
            got = bank.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            want = alone[name].model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        torch.testing.assert_close(got, want)
        assert bank.predict_texts(TEXTS, name) == alone[name].predict_texts(TEXTS)
    assert len(loads) == 1  # switching never reloads the backbone
    tags = {t["tag"] for out in bank.predict_texts(TEXTS, "locper") for t in out["tokens"]}
    assert tags <= set(bank.adapters["locper"].labels)


def test_bank_refuses_other_base_and_full_runs(lora_run, root, tmp_path):
    other = tmp_path / "other_seed"  # tiny_random's weights come from the seed: another backbone
    shutil.copytree(lora_run, other)
    record = json.loads((other / "run.json").read_text())
    record["config"]["seed"] = 7
    (other / "run.json").write_text(json.dumps(record))
    bank = AdapterBank.from_runs({"ja": lora_run})
    with pytest.raises(ValueError, match="different base model"):
        bank.add("other", str(other))
    with pytest.raises(ValueError, match="full fine-tune"):
        bank.add("full", _train(root, "full", ["adapter=full"]))
    with pytest.raises(KeyError, match="adapters.ko="):
        bank.set_adapter("ko")


def test_storage_report(lora_run, locper_run):
    rep = storage_report({"a": lora_run, "b": locper_run})
    assert rep["n"] == 2 and rep["n_full_models_mb"] == pytest.approx(2 * rep["full_model_mb"])
    assert rep["backbone_plus_adapters_mb"] == pytest.approx(rep["full_model_mb"] + sum(rep["adapters_mb"].values()))
    assert rep["saving_factor"] > 1


# ----------------------------------------------------------------------------- predict
def test_predict_text_output(lora_run):
    module = load_run(lora_run)
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
        out = load_run(lora_run).predict_texts(["東京都に住む"])
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
    assert lines == load_run(locper_run).predict_texts(TEXTS)


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


def test_predict_fills_po_with_a_translation_run(root, tmp_path):
    """predict.py stays generic: a translation run's predict_texts fills a catalog via fill_po."""
    mt = [o for o in FAST if not o.startswith("model=")] + [
        "+locale=ja", "task=translation", "model=tiny_causal", f"data.path={ROOT}/tests/fixtures/mt/small.po",
        "data.split_sizes=[null,6,6]", "module.generation.max_new_tokens=6", "adapter=lora"]
    run = root / "mt"
    if not (run / "run.json").exists():
        train(compose_cfg(mt, run))
    out = tmp_path / "todo.ja.po"
    cfg = compose_cfg([f"run={run}", f"input={ROOT}/tests/fixtures/mt/todo.po", f"output={out}", "batch_size=4"],
                      config_name="predict")
    counts = predict(cfg)
    assert counts["filled"] > 0 and out.exists()


# ----------------------------------------------------------------------------- export
def test_export_merged_folder_matches_peft_model(lora_run, tmp_path):
    from transformers import AutoModelForTokenClassification, pipeline

    out = tmp_path / "hf"
    report = export(lora_run, str(out))
    assert report["merged"] and report["max_abs_logit_diff"] < 1e-4
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(out))
    assert not any(f.startswith("adapter_") for f in os.listdir(out))

    peft_module = load_run(lora_run)
    plain = AutoModelForTokenClassification.from_pretrained(out).eval()
    assert plain.config.id2label == dict(enumerate(peft_module.label_names))
    enc = peft_module.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        want = peft_module.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        got = plain(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)

    tagger = pipeline("token-classification", model=str(out), device="cpu")
    text = TEXTS[0]
    found = tagger(text)
    ids = peft_module.tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        argmax = peft_module.model(**{k: ids[k] for k in ("input_ids", "attention_mask")}).logits.argmax(-1)[0]
    expected = {(i, peft_module.label_names[int(k)]) for i, k in enumerate(argmax.tolist())
                if peft_module.label_names[int(k)] != "O" and 0 < i < len(argmax) - 1}
    assert {(f["index"], f["entity"]) for f in found} == expected


def test_export_refuses_prefix_and_existing_out(root, lora_run, tmp_path):
    prefix = _train(root, "prefix", ["adapter=prefix"])
    with pytest.raises(ValueError, match="cannot be merged.*adapter=lora"):
        export(prefix, str(tmp_path / "p"))
    (tmp_path / "full_dir").mkdir()
    (tmp_path / "full_dir" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="overwrite=true"):
        export(lora_run, str(tmp_path / "full_dir"))


def test_export_int8_reports_size_latency_metric(lora_run, tmp_path):
    report = export(lora_run, str(tmp_path / "q"), quantize="int8")
    q = report["int8"]
    assert q["int8_mb"] < q["fp32_mb"] and q["fp32_ms_per_batch"] > 0 and q["int8_ms_per_batch"] > 0
    assert set(q["metrics"]["change"]) >= {"test/f1", "test/loss"}
    assert q["metrics"]["fp32"]["test/f1"] == pytest.approx(
        json.loads(open(os.path.join(lora_run, "run.json")).read())["metrics"]["test/f1"], abs=1e-6)
    model = load_quantized(str(tmp_path / "q"))
    enc = load_run(lora_run).tokenizer(TEXTS[:1], return_tensors="pt")
    assert model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.shape[-1] == 17


# ----------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name,overrides", [
    ("evaluate", ["run=/x", "+locale=ko"]), ("predict", ["+locale=ja", "adapters.ja=/x"]),
    ("export", ["run=/x", "out=/y", "quantize=int8"]),
])
def test_entry_point_configs_compose(name, overrides):
    cfg = compose_cfg(overrides, "/tmp/x" if name == "evaluate" else None, config_name=name)
    assert cfg.run == "/x" or cfg.adapters.ja == "/x"
    assert os.path.exists(os.path.join(CONF, f"{name}.yaml"))


# ----------------------------------------------------------------------------- transfer experiment
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
