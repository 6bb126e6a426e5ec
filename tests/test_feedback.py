"""Feedback round trip (README "Feedback round trip"): localize.predict output, corrected by hand, is read
back as training data (``data.corrections=``): corrections win over the examples with the same text,
new texts join train, and a retrained run and its evaluation finish — on the tiny model."""
from __future__ import annotations

import json

import pytest

from localize.config import compose
from localize.data.entities import entity_spans
from localize.data.errors import DataError
from localize.data.ner_formats import read_annotations
from localize.utils import build

from conftest import FAST, NER


def _char_entities(tokens: list[str], tags: list[str]) -> list[tuple[int, int, str]]:
    """Entities of a no-space sentence as character offsets into the joined text."""
    starts, at = [], 0
    for w in tokens:
        starts.append(at)
        at += len(w)
    return [(starts[s], starts[e - 1] + len(tokens[e - 1]), k) for s, e, k in entity_spans(tags)]


@pytest.fixture(scope="module")
def corrected(train_run, tmp_path_factory):
    """Predictions of the tiny run on 8 test sentences and one new text, then "corrected": each test
    sentence's entities set to its gold ones, the new text given one entity by hand."""
    from localize.predict import predict

    run = train_run("full", [])
    root = tmp_path_factory.mktemp("feedback")
    test = build(compose(FAST + NER, out_dir=str(root)).data).splits["test"]
    picked = [ex for ex in test if entity_spans(ex["tags"]) and all(w.strip() for w in ex["tokens"])][:8]
    texts = ["".join(ex["tokens"]) for ex in picked] + ["新しい店舗は札幌にあります"]
    (root / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    predict(compose([f"run={run}", f"input={root / 'texts.txt'}", f"output={root / 'pred.jsonl'}"], "predict"))
    records = [json.loads(x) for x in (root / "pred.jsonl").read_text(encoding="utf-8").splitlines()]
    for rec, ex in zip(records, picked):
        rec["entities"] = [{"text": rec["text"][s:e], "start": s, "end": e, "label": k}
                           for s, e, k in _char_entities(ex["tokens"], ex["tags"])]
    records[-1]["entities"] = [{"text": "札幌", "start": 6, "end": 8, "label": "LOCATION"}]
    (root / "corrections.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                                            encoding="utf-8")
    return run, root, picked


def test_corrected_predictions_read_back_as_the_corrected_entities(corrected):
    _, root, picked = corrected
    back = read_annotations(root / "corrections.jsonl")
    for ex, gold in zip(back, picked):
        assert _char_entities(ex["tokens"], ex["tags"]) == _char_entities(gold["tokens"], gold["tags"])
        assert "".join(ex["tokens"]) == "".join(gold["tokens"])
    assert _char_entities(back[-1]["tokens"], back[-1]["tags"]) == [(6, 8, "LOCATION")]


def test_corrections_win_over_the_same_text_and_new_texts_join_train(corrected):
    _, root, picked = corrected
    clean = build(compose(FAST + NER, out_dir=str(root)).data)
    dm = build(compose(FAST + NER + [f"data.corrections={root / 'corrections.jsonl'}"], out_dir=str(root)).data)
    splits = dm.splits
    info = dm.data_info["corrections"]
    assert info["replaced"]["test"] == len(picked) and info["added_to_train"] == 1 and info["read"] == len(picked) + 1
    assert len(dm.splits["test"]) == len(clean.splits["test"]) and len(dm.splits["train"]) == len(clean.splits["train"]) + 1
    by_id = {ex["id"]: ex for ex in dm.splits["test"]}
    for gold in picked:  # the corrected example keeps its place (id) and has the corrected entities
        got = by_id[gold["id"]]
        assert got["corrected_from"] and _char_entities(got["tokens"], got["tags"]) == _char_entities(gold["tokens"], gold["tags"])
    assert "".join(dm.splits["train"][-1]["tokens"]) == "新しい店舗は札幌にあります"


def test_predict_correct_retrain_evaluate(corrected, tmp_path):
    from localize.evaluate import evaluate
    from localize.train import train

    _, root, _ = corrected
    rec = train(compose(FAST + NER + [f"data.corrections={root / 'corrections.jsonl'}"], out_dir=str(tmp_path / "run")))
    assert rec["status"] == "finished" and rec["data"]["corrections"]["added_to_train"] == 1
    ev = evaluate(compose([f"run={tmp_path / 'run'}", "logger=none", "trainer=cpu"], "evaluate",
                          out_dir=str(tmp_path / "eval")))
    assert ev["job_type"] == "evaluate" and "test/f1" in ev["metrics"]


def test_a_correction_with_a_new_label_names_the_fix(corrected, tmp_path):
    _, root, _ = corrected
    bad = tmp_path / "bad.jsonl"
    rec = json.loads((root / "corrections.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    rec["entities"][0]["label"] = "CITY"
    bad.write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="CITY.*Fix:"):
        build(compose(FAST + NER + [f"data.corrections={bad}"], out_dir=str(tmp_path)).data).splits


def test_an_entity_text_that_does_not_match_its_offsets_is_refused(corrected, tmp_path):
    _, root, _ = corrected
    rec = json.loads((root / "corrections.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    rec["entities"][0]["start"] = 5  # moved the offsets without the text
    (tmp_path / "c.jsonl").write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="covers .* but the export names '札幌'"):
        read_annotations(tmp_path / "c.jsonl")
