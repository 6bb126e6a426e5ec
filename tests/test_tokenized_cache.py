"""Tokenised splits are cached by content + settings: a second run reuses them, a change rebuilds."""
from __future__ import annotations

from localize.utils import build

from tests.conftest import compose_cfg


def _dm(overrides=()):
    cfg = compose_cfg(["+locale=ja", "task=ner", "model=tiny_random", "data.split_sizes=[40,10,10]", *overrides])
    return build(cfg.data)


def test_second_run_reuses_the_tokenised_splits(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCALIZE_CACHE", str(tmp_path))
    first = _dm()
    first.setup("fit")
    assert first.data_info["tokenized_cache"] == {"train": "built", "validation": "built"}
    second = _dm()
    second.setup("fit")
    assert second.data_info["tokenized_cache"] == {"train": "reused", "validation": "reused"}
    assert second.encoded["train"].to_list() == first.encoded["train"].to_list()
    # Batch settings do not change the rows, so they share the cache.
    third = _dm(["data.batch_size=4"])
    third.setup("fit")
    assert third.data_info["tokenized_cache"]["train"] == "reused"


def test_encoding_settings_and_data_key_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCALIZE_CACHE", str(tmp_path))
    _dm().setup("fit")
    shorter = _dm(["data.max_length=8"])
    shorter.setup("fit")
    assert shorter.data_info["tokenized_cache"]["train"] == "built"
    assert max(len(x) for x in shorter.encoded["train"]["input_ids"]) <= 8
    other_split = _dm(["data.max_train_examples=30"])  # other examples
    other_split.setup("fit")
    assert other_split.data_info["tokenized_cache"]["train"] == "built"


def test_interrupted_cache_write_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCALIZE_CACHE", str(tmp_path))
    dm = _dm()
    dm.setup("fit")
    folder = next((tmp_path / "tokenized").glob("ner-train-*"))
    (folder / "conversion_complete.json").unlink()  # as if the process died before the marker
    again = _dm()
    again.setup("fit")
    assert again.data_info["tokenized_cache"]["train"] == "built"
    assert again.encoded["train"].to_list() == dm.encoded["train"].to_list()


def test_cache_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCALIZE_CACHE", str(tmp_path))
    dm = _dm(["data.cache_tokenized=false"])
    dm.setup("fit")
    assert "tokenized_cache" not in dm.data_info
    assert not (tmp_path / "tokenized").exists()
