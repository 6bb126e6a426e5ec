"""The data-source registry (localize.data.sources): formats, precedence, hub loading, the one split."""
from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

import localize.data.cls_readers  # noqa: F401 (registers the classification sources)
import localize.data.ner_readers  # noqa: F401 (registers the NER sources)
import localize.data.translation_readers  # noqa: F401 (registers the translation sources)
from localize.data import sources
from localize.data.errors import DataError
from localize.data.sources import REGISTRY, TaskSources, source_key, split_examples

FIX = Path(__file__).parent / "fixtures" / "ner"


# ---- formats ----------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["ner", "classification", "translation"])
def test_unknown_extension_is_one_line_naming_data_path_formats_and_fix(task, tmp_path):
    bad = tmp_path / "data.parquet"
    bad.write_text("x")
    with pytest.raises(DataError) as err:
        REGISTRY[task].load(path=str(bad))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{bad}: no ") and "'.parquet'" in msg and f"data.path={bad}" in msg
    assert str(sorted(REGISTRY[task].readers)) in msg  # the formats it does read
    assert "Fix: convert the file to one of those formats" in msg


def test_readers_are_registered_per_task_and_suffix():
    assert set(REGISTRY["ner"].readers) == {".conll", ".iob", ".txt", ".tsv", ".json", ".jsonl", ".ann"}
    assert set(REGISTRY["ner"].folders) == {".ann"}  # a folder of brat .ann/.txt pairs
    assert set(REGISTRY["classification"].readers) == {".csv", ".tsv", ".json", ".jsonl"}
    assert set(REGISTRY["translation"].readers) == {".po", ".mo"}
    # The same suffix means a different reader per task (.tsv: CoNLL columns vs a table).
    assert REGISTRY["ner"].readers[".tsv"] is not REGISTRY["classification"].readers[".tsv"]
    assert set(REGISTRY["ner"].packaged) == {"hironsan"} and set(REGISTRY["classification"].packaged) == {"inews"}
    assert "gettext" in REGISTRY["translation"].packaged


def test_reader_gets_only_the_options_it_takes(tmp_path):
    ner = REGISTRY["ner"]
    words = ner.load(path=str(FIX / "small.conll"), options={"char_level": True}).data  # read_conll: no char_level
    assert words[0]["tokens"] == ["EU", "rejects", "German", "call", "."]
    chars = ner.load(path=str(FIX / "ja_spans.jsonl"), options={"char_level": True}).data
    assert chars[0]["tokens"] == list("東京都に行く")


def test_files_are_prepared_as_read():
    # NER repairs IOB2 for every file it reads (small.conll has an I-LOC without B-LOC).
    assert REGISTRY["ner"].load(path=str(FIX / "small.conll")).data[2]["tags"] == ["O", "B-LOC"]


