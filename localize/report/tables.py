"""The comparison table: mean ± sample std over seeds per method, and its Markdown form."""
from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback

from localize.report.records import GROUP, collect, fmt as _fmt, metric_for
from localize.tracking.status import FINISHED, SCORED


log = logging.getLogger(__name__)


def summarize(df: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """One row per (task, locale, model, adapter, training size): quality mean ± std over seeds and mean
    costs (``localize.report.analyse`` first names each recipe of an adapter: ``records.label_recipes``).

    Args:
        df: runs from :func:`collect`.
        metric: test metric to compare on; None takes each task's default (``METRIC_BY_TASK``).

    Returns:
        Columns ``method, model, locale, task, seeds, n, metric, mean, std`` (sample std,
        ``ddof=1``), then the mean ``trainable_share, trainable, stored_mb, s_per_epoch,
        train_s, peak_rss_mb, tokens_per_s``, all over the group's *finished* runs; then
        ``not_finished`` (failed + degenerate runs; degenerate ones are in the means, failed ones
        have no metrics) and ``statuses``
        (``"1 degenerate, 2 failed"``). Sorted by setting, best method first.
    """
    cols = ["method", "model", "locale", "task", "train_n", "seeds", "n", "metric", "mean", "std", "trainable_share",
            "trainable", "stored_mb", "s_per_epoch", "train_s", "peak_rss_mb", "tokens_per_s", "not_finished",
            "statuses"]
    rows = []
    for group, idx in df.groupby(GROUP).groups.items() if len(df) else []:
        every = df.loc[idx]
        # Degenerate runs are averaged (a collapse is what the method did at that setting) and counted;
        # failed runs have no test metrics and are only counted.
        runs = every[every["status"].isin(SCORED)] if "status" in every else every
        others = every["status"][every["status"] != FINISHED].value_counts() if "status" in every else {}
        task, locale, model, adapter, train_n = group
        name = metric_for(task, metric)
        values = pd.to_numeric(runs[name], errors="coerce").dropna() if name in runs else pd.Series(dtype=float)
        seeds = sorted(runs["seed"].dropna().astype(int).tolist()) if "seed" in runs else []
        rows.append({
            "method": adapter, "model": model, "locale": locale, "task": task,
            "train_n": int(train_n) if str(train_n).isdigit() else math.nan, "seeds": seeds,
            "n": len(runs), "metric": name,
            "mean": values.mean() if len(values) else math.nan,
            "std": values.std(ddof=1) if len(values) > 1 else math.nan,
            **{c: _mean(runs, c) for c in ("trainable_share", "trainable", "stored_mb", "s_per_epoch",
                                           "train_s", "peak_rss_mb")},
            "tokens_per_s": _mean(runs, "train_tokens_per_s"),
            "not_finished": int(sum(others.values)) if len(others) else 0,
            "statuses": ", ".join(f"{n} {s}" for s, n in sorted(dict(others).items())),
        })
    out = pd.DataFrame(rows, columns=cols)
    if len(out):
        # Largest training set first: a low-resource curve reads top-down; a single size changes nothing.
        out = out.sort_values(["task", "locale", "model", "train_n", "mean"],
                              ascending=[True, True, True, False, False], na_position="last")
    return out.reset_index(drop=True)


def _mean(runs: pd.DataFrame, col: str) -> float:
    return float(pd.to_numeric(runs[col], errors="coerce").mean()) if col in runs else math.nan


def to_markdown(summary: pd.DataFrame, skipped: int = 0, runs: pd.DataFrame | None = None) -> str:
    """The comparison table as GitHub Markdown, numbers rounded for reading; with ``runs`` (from
    :func:`collect`), a second table gives every run's status."""
    head = ["method", "model", "locale", "task", "train n", "seeds", "n", "metric", "mean ± std", "95% CI", "trainable %",
            "stored MB", "s/epoch", "train s", "peak RSS MB", "tokens/s", "not finished"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary.itertuples():
        train_n = "n/a" if r.train_n != r.train_n else int(r.train_n)  # NaN: size not recorded
        cells = [r.method, r.model, r.locale, r.task, train_n, ",".join(map(str, r.seeds)), r.n, r.metric,
                 f"{_fmt(r.mean, 4)} ± {_fmt(r.std, 4)}", _ci_cell(r), _fmt(100 * r.trainable_share, 3),
                 _fmt(r.stored_mb, 2), _fmt(r.s_per_epoch, 1), _fmt(r.train_s, 1), _fmt(r.peak_rss_mb, 0),
                 _fmt(r.tokens_per_s, 0), r.statuses or 0]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    notes = ["", f"{len(summary)} methods from {int(summary['n'].sum()) if len(summary) else 0} finished runs; "
             "± is the sample standard deviation over seeds (ddof=1, n/a for one seed); costs are means."]
    if "ci_low" in summary:
        notes.append("95% CI: bootstrap over test examples (1,000 resamples, seeded) for one run; for several seeds "
                     "a two-level bootstrap (seeds, then examples) of the mean over seeds "
                     "(localize.report.significance).")
    bad = int(summary["not_finished"].sum()) if len(summary) else 0
    if bad:
        notes.append(f"{bad} failed or degenerate run(s) are counted under 'not finished': degenerate runs (e.g. "
                     "collapsed to one label) stay in their method's mean, as its real outcome; failed runs have "
                     "no test metrics (reasons below).")
    if skipped:
        notes.append(f"{skipped} unfinished/crashed run dir(s) without run.json skipped.")
    mixed = [r.method for r in summary.itertuples() if len(set(r.seeds)) < len(r.seeds)]
    if mixed:
        notes.append(f"Warning: repeated seeds in {', '.join(mixed)}: runs with different hyperparameters "
                     "(a search's trials?) are averaged together; report on a folder of final runs.")
    return "\n".join(lines + notes + (_run_table(runs) if runs is not None and len(runs) else [])) + "\n"


def other_records_markdown(evals: pd.DataFrame, debug: pd.DataFrame, metric: str | None = None,
                           noisy: pd.DataFrame | None = None) -> str:
    """Sections for records that are not compared with the training runs: evaluations of a trained run
    (``localize.evaluate``: which run, on which data, with its CI), debug runs and runs trained on injected
    label noise (listed only)."""
    lines = []
    if len(evals):
        lines += ["", "## Evaluations", "", "Trained runs scored again (`localize.evaluate`), e.g. on another "
                  "locale's data: not averaged with the training runs.", "",
                  "| evaluation | evaluated run | trained on | data locale | task | metric | value [95% CI] |",
                  "|---|---|---|---|---|---|---|"]
        for r in evals.sort_values("run_name").to_dict("records"):
            name = metric_for(r.get("task"), metric)
            value, low, high = r.get(name), r.get(f"{name}_ci_low"), r.get(f"{name}_ci_high")
            ci = f" [{_fmt(low, 4)}, {_fmt(high, 4)}]" if low is not None and low == low else ""
            lines.append(f"| {r['run_name']} | {r.get('evaluated_run') or 'base model'} | {r.get('train_locale') or '-'} "
                         f"| {r['locale']} | {r['task']} | {name} | {_fmt(value, 4)}{ci} |")
    if len(debug):
        lines += ["", "## Debug runs", "", f"{len(debug)} run(s) with trainer.fast_dev_run (a few batches, no real "
                  "scores) are left out of every table: " + ", ".join(sorted(str(x) for x in debug["run_dir"]))]
    if noisy is not None and len(noisy):
        lines += ["", "## Runs on injected label noise", "", f"{len(noisy)} run(s) trained with data.label_noise "
                  "(labels flipped on purpose, e.g. the folds of a localize.audit check) are left out of every "
                  "table: " + ", ".join(sorted(str(x) for x in noisy["run_dir"]))]
    return "\n".join(lines) + ("\n" if lines else "")


def _run_table(runs: pd.DataFrame) -> list[str]:
    """Every run's status, the non-finished first."""
    order = runs.assign(_ok=runs["status"] == FINISHED).sort_values(["_ok", "adapter", "run_name", "seed"])
    lines = ["", "## Runs", "", "| run | method | seed | status | reason | run dir |", "|---|---|---|---|---|---|"]
    for r in order.itertuples():
        seed = "n/a" if r.seed is None or r.seed != r.seed else int(r.seed)
        reason = str(r.status_reason or "").replace("|", "/")
        lines.append(f"| {r.run_name} | {r.adapter} | {seed} | {r.status} | {reason} | {r.run_dir or r.source} |")
    return lines


def _ci_cell(r: Any) -> str:
    """``[low, high]`` from ``significance.add_intervals`` columns; ``n/a`` when there is none."""
    low, high = getattr(r, "ci_low", math.nan), getattr(r, "ci_high", math.nan)
    if low is None or high is None or low != low or high != high:
        return "n/a"
    return f"[{low:.4f}, {high:.4f}]"



def multirun_lines(df: pd.DataFrame) -> list[str]:
    """One line per job of a multirun: run name, status, headline test metric [95% CI], s/epoch."""
    lines = []
    for r in df.sort_values("run_dir").to_dict("records") if len(df) else []:
        name = metric_for(r.get("task"), None)
        value, low, high = (r.get(k) for k in (name, f"{name}_ci_low", f"{name}_ci_high"))
        ci = f" [{_fmt(low, 4)}, {_fmt(high, 4)}]" if low is not None and low == low else ""
        lines.append(f"  {r['run_name']}: {r['status']}, {name}={_fmt(value, 4)}{ci}, "
                     f"{_fmt(r.get('s_per_epoch'), 1)} s/epoch")
    return lines


class MultirunSummary(Callback):
    """Hydra callback (``conf/hydra/default.yaml``): when a multirun ends, print one line per job and
    where its runs are, so a sweep does not end on the last job's output alone."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        folder = str(config.hydra.sweep.dir)
        try:
            df = collect(folder)
        except Exception as e:  # the runs are recorded: a summary problem must not hide them
            log.warning("multirun summary of %s not printed (%s: %s)", folder, type(e).__name__, e)
            return
        skipped = len(df.attrs.get("skipped", []))
        print(f"[localize] multirun {folder}: {len(df)} run(s) recorded"
              + (f", {skipped} without run.json (crashed or stopped)" if skipped else ""))
        print("\n".join(multirun_lines(df)))
        print(f"[localize] compare them: python -m localize.report {folder}")
