"""Cross-validation in the report: the folds of one configuration, pooled.

Folds of one configuration share a ``cv_group`` in their run records (``localize.tracking.record.cv_group``:
the run's overrides except ``data.cv_fold``, and the corpus). Per group:

* **primary figure**: the metric of the *pooled out-of-fold predictions* — every fold's
  ``test_predictions.jsonl`` together, so each example of the corpus is scored once, by the model
  that did not train on it — with its 95% bootstrap interval over those examples
  (``localize.tracking.intervals.metric_intervals``), and a paired test on the same pooled
  examples against a reference configuration (``paired_test``);
* **secondary figure**: mean ± sample std (ddof=1) of the folds' own test metric.

A prediction row's ``index`` is its position in its fold's test split; the fold's record maps it to
the corpus position (``data.cv.test_index``), so the pool can check that no example is counted twice
and say how many of the corpus it covers (all of it unless ``data.max_eval_examples`` capped the test
folds). Failed folds have no predictions; degenerate ones are pooled (they are the method's outcome)
and counted in ``statuses``.

``python -m localize.train +cv=kfold ...`` writes ``<multirun dir>/report/`` when its folds end
(:class:`CVReport`); ``python -m localize.report <folder>`` adds the same table to ``comparison.md``.
"""
from __future__ import annotations

import logging
import math
import os
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback

from localize.report.records import common_tags as _common_tags, fmt as _fmt, method_label as _method_label, metric_for
from localize.tracking.record import read_record, retested_group
from localize.tracking.status import FAILED

log = logging.getLogger(__name__)

PREDICTIONS = "test_predictions.jsonl"
# Prediction kind per task, for records whose ``test_predictions`` entry does not name it.
_KIND = {"ner": "spans", "translation": "translation"}
COLUMNS = ["method", "model", "locale", "task", "seed", "cv_group", "folds", "found", "metric", "pooled", "low",
           "high", "pooled_n", "corpus_n", "complete", "fold_mean", "fold_std", "reference", "difference", "p_value",
           "verdict", "retest_of", "retest_difference", "retest_p", "retest_verdict", "statuses", "note"]


def is_cv(df: pd.DataFrame) -> pd.Series:
    """Rows of :func:`localize.report.records.collect` that are folds of a CV group."""
    if "cv_group" not in df:
        return pd.Series(False, index=df.index)
    return df["cv_group"].map(lambda g: isinstance(g, str) and bool(g))


def fold_predictions(record: dict[str, Any], run_dir: str) -> tuple[Any, str | None]:
    """One fold's test predictions with each row's ``index`` moved to its corpus position.

    Returns:
        ``(TestPredictions, None)``, or ``(None, why not)``.
    """
    from localize.tracking.intervals import read_predictions  # numpy/sacrebleu: only when pooling

    meta = record.get("test_predictions") or {}
    path = os.path.join(run_dir, meta.get("file") or PREDICTIONS)
    if not os.path.isfile(path):
        return None, f"no {os.path.basename(path)}"
    kind = meta.get("kind") or _KIND.get(str(record.get("task")), "labels")
    preds = read_predictions(path, kind, meta.get("options"))
    cv = (record.get("data") or {}).get("cv") or {}
    where = cv.get("test_index")
    for r in preds.rows:
        i = int(r["index"])
        r["fold"], r["fold_index"] = cv.get("fold"), i
        # Without test_index (an example the record could not place), the pool cannot check overlap.
        r["index"] = where[i] if where and 0 <= i < len(where) else None
    return preds, None