def test_folder_modes(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\na,x\nb,y\n", encoding="utf-8")
    (tmp_path / "test.csv").write_text("text,label\nc,x\n", encoding="utf-8")
    splits = REGISTRY["classification"].read_local(tmp_path, text_field="text", label_field="label")
    assert {k: [e["text"] for e in v] for k, v in splits.items()} == {"train": ["a", "b"], "test": ["c"]}
    (tmp_path / "test.csv").unlink()  # a folder with only a train file is one pool
    assert [e["text"] for e in REGISTRY["classification"].read_local(tmp_path, text_field="text",
                                                                    label_field="label")] == ["a", "b"]
    po = tmp_path / "po"
    (po / "sub").mkdir(parents=True)
    entry = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\nmsgid "{0}"\nmsgstr "{1}"\n'
    (po / "a.po").write_text(entry.format("Open the file", "ファイルを開く"), encoding="utf-8")
    (po / "sub" / "b.po").write_text(entry.format("Save the file", "ファイルを保存"), encoding="utf-8")
    info: dict = {}
    pairs = REGISTRY["translation"].read_local(po, info=info)  # pool: every catalog below the folder
    assert [p["source"] for p in pairs] == ["Open the file", "Save the file"]
    assert info["files"] == [str(po / "a.po"), str(po / "sub" / "b.po")]
    with pytest.raises(DataError, match="file not found. Fix: check data.path"):
        REGISTRY["ner"].read_local(tmp_path / "nope.conll")


# ---- precedence -------------------------------------------------------------------------------
def _toy(available: bool = True) -> tuple[TaskSources, list]:
    calls: list = []
    toy = TaskSources("toy", "toy")
    toy.reader(".txt")(lambda path: calls.append("path") or [{"id": "p"}])
    toy.corpus("packed", available=lambda **_: available)(lambda: calls.append("offline") or [{"id": "o"}])
    toy.hub(lambda row, at: {"id": f"{at.split}-{at.index}", **row})
    return toy, calls


def test_precedence_path_then_packaged_then_hub(tmp_path, monkeypatch):
    f = tmp_path / "a.txt"
    f.write_text("x")
    hub_calls = []
    monkeypatch.setattr(sources, "load_hub", lambda hub_id, config, split: hub_calls.append(split) or [{"v": 1}])
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    toy, calls = _toy()
    both = {"offline": "packed", "hub": "h", "hub_config": "c"}
    assert toy.load(path=str(f), **both).kind == "path" and calls == ["path"]
    loaded = toy.load(**both)
    assert (loaded.kind, loaded.source, loaded.data) == ("offline", "packed", [{"id": "o"}])
    unavailable, _ = _toy(available=False)  # e.g. no gettext catalogs installed: fall through to the hub
    loaded = unavailable.load(**both)
    assert (loaded.kind, loaded.source) == ("hub", "hub:h/c")
    assert loaded.data == {s: [{"id": f"{s}-0", "v": 1}] for s in ("train", "validation", "test")}
    toy.load(hub="h", hub_config="c", hub_limits={"train": 8})
    assert hub_calls[-3:] == ["train[:8]", "validation", "test"]


def test_hub_only_when_reachable_and_no_data_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    toy, _ = _toy()
    with pytest.raises(DataError, match="nothing here"):
        toy.load(hub="h", no_data=lambda: DataError("nothing here"))


def test_hub_errors_have_one_message_with_the_fix(monkeypatch):
    import datasets

    def boom(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", boom)
    with pytest.raises(DataError, match=r"cannot load hub dataset a/b: no route to host\. Offline, use data\.path="):
        sources.load_hub("a", "b", split="train")


def test_source_key_matches_what_the_datamodule_reads():
    assert source_key(OmegaConf.create({"path": "x.conll", "offline": "hironsan"}))[0] == "path"
    assert source_key({"path": None, "offline": "hironsan", "hub": "h"}) == ("offline", "hironsan")
    assert source_key({"gettext": "ja", "hub": "h", "hub_config": "en-ja"}) == ("offline", "gettext:ja")
    assert source_key({"hub": "h", "hub_config": "ja"}) == ("hub", "h", "ja")
    assert source_key({"path": "a.csv"}) == source_key({"path": str(Path("a.csv").resolve())})
    assert source_key({"path": {"train": "a.csv"}}) != source_key({"path": "a.csv"})


# ---- the one split ----------------------------------------------------------------------------
EX = [{"id": str(i), "source": f"s{i // 3}"} for i in range(300)]


def _ids(splits):
    return {k: [e["id"] for e in v] for k, v in splits.items()}


def test_split_is_seeded_and_disjoint():
    a = split_examples(EX, (200, 50, 50), seed=1)
    assert _ids(a) == _ids(split_examples(EX, (200, 50, 50), seed=1))
    assert _ids(a) != _ids(split_examples(EX, (200, 50, 50), seed=2))
    assert sorted(i for v in _ids(a).values() for i in v) == sorted(e["id"] for e in EX)
    # Shuffled order unless keep_order: then each split is in input order.
    kept = split_examples(EX, (200, 50, 50), seed=1, keep_order=True)
    assert all(_ids(kept)[k] == sorted(_ids(a)[k], key=int) for k in a)


def test_split_sizes_counts_fractions_and_rest():
    assert [len(v) for v in split_examples(EX, (10, 20, 30)).values()] == [10, 20, 30]
    assert [len(v) for v in split_examples(EX, (0.8, 0.1, 0.1)).values()] == [240, 30, 30]
    assert [len(v) for v in split_examples(EX[:7], (0.5, 0.25, 0.25)).values()] == [5, 1, 1]  # remainder first
    assert [len(v) for v in split_examples(EX, (0.5, 0.1, 0.1)).values()] == [150, 30, 30]  # sum < 1
    assert [len(v) for v in split_examples(EX, (None, 20, 30)).values()] == [250, 20, 30]
    named = split_examples(EX, {"dev": 0.2, "train": 0.8})
    assert list(named) == ["dev", "train"] and len(named["dev"]) == 60
    with pytest.raises(DataError, match="need 310 examples, only 300"):
        split_examples(EX, (250, 30, 30))
    with pytest.raises(DataError, match="mix counts and fractions"):
        split_examples(EX, (200, 0.1, 0.1))
    with pytest.raises(DataError, match="summing to 1"):
        split_examples(EX, {"train": 0.8, "test": 0.1}, use_all=True)
    with pytest.raises(DataError, match="too few"):
        split_examples(EX[:5], (0.9, 0.05, 0.05))


def test_split_by_group_keeps_groups_together_and_held_out_splits_fixed():
    by = {"validation": 10, "test": 10, "train": None}
    a = split_examples(EX, by, seed=3, group=lambda e: e["source"])
    groups = {k: {e["source"] for e in v} for k, v in a.items()}
    assert not (groups["train"] & groups["test"] or groups["train"] & groups["validation"]
                or groups["validation"] & groups["test"])
    assert (len(groups["validation"]), len(groups["test"]), len(groups["train"])) == (10, 10, 80)
    smaller = split_examples(EX, {**by, "train": 5}, seed=3, group=lambda e: e["source"])
    assert _ids(smaller)["validation"] == _ids(a)["validation"] and _ids(smaller)["test"] == _ids(a)["test"]
    # Fractions place a group by its own hash: adding groups does not move the old ones.
    fr = {"validation": 0.1, "test": 0.1, "train": 0.8}
    small = split_examples(EX[:150], fr, seed=3, group=lambda e: e["source"])
    big = split_examples(EX, fr, seed=3, group=lambda e: e["source"])
    assert all(set(_ids(small)[k]) <= set(_ids(big)[k]) for k in fr)
    assert _ids(split_examples(EX, fr, seed=4, group=lambda e: e["source"])) != _ids(big)
