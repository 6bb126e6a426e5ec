"""Training-split augmentation (localize.data.augment): operations keep labels aligned, only train grows,
copies are seeded, no-ops under the locale's normalisation are dropped, and bad settings name their fix."""
from __future__ import annotations

import json
import random

import pytest

from localize.config import compose
from localize.data.augment import Context, augment, lexicon, mention_swap, span_swap, typos
from localize.data.entities import entity_spans
from localize.data.errors import DataError
from localize.utils import build

from conftest import FAST, NER

SENT = {"id": "s", "tokens": ["山田", "太郎", "は", "東京", "に", "住む"],
        "tags": ["B-PERSON", "I-PERSON", "O", "B-LOCATION", "O", "O"]}
OTHER = {"id": "t", "tokens": ["大阪", "府", "の", "佐藤", "さん"],
         "tags": ["B-LOCATION", "I-LOCATION", "O", "B-PERSON", "O"]}


def _valid_iob2(tags):
    return all(not t.startswith("I-") or (i and tags[i - 1][2:] == t[2:] and tags[i - 1] != "O")
               for i, t in enumerate(tags))


def test_mention_swap_puts_another_mention_of_the_same_type_with_aligned_tags():
    ctx = Context(lexicon=lexicon([SENT, OTHER]))
    assert ctx.lexicon == {"PERSON": [["山田", "太郎"], ["佐藤"]], "LOCATION": [["東京"], ["大阪", "府"]]}
    seen = set()
    for seed in range(30):
        new = mention_swap(SENT, random.Random(seed), ctx)
        assert len(new["tokens"]) == len(new["tags"]) and _valid_iob2(new["tags"])
        before = [(SENT["tokens"][s:e], k) for s, e, k in entity_spans(SENT["tags"])]
        after = [(new["tokens"][s:e], k) for s, e, k in entity_spans(new["tags"])]
        assert [k for _, k in after] == [k for _, k in before]  # same types, same order
        changed = [(a, b) for a, b in zip(before, after) if a != b]
        assert len(changed) == 1 and changed[0][1][0] in ctx.lexicon[changed[0][1][1]]
        seen.add(tuple(new["tokens"]))
    assert len(seen) == 2  # each entity swapped for the other mention of its type
    assert mention_swap({"id": "o", "tokens": ["は"], "tags": ["O"]}, random.Random(0), ctx) is None


def test_typos_and_span_swap_change_text_not_labels():
    new = typos(SENT, random.Random(3), Context())
    assert new["tags"] == SENT["tags"] and len(new["tokens"]) == len(SENT["tokens"]) and new["tokens"] != SENT["tokens"]
    ex = {"id": 1, "text": "一つ目の文。二つ目の文。三つ目。", "label": "pos"}
    out = span_swap(ex, random.Random(0), Context())
    assert out["label"] == "pos" and sorted(out["text"]) == sorted(ex["text"]) and out["text"] != ex["text"]


def test_a_copy_that_normalisation_folds_back_is_dropped():
    # Casing has nothing to change in Japanese: every copy is its original again.
    added, info = augment([SENT, OTHER], ["casing"], 2, 1, {"code": "ja"}, "NFKC")
    assert added == [] and info["unchanged_dropped"] == 4 and info["added"] == 0
    latin = [{"id": "e", "tokens": ["Paris", "is", "big"], "tags": ["B-LOCATION", "O", "O"]}]
    added, _ = augment(latin, ["casing"], 3, 1, {"code": "fr"}, "NFKC")
    assert added and all(a["tags"] == latin[0]["tags"] and a["augmented_from"] == "e" for a in added)


def test_copies_are_seeded():
    a, _ = augment([SENT, OTHER], ["mention_swap", "typos"], 2, 7, {}, "NFKC")
    b, _ = augment([SENT, OTHER], ["mention_swap", "typos"], 2, 7, {}, "NFKC")
    c, _ = augment([SENT, OTHER], ["mention_swap", "typos"], 2, 8, {}, "NFKC")
    assert a == b and a != c and {x["id"] for x in a} <= {"s#aug1", "s#aug2", "t#aug1", "t#aug2"}


def test_only_the_training_split_grows_and_the_run_records_it(tmp_path):
    from localize.train import train

    clean = build(compose(FAST + NER, out_dir=str(tmp_path)).data)
    cfg = compose(FAST + NER + ["data.augment=[mention_swap,punctuation]", "data.augment_factor=2"],
                  out_dir=str(tmp_path / "run"))
    dm = build(cfg.data)
    assert dm.splits["validation"] == clean.splits["validation"] and dm.splits["test"] == clean.splits["test"]
    aug = [ex for ex in dm.splits["train"] if "augmented_from" in ex]
    assert dm.splits["train"][:len(clean.splits["train"])] == clean.splits["train"]
    assert len(aug) == dm.data_info["augment"]["added"] > len(clean.splits["train"])
    held_out = {"".join(ex["tokens"]) for name in ("validation", "test") for ex in dm.splits[name]}
    assert not any("".join(ex["tokens"]) in held_out for ex in aug)  # no augmented text in dev/test
    assert all(len(ex["tokens"]) == len(ex["tags"]) and _valid_iob2(ex["tags"]) for ex in aug)
    assert dm.label_names == clean.label_names
    train(cfg)
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["data"]["augment"]["operations"] == ["mention_swap", "punctuation"]
    assert rec["data"]["augment"]["factor"] == 2 and rec["data"]["sizes"]["train"] == len(dm.splits["train"])


def test_chinese_script_copies_for_sentiment(tmp_path):
    cfg = compose(FAST + ["+locale=zh", "task=sentiment", "data.augment=[script]", "data.max_train_examples=20"],
                  out_dir=str(tmp_path))
    dm = build(cfg.data)
    aug = [ex for ex in dm.splits["train"] if "augmented_from" in ex]
    orig = {ex["id"]: ex for ex in dm.splits["train"] if "augmented_from" not in ex}
    assert len(aug) >= 15
    from opencc import OpenCC

    to_trad = OpenCC("s2t")
    for ex in aug:
        src = orig[ex["augmented_from"]]
        assert ex["label"] == src["label"] and ex["text"] == to_trad.convert(src["text"]) != src["text"]


@pytest.mark.parametrize("overrides, match, fix", [
    (["data.augment=[mention_swop]"], r"unknown operation\(s\) \['mention_swop'\].*Fix: data.augment=\[typos\]",
     ["data.augment=[typos]"]),
    (["data.augment=[span_dropout]"], r"\['span_dropout'\] do not apply.*Fix: data.augment=\[mention_swap\]",
     ["data.augment=[mention_swap]"]),
    (["data.augment=[typos]", "data.augment_factor=0"], "data.augment_factor=0.*Fix: data.augment_factor=1",
     ["data.augment=[typos]", "data.augment_factor=1"]),
    (["data.augment=[script]"], r"locale ja has no script variant.*Fix: drop script from data.augment",
     ["data.augment=[]"]),
])
def test_a_bad_augment_setting_names_the_fix_and_the_fix_works(tmp_path, overrides, match, fix):
    with pytest.raises(DataError, match=match):
        build(compose(FAST + NER + overrides, out_dir=str(tmp_path)).data).splits
    assert build(compose(FAST + NER + fix, out_dir=str(tmp_path)).data).splits["train"]
