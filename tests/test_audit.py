"""Label audit (localize.audit) and injected label noise (localize.data.noise): flips are seeded per
example and stay in the label set, cleanlab's ranking puts known-wrong labels first, and a K-fold audit
on the tiny model writes every example once, with the injected flips recorded."""
from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

from localize.audit import example_issues, fold_overrides, noise_recovery, rank, token_issues, wilson
from localize.config import compose
from localize.data.errors import DataError
from localize.data.noise import flip_class, flip_entity_type, flip_examples
from localize.utils import build

from conftest import FAST

NER_LABELS = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def _sentences(n: int) -> list[dict]:
    return [{"id": f"s{i}", "tokens": ["a", "b", "c", "d"], "tags": ["B-PER", "I-PER", "O", "B-LOC"]}
            for i in range(n)]


# ----------------------------------------------------------------------------- the flips
def test_an_entity_flip_keeps_its_span_and_takes_another_type_of_the_label_set():
    ex = {"id": "x", "tokens": list("abcde"), "tags": ["B-PER", "I-PER", "I-PER", "O", "B-LOC"]}
    seen = set()
    for seed in range(40):
        new = flip_entity_type(ex, NER_LABELS, random.Random(seed))
        changed = [i for i, (a, b) in enumerate(zip(ex["tags"], new["tags"])) if a != b]
        assert changed in ([0, 1, 2], [4])  # one whole entity, nothing else
        first = new["tags"][changed[0]]
        assert first.startswith("B-") and first != ex["tags"][changed[0]] and first in NER_LABELS
        assert all(new["tags"][i] == "I-" + first[2:] for i in changed[1:])
        seen.add(tuple(new["tags"]))
    assert len(seen) >= 3  # the entity and the type are drawn
    assert ex["tags"] == ["B-PER", "I-PER", "I-PER", "O", "B-LOC"]  # the original is not touched
    assert flip_entity_type({"id": "y", "tokens": ["a"], "tags": ["O"]}, NER_LABELS, random.Random(0)) is None


def test_flips_are_drawn_per_example_so_every_split_and_order_agrees():
    exs = _sentences(400)
    _, notes = flip_examples(exs, 0.1, NER_LABELS, seed=7, flip=flip_entity_type)
    assert 20 <= len(notes) <= 65  # 10% of 400, drawn
    # The same examples in another order and cut in two (two folds): the same flips, the same new tags.
    shuffled = exs[:]
    random.Random(1).shuffle(shuffled)
    halves = [flip_examples(shuffled[:150], 0.1, NER_LABELS, 7, flip_entity_type)[1],
              flip_examples(shuffled[150:], 0.1, NER_LABELS, 7, flip_entity_type)[1]]
    key = lambda n: (n["id"], tuple(n["given"]))  # noqa: E731
    assert sorted(map(key, notes)) == sorted(map(key, halves[0] + halves[1]))
    assert {n["id"] for n in flip_examples(exs, 0.1, NER_LABELS, 8, flip_entity_type)[1]} != {n["id"] for n in notes}


def test_a_class_flip_is_another_class():
    for seed in range(20):
        assert flip_class({"id": 1, "text": "t", "label": "pos"}, ["neg", "neu", "pos"], random.Random(seed))["label"] in (
            "neg", "neu")


def test_label_noise_touches_train_only_by_default_and_is_recorded():
    cfg = compose(FAST + ["+locale=ja", "task=ner", "data.label_noise=0.2"], out_dir="/tmp/unused")
    clean = build(compose(FAST + ["+locale=ja", "task=ner"], out_dir="/tmp/unused").data)
    noisy = build(cfg.data)
    assert noisy.splits["validation"] == clean.splits["validation"] and noisy.splits["test"] == clean.splits["test"]
    changed = {a["id"] for a, b in zip(clean.splits["train"], noisy.splits["train"]) if a["tags"] != b["tags"]}
    info = noisy.data_info["label_noise"]
    assert changed == {n["id"] for n in info["examples"]} and info["flipped"] == len(changed) > 30
    assert noisy.label_names == clean.label_names  # flips stay in the label set


