"""Annotation-tool exports: each format reads to the same IOB2 tags as the same corpus in CoNLL and span
JSON, and each bad input is one DataError line naming the file, the line and the fix."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from hydra.utils import instantiate

from localize.data.errors import DataError
from localize.data.ner import NerDataModule
from localize.data.ner_brat import read_brat
from localize.data.ner_formats import RECORD_FORMATS, check_format, read_annotations
from localize.data.ner_readers import NER, read_conll, read_span_json
from conftest import compose_cfg

FIX = Path(__file__).parent / "fixtures" / "ner" / "formats"
# The same six sentences (four Japanese, the last two English; one without entities) in every format.
FILES = {"doccano": "doccano.jsonl", "label_studio": "label_studio.json", "prodigy": "prodigy.jsonl",
         "entities": "entities.json", "spans": "spans.jsonl", "brat": "brat"}
N_JA = 4


def _pairs(examples):
    return [(ex["tokens"], ex["tags"]) for ex in examples]


@pytest.mark.parametrize("fmt", list(FILES))
def test_each_format_reads_to_the_same_iob2_as_conll_and_span_json(fmt, caplog):
    path = FIX / FILES[fmt]
    with caplog.at_level(logging.INFO, logger="localize.data.ner_formats"):
        chars = NER.read_local(path, char_level=True)  # the registry path: suffix, then the records' shape
    words = NER.read_local(path, char_level=False)
    if fmt != "brat":
        assert f"as {fmt} (told from their shape" in caplog.text
    assert _pairs(chars) == _pairs(read_span_json(FIX / "spans.jsonl", char_level=True))
    assert _pairs(words) == _pairs(read_span_json(FIX / "spans.jsonl", char_level=False))
    # CoNLL gold: Japanese one character per line, English one word per line.
    gold = _pairs(read_conll(FIX / "corpus.conll", sep="\t"))
    assert _pairs(chars)[:N_JA] == gold[:N_JA] and _pairs(words)[N_JA:] == gold[N_JA:]
    assert gold[2] == (list("2024年4月1日に大阪と京都を訪れた。"),
                       ["B-DATE"] + ["I-DATE"] * 8 + ["O", "B-LOCATION", "I-LOCATION", "O", "B-LOCATION",
                                                     "I-LOCATION"] + ["O"] * 5)
    assert gold[5][1] == ["O", "B-ORGANIZATION", "I-ORGANIZATION", "I-ORGANIZATION", "O", "B-PERSON", "I-PERSON"]


def test_skipped_records_are_counted(caplog):
    with caplog.at_level(logging.WARNING, logger="localize.data.ner_formats"):
        assert len(read_annotations(FIX / "prodigy.jsonl")) == 6
        assert len(read_annotations(FIX / "label_studio.json")) == 6
    assert "1 of 7 records skipped: Prodigy answers 'reject'/'ignore'" in caplog.text
    assert "1 of 7 records skipped: Label Studio tasks without a finished annotation" in caplog.text


def test_brat_one_document_and_split_subfolders(tmp_path):
    ex = read_brat(FIX / "brat" / "doc2_en.ann")
    assert [e["id"] for e in ex] == ["doc2_en.txt:1", "doc2_en.txt:2"]
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
        for f in (FIX / "brat").iterdir():
            (tmp_path / split / f.name).write_bytes(f.read_bytes())
    splits = NER.read_local(tmp_path, char_level=True)
    assert set(splits) == {"train", "test"} and len(splits["test"]) == 6
    mixed = NER.read_local({"train": FIX / "brat", "test": FIX / "brat" / "doc1_ja.ann"}, char_level=True)
    assert mixed["test"][0]["tags"][:4] == [
        "B-PERSON", "I-PERSON", "I-PERSON", "I-PERSON"]


def test_data_format_reaches_the_datamodule_and_forces_a_shape():
    labels = ["O"] + [f"{p}-{t}" for t in ("PERSON", "LOCATION", "ORGANIZATION", "DATE", "PERCENT") for p in "BI"]
    cfg = compose_cfg(["+locale=ja", "task=ner", f"data.path={FIX / 'doccano.jsonl'}", "data.format=doccano",
                       "data.split_sizes=[4,1,1]", f"data.labels=[{','.join(labels)}]"])
    dm = instantiate(cfg.data, tokenizer="unused")
    assert dm.format == "doccano" and dm.char_level  # ja: no spaces, so characters
    splits = dm._load_splits()
    assert sum(map(len, splits.values())) == 6
    with pytest.raises(DataError, match=r"doccano\.jsonl:1: record is doccano, not label_studio .*Fix: set "
                                        r"data\.format=doccano"):
        NerDataModule(tokenizer="unused", path=str(FIX / "doccano.jsonl"), format="label_studio")._load_splits()
    with pytest.raises(DataError, match=r"data\.format=conll but this is a \.json file"):
        read_annotations(FIX / "entities.json", format="conll")
    with pytest.raises(DataError, match=r"data\.format=prodigy but this is brat standoff"):
        NER.read_local(FIX / "brat", format="prodigy")


def test_unknown_format_name_lists_the_formats():
    with pytest.raises(DataError) as err:
        check_format("doccanno")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("data.format=doccanno is not an NER format. Fix: set data.format to one of")
    assert all(name in msg for name in [*RECORD_FORMATS, "brat", "conll"])
    with pytest.raises(DataError, match="not an NER format"):
        NerDataModule(tokenizer="unused", format="doccanno")


def test_unknown_and_mixed_shapes(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "a b", "label": []}\n{"sentence": "abc", "tags": ["O"]}\n', encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_annotations(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:2: record has none of the known shapes (keys ['sentence', 'tags'])")
    assert "set data.format=<name>" in msg and "label_studio: [{" in msg and "brat: x.ann" in msg
    ls = {"data": {"text": "abc"}, "annotations": [{"result": []}]}
    doccano = {"text": "abc", "label": [[0, 1, "X"]]}
    path.write_text(json.dumps(doccano) + "\n" + json.dumps(ls) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"x\.jsonl:2: record is label_studio but line 1 is doccano.*Fix: keep one"):
        read_annotations(path)
    # generic shapes mix (today's span JSON took either), read as spans
    path.write_text('{"text": "ab", "label": [[0, 1, "X"]]}\n{"text": "ab", "spans": [{"start": 1, "end": 2, '
                    '"label": "Y"}]}\n', encoding="utf-8")
    assert [e["tags"] for e in read_annotations(path, char_level=True)] == [["B-X", "O"], ["O", "B-Y"]]


# ---- bad spans, in every format ----------------------------------------------------------------------
TEXT = "東京都庁へ行く"


def _write(fmt: str, tmp_path: Path, spans: list[list]) -> Path:
    """A file of ``fmt`` holding one good record, then TEXT with ``spans`` (brat: TEXT is the first line of
    the document, so that its offsets are the document's; T<i> is spans[i - 1], on line i of the .ann)."""
    good = ("大阪", [[0, 2, "LOC"]])
    recs = [good, (TEXT, spans)]
    if fmt == "brat":
        (tmp_path / "d.txt").write_text(f"{TEXT}\n{good[0]}\n", encoding="utf-8")
        lines = [f"T{i + 1}\t{lab} {s} {e}\t{TEXT[max(s, 0):e]}" for i, (s, e, lab) in enumerate(spans)]
        lines.append(f"T{len(lines) + 1}\tLOC {len(TEXT) + 1} {len(TEXT) + 3}\t大阪")
        (tmp_path / "d.ann").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return tmp_path / "d.ann"
    if fmt == "doccano":
        rows = [{"text": t, "label": sp} for t, sp in recs]
    elif fmt == "prodigy":
        rows = [{"text": t, "spans": [{"start": s, "end": e, "label": lab} for s, e, lab in sp]} for t, sp in recs]
    elif fmt == "entities":
        rows = [{"text": t, "entities": [{"name": t[max(s, 0):e], "span": [s, e], "type": lab} for s, e, lab in sp]}
                for t, sp in recs]
    else:  # label_studio
        rows = [{"data": {"text": t}, "annotations": [{"result": [
            {"type": "labels", "value": {"start": s, "end": e, "text": t[max(s, 0):e], "labels": [lab] if lab else []}}
            for s, e, lab in sp]}]} for t, sp in recs]
    path = tmp_path / "x.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# spans of TEXT, the problem, the fix, and the .ann line a brat file reports (JSON: the record's line, 2).
BAD = [
    ([[0, 3, "LOC"], [5, 12, "LOC"]], r"\[5, 12, 'LOC'\].* outside ", r"fix the offsets", 2),
    ([[0, 3, "LOC"], [2, 4, "ORG"]], r"\[2, 4, 'ORG'\].*overlaps .*\[0, 3, 'LOC'\] .*'東京都'",
     r"delete one of them in the file \(usually keep the longer, outer entity\)", 2),
    ([[0, 4, "ORG"], [0, 3, "LOC"]], r"\[0, 4, 'ORG'\].*overlaps .*\[0, 3, 'LOC'\]", r"delete one of them", 1),
    ([[0, 3, ""]], r"empty label", r"write the entity type in the file, or delete the span", 1),
]


@pytest.mark.parametrize("fmt", ["doccano", "label_studio", "prodigy", "entities", "brat"])
@pytest.mark.parametrize("spans, problem, fix, ann_line", BAD, ids=["outside", "overlap", "nested", "empty-label"])
def test_bad_spans_name_file_line_and_fix(fmt, spans, problem, fix, ann_line, tmp_path):
    path = _write(fmt, tmp_path, spans)
    with pytest.raises(DataError) as err:
        NER.read_local(path, char_level=True)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}:{ann_line if fmt == 'brat' else 2}: "), msg
    assert re.search(f"{problem}.*Fix: {fix}", msg), msg


