"""Confidence intervals and paired tests over test examples, from per-example sufficient statistics.

Every test metric of a run is a function of *sums* of per-example counts: span F1 of the
sentences' true/false positives and misses, accuracy and macro-F1 of one confusion-matrix cell per
example, chrF/BLEU of sacrebleu's own per-segment statistics (``Metric._extract_corpus_statistics``
→ ``_compute_score_from_stats``, the machinery of ``sacrebleu --confidence`` and ``--paired-bs``).
So a bootstrap resample is a vector of example multiplicities ``c``, its score is
``score(c @ stats)``, and 1,000 resamples of a 50-sentence test set take milliseconds; on the
full sample the score equals the metric the run logged (seqeval strict IOB2 for NER).

Conventions (recorded with each interval):

* resamples: examples drawn with replacement, ``numpy.random.default_rng(seed).integers(0, n,
  size=(resamples, n))`` (in row chunks beyond 4M indices), default 1,000 resamples, seed
  12345 (sacrebleu's ``SACREBLEU_SEED`` default) — fixed, so the same predictions always get the
  same interval, whatever the training seed;
* interval: the percentile interval ``numpy.quantile(scores, [(1 - level) / 2, (1 + level) / 2])``
  (linear interpolation), level 0.95. sacrebleu prints mean ± half that width instead; the
  resampled scores are the same;
* several runs of a method (seeds): a two-level bootstrap — runs drawn with replacement, then
  examples (one draw shared by runs whose test examples are the same, since their test-set noise
  is shared) — of the mean over runs, so the interval carries seed variance as well as test-set
  sampling;
* paired test of A against B on the same examples: the paired bootstrap (the same draws for both)
  of the difference ``A - B`` (two-level over seed pairs when there are several), its percentile
  interval, and the two-sided p-value that inverts it: ``p = min(1, 2 min((#{d* <= 0} + 1),
  (#{d* >= 0} + 1)) / (resamples + 1))``. p < 0.05 exactly when (up to the +1) the 95% interval
  of the difference excludes 0; identical predictions give p = 1. ``method="permutation"``
  gives the approximate randomisation test instead (swap A/B per example, stratified per pair,
  ``p = (#{|d*| >= |d|} + 1) / (trials + 1)``; sacrebleu counts ``>`` and so gives identical
  systems p ≈ 0).

Predictions travel as rows (``TestPredictions``): one dict per test example with ``index`` (its
position in the test split), ``id`` (a hash of the raw example: two runs are paired only when
their ids match) and the task's fields — ``gold``/``pred`` tag lists (``spans``), ``gold``/``pred``
labels (``labels``), ``source``/``reference``/``hypothesis`` (``translation``).
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from localize.tracking.scorers import Scorer, scorer

DEFAULT_RESAMPLES = 1000
DEFAULT_TRIALS = 10_000  # approximate randomisation (sacrebleu's default)
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 12345
_MAX_DRAW = 4_000_000  # indices drawn at once (32 MB); larger sets are drawn in row chunks


# ----------------------------------------------------------------------------- predictions
def example_id(example: dict[str, Any]) -> str:
    """A short hash of a raw example (text, gold, reader id): equal ids mean the same test example."""
    blob = json.dumps(example, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


@dataclass
class TestPredictions:
    """A run's per-example test outcomes: what its intervals and paired tests are computed from.

    Args:
        kind: ``spans``, ``labels`` or ``translation`` (``localize.tracking.scorers.SCORERS``).
        rows: one dict per test example, with ``index`` and the kind's fields (module docstring).
        options: the scorer's arguments (``target_lang`` for translation).
    """

    __test__ = False  # not a pytest test class, despite the name

    kind: str
    rows: list[dict[str, Any]]
    options: dict[str, Any] = field(default_factory=dict)
    _intervals: dict[str, dict[str, Any]] | None = field(default=None, repr=False)

    def assign_ids(self, examples: Sequence[dict[str, Any]] | None) -> "TestPredictions":
        """Give each row the :func:`example_id` of ``examples[row["index"]]`` (the test split)."""
        if examples is not None:
            for r in self.rows:
                if "id" not in r and 0 <= int(r["index"]) < len(examples):
                    r["id"] = example_id(examples[int(r["index"])])
        return self

    def intervals(self, **kw: Any) -> dict[str, dict[str, Any]]:
        """:func:`metric_intervals` of the rows (computed once with the defaults)."""
        if kw:
            return metric_intervals(self, **kw)
        if self._intervals is None:
            self._intervals = metric_intervals(self)
        return self._intervals

    def meta(self, file: str) -> dict[str, Any]:
        """The run record's ``test_predictions`` entry."""
        return {"file": file, "kind": self.kind, "options": dict(self.options), "n": len(self.rows),
                "with_ids": all("id" in r for r in self.rows)}