def pool_group(runs: pd.DataFrame) -> dict[str, Any]:
    """Pool the folds of one CV group (rows of :func:`collect` with one ``cv_group``).

    Returns:
        ``predictions`` (``TestPredictions`` of every fold's rows, or None), ``found`` (folds with a
        record), ``pooled_n``, ``corpus_n``, ``complete`` (every fold pooled, every corpus example
        once) and ``note`` (what is missing).
    """
    from localize.tracking.intervals import TestPredictions

    notes: list[str] = []
    by_fold: dict[int, tuple[dict, str]] = {}
    k, corpus = None, None
    for r in runs.sort_values("run_dir", na_position="first").itertuples():
        record = read_record(r.run_dir) if isinstance(r.run_dir, str) else None
        cv = ((record or {}).get("data") or {}).get("cv")
        if not cv:
            notes.append(f"{r.run_name}: no local record")
            continue
        k, corpus = cv.get("folds"), cv.get("pool")
        if record.get("status") == FAILED:
            continue
        if cv.get("fold") in by_fold:
            notes.append(f"fold {cv['fold']} ran twice (the last run is pooled)")
        by_fold[cv.get("fold")] = (record, r.run_dir)
    rows: list[dict] = []
    kind, options = None, None
    for fold in sorted(by_fold):
        record, run_dir = by_fold[fold]
        preds, why = fold_predictions(record, run_dir)
        if preds is None:
            notes.append(f"fold {fold}: {why}")
            continue
        kind, options = preds.kind, preds.options
        rows += preds.rows
    placed = [r["index"] for r in rows if r["index"] is not None]
    if len(set(placed)) < len(placed):
        notes.append(f"{len(placed) - len(set(placed))} examples in two test folds (different corpora or seeds?)")
    missing = sorted(set(range(k or 0)) - set(by_fold))
    if missing:
        notes.append(f"folds {missing} missing or failed")
    for i, r in enumerate(rows):  # unique, ordered indices for the scorer (pool position when known)
        r["index"] = r["index"] if r["index"] is not None else (corpus or 0) + i
    complete = (not missing and len(rows) == corpus and len(set(placed)) == len(placed) == corpus
                and len(by_fold) == k)
    if rows and len(rows) != corpus:
        notes.append(f"{len(rows)} of {corpus} examples pooled (test folds capped by data.max_eval_examples?)")
    return {"predictions": TestPredictions(kind, rows, dict(options or {})) if rows else None,
            "found": sorted(by_fold), "folds": k, "pooled_n": len(rows), "corpus_n": corpus,
            "complete": bool(complete), "note": "; ".join(notes)}


def summarize_cv(df: pd.DataFrame, metric: str | None = None, reference: str | None = None,
                 resamples: int | None = None) -> pd.DataFrame:
    """One row per CV group: pooled metric with its interval, the folds' mean ± std, a paired test.

    Args:
        df: runs from :func:`localize.report.records.collect` (non-CV rows are ignored).
        metric: test metric (default per task).
        reference: method (adapter name) the others are tested against, per task, locale and
            seed (the same corpus examples whatever the model); where it did not run (or None): the
            best pooled group.
        resamples: bootstrap resamples (default: ``intervals.DEFAULT_RESAMPLES``).

    Returns:
        Columns :data:`COLUMNS`, best pooled group first within each setting.
    """
    from localize.tracking.intervals import DEFAULT_RESAMPLES, metric_intervals, paired_test, verdict

    resamples = resamples or DEFAULT_RESAMPLES
    cv = df[is_cv(df)] if len(df) else df
    common = _common_tags(cv)
    out, pooled = [], {}
    for group, runs in cv.groupby("cv_group") if len(cv) else []:
        first = runs.iloc[0]
        name = metric_for(first["task"], metric)
        pool = pool_group(runs)
        scored = runs[runs["status"] != FAILED] if "status" in runs else runs
        values = pd.to_numeric(scored[name], errors="coerce").dropna() if name in scored else pd.Series(dtype=float)
        ci = (metric_intervals(pool["predictions"], metrics=[name], resamples=resamples).get(name)
              if pool["predictions"] is not None else None)
        others = runs["status"].value_counts() if "status" in runs else {}
        pooled[group] = pool["predictions"]
        out.append({
            "method": _method_label(first, common), "model": first["model"], "locale": first["locale"], "task": first["task"],
            "seed": first.get("seed"), "cv_group": group, "folds": pool["folds"], "found": pool["found"],
            "metric": name, "pooled": ci["estimate"] if ci else math.nan, "low": ci["low"] if ci else math.nan,
            "high": ci["high"] if ci else math.nan, "pooled_n": pool["pooled_n"], "corpus_n": pool["corpus_n"],
            "complete": pool["complete"], "fold_mean": values.mean() if len(values) else math.nan,
            "fold_std": values.std(ddof=1) if len(values) > 1 else math.nan,
            "reference": None, "difference": math.nan, "p_value": math.nan, "verdict": "",
            "retest_of": None, "retest_difference": math.nan, "retest_p": math.nan, "retest_verdict": "",
            "statuses": ", ".join(f"{n} {s}" for s, n in sorted(dict(others).items())),
            "note": pool["note"],
        })
    table = pd.DataFrame(out, columns=COLUMNS)
    if not len(table):
        return table
    setting = ["task", "locale", "seed"]
    table = table.sort_values(setting + ["pooled"], ascending=[True] * len(setting) + [False], na_position="last")
    for _, rows in table.groupby(setting, dropna=False):
        ref = _reference(rows, reference)
        if ref is None:
            continue
        for i, r in rows.iterrows():
            a, b = pooled.get(r["cv_group"]), pooled.get(ref["cv_group"])
            if r["cv_group"] == ref["cv_group"] or a is None or b is None:
                continue
            try:
                test = paired_test(a, b, r["metric"], resamples=resamples)
            except ValueError as e:  # not the same pooled examples: say why instead of a p-value
                table.at[i, "verdict"] = f"not paired: {e}"
                continue
            table.loc[i, ["reference", "difference", "p_value", "verdict"]] = [
                ref["method"], test["difference"], test["p_value"], verdict(test)]
    # A re-test (e.g. Viterbi decoding of the same checkpoints) is also paired with the folds it re-tests.
    methods = dict(zip(table["cv_group"], table["method"]))
    for i, r in table.iterrows():
        base = retested_group(r["cv_group"])
        a, b = pooled.get(r["cv_group"]), pooled.get(base)
        if a is None or b is None:
            continue
        try:
            test = paired_test(a, b, r["metric"], resamples=resamples)
        except ValueError as e:
            table.at[i, "retest_verdict"] = f"not paired: {e}"
            continue
        table.loc[i, ["retest_of", "retest_difference", "retest_p", "retest_verdict"]] = [
            methods[base], test["difference"], test["p_value"], verdict(test)]
    return table.reset_index(drop=True)


