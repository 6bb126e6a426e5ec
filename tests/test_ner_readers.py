"""NER readers: exact tokens/tags from fixtures, and one clear DataError (file:line + fix) per bad input."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from localize.data.errors import DataError
from localize.data.ner_readers import (
    HIRONSAN_LABEL_MAP, HIRONSAN_SIZE, READERS, label_list_from, load_ner, read_conll, read_hironsan,
    read_span_json, repair_iob2, split_examples, to_hf_datasets, validate_tags,
)

FIX = Path(__file__).parent / "fixtures" / "ner"


def test_read_conll_exact():
    ex = read_conll(FIX / "small.conll")
    assert [e["tokens"] for e in ex] == [["EU", "rejects", "German", "call", "."], ["Peter", "Blackburn"],
                                         ["in", "Tokyo"]]
    assert [e["tags"] for e in ex] == [["B-ORG", "O", "B-MISC", "O", "O"], ["B-PER", "I-PER"], ["O", "I-LOC"]]
    # ids point at the sentence's first line, skipping -DOCSTART-
    assert [e["id"] for e in ex] == ["small.conll:3", "small.conll:9", "small.conll:12"]


def test_read_conll_wrong_tag_column_names_line():
    with pytest.raises(DataError, match=r"small\.conll:3: tag 'NNP' is not IOB.*Fix: "):
        read_conll(FIX / "small.conll", tag_col=1)


def test_read_conll_missing_column():
    with pytest.raises(DataError, match=r"broken\.conll:3: expected at least 2 columns.*'German'.*Fix: add the"):
        read_conll(FIX / "broken.conll")


def test_read_conll_not_utf8():
    with pytest.raises(DataError) as err:
        read_conll(FIX / "bad_encoding.conll")
    msg = str(err.value)
    assert "bad_encoding.conll:2" in msg and "byte offset 10" in msg and "re-save the file as UTF-8" in msg


def test_missing_file_names_path_and_fix(tmp_path):
    with pytest.raises(DataError, match=r"nope\.conll: file not found.*Fix: check data\.path"):
        read_conll(tmp_path / "nope.conll")
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found"):
        load_ner(path=tmp_path / "nope.jsonl")


def test_read_span_json_char_level_ja():
    ex = read_span_json(FIX / "ja_spans.jsonl", char_level=True)
    assert ex[0] == {"id": "ja_spans.jsonl:1", "tokens": list("東京都に行く"),
                     "tags": ["B-LOC", "I-LOC", "I-LOC", "O", "O", "O"]}
    # whitespace is not a token; spans in dict form under "spans"; record id kept
    assert ex[1] == {"id": "ja-2", "tokens": list("山田太郎は大阪へ"),
                     "tags": ["B-PER", "I-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]}


def test_read_span_json_word_level_en():
    ex = read_span_json(FIX / "en_spans.jsonl", char_level=False)
    assert ex[0]["tokens"] == ["Angela", "Merkel", "visited", "Paris."]
    assert ex[0]["tags"] == ["B-PER", "I-PER", "O", "B-LOC"]  # unsorted doccano "label" triples
    # a word overlapping an entity is tagged (Label Studio "labels": [...] form)
    assert ex[1] == {"id": "en_spans.jsonl:2", "tokens": ["New", "York-based", "firms"],
                     "tags": ["B-LOC", "I-LOC", "O"]}


def test_read_span_json_overlap_names_line_and_span():
    with pytest.raises(DataError, match=r"overlap\.json:3: span \[2, 4, 'ORG'\] overlaps span \[0, 3, 'LOC'\].*Fix"):
        read_span_json(FIX / "overlap.json", char_level=True)


def test_read_span_json_out_of_range():
    with pytest.raises(DataError, match=r"out_of_range\.jsonl:2: span \[1, 10, 'LOC'\].*outside the text.*Fix"):
        read_span_json(FIX / "out_of_range.jsonl")


@pytest.mark.parametrize("record, problem", [
    ('{"text": "abc", "entities": [[2, 1, "X"]]}', r"span \[2, 1, 'X'\]"),
    ('{"text": "abc", "entities": [[1, 1, "X"]]}', r"span \[1, 1, 'X'\]"),
    ('{"text": "a  b", "entities": [[1, 3, "X"]]}', r"span \[1, 3, 'X'\]"),  # whitespace only
    ('{"text": "   ", "entities": []}', "empty 'text'"),
    ('{"entities": []}', "empty 'text'"),
    ('{"text": "abc", "entities": [[0, 1]]}', r"cannot read span \[0, 1\]"),
    ('{"text": "abc", ', "invalid JSON"),
])
def test_read_span_json_bad_records(tmp_path, record, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "entities": []}\n' + record + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"bad\.jsonl:2: .*{problem}.*Fix: "):
        read_span_json(path)


def test_read_span_json_not_a_list(tmp_path):
    path = tmp_path / "obj.json"
    path.write_text('\n{"text": "abc"}', encoding="utf-8")
    with pytest.raises(DataError, match=r"obj\.json:2: invalid JSON \(expected a JSON list"):
        read_span_json(path)


def test_repair_iob2():
    assert repair_iob2(["I-A", "I-A", "O", "I-B", "B-B", "I-B", "I-A"]) == (
        ["B-A", "I-A", "O", "B-B", "B-B", "I-B", "B-A"], 3)
    assert repair_iob2(["B-A", "I-A"]) == (["B-A", "I-A"], 0)


def test_hironsan(caplog):
    with caplog.at_level(logging.DEBUG, logger="localize.data.ner_readers"):  # the datamodule warns once
        ex = read_hironsan()
    assert len(ex) == HIRONSAN_SIZE == 500
    assert "hironsan: repaired 2 IOB2 tags" in caplog.text
    assert ex[0]["tokens"][:4] == ["2005", "年", "7", "月"]
    assert ex[0]["tags"][:7] == ["B-DATE"] + ["I-DATE"] * 5 + ["O"]
    assert label_list_from(ex) == ["O"] + [f"{p}-{t}" for t in sorted(HIRONSAN_LABEL_MAP.values()) for p in "BI"]
    assert all(repair_iob2(e["tags"])[1] == 0 for e in ex)
    # U+3000 words are kept (inside entities); stripping them would empty the token
    assert sum(t == "\u3000" for e in ex for t in e["tokens"]) == 2
    assert all(t for e in ex for t in e["tokens"])


def test_label_list_and_validate():
    ex = [{"id": "a:1", "tokens": ["x", "y"], "tags": ["B-Z", "I-A"]}, {"id": "a:5", "tokens": ["q"], "tags": ["B-Q"]}]
    assert label_list_from(ex) == ["O", "B-A", "I-A", "B-Q", "I-Q", "B-Z", "I-Z"]
    validate_tags(ex, label_list_from(ex), "a")
    with pytest.raises(DataError) as err:
        validate_tags(ex, ["O", "B-Z", "I-Z"], "train.conll")
    msg = str(err.value)
    assert msg.startswith("train.conll: unknown labels: 'B-Q' x1, first in sentence 1 (id a:5); 'I-A' x1")
    assert msg.endswith("Fix: list every label of the data in data.labels=[O,B-X,I-X,...], or fix or drop those sentences")


def test_split_examples():
    ex = [{"id": str(i)} for i in range(500)]
    a, b = split_examples(ex, (400, 50, 50), seed=42), split_examples(ex, (400, 50, 50), seed=42)
    assert a == b and {k: len(v) for k, v in a.items()} == {"train": 400, "validation": 50, "test": 50}
    ids = [{e["id"] for e in a[k]} for k in a]
    assert len(set.union(*ids)) == 500
    assert split_examples(ex, (400, 50, 50), seed=1)["test"] != a["test"]
    f = split_examples(ex, (0.8, 0.1, 0.1), seed=42)
    assert {k: len(v) for k, v in f.items()} == {"train": 400, "validation": 50, "test": 50}
    with pytest.raises(DataError, match="need 600 examples, only 500"):
        split_examples(ex, (500, 50, 50))
    with pytest.raises(DataError, match="mix counts and fractions"):
        split_examples(ex, (400, 0.1, 0.1))


def test_load_ner_registry(tmp_path):
    assert set(READERS) >= {"hironsan", ".conll", ".iob", ".txt", ".tsv", ".json", ".jsonl"}
    ex = load_ner(path=FIX / "small.conll")
    assert ex[2]["tags"] == ["O", "B-LOC"]  # repaired by default
    assert load_ner(path=FIX / "small.conll", repair=False)[2]["tags"] == ["O", "I-LOC"]
    assert load_ner("conll", FIX / "small.conll", label_map={"MISC": None, "PER": "PERSON"})[0:2] == [
        {"id": "small.conll:3", "tokens": ["EU", "rejects", "German", "call", "."],
         "tags": ["B-ORG", "O", "O", "O", "O"]},
        {"id": "small.conll:9", "tokens": ["Peter", "Blackburn"], "tags": ["B-PERSON", "I-PERSON"]}]
    assert load_ner(path=FIX / "ja_spans.jsonl", char_level=True)[0]["tokens"] == list("東京都に行く")
    assert len(load_ner("hironsan")) == 500
    with pytest.raises(DataError, match=r"unknown labels: 'B-MISC'"):
        load_ner(path=FIX / "small.conll", label_list=["O", "B-ORG", "I-ORG", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n")
    with pytest.raises(DataError, match=r"x\.csv: no NER reader.*Fix: set data\.source to one of"):
        load_ner(path=bad)
    with pytest.raises(DataError, match="needs a file"):
        load_ner("jsonl")


def test_to_hf_datasets():
    splits = split_examples(read_conll(FIX / "small.conll"), (1, 1, 1), seed=0)
    dd = to_hf_datasets(splits)
    assert set(dd) == {"train", "validation", "test"}
    assert dd["train"].column_names == ["id", "tokens", "tags"] and len(dd["test"]) == 1