def write_predictions(path: str, predictions: TestPredictions) -> None:
    """One JSON line per test example, written atomically."""
    from localize.tracking.atomic import atomic_file

    with atomic_file(path) as f:
        for r in sorted(predictions.rows, key=lambda r: int(r["index"])):
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_predictions(path: str, kind: str, options: dict[str, Any] | None = None) -> TestPredictions:
    """A ``test_predictions.jsonl`` back as :class:`TestPredictions` (``kind``/``options`` from the
    run record's ``test_predictions`` entry)."""
    with open(path, encoding="utf-8") as f:
        return TestPredictions(kind, [json.loads(line) for line in f if line.strip()], dict(options or {}))


def run_predictions(run_dir: str) -> TestPredictions | None:
    """The test predictions a run dir recorded (its record's ``test_predictions`` entry), or None."""
    import os

    from localize.tracking.record import read_record

    meta = (read_record(run_dir) or {}).get("test_predictions") or {}
    if not meta.get("file"):
        return None
    return read_predictions(os.path.join(run_dir, meta["file"]), meta["kind"], meta.get("options"))


# ----------------------------------------------------------------------------- resampling
def _counts(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """Example multiplicities [resamples, n] of ``rng.integers(0, n, size=(resamples, n))``."""
    idx = rng.integers(0, n, size=(resamples, n))
    return np.bincount((idx + n * np.arange(resamples)[:, None]).ravel(), minlength=resamples * n
                       ).reshape(resamples, n).astype(float)


def _strata(runs: Sequence[Sequence[dict]]) -> list[int]:
    """Group number per run: runs whose rows list the same example ids share example draws."""
    keys: dict[tuple, int] = {}
    out = []
    for j, rows in enumerate(runs):
        ids = tuple(r.get("id") for r in rows)
        key = ids if all(i is not None for i in ids) else ("run", j)
        out.append(keys.setdefault(key, len(keys)))
    return out


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _bootstrap(sc: Scorer, runs: Sequence[Sequence[dict]], resamples: int, seed: int,
               weights: Sequence[float] | None = None) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Full-sample mean over runs and the two-level bootstrap distribution of that mean.

    ``weights`` (+1/-1 per run) turn the mean into a paired difference: runs ``2i`` and ``2i+1`` are
    a pair (A, B) drawn together and sharing example draws (``paired_test``).
    """
    rng = np.random.default_rng(seed)
    stats = [sc.stats(rows) for rows in runs]
    groups = _strata(runs)
    sums = [np.empty((resamples, s.shape[1])) for s in stats]
    # Resamples in chunks of at most _MAX_DRAW indices (one chunk, i.e. exactly the documented
    # draw, for any test set up to 4,000 examples at 1,000 resamples).
    chunk = max(1, _MAX_DRAW // max(len(rows) for rows in runs))
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        for g in dict.fromkeys(groups):
            members = [j for j, gj in enumerate(groups) if gj == g]
            counts = _counts(rng, len(runs[members[0]]), b)
            for j in members:
                sums[j][start:start + b] = counts @ stats[j]
    full = [sc.score(s.sum(0, keepdims=True)) for s in stats]
    boot = [sc.score(x) for x in sums]
    w = np.ones(len(runs)) if weights is None else np.asarray(weights, dtype=float)
    units = len(runs) if weights is None else len(runs) // 2  # a unit: a run, or a pair of runs
    members = [[j] for j in range(units)] if weights is None else [[2 * i, 2 * i + 1] for i in range(units)]
    pick = rng.integers(0, units, size=(resamples, units)) if units > 1 else np.zeros((resamples, 1), int)
    point, dist = {}, {}
    for name in full[0]:
        per_unit_full = np.array([sum(w[j] * full[j][name][0] for j in m) for m in members])
        per_unit_boot = np.stack([sum(w[j] * boot[j][name] for j in m) for m in members])  # [units, B]
        point[name] = float(per_unit_full.mean())
        dist[name] = per_unit_boot[pick, np.arange(resamples)[:, None]].mean(1)
    return point, dist


def _entry(estimate: float, values: np.ndarray, level: float, resamples: int, seed: int, **extra: Any
           ) -> dict[str, Any] | None:
    finite = values[np.isfinite(values)]
    if not math.isfinite(estimate) or not len(finite):
        return None
    low, high = _interval(finite, level)
    out = {"estimate": estimate, "low": low, "high": high, "level": level, "resamples": resamples, "seed": seed,
           **extra}
    if len(finite) < len(values):  # e.g. placeholder share of a resample without placeholders
        out["undefined_resamples"] = int(len(values) - len(finite))
    return out


def metric_intervals(predictions: TestPredictions | Sequence[TestPredictions], metrics: Sequence[str] | None = None,
                     resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL, seed: int = DEFAULT_SEED,
                     prefix: str = "test/") -> dict[str, dict[str, Any]]:
    """Bootstrap intervals of every metric of one run, or of the mean over several runs (seeds).

    Args:
        predictions: one run's, or several runs' of one method (same kind and options).
        metrics: names to keep (``f1`` or ``test/f1``); None keeps all the scorer's.
        resamples: bootstrap resamples (≥ 1,000 for a reported interval).
        level: coverage of the percentile interval.
        seed: resampling seed.
        prefix: put before each metric name in the result.

    Returns:
        ``{"test/f1": {"estimate", "low", "high", "level", "resamples", "seed", "runs", "n", "method"}}``;
        ``estimate`` is the full-sample metric (the mean over runs for several). Metrics undefined
        on the data (placeholder share without placeholders) are left out.
    """
    runs = [predictions] if isinstance(predictions, TestPredictions) else list(predictions)
    if not runs or any(not p.rows for p in runs):
        return {}
    sc = scorer(runs[0].kind, runs[0].options, [p.rows for p in runs])
    point, dist = _bootstrap(sc, [p.rows for p in runs], resamples, seed)
    keep = None if metrics is None else {m.split("/", 1)[-1] for m in metrics}
    method = "bootstrap over examples" if len(runs) == 1 else "two-level bootstrap over runs and examples"
    out = {}
    for name in point:
        if keep is not None and name not in keep:
            continue
        e = _entry(point[name], dist[name], level, resamples, seed, runs=len(runs),
                   n=int(sum(len(p.rows) for p in runs)), method=method)
        if e is not None:
            out[prefix + name] = e
    return out


def align(a: TestPredictions, b: TestPredictions) -> tuple[list[dict], list[dict]] | str:
    """The two runs' rows in the same example order, or why they cannot be paired."""
    ids_a, ids_b = [r.get("id") for r in a.rows], [r.get("id") for r in b.rows]
    if None in ids_a or None in ids_b:
        return "test examples have no ids (predictions written before ids were recorded)"
    if sorted(ids_a) != sorted(ids_b):
        common = len(set(ids_a) & set(ids_b))
        return f"different test examples ({len(ids_a)} vs {len(ids_b)}, {common} in common)"
    order: dict[str, list[dict]] = {}  # duplicate sentences of a test set pair in index order
    for r in sorted(b.rows, key=lambda r: int(r["index"])):
        order.setdefault(r["id"], []).append(r)
    rows_a = sorted(a.rows, key=lambda r: int(r["index"]))
    return rows_a, [order[r["id"]].pop(0) for r in rows_a]


def paired_test(a: TestPredictions | Sequence[TestPredictions], b: TestPredictions | Sequence[TestPredictions],
                metric: str, method: str = "bootstrap", resamples: int = DEFAULT_RESAMPLES,
                trials: int = DEFAULT_TRIALS, level: float = DEFAULT_LEVEL, seed: int = DEFAULT_SEED
                ) -> dict[str, Any]:
    """Paired test of system A against B on the same test examples.

    Args:
        a, b: one run each, or lists of runs paired in order (e.g. by seed); each pair must have
            the same test example ids.
        metric: ``f1`` or ``test/f1``.
        method: ``bootstrap`` (paired bootstrap; p inverts its interval) or ``permutation``
            (approximate randomisation, stratified per pair). The interval of the difference is
            the paired bootstrap's either way.
        resamples: bootstrap resamples. trials: randomisation trials. level, seed: as in
            :func:`metric_intervals`.

    Returns:
        ``difference`` (mean over pairs of A - B), ``low``/``high`` (its interval), ``p_value``,
        ``a``/``b`` (each side's mean metric), ``pairs``, ``n`` (examples per pair, summed),
        ``method``, ``level``, ``resamples``, ``trials``, ``seed``.

    Raises:
        ValueError: a pair whose test examples differ (the reason is in the message), or runs of
            different kinds.
    """
    runs_a = [a] if isinstance(a, TestPredictions) else list(a)
    runs_b = [b] if isinstance(b, TestPredictions) else list(b)
    if len(runs_a) != len(runs_b) or not runs_a:
        raise ValueError(f"paired_test needs as many runs of A as of B, got {len(runs_a)} and {len(runs_b)}")
    if {p.kind for p in runs_a + runs_b} != {runs_a[0].kind}:
        raise ValueError("paired_test: A and B hold different kinds of predictions")
    if method not in ("bootstrap", "permutation"):
        raise ValueError(f"method must be 'bootstrap' or 'permutation', got {method!r}")
    name = metric.split("/", 1)[-1]
    rows: list[list[dict]] = []
    for pa, pb in zip(runs_a, runs_b):
        aligned = align(pa, pb)
        if isinstance(aligned, str):
            raise ValueError(f"cannot pair these runs: {aligned}")
        rows += list(aligned)
    sc = scorer(runs_a[0].kind, runs_a[0].options, rows)
    point, dist = _bootstrap(sc, rows, resamples, seed, weights=[1, -1] * len(runs_a))
    if name not in point:
        raise ValueError(f"no metric {metric!r} for {runs_a[0].kind} predictions: one of {sorted(point)}")
    diff, d = point[name], dist[name]
    low, high = _interval(d, level)
    if method == "bootstrap":
        below, above = int((d <= 1e-12).sum()), int((d >= -1e-12).sum())
        p = min(1.0, 2 * (min(below, above) + 1) / (resamples + 1))
    else:
        p = _randomisation_p(sc, rows, name, diff, trials, seed)
    sides = [float(np.mean([sc.score(sc.stats(r).sum(0, keepdims=True))[name][0] for r in rows[k::2]]))
             for k in (0, 1)]
    return {"metric": metric, "a": sides[0], "b": sides[1], "difference": diff, "low": low, "high": high,
            "p_value": float(p), "pairs": len(runs_a), "n": int(sum(len(r) for r in rows[::2])),
            "method": "paired bootstrap" if method == "bootstrap" else "approximate randomisation",
            "level": level, "resamples": resamples, "trials": trials if method == "permutation" else None,
            "seed": seed}


def _randomisation_p(sc: Scorer, rows: list[list[dict]], name: str, diff: float, trials: int, seed: int) -> float:
    """Two-sided approximate randomisation: per pair, each example's outputs swapped with p = 1/2."""
    rng = np.random.default_rng(seed)
    total = np.zeros(trials)
    for ra, rb in zip(rows[::2], rows[1::2]):
        sa, sb = sc.stats(ra), sc.stats(rb)
        swap = rng.integers(0, 2, size=(trials, len(ra))).astype(float)
        x = (1 - swap) @ sa + swap @ sb
        y = swap @ sa + (1 - swap) @ sb
        total += sc.score(x)[name] - sc.score(y)[name]
    total /= len(rows) // 2
    return float((int((np.abs(total) >= abs(diff) - 1e-12).sum()) + 1) / (trials + 1))


def verdict(test: dict[str, Any], alpha: float = 0.05) -> str:
    """A reader's words for a paired test: ``no significant difference (p = 0.34)`` where
    p ≥ ``alpha``, else ``better (p = 0.002)`` / ``worse (p = 0.002)`` (A against B)."""
    p = test["p_value"]
    if p >= alpha:
        return f"no significant difference (p = {p:.2f})"
    return f"{'better' if test['difference'] > 0 else 'worse'} (p = {p:.3f})"


def stage_mean_interval(groups: Sequence[Sequence[tuple[TestPredictions, float]]], metric: str,
                        resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL, seed: int = DEFAULT_SEED
                        ) -> dict[str, Any]:
    """Interval of a weighted sum of metrics over fixed parts, averaged over resampled groups.

    Each group (a seed) is a list of ``(predictions, weight)`` terms (a continual sequence's stages:
    the final average is ``1/T`` per stage; BWT ``+1/(T-1)`` after the last stage and ``-1/(T-1)`` right
    after the stage's own training). The terms of a group are fixed, not resampled; their test examples
    are (runs with the same example ids share one draw, so a paired difference stays paired), and with
    several groups the groups are resampled too.

    Returns:
        ``estimate``, ``low``, ``high``, ``p_value`` (two-sided, of the sign: for a difference), ``level``,
        ``resamples``, ``seed``, ``groups``, ``method``.
    """
    runs = [p for g in groups for p, _ in g]
    if not runs:
        return {}
    name = metric.split("/", 1)[-1]
    sc = scorer(runs[0].kind, runs[0].options, [p.rows for p in runs])
    rng = np.random.default_rng(seed)
    values, points = [], []
    for g in groups:
        draws: dict[int, np.ndarray] = {}
        total, point = np.zeros(resamples), 0.0
        for (p, w), stratum in zip(g, _strata([q.rows for q, _ in g])):
            stats = sc.stats(p.rows)
            if stratum not in draws:
                draws[stratum] = _counts(rng, len(p.rows), resamples)
            total += w * sc.score(draws[stratum] @ stats)[name]
            point += w * sc.score(stats.sum(0, keepdims=True))[name][0]
        values.append(total), points.append(point)
    v = np.stack(values)  # [groups, resamples]
    pick = rng.integers(0, len(groups), size=(resamples, len(groups))) if len(groups) > 1 else np.zeros((resamples, 1), int)
    dist = v[pick, np.arange(resamples)[:, None]].mean(1)
    low, high = _interval(dist, level)
    below, above = int((dist <= 1e-12).sum()), int((dist >= -1e-12).sum())
    return {"estimate": float(np.mean(points)), "low": low, "high": high,
            "p_value": min(1.0, 2 * (min(below, above) + 1) / (resamples + 1)), "level": level,
            "resamples": resamples, "seed": seed, "groups": len(groups),
            "method": "bootstrap over test examples" + (" and seeds" if len(groups) > 1 else "")}