def _reference(rows: pd.DataFrame, reference: str | None) -> pd.Series | None:
    """The setting's reference group: the named method's (best pooled of its groups), else the best."""
    scored = rows.dropna(subset=["pooled"])
    named = scored[scored["method"] == reference] if reference else scored.iloc[:0]
    return named.iloc[0] if len(named) else (scored.iloc[0] if len(scored) else None)


def to_markdown(table: pd.DataFrame) -> str:
    """The CV table as a Markdown section (empty string when there is no CV group)."""
    if not len(table):
        return ""
    head = ["method", "model", "locale", "task", "seed", "folds", "metric", "pooled (95% CI)", "pooled n",
            "fold mean ± std", "vs reference", "vs the folds it re-tests", "statuses", "note"]
    lines = ["", "## Cross-validation", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.itertuples():
        found = f"{len(r.found)}/{r.folds}" if r.folds else "n/a"
        pooled = f"{_fmt(r.pooled)} [{_fmt(r.low)}, {_fmt(r.high)}]" if r.pooled == r.pooled else "n/a"
        vs = f"{r.verdict} vs {r.reference}" if isinstance(r.reference, str) else (r.verdict or "reference")
        seed = "n/a" if r.seed is None or r.seed != r.seed else int(r.seed)
        cells = [r.method, r.model, r.locale, r.task, seed, found, r.metric, pooled,
                 f"{r.pooled_n}/{r.corpus_n}", f"{_fmt(r.fold_mean)} ± {_fmt(r.fold_std)}", vs,
                 f"{r.retest_difference:+.3f}, {r.retest_verdict} vs {r.retest_of}" if isinstance(r.retest_of, str)
                 else (r.retest_verdict or "–"),
                 r.statuses or 0,
                 str(r.note or "").replace("|", "/")]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "Pooled: the metric of every fold's out-of-fold test predictions together (each corpus example "
              "scored once, by the fold that held it out), with a 95% percentile bootstrap interval over those "
              "examples; the paired test is a paired bootstrap on the same pooled examples. Fold mean ± std: "
              "the folds' own test metric (sample std, ddof=1) — the secondary figure."]
    return "\n".join(lines) + "\n"



class CVReport(Callback):
    """Hydra callback (``conf/cv/kfold.yaml``): when the folds' multirun ends, write the report of
    its sweep dir (``<multirun dir>/report/comparison.md`` with the CV table)."""

    def __init__(self, metric: str | None = None) -> None:
        self.metric = metric

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        from localize.report import write_report

        folder = str(config.hydra.sweep.dir)
        try:
            paths = write_report(folder, metric=self.metric)
        except Exception as e:  # the runs are done and recorded: a report problem must not hide them
            log.warning("CV report for %s not written (%s: %s); run python -m localize.report %s",
                        folder, type(e).__name__, e, folder)
            return
        print(f"[localize] cross-validation report: {paths['markdown']}")
