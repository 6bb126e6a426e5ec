"""Scorers for bootstrap resampling: a test metric as a function of sums of per-example statistics.

A scorer turns a run's test rows (``localize.tracking.intervals.TestPredictions``) into one row of
statistics per example (``stats``: [n, k]) and any number of column sums back into the metrics
(``score``: [m, k] → one value per row), so a resample is a matrix product and scoring 1,000
resamples is vectorised (sacrebleu's chrF/BLEU: one call per resample, as its own bootstrap).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class Scorer:
    """Per-example statistics (``stats``) and the metrics of their column sums (``score``)."""

    def fit(self, runs: Sequence[Sequence[dict]]) -> "Scorer":
        return self

    def stats(self, rows: Sequence[dict]) -> np.ndarray:
        raise NotImplementedError

    def score(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        """Metric name -> one value per row of ``sums`` ([m, k])."""
        raise NotImplementedError


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    # 2PR/(P+R) == 2tp/(2tp+fp+fn) when tp > 0, and both are 0 (seqeval's zero_division=0) otherwise.
    return _ratio(2 * tp, 2 * tp + fp + fn)


class SpanScorer(Scorer):
    """Strict IOB2 entity spans (seqeval's ``Entities(..., IOB2)``, the scorer's decoder): micro precision,
    recall, F1, per-type F1 and word accuracy, from per-sentence tp/fp/fn counts."""

    def __init__(self) -> None:
        self.types: list[str] = []

    def fit(self, runs: Sequence[Sequence[dict]]) -> "SpanScorer":
        types = set(self.types)
        for rows in runs:
            for g, p in self._spans(rows):
                types.update(t for _, _, t in g | p)
        self.types = sorted(types)
        return self

    @staticmethod
    def _spans(rows: Sequence[dict]) -> list[tuple[set, set]]:
        """Per sentence, its gold and predicted ``(start, end, type)`` entities."""
        # seqeval's own strict IOB2 decoder, as the scorer (and localize.data.entities) decode; not
        # imported from localize.data, which imports localize.tracking.
        from seqeval.scheme import IOB2, Entities

        def spans(key: str) -> list[set]:
            found = Entities([list(r[key]) for r in rows], IOB2).entities
            return [{(e.start, e.end, e.tag) for e in sentence} for sentence in found]

        return list(zip(spans("gold"), spans("pred")))

    def stats(self, rows: Sequence[dict]) -> np.ndarray:
        col = {t: 5 + 3 * i for i, t in enumerate(self.types)}
        out = np.zeros((len(rows), 5 + 3 * len(self.types)))
        for i, (row, (g, p)) in enumerate(zip(rows, self._spans(rows))):
            tp = g & p
            correct = sum(a == b for a, b in zip(row["gold"], row["pred"]))
            out[i, :5] = len(tp), len(p - tp), len(g - tp), correct, len(row["gold"])
            for spans, k in ((tp, 0), (p - tp, 1), (g - tp, 2)):
                for _, _, t in spans:
                    out[i, col[t] + k] += 1
        return out

    def score(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        tp, fp, fn = sums[:, 0], sums[:, 1], sums[:, 2]
        out = {"precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn), "f1": _f1(tp, fp, fn),
               "accuracy": _ratio(sums[:, 3], sums[:, 4])}
        for i, t in enumerate(self.types):
            c = 5 + 3 * i
            out[f"f1_{t}"] = _f1(sums[:, c], sums[:, c + 1], sums[:, c + 2])
        return out


class LabelScorer(Scorer):
    """One label per example: accuracy, macro-F1 (over the classes that occur in the gold or the
    predictions, as torchmetrics and scikit-learn average) and per-class F1, from confusion cells."""

    def __init__(self, classes: Sequence[str] | None = None) -> None:
        self.classes = list(classes or [])

    def fit(self, runs: Sequence[Sequence[dict]]) -> "LabelScorer":
        seen = {str(r[k]) for rows in runs for r in rows for k in ("gold", "pred")}
        self.classes += sorted(seen - set(self.classes))
        return self

    def stats(self, rows: Sequence[dict]) -> np.ndarray:
        ids = {c: i for i, c in enumerate(self.classes)}
        n = len(self.classes)
        out = np.zeros((len(rows), n * n))
        for i, r in enumerate(rows):
            out[i, ids[str(r["gold"])] * n + ids[str(r["pred"])]] = 1
        return out

    def score(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        n = len(self.classes)
        cm = sums.reshape(-1, n, n)  # [m, gold, pred]
        tp = np.diagonal(cm, axis1=1, axis2=2)
        fp, fn = cm.sum(1) - tp, cm.sum(2) - tp
        f1 = _f1(tp, fp, fn)
        present = (tp + fp + fn) > 0
        out = {"accuracy": _ratio(tp.sum(1), cm.sum((1, 2))),
               "f1_macro": _ratio((f1 * present).sum(1), present.sum(1))}
        out.update({f"f1_{c}": f1[:, i] for i, c in enumerate(self.classes)})
        return out


class TranslationScorer(Scorer):
    """chrF and BLEU from sacrebleu's per-segment statistics, exact match and placeholder
    preservation (``localize.tracking.mt_metrics``) per segment.

    Args:
        target_lang: picks the BLEU tokenizer (``mt_metrics.bleu_tokenizer``), as the run scored.
    """

    def __init__(self, target_lang: str = "und") -> None:
        from sacrebleu.metrics import BLEU, CHRF

        from localize.tracking.mt_metrics import bleu_tokenizer

        self.chrf, self.bleu = CHRF(), BLEU(tokenize=bleu_tokenizer(target_lang))
        self._k: tuple[int, int] | None = None

    def stats(self, rows: Sequence[dict]) -> np.ndarray:
        from localize.tracking.mt_metrics import placeholders, placeholders_preserved

        hyps = [r["hypothesis"] if isinstance(r["hypothesis"], str) else "" for r in rows]
        refs = [[r["reference"] for r in rows]]
        chrf = np.array(self.chrf._extract_corpus_statistics(hyps, refs), dtype=float).reshape(len(rows), -1)
        bleu = np.array(self.bleu._extract_corpus_statistics(hyps, refs), dtype=float).reshape(len(rows), -1)
        self._k = (chrf.shape[1], bleu.shape[1])
        own = np.zeros((len(rows), 5))  # exact, kept, has placeholders, kept and has, 1
        for i, (h, r) in enumerate(zip(hyps, rows)):
            kept, has = placeholders_preserved(r["source"], h), bool(placeholders(r["source"]))
            own[i] = h.strip() == r["reference"].strip(), kept, has, kept and has, 1.0
        return np.concatenate([chrf, bleu, own], axis=1)

    def score(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        kc, kb = self._k
        own = sums[:, kc + kb:]
        # One call per resample, as sacrebleu's own bootstrap (there in float32; float64 here, so the
        # full-sample score equals corpus_score's).
        chrf = np.array([self.chrf._compute_score_from_stats(s).score for s in sums[:, :kc]])
        bleu = np.array([self.bleu._compute_score_from_stats(s).score for s in sums[:, kc:kc + kb]])
        with np.errstate(divide="ignore", invalid="ignore"):
            with_ph = np.where(own[:, 2] > 0, own[:, 3] / np.where(own[:, 2] > 0, own[:, 2], 1), np.nan)
        return {"chrf": chrf, "bleu": bleu, "exact_match": _ratio(own[:, 0], own[:, 4]),
                "placeholder_preservation": _ratio(own[:, 1], own[:, 4]), "placeholder_preservation_with": with_ph}


# kind -> scorer class; TestPredictions.options are its constructor arguments.
SCORERS: dict[str, type[Scorer]] = {"spans": SpanScorer, "labels": LabelScorer, "translation": TranslationScorer}


def scorer(kind: str, options: dict[str, Any] | None = None, runs: Sequence[Sequence[dict]] = ()) -> Scorer:
    """The scorer of a prediction kind, fitted on ``runs`` (their entity types / classes)."""
    if kind not in SCORERS:
        raise ValueError(f"unknown prediction kind {kind!r}: one of {sorted(SCORERS)}")
    return SCORERS[kind](**(options or {})).fit(runs)