@pytest.mark.parametrize("fmt", ["label_studio", "entities", "brat"])
def test_entity_text_must_match_the_offsets(fmt, tmp_path):
    path = _write(fmt, tmp_path, [[0, 3, "LOC"]])
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("\t東京都", "\t京都庁") if fmt == "brat" else text.replace('"東京都"', '"京都庁"'),
                    encoding="utf-8")
    with pytest.raises(DataError, match=rf"{path.name}:{1 if fmt == 'brat' else 2}: span \[0, 3, .*LOC.*\] covers "
                                        rf"'東京都' but the export names '京都庁'\. Fix: fix the offsets: they count "
                                        rf"characters"):
        NER.read_local(path)


def test_label_studio_region_with_two_labels(tmp_path):
    path = tmp_path / "ls.json"
    path.write_text(json.dumps([{"data": {"text": "東京"}, "annotations": [{"result": [
        {"value": {"start": 0, "end": 2, "text": "東京", "labels": ["LOC", "ORG"]}}]}]}], ensure_ascii=False),
        encoding="utf-8")
    with pytest.raises(DataError, match=r"ls\.json:1: region \[0, 2\] \('東京'\) has several labels \['LOC', 'ORG'\]\. "
                                        r"Fix: keep one label"):
        read_annotations(path)


@pytest.mark.parametrize("ann, problem", [
    ("T1\tLOC 0 1;2 3\tab", r"d\.ann:1: T1 LOC is discontinuous \(0 1;2 3\)\. Fix: split it"),
    ("T1\tLOC 1 4", r"d\.ann:1: T1 \[1, 4, 'LOC'\] crosses the line break after line 1 of d\.txt"),
    ("T1\tLOC\tab", r"d\.ann:1: cannot read 'T1\\tLOC\\tab'\. Fix: write text-bound annotations as"),
    ("T1\tLOC a b\tab", r"d\.ann:1: cannot read the offsets 'a b' of T1"),
])
def test_brat_bad_lines(ann, problem, tmp_path):
    (tmp_path / "d.txt").write_text("ab\ncd\n", encoding="utf-8")
    (tmp_path / "d.ann").write_text(ann + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=problem):
        read_brat(tmp_path / "d.ann")


def test_brat_without_its_text(tmp_path):
    (tmp_path / "d.ann").write_text("T1\tLOC 0 1\ta\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.ann: no d\.txt beside it\. Fix: put the document's text next to"):
        NER.read_local(tmp_path)
