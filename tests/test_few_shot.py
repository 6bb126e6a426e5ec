"""data.train_per_label: K training examples per label, seeded, dev/test untouched (issue 15 item 3)."""
from __future__ import annotations

import re
from collections import Counter

import pytest

from conftest import FAST, compose_cfg
from localize.data.errors import DataError
from localize.utils import build

# 3 labels with 12 / 9 / 5 examples, each text unique (the reader de-duplicates texts).
ROWS = [(f"文{i}", "pos") for i in range(12)] + [(f"話{i}", "neg") for i in range(9)] + [(f"記{i}", "neu") for i in range(5)]


def _dm(tmp_path, *extra, base=FAST):
    f = tmp_path / "d.csv"
    f.write_text("text,label\n" + "\n".join(f"{t},{lab}" for t, lab in ROWS) + "\n", encoding="utf-8")
    cfg = compose_cfg([*base, "+locale=ja", "task=classification", f"data.path={f}", *extra], tmp_path / "run")
    dm = build(cfg.data)
    dm.label_names
    return dm


def _texts(dm, split):
    return [ex["text"] for ex in dm.splits[split]]


def test_k_per_label_is_seeded_and_leaves_dev_and_test_alone(tmp_path):
    full = _dm(tmp_path)
    few = _dm(tmp_path, "data.train_per_label=2")
    assert Counter(ex["label"] for ex in few.splits["train"]) == {"pos": 2, "neg": 2, "neu": 2}
    assert set(_texts(few, "train")) < set(_texts(full, "train"))
    assert _texts(few, "validation") == _texts(full, "validation") and _texts(few, "test") == _texts(full, "test")
    assert few.label_names == full.label_names
    assert few.data_info["train_per_label"] == {"k": 2, "kept": 6, "of": len(full.splits["train"])}
    assert _texts(_dm(tmp_path, "data.train_per_label=2"), "train") == _texts(few, "train")
    # another seed draws other examples (the seed of a few-shot curve also draws its K examples)
    assert _texts(_dm(tmp_path, "data.train_per_label=2", "seed=7"), "train") != _texts(few, "train")


def test_more_than_a_label_has_is_refused_and_the_fix_works(tmp_path):
    with pytest.raises(DataError, match=r"data\.train_per_label=50: .* has fewer examples of \{.*'neu'.*\}") as err:
        _dm(tmp_path, "data.train_per_label=50")
    fix = re.search(r"Fix: (data\.train_per_label=\d+)", str(err.value)).group(1)
    dm = _dm(tmp_path, fix)
    counts = Counter(ex["label"] for ex in dm.splits["train"])
    assert len(set(counts.values())) == 1 and set(counts) == {"pos", "neg", "neu"}


def test_in_context_demonstrations_come_from_the_k_draw(tmp_path):
    dm = _dm(tmp_path, "adapter=icl", "adapter.k=3", "data.train_per_label=1",
             base=["model=tiny_causal", "trainer=cpu", "logger=none"])
    kept = _texts(dm, "train")
    assert len(kept) == 3
    demos = dm.demonstrations(dm.splits["test"][0])
    assert sorted(dm.splits["train"][i]["text"] for i in demos) == sorted(kept)
