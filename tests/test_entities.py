"""One definition of an IOB2 entity: the helper, the scorer, the dictionary baseline and the alignment
ceiling agree on the same tag sequences, the ones conlleval-style decoding gets wrong included."""
from __future__ import annotations

import itertools

import pytest

from localize.baselines import ner_dictionary
from localize.data.alignment import align_words, alignment_stats, words_from_predictions
from localize.data.entities import batch_entity_spans, entity_spans
from localize.tracking.metrics import span_scores

# (tags, the entities strict IOB2 counts: (first word, end word exclusive, type))
CASES = [
    (["I-ORG", "O"], []),  # a leading I-X is no entity (a hand-written decoder started one)
    (["I-X", "I-X"], []),
    (["B-X", "I-Y"], [(0, 1, "X")]),  # I-Y does not continue X, nor start a Y
    (["B-X", "B-X"], [(0, 1, "X"), (1, 2, "X")]),  # adjacent entities of one type stay two
    (["B-X", "I-X", "I-X"], [(0, 3, "X")]),
    (["O", "I-X", "B-X", "I-X"], [(2, 4, "X")]),
    (["B-X", "I-X", "I-Y", "B-Y"], [(0, 2, "X"), (3, 4, "Y")]),
    (["O", "O", "O"], []),
    (["B-LOC", "I-LOC", "O", "B-ORG"], [(0, 2, "LOC"), (3, 4, "ORG")]),  # test_baselines_notebook
    (["B-PER", "I-PER", "O", "B-LOC"], [(0, 2, "PER"), (3, 4, "LOC")]),  # test_metrics (gold)
    (["B-PER", "I-PER", "O", "O"], [(0, 2, "PER")]),  # test_metrics (pred)
    (["B-ORG", "O"], [(0, 1, "ORG")]),
]
IDS = [" ".join(tags) for tags, _ in CASES]


def _f1(gold: list[list[str]], pred: list[list[str]]) -> float:
    """Micro span F1 counted with the helper (0 when neither side has an entity, as seqeval)."""
    g = {(k, *e) for k, tags in enumerate(gold) for e in entity_spans(tags)}
    p = {(k, *e) for k, tags in enumerate(pred) for e in entity_spans(tags)}
    return 2 * len(g & p) / max(len(g) + len(p), 1)


@pytest.fixture(scope="module")
def letters():
    """Unigram over letters plus the piece "cd": joined without spaces, words "c" and "d" share a
    token (so the ceiling's read-back differs from gold); joined with spaces, no word shares."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = [("<unk>", 0.0), ("▁", -2.0)] + [(c, -5.0) for c in "abcdefgh"] + [("cd", -1.0)]
    tok = Tokenizer(models.Unigram(vocab, 0, False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


@pytest.mark.parametrize(("tags", "expected"), CASES, ids=IDS)
def test_helper_gives_the_strict_entities(tags, expected):
    assert entity_spans(tags) == expected
    assert entity_spans(tuple(tags)) == expected


def test_batch_form_matches_one_by_one():
    assert batch_entity_spans([t for t, _ in CASES]) == [e for _, e in CASES]
    assert batch_entity_spans([]) == [] and entity_spans([]) == []


def test_scorer_counts_the_helpers_entities():
    """span_scores (seqeval strict IOB2) agrees with the helper on every same-length pair, and on
    the whole set at once: same entities, same positions, same types."""
    seqs = [t for t, _ in CASES]
    pairs = [(g, p) for g, p in itertools.product(seqs, seqs) if len(g) == len(p)]
    for g, p in pairs:
        assert span_scores([g], [p])["f1"] == pytest.approx(_f1([g], [p])), (g, p)
    gold, pred = [g for g, _ in pairs], [p for _, p in pairs]
    assert span_scores(gold, pred)["f1"] == pytest.approx(_f1(gold, pred))
    # a leading I-X scores nothing against its B-X version (the conlleval reading would give 1.0)
    assert span_scores([["B-ORG", "O"]], [["I-ORG", "O"]])["f1"] == 0.0


@pytest.mark.parametrize(("tags", "expected"), CASES, ids=IDS)
def test_baseline_lexicon_holds_the_strict_entities(tags, expected):
    """Trained on one sentence of distinct words, the dictionary re-finds exactly its entities."""
    words = [f"w{i}" for i in range(len(tags))]
    pred = ner_dictionary([{"tokens": words, "tags": tags}], [{"tokens": words, "tags": ["O"] * len(tags)}])[0]
    assert entity_spans(pred) == expected
    if expected:
        assert span_scores([tags], [pred])["f1"] == 1.0


@pytest.mark.parametrize(("tags", "expected"), CASES, ids=IDS)
def test_alignment_ceiling_decodes_like_the_scorer(letters, tags, expected):
    words = list("abcdefgh"[: len(tags)])
    ex = [{"tokens": words, "tags": tags}]
    # space-joined: gold reads back exactly, so the ceiling is 1 exactly when there is an entity
    assert alignment_stats(ex, letters, space_separated=True)["span_f1_ceiling"] == (1.0 if expected else 0.0)
    # un-spaced: "d" reads "c"'s token; the ceiling is the scorer's F1 of that read-back
    labels = sorted(set(tags))
    label2id = {t: i for i, t in enumerate(labels)}
    out = align_words(words, tags, letters, label2id, space_separated=False)
    back = words_from_predictions(out["labels"], out["word_index"], dict(enumerate(labels)))
    ceiling = alignment_stats(ex, letters, space_separated=False)["span_f1_ceiling"]
    assert ceiling == pytest.approx(span_scores([tags], [back])["f1"]) == pytest.approx(_f1([tags], [back]))


@pytest.mark.parametrize(("tags", "ceiling"), [
    (["B-LOC", "I-LOC", "O", "B-ORG"], 2 / 3),  # "d" reads O from "c": ORG lost
    (["B-X", "I-X", "I-Y", "B-Y"], 2 / 3),  # "d" continues nothing valid: Y lost
    (["O", "I-X", "B-X", "I-X"], 1.0),  # "d" reads B-X from "c" as I-X: the entity survives
    (["I-X", "I-X"], 0.0),  # no gold entity, none read back
])
def test_alignment_ceiling_known_values(letters, tags, ceiling):
    ex = [{"tokens": list("abcd"[: len(tags)]), "tags": tags}]
    assert alignment_stats(ex, letters, space_separated=False)["span_f1_ceiling"] == pytest.approx(ceiling)


@pytest.mark.parametrize("tags,expected", CASES, ids=IDS)
def test_predict_output_reports_the_scorers_entities(tags, expected):
    """``predict``'s JSON entities (``NerDataModule.decode_outputs``) are the strict IOB2 ones."""
    from localize.data.ner import NerDataModule

    labels = sorted({tag for case, _ in CASES for tag in case} | {"O"})
    dm = NerDataModule(tokenizer="unused", labels=labels)  # decoding needs the labels, not a tokenizer
    text = " ".join(f"w{i}" for i in range(len(tags)))
    spans = [(3 * i, 3 * i + 2) for i in range(len(tags))]
    out = dm.decode_outputs([text], [{"spans": spans, "segmenter": "whitespace"}], [[labels.index(t) for t in tags]])
    got = [(e["start"], e["end"], e["label"]) for e in out[0]["entities"]]
    assert got == [(spans[i][0], spans[j - 1][1], kind) for i, j, kind in expected]
