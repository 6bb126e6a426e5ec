"""Back-translation (``data.augment=[back_translation]``): a reversed translation run (``task.reverse=true``)
and a forward one paraphrase the training texts of a classification run; the runs are checked first."""
from __future__ import annotations

import pytest

from conftest import FAST, compose_cfg
from localize.config import compose
from localize.data.errors import DataError
from localize.utils import build

from test_translation import SMALL_PO

MT = [o for o in FAST if not o.startswith("model=")] + [
    "+locale=zh", "task=translation", "model=tiny_causal", f"data.path={SMALL_PO}",
    "data.split_sizes=[null,6,6]", "module.generation.max_new_tokens=6", "logger=none"]
CLS = FAST + ["+locale=zh", "task=sentiment", "data.max_train_examples=8", "data.back_translation.max_chars=100000"]


@pytest.fixture(scope="module")
def translation_runs(tmp_path_factory):
    """``{"to_pivot": zh→en run dir, "from_pivot": en→zh run dir}``, tiny causal LMs trained one epoch."""
    from localize.train import train

    root = tmp_path_factory.mktemp("bt")
    runs = {"to_pivot": root / "zh-en", "from_pivot": root / "en-zh"}
    train(compose_cfg(MT + ["adapter=lora", "task.reverse=true"], runs["to_pivot"]))
    train(compose_cfg(MT + ["adapter=lora"], runs["from_pivot"]))
    return {k: str(v) for k, v in runs.items()}


def _with(runs: dict[str, str]) -> list[str]:
    return [f"data.back_translation.{k}={v}" for k, v in runs.items()]


def test_a_reversed_run_has_the_forward_splits_turned_around(tmp_path):
    forward = build(compose(MT, out_dir=str(tmp_path / "f")).data)
    reverse = build(compose(MT + ["task.reverse=true"], out_dir=str(tmp_path / "r")).data)
    for name in ("train", "validation", "test"):
        assert [(p["target"], p["source"]) for p in reverse.splits[name]] == \
               [(p["source"], p["target"]) for p in forward.splits[name]]
    assert (reverse.src_lang, reverse.tgt_lang) == (forward.tgt_lang, forward.src_lang) == ("Chinese (Simplified)", "English")
    assert reverse.data_info["direction"] == "xx→en" and forward.data_info["direction"] == "en→xx"


def test_back_translated_copies_are_the_round_trip_of_the_training_texts(translation_runs, tmp_path):
    from localize.runs import load_predictor

    dm = build(compose(CLS + ["data.augment=[back_translation]", *_with(translation_runs)], out_dir=str(tmp_path)).data)
    train = [ex for ex in dm.splits["train"] if "augmented_from" not in ex]
    copies = [ex for ex in dm.splits["train"] if "augmented_from" in ex]
    info = dm.data_info["augment"]["back_translation"]
    assert info["translated"] == len({ex["text"] for ex in train}) == 8 and info["longer_than_max_chars"] == 0
    assert len(copies) == dm.data_info["augment"]["added"] >= 1
    there, back = (load_predictor(translation_runs[k]) for k in ("to_pivot", "from_pivot"))
    originals = {ex["id"]: ex for ex in train}
    for ex in copies:
        src = originals[ex["augmented_from"]]
        pivot = there.predict_texts([src["text"]])[0]["translation"]
        assert ex["text"] == back.predict_texts([pivot])[0]["translation"].strip() != src["text"]
        assert ex["label"] == src["label"] and ex["id"] == f"{src['id']}#aug1"
    held_out = {ex["text"] for name in ("validation", "test") for ex in dm.splits[name]}
    assert not any(ex["text"] in held_out for ex in copies)  # dev and test are never augmented


@pytest.mark.parametrize("case, match", [
    ("missing", r"needs data.back_translation.to_pivot: train one with `python -m localize.train \+locale=zh "
                r"task=translation adapter=lora task.reverse=true`"),
    ("swapped", r"data.back_translation.to_pivot=.* is not a xx→en \(task.reverse=true\) translation run \(task=translation, reverse=False\)"),
    ("order", r"goes first. Fix: data.augment=\[back_translation,typos\]"),
    ("factor", r"Fix: data.augment_factor=1"),
])
def test_wrong_runs_or_settings_name_the_key_and_the_fix(translation_runs, tmp_path, case, match):
    runs = dict(translation_runs)
    extra = {"missing": ["data.augment=[back_translation]", f"data.back_translation.from_pivot={runs['from_pivot']}"],
             "swapped": ["data.augment=[back_translation]",
                         *_with({"to_pivot": runs["from_pivot"], "from_pivot": runs["to_pivot"]})],
             "order": ["data.augment=[typos,back_translation]", *_with(runs)],
             "factor": ["data.augment=[back_translation]", "data.augment_factor=2", *_with(runs)]}[case]
    with pytest.raises(DataError, match=match):
        build(compose(CLS + extra, out_dir=str(tmp_path / "bad")).data).splits
    if case == "order":  # the fix it names works
        dm = build(compose(CLS + ["data.augment=[back_translation,typos]", *_with(runs)], out_dir=str(tmp_path)).data)
        assert any("augmented_from" in ex for ex in dm.splits["train"])
        assert dm.data_info["augment"]["operations"] == ["back_translation", "typos"]


def test_ner_is_refused_with_an_operation_that_fits():
    with pytest.raises(DataError, match=r"\['back_translation'\] do not apply.*Fix: data.augment=\[mention_swap\]"):
        build(compose(FAST + ["+locale=ja", "task=ner", "data.augment=[back_translation]"]).data).splits
