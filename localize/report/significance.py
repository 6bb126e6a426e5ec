"""Intervals and paired tests in the comparison report, from each run's ``test_predictions.jsonl``
(``localize.tracking.intervals`` computes them; this module picks the runs).

* The interval beside a method's mean: one run → the run's own 95% bootstrap interval over test
  examples (``metrics_ci`` in its record); several seeds → a two-level bootstrap (seeds drawn
  with replacement, then test examples; one example draw shared by seeds tested on the same
  examples) of the mean over seeds, so it carries seed-to-seed variance as well as test-set
  sampling. The mean of per-run intervals is no interval of anything and is not used.
* The paired test of a method against the reference: runs paired by seed, each pair only if both
  runs were tested on the same examples (ids), then the paired bootstrap of the mean difference
  over pairs (two-level again), its 95% interval and the p-value that inverts it.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any

import pandas as pd

from localize.tracking.intervals import (DEFAULT_LEVEL, TestPredictions, align, metric_intervals, paired_test,
                                         read_predictions, verdict)
from localize.tracking.status import SCORED

DEFAULT_REFERENCE = "full"
SETTING = ["task", "locale", "train_n"]  # methods compared with each other (baselines have model "none")
_NO_MODEL = "none"


def load_predictions(row: Any) -> TestPredictions | None:
    """A run's test predictions (``row`` from ``records.record_to_row``), or None if it has none."""
    path = _get(row, "predictions")
    if not isinstance(path, str) or not os.path.exists(path):
        return None
    try:
        options = json.loads(_get(row, "predictions_options") or "{}")
        return read_predictions(path, _get(row, "predictions_kind"), options)
    except (OSError, ValueError, KeyError):
        return None


def _get(row: Any, key: str) -> Any:
    value = row.get(key) if isinstance(row, dict) else getattr(row, key, None)
    return None if isinstance(value, float) and math.isnan(value) else value


def _finished(df: pd.DataFrame, r: Any) -> pd.DataFrame:
    keys = {"task": r.task, "locale": r.locale, "model": r.model, "adapter": r.method}
    mask = pd.Series(True, index=df.index)
    for k, v in keys.items():
        mask &= df[k] == v
    train_n = df["train_n"].map(lambda v: int(v) if str(v).isdigit() else math.nan)
    mask &= (train_n == r.train_n) | (train_n.isna() & (r.train_n != r.train_n))
    runs = df[mask]
    return runs[runs["status"].isin(SCORED)] if "status" in runs else runs