@pytest.mark.parametrize("bad", ["1.5", "0", "true"])
def test_a_bad_noise_share_names_the_key_and_its_fix_works(bad):
    with pytest.raises(DataError, match=r"data.label_noise=.*Fix: data.label_noise=0.05"):
        build(compose(FAST + ["+locale=ja", "task=ner", f"data.label_noise={bad}"], out_dir="/tmp/unused").data).splits
    fixed = build(compose(FAST + ["+locale=ja", "task=ner", "data.label_noise=0.05"], out_dir="/tmp/unused").data)
    fixed.splits
    assert fixed.data_info["label_noise"]["flipped"] > 0


def test_noise_on_a_task_without_labels_is_refused_with_the_fix():
    cfg = compose(FAST + ["+locale=ja", "task=translation", "model=tiny_causal", "data.label_noise=0.1"],
                  out_dir="/tmp/unused")
    with pytest.raises(DataError, match="have no label to flip. Fix: data.label_noise=null"):
        build(cfg.data).splits


# ----------------------------------------------------------------------------- the ranking
def _confident(given: list[int], truth: list[int], k: int, rng: np.random.Generator) -> np.ndarray:
    """Probabilities of a model that learned the truth (0.8 on it), noisy elsewhere."""
    p = rng.dirichlet(np.ones(k), size=len(given)) * 0.2
    p[np.arange(len(given)), truth] += 0.8
    return p


def test_wrong_class_labels_rank_first():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, size=200)
    given = truth.copy()
    wrong = rng.choice(200, size=15, replace=False)
    given[wrong] = (given[wrong] + 1) % 3
    probs = _confident(list(given), list(truth), 3, rng)
    rows = [{"labels": int(g), "probs": p, "fold": 0, "example": {"id": f"d{i}", "text": f"text {i}"}, "text": f"text {i}"}
            for i, (g, p) in enumerate(zip(given, probs))]
    ranked = rank(example_issues(rows, ["neg", "neu", "pos"]))
    assert {x["id"] for x in ranked[:15]} == {f"d{i}" for i in wrong}
    assert all(x["suggested"] == ["neg", "neu", "pos"][truth[int(x["id"][1:])]] for x in ranked[:15])
    rec = noise_recovery(ranked, {f"d{i}" for i in wrong})
    # cleanlab's flags (confident learning) are conservative; the ranking is what the test set checks.
    assert rec["precision_at_k"] == 1.0 and rec["flag_recall"] >= 0.8 and rec["flag_precision"] == 1.0
    assert rec["random_expectation"] == 15 / 200


def test_a_wrong_entity_type_ranks_its_sentence_first_and_names_the_word():
    rng = np.random.default_rng(1)
    rows, labels = [], NER_LABELS
    for i in range(60):
        # B-PER I-PER O B-LOC, or B-ORG I-ORG O B-LOC I-LOC: every tag has correctly labelled words
        truth = [5, 6, 0, 1] if i % 2 == 0 else [3, 4, 0, 1, 2]
        given = list(truth)
        if i in (7, 23):
            given[3] = 3  # B-ORG where the model (and the truth) says B-LOC
        tokens = ["Ann", "Lee", "in", "Oslo"] if i % 2 == 0 else ["Acme", "Inc", "in", "Oslo", "West"]
        rows.append({"labels": np.array(given), "probs": _confident(given, truth, len(labels), rng),
                     "words": list(range(len(truth))), "fold": i % 2, "text": " ".join(tokens),
                     "example": {"id": f"s{i}", "tokens": tokens, "tags": []}})
    ranked = rank(token_issues(rows, labels))
    assert {x["id"] for x in ranked[:2]} == {"s7", "s23"} and ranked[0]["flagged"]
    for x in ranked[:2]:  # the wrong word, named with the tag the model suggests
        assert [(w["word"], w["token"], w["given"], w["suggested"]) for w in x["words"]] == [
            (3, "Oslo", "B-ORG", "B-LOC")]
    assert ranked[0]["text"] == "Acme Inc in Oslo West" and not any(x["flagged"] for x in ranked[2:])


def test_wilson_interval_on_known_values():
    lo, hi = wilson(8, 10)
    assert (round(lo, 3), round(hi, 3)) == (0.490, 0.943)  # the textbook 80% of 10
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == 1.0


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_audit(tmp_path_factory):
    from localize.audit import audit

    out = tmp_path_factory.mktemp("audit") / "a"
    cfg = compose(FAST + ["+locale=ja", "task=ner", "audit.folds=2", "data.label_noise=0.1", "seed=3"], "audit",
                  out_dir=str(out))
    return out, cfg, audit(cfg)


