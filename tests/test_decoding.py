"""Constrained Viterbi decoding (``module.decoding=viterbi``): valid IOB2, same as argmax where argmax is valid."""
from __future__ import annotations

import itertools
import json

import pytest
import torch

from conftest import FAST, compose_cfg
from localize.data.entities import entity_spans
from localize.models.decoding import argmax_tags, iob2_transitions, viterbi_tags
from localize.models.token_cls import b_to_i_ids
from localize.validate import check_config

XO = ["O", "B-X", "I-X"]
TWO = ["O", "B-A", "I-A", "B-B", "I-B"]
NER = ["+locale=ja", "task=ner"]


def _decode(decoder, logits, word_index, labels):
    return decoder(logits, word_index, b_to_i_ids(labels), iob2_transitions(labels))


def _valid(tags: list[str]) -> bool:
    """Strict IOB2: every non-O word lies in an entity (so each I- follows B-/I- of its type)."""
    covered = {w for s, e, _ in entity_spans(tags) for w in range(s, e)}
    return covered == {w for w, t in enumerate(tags) if t != "O"}


def test_transitions_follow_iob2():
    allowed = iob2_transitions(TWO)
    i_a, i_b = TWO.index("I-A"), TWO.index("I-B")
    assert allowed[:, i_a].tolist() == [False, True, True, False, False, False]  # after B-A, I-A only; not at start
    assert allowed[:, i_b].tolist() == [False, False, False, True, True, False]
    assert allowed[:, [0, 1, 3]].all()


@pytest.mark.parametrize("word1,expected", [
    ([0.0, 1.5, 2.0], ["O", "B-X"]),  # I-X best, B-X beats O: the entity starts
    ([1.5, 0.0, 2.0], ["O", "O"]),  # I-X best, O beats B-X: no entity
])
def test_argmax_o_then_i_becomes_valid(word1, expected):
    logits = torch.tensor([[[3.0, 0.0, 0.0], word1]])
    word_index = torch.tensor([[0, 1]])
    assert [XO[i] for i in _decode(argmax_tags, logits, word_index, XO)[0]] == ["O", "I-X"]
    assert [XO[i] for i in _decode(viterbi_tags, logits, word_index, XO)[0]] == expected


def test_viterbi_is_sequence_level():
    # O just beats B-X on word 0, but word 1 is surely I-X: B-X I-X (log p -0.74 - 0.00) beats
    # O B-X (-0.64 - 10.0) and O O (-0.64 - 10.0).
    logits = torch.tensor([[[1.0, 0.9, -5.0], [-5.0, -5.0, 5.0]]])
    out = _decode(viterbi_tags, logits, torch.tensor([[0, 1]]), XO)
    assert [XO[i] for i in out[0]] == ["B-X", "I-X"]


def test_shared_token_and_truncated_words():
    # Words 1 and 2 share token 2 (B-X): the second continues the entity; word 3 is truncated.
    logits = torch.full((1, 4, 3), -5.0)
    logits[0, 1, 0] = 5
    logits[0, 2, 1] = 5
    word_index = torch.tensor([[1, 2, 2, -1]])
    for decoder in (argmax_tags, viterbi_tags):
        assert _decode(decoder, logits, word_index, XO).tolist() == [[0, 1, 2, -100]]


def _random_batch(gen: torch.Generator, n_labels: int, batch: int = 8, n_words: int = 7):
    logits = torch.randn(batch, n_words + 2, n_labels, generator=gen) * 3
    # Token position per word: mostly increasing, some repeated (shared), a trailing -1 tail.
    step = (torch.rand(batch, n_words, generator=gen) > 0.25).long()
    word_index = step.cumsum(1).clamp(max=n_words + 1)
    lengths = torch.randint(1, n_words + 1, (batch,), generator=gen)
    word_index[torch.arange(n_words).expand(batch, -1) >= lengths[:, None]] = -1
    return logits, word_index


