"""Metrics that need whole-corpus computation, as torchmetrics ``Metric``s so DDP gathers them.

DistributedSampler pads the last batch with duplicate samples; states keep each sample's dataset
index and ``compute`` scores every sample exactly once.
"""
from __future__ import annotations

import torch
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2
from torchmetrics import Metric

SEQEVAL_MODE = "strict IOB2"  # recorded in run records: conlleval-style scoring would be laxer


def span_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Strict IOB2 entity-span precision/recall/F1 (seqeval), per-type F1 and word accuracy.

    Args:
        gold: gold tag sequences, one per sentence.
        pred: predicted tag sequences, same lengths.

    Returns:
        ``precision``, ``recall``, ``f1``, ``accuracy`` and ``f1_<TYPE>`` for each entity type.
    """
    kw = dict(mode="strict", scheme=IOB2, zero_division=0)
    words = sum(len(g) for g in gold)
    correct = sum(gt == pt for g, p in zip(gold, pred) for gt, pt in zip(g, p))
    out = {
        "precision": precision_score(gold, pred, **kw),
        "recall": recall_score(gold, pred, **kw),
        "f1": f1_score(gold, pred, **kw),
        "accuracy": correct / max(words, 1),
    }
    report = classification_report(gold, pred, output_dict=True, **kw)
    for name, row in report.items():
        if not name.endswith(" avg"):
            out[f"f1_{name}"] = row["f1-score"]
    return out


class SpanF1(Metric):
    """Word-level strict span F1 over sentences; states are padded id tensors plus sample ids.

    Args:
        id2label: label id -> IOB2 tag.
        max_words: longest sentence in words (states are padded to it).
    """

    full_state_update = False

    def __init__(self, id2label: dict[int, str], max_words: int = 512, **kwargs) -> None:
        super().__init__(**kwargs)
        self.id2label, self.max_words = dict(id2label), max_words
        self.add_state("index", default=[], dist_reduce_fx="cat")
        self.add_state("pred", default=[], dist_reduce_fx="cat")
        self.add_state("gold", default=[], dist_reduce_fx="cat")
        self.rows: list[dict] = []  # filled by compute()

    def update(self, pred: torch.Tensor, gold: torch.Tensor, index: torch.Tensor) -> None:
        """Add a batch: ``pred``/``gold`` are [batch, max_words] ids, gold padded with -100."""
        self.index.append(index.detach())
        # Pad to a fixed width so states concatenate across batches and ranks.
        width = self.max_words
        self.pred.append(torch.nn.functional.pad(pred.detach(), (0, width - pred.shape[1]), value=-100))
        self.gold.append(torch.nn.functional.pad(gold.detach(), (0, width - gold.shape[1]), value=-100))

    def compute(self) -> dict[str, float]:
        index = _cat(self.index)
        pred, gold = _cat(self.pred), _cat(self.gold)
        seen: set[int] = set()
        golds, preds, kept = [], [], []
        for i, p, g in zip(index.tolist(), pred.tolist(), gold.tolist()):
            if i in seen:  # a DistributedSampler duplicate
                continue
            seen.add(i)
            kept.append(i)
            n = sum(1 for x in g if x != -100)
            golds.append([self.id2label[x] for x in g[:n]])
            preds.append([self.id2label.get(x, "O") for x in p[:n]])
        # Per-sentence outcomes of the last compute: the bootstrap intervals and paired tests
        # (localize.tracking.intervals) resample these sentences.
        self.rows = [{"index": i, "gold": g, "pred": p} for i, g, p in zip(kept, golds, preds)]
        scores = span_scores(golds, preds)
        scores["n_sentences"] = float(len(golds))
        return scores


class ExampleLabels(Metric):
    """Gold and predicted class id per example, kept with the example's dataset index (DDP-gathered,
    duplicates dropped) so test outcomes can be resampled (``localize.tracking.intervals``).

    Args:
        label_names: class id -> name.
    """

    full_state_update = False

    def __init__(self, label_names: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.label_names = list(label_names)
        self.add_state("index", default=[], dist_reduce_fx="cat")
        self.add_state("pred", default=[], dist_reduce_fx="cat")
        self.add_state("gold", default=[], dist_reduce_fx="cat")

    def update(self, pred: torch.Tensor, gold: torch.Tensor, index: torch.Tensor) -> None:
        self.index.append(index.detach())
        self.pred.append(pred.detach())
        self.gold.append(gold.detach())

    def compute(self) -> list[dict]:
        """One ``{"index", "gold", "pred"}`` row per example (label names), in index order."""
        rows: dict[int, dict] = {}
        for i, p, g in zip(_cat(self.index).tolist(), _cat(self.pred).tolist(), _cat(self.gold).tolist()):
            rows.setdefault(i, {"index": i, "gold": self.label_names[g], "pred": self.label_names[p]})
        return [rows[i] for i in sorted(rows)]


def _cat(x) -> torch.Tensor:
    return torch.cat(x) if isinstance(x, list) else x
