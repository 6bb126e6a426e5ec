"""Metrics on known inputs: strict IOB2 span scoring, DDP duplicate removal, shared-token words."""
from __future__ import annotations

import pytest
import torch

from localize.models.decoding import argmax_tags
from localize.tracking.metrics import SpanF1, span_scores


def test_strict_iob2_known_example():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["I-ORG", "O"]]  # I-ORG start: conlleval accepts, strict does not
    s = span_scores(gold, pred)
    assert s["precision"] == pytest.approx(1.0)  # 1 predicted entity (I-ORG is no entity in strict mode)
    assert s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(0.5)
    assert s["f1_PER"] == pytest.approx(1.0) and s["f1_LOC"] == 0.0
    assert s["accuracy"] == pytest.approx(4 / 6)


def test_span_metric_counts_each_sample_once():
    id2label = {0: "O", 1: "B-X", 2: "I-X"}
    m = SpanF1(id2label, max_words=8)
    gold = torch.tensor([[1, 2, 0], [1, 0, -100]])
    pred = torch.tensor([[1, 2, 0], [0, 0, -100]])
    m.update(pred, gold, torch.tensor([0, 1]))
    m.update(pred[:1], gold[:1], torch.tensor([0]))  # a DistributedSampler duplicate of sample 0
    s = m.compute()
    assert s["n_sentences"] == 2
    assert s["recall"] == pytest.approx(0.5) and s["precision"] == pytest.approx(1.0)


def test_argmax_tags_shared_token_continues_entity():
    # labels: O, B-X, I-X. Words 1 and 2 share token 2: the second reads I-X, not a new entity.
    logits = torch.full((1, 4, 3), -5.0)
    logits[0, 1, 0] = 5  # token 1 -> O
    logits[0, 2, 1] = 5  # token 2 -> B-X
    word_index = torch.tensor([[1, 2, 2, -1]])
    out = argmax_tags(logits, word_index, torch.tensor([0, 2, 2]))
    assert out.tolist() == [[0, 1, 2, -100]]