def add_intervals(summary: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """``summary`` with ``ci_low``, ``ci_high`` (95%) and ``ci_method`` per method (module docstring)."""
    low, high, how = [], [], []
    for r in summary.itertuples():
        runs = _finished(df, r) if len(df) else df
        lo = hi = math.nan
        method = "n/a"
        if len(runs) == 1:
            row = runs.iloc[0]
            lo, hi = _get(row, f"{r.metric}_ci_low"), _get(row, f"{r.metric}_ci_high")
            lo, hi = (math.nan, math.nan) if lo is None or hi is None else (float(lo), float(hi))
            method = "examples" if lo == lo else "n/a (no interval recorded)"
        elif len(runs) > 1:
            preds = [load_predictions(row) for _, row in runs.iterrows()]
            if all(p is not None for p in preds):
                ci = metric_intervals(preds, [r.metric]).get(r.metric)
                if ci:
                    lo, hi, method = ci["low"], ci["high"], "seeds × examples"
            else:
                method = f"n/a ({sum(p is None for p in preds)} run(s) without test_predictions.jsonl)"
        low.append(lo)
        high.append(hi)
        how.append(method)
    return summary.assign(ci_low=low, ci_high=high, ci_method=how)


def paired_tests(summary: pd.DataFrame, df: pd.DataFrame, reference: str | None = DEFAULT_REFERENCE
                 ) -> pd.DataFrame:
    """Every method against the reference method of its setting (task, locale, training size).

    Args:
        summary: from ``tables.summarize``.
        df: runs from ``records.collect``.
        reference: the reference method (adapter name, e.g. ``full``); where a setting has none,
            its best-ranked method is the reference (``reference_note`` says so).

    Returns:
        One row per (method, reference): ``task, locale, train_n, method, model, reference,
        reference_model, metric, pairs, n, difference, low, high, p_value, verdict, note``.
    """
    cols = ["task", "locale", "train_n", "method", "model", "reference", "reference_model", "metric", "pairs", "n",
            "difference", "low", "high", "p_value", "verdict", "note"]
    out = []
    if not len(summary):
        return pd.DataFrame(out, columns=cols)
    keyed = summary.assign(_n=summary["train_n"].fillna(-1))
    for _, setting in keyed.groupby(["task", "locale", "_n"], sort=False):
        refs = setting[setting["method"] == reference] if reference else setting.iloc[:0]
        note = ""
        if not len(refs) and reference:  # a reference run at one training size only (a few-shot curve's prior)
            refs, note = _one_size_reference(keyed, setting.iloc[0], reference)
        if not len(refs):
            refs = setting[setting["model"] != _NO_MODEL].head(1) if (setting["model"] != _NO_MODEL).any() \
                else setting.head(1)
            note = f"no '{reference}' runs here: reference is the best-ranked method"
        for r in setting.itertuples():
            for ref in _references(r, refs):
                if ref.method == r.method and ref.model == r.model:
                    continue
                out.append(_test_row(r, ref, df, note))
    return pd.DataFrame(out, columns=cols)


def _one_size_reference(keyed: pd.DataFrame, at: Any, reference: str) -> tuple[pd.DataFrame, str]:
    """The reference's rows of the same task and locale when they sit at one other training size; the
    pairing itself still checks that both read the same test examples."""
    refs = keyed[(keyed["task"] == at.task) & (keyed["locale"] == at.locale) & (keyed["method"] == reference)]
    if refs["_n"].nunique() != 1:
        return refs.iloc[:0], ""
    n = refs["train_n"].iloc[0]
    return refs, f"'{reference}' ran at train n {'n/a' if n != n else int(n)} only: paired on the same test examples"


def _references(r: Any, refs: pd.DataFrame) -> list[Any]:
    """The reference(s) a method is tested against: the one of its own model, else every one."""
    rows = list(refs.itertuples())
    same = [x for x in rows if x.model == r.model]
    return same or rows


def _test_row(r: Any, ref: Any, df: pd.DataFrame, note: str) -> dict[str, Any]:
    row = {"task": r.task, "locale": r.locale, "train_n": r.train_n, "method": r.method, "model": r.model,
           "reference": ref.method, "reference_model": ref.model, "metric": r.metric, "pairs": 0, "n": 0,
           "difference": math.nan, "low": math.nan, "high": math.nan, "p_value": math.nan, "verdict": "", "note": note}
    mine, theirs = _by_seed(_finished(df, r)), _by_seed(_finished(df, ref))
    pairs_a, pairs_b, problems = [], [], []
    for seed in sorted(set(mine) & set(theirs)):
        a, b = load_predictions(mine[seed]), load_predictions(theirs[seed])
        if a is None or b is None:
            problems.append(f"seed {seed}: no test_predictions.jsonl")
            continue
        aligned = align(a, b)
        if isinstance(aligned, str):
            problems.append(f"seed {seed}: {aligned}")
            continue
        pairs_a.append(a)
        pairs_b.append(b)
    unpaired = len(set(mine) ^ set(theirs))
    if unpaired:
        problems.append(f"{unpaired} seed(s) without a partner run")
    if pairs_a:
        try:
            t = paired_test(pairs_a, pairs_b, r.metric)
        except ValueError as e:
            problems.append(str(e))
        else:
            row.update(pairs=t["pairs"], n=t["n"], difference=t["difference"], low=t["low"], high=t["high"],
                       p_value=t["p_value"], verdict=verdict(t))
    if not pairs_a:
        row["verdict"] = "not paired"
    row["note"] = "; ".join(x for x in [note, *problems] if x)
    return row


def _by_seed(runs: pd.DataFrame) -> dict[int, Any]:
    out = {}
    for _, row in runs.iterrows():
        seed = row.get("seed")
        if seed is not None and seed == seed:
            out.setdefault(int(seed), row)  # repeated seeds (a search's trials): the first run
    return out


def to_markdown(tests: pd.DataFrame, reference: str | None) -> list[str]:
    """The paired-test section of ``comparison.md``."""
    lines = ["", f"## Paired tests against the reference ({reference or 'best-ranked method'})", ""]
    if not len(tests):
        return lines + ["No method to compare."]
    lines += ["| task | locale | train n | method | model | reference | metric | pairs | difference [95% CI] | p | "
              "verdict | note |", "|" + "---|" * 12]
    for t in tests.itertuples():
        train_n = "n/a" if t.train_n != t.train_n else int(t.train_n)
        diff = ("n/a" if t.difference != t.difference
                else f"{t.difference:+.4f} [{t.low:+.4f}, {t.high:+.4f}]")
        p = "n/a" if t.p_value != t.p_value else f"{t.p_value:.3f}"
        ref = t.reference if t.reference_model == t.model else f"{t.reference} ({t.reference_model})"
        cells = [t.task, t.locale, train_n, t.method, t.model, ref, t.metric, t.pairs, diff, p, t.verdict,
                 str(t.note or "").replace("|", "/")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", f"Difference = method − reference, mean over runs paired by seed (each pair tested on the same "
              f"examples); {int(DEFAULT_LEVEL * 100)}% paired-bootstrap interval (1,000 resamples, seeded; seeds and "
              "examples resampled) and the two-sided p-value that inverts it. p ≥ 0.05: no significant difference."]
    return lines