def test_an_audit_ranks_every_example_once_and_finds_the_injected_flips_recorded(tiny_audit):
    out, _, rec = tiny_audit
    lines = [json.loads(x) for x in (out / "label_issues.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == rec["examples"] == 500 and len({x["id"] for x in lines}) == 500
    assert [x["rank"] for x in lines] == list(range(1, 501))
    assert [x["score"] for x in lines] == sorted(x["score"] for x in lines)
    assert all(x["text"] == "".join(x["tokens"]) for x in lines)  # ja: the datamodule joins words without spaces
    # Every injected flip is one the fold data really carries: its given tags are the example's in the file.
    flipped = {}
    for i in range(2):
        run = json.loads((out / "folds" / str(i) / "run.json").read_text())
        assert run["data"]["cv"]["folds"] == 2 and run["data"]["cv"]["fold"] == i
        flipped.update({n["id"]: n for n in run["data"]["label_noise"]["examples"] if n["split"] == "test"})
    by_id = {x["id"]: x for x in lines}
    assert flipped and all(by_id[k]["given"] == n["given"] != n["true"] for k, n in flipped.items())
    inj = rec["injected"]
    hits = sum(x["id"] in flipped for x in lines[:len(flipped)])
    assert inj["k"] == len(flipped) and inj["precision_at_k"] == hits / len(flipped)
    assert rec["method"]["ranking"] == "softmin" and set(inj["by_ranking"]) == {"softmin", "min", "entity_mean"}
    assert inj["by_ranking"]["softmin"]["precision_at_k"] == inj["precision_at_k"]


def test_a_resumed_audit_keeps_its_folds(tiny_audit):
    from localize.audit import audit

    out, cfg, rec = tiny_audit
    before = os.path.getmtime(out / "folds" / "0" / "run.json")
    again = audit(cfg)
    assert os.path.getmtime(out / "folds" / "0" / "run.json") == before
    assert again["injected"] == rec["injected"] and again["flagged"] == rec["flagged"]


def test_fold_overrides_keep_training_settings_and_drop_the_audits_own(tiny_audit):
    _, cfg, _ = tiny_audit
    o = fold_overrides(cfg, 1, "/x/a")
    assert "data.cv_fold=1" in o and "data.cv_folds=2" in o and "model=tiny_random" in o
    assert not any(x.startswith(("audit.", "resume")) for x in o)


def test_an_audit_of_translation_names_the_tasks_it_reads(tmp_path):
    from localize.audit import audit

    cfg = compose(FAST + ["+locale=ja", "task=translation", "model=tiny_causal"], "audit", out_dir=str(tmp_path))
    with pytest.raises(ValueError, match="needs task=ner or task=classification"):
        audit(cfg)


def test_the_report_keeps_the_audit_folds_out_of_the_comparison(tiny_audit, tmp_path):
    from localize.report import write_report

    out, _, _ = tiny_audit
    res = write_report(str(out), out_dir=str(tmp_path))
    md = (tmp_path / "comparison.md").read_text()
    assert "## Runs on injected label noise" in md and "2 run(s) trained with data.label_noise" in md
    assert res["runs"] == 0  # nothing compared: the folds' scores are on flipped labels


def test_a_bad_sentence_score_is_refused_before_any_fold_trains(tmp_path):
    from localize.audit import audit

    cfg = compose(FAST + ["+locale=ja", "task=ner", "audit.sentence_score=mean"], "audit", out_dir=str(tmp_path))
    with pytest.raises(ValueError, match="audit.sentence_score='mean' is not one of .*Fix: audit.sentence_score=softmin"):
        audit(cfg)
    assert not (tmp_path / "folds").exists()


def test_entity_mean_ignores_o_words_and_ranks_a_wrong_type_first():
    from localize.audit import entity_mean

    labels = ["O", "B-LOC", "B-PER"]
    probs = [np.array([[0.1, 0.9, 0.0], [0.2, 0.0, 0.8]]), np.array([[0.9, 0.1, 0.0], [0.3, 0.7, 0.0]])]
    given = [np.array([1, 2]), np.array([2, 0])]  # sentence 2: PER given where the model says O
    assert entity_mean(given, probs, labels).tolist() == pytest.approx([0.85, 0.0])
    assert entity_mean([np.array([0, 0])], [np.array([[0.1, 0.9, 0.0], [0.5, 0.5, 0.0]])], labels).tolist() == [1.0]