def _tags(row: torch.Tensor, labels: list[str]) -> list[str]:
    return [labels[i] for i in row.tolist() if i != -100]


def test_viterbi_never_emits_an_invalid_transition():
    gen = torch.Generator().manual_seed(0)
    n_checked = n_argmax_invalid = 0
    while n_checked < 1000:
        logits, word_index = _random_batch(gen, len(TWO))
        viterbi = _decode(viterbi_tags, logits, word_index, TWO)
        argmax = _decode(argmax_tags, logits, word_index, TWO)
        for v, a, wi in zip(viterbi, argmax, word_index):
            assert ((v == -100) == (wi < 0)).all()
            assert _valid(_tags(v, TWO)), _tags(v, TWO)
            if _valid(_tags(a, TWO)):
                assert v.tolist() == a.tolist()  # argmax already valid: Viterbi agrees
            else:
                n_argmax_invalid += 1
            n_checked += 1
    assert n_argmax_invalid > 100  # the cases were not all easy


def _brute_force(logits: torch.Tensor, word_index: torch.Tensor, labels: list[str]) -> list[int]:
    """Best valid sequence by enumeration, with the shared-token rule as a constraint."""
    b_to_i = b_to_i_ids(labels).tolist()
    words = [int(w) for w in word_index if w >= 0]
    scores = logits.log_softmax(-1)
    best, best_seq = -float("inf"), None
    for seq in itertools.product(range(len(labels)), repeat=len(words)):
        total, ok = 0.0, _valid([labels[t] for t in seq])
        for w, (tok, t) in enumerate(zip(words, seq)):
            if w and tok == words[w - 1]:
                ok &= t == b_to_i[seq[w - 1]]
                if not ok:
                    break
                total += max(float(scores[tok, j]) for j in range(len(labels)) if b_to_i[j] == t)
            else:
                total += float(scores[tok, t])
        if ok and total > best:
            best, best_seq = total, list(seq)
    return best_seq


def test_viterbi_matches_brute_force():
    gen = torch.Generator().manual_seed(1)
    for _ in range(10):
        logits, word_index = _random_batch(gen, len(TWO), batch=4, n_words=4)
        out = _decode(viterbi_tags, logits, word_index, TWO)
        for lg, wi, row in zip(logits, word_index, out):
            assert [t for t in row.tolist() if t != -100] == _brute_force(lg, wi, TWO)


def test_bad_decoding_is_one_line_with_a_fix(tmp_path):
    cfg = compose_cfg(FAST + NER + ["module.decoding=beam"], tmp_path / "run")
    with pytest.raises(ValueError) as err:
        check_config(cfg)
    msg = str(err.value)
    assert "module.decoding='beam' is not one of ['argmax', 'viterbi']" in msg and "\n" not in msg
    assert "Fix: module.decoding=viterbi" in msg


def test_tiny_training_run_with_viterbi_records_it(tmp_path):
    from localize.train import train

    record = train(compose_cfg(FAST + NER + ["module.decoding=viterbi"], tmp_path / "run"))
    assert "test/f1" in record["metrics"]
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["config"]["module"]["decoding"] == "viterbi"


def test_predict_word_tags_uses_the_chosen_decoder():
    from types import SimpleNamespace

    from localize.models.token_cls import predict_word_tags

    logits = torch.tensor([[[3.0, 0.0, 0.0], [0.0, 1.5, 2.0]]])
    model = lambda **_: SimpleNamespace(logits=logits)  # noqa: E731
    batch = {"input_ids": torch.zeros(1, 2, dtype=torch.long), "attention_mask": torch.ones(1, 2),
             "word_index": torch.tensor([[0, 1]])}
    b_to_i = b_to_i_ids(XO)
    assert predict_word_tags(model, batch, b_to_i).tolist() == [[0, 2]]  # default: argmax, O I-X
    assert predict_word_tags(model, batch, b_to_i, viterbi_tags, iob2_transitions(XO)).tolist() == [[0, 1]]
