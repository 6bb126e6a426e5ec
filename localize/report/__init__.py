"""Compare finished runs: ``python -m localize.report logs/runs [--out DIR] [--metric test/f1]``.

Reads every ``run.json`` under a folder (and optionally a W&B project), groups runs by
(task, locale, model, adapter) and writes ``comparison.md``, ``comparison.csv`` and PNG plots of
quality against trainable parameters, training time and stored size, plus dev learning curves.
Spread is the *sample* standard deviation over seeds (``ddof=1``; NaN for a single seed). Beside it,
each method's 95% bootstrap CI, and a section of paired tests of every method against
``--reference`` (default ``full``) with their p-values (``localize.report.significance``).
Continual sequences (``continual.json``, ``localize.continual``) get their own section
(``localize.report.continual``): final average, BWT and the strategies paired against ``sequential``.
Cross-validation folds (records with a ``cv_group``) are not averaged as seeds: ``localize.report.cv``
pools each group's out-of-fold predictions (CI, paired test vs the reference) into a section of
``comparison.md`` and ``cv.csv``.
Finished and degenerate runs enter means, spreads, costs and plots (a collapsed run is the method's real
outcome); failed runs have no test metrics. Both kinds are counted per method ("not finished") and
listed with their reason in the "Runs" table.

Modules: ``records`` (run dirs and W&B runs → one row per run), ``tables`` (rows → comparison
table), ``plots`` (PNGs); this module writes them (``write_report``) and is the CLI.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from localize.report.archive import archive_records
from localize.report.continual import summarize_sequences
from localize.report.continual import to_markdown as continual_markdown
from localize.report.cv import is_cv, summarize_cv
from localize.report.cv import to_markdown as cv_markdown
from localize.report.files import write_csv, write_text
from localize.report.plots import learning_curve, plot_all
from localize.report.records import (DEFAULT_METRIC, GROUP, METRIC_BY_TASK, collect, find_runs, kind_of, label_recipes,
                                     metric_for, record_to_row, val_metric, wandb_records, wandb_run_to_record)
from localize.report.significance import DEFAULT_REFERENCE, add_intervals, paired_tests
from localize.report.significance import to_markdown as tests_markdown
from localize.report.tables import other_records_markdown, summarize, to_markdown
from localize.tracking.status import FINISHED, SCORED

__all__ = ["DEFAULT_METRIC", "GROUP", "METRIC_BY_TASK", "analyse", "collect", "find_runs", "learning_curve", "main",
           "metric_for", "plot_all", "record_to_row", "summarize", "to_markdown", "val_metric", "wandb_records",
           "wandb_run_to_record", "write_report"]


def analyse(folder: str, metric: str | None = None, wandb_project: str | None = None,
            reference: str | None = DEFAULT_REFERENCE) -> dict[str, Any]:
    """Every record under ``folder`` sorted by kind and summarized: what the report and the notebook show.

    Returns:
        ``{"runs"`` (compared training runs and baselines), ``"plotted"`` (the scored ones outside CV
        groups), ``"evaluations"``, ``"debug"``, ``"label_noise"``
        (their own sections, never averaged with runs), ``"summary"`` (per method, with 95% CIs),
        ``"tests"`` (paired tests vs ``reference``), ``"cv"`` (pooled CV groups), ``"sequences"``
        (continual), ``"skipped"`` (run dirs without a record)``}``.

    Raises:
        ValueError: ``metric`` is in no run (the message lists the available ones).
    """
    df = collect(folder, wandb_project)
    if metric and len(df) and metric not in df.columns:  # else every table cell would read "n/a"
        found = sorted(c for c in df.columns if c.startswith("test/") and not c.endswith(("_ci_low", "_ci_high")))
        raise ValueError(f"--metric {metric} is in none of the {len(df)} runs under {folder}; "
                         f"available: {', '.join(found) or 'none'}. Fix: --metric {found[0] if found else 'test/f1'}")
    kinds = kind_of(df)
    runs = df[kinds == "compared"] if len(df) else df
    folds = is_cv(runs)  # folds of a CV group are pooled (localize.report.cv), not averaged as seeds
    plain = label_recipes(runs[~folds])
    summary = add_intervals(summarize(plain, metric), plain)
    plotted = plain[plain["status"].isin(SCORED)] if len(plain) else plain  # failed runs: listed only
    return {"runs": runs, "plotted": plotted,
            "evaluations": df[kinds == "evaluate"], "debug": df[kinds == "debug"],
            "label_noise": df[kinds == "label_noise"], "summary": summary,
            "tests": paired_tests(summary, plain, reference), "cv": summarize_cv(runs, metric, reference),
            "sequences": summarize_sequences(folder), "skipped": df.attrs.get("skipped", [])}


def write_report(folder: str, out_dir: str | None = None, metric: str | None = None,
                 wandb_project: str | None = None, reference: str | None = DEFAULT_REFERENCE) -> dict[str, Any]:
    """Collect, summarize, plot and write ``comparison.md`` (plots embedded) and ``comparison.csv``.

    Args:
        folder: log folder to scan for ``run.json`` records (runs, multiruns, evaluations, sequences).
        out_dir: where to write (default ``<folder>/report``).
        metric: test metric to compare on (default per task, see ``METRIC_BY_TASK``).
        wandb_project: optional ``ENTITY/PROJECT`` to add W&B runs from.
        reference: method every other method is paired against (``significance.paired_tests``);
            ``paired_tests.csv`` and a section of ``comparison.md`` hold the tests.

    Returns:
        ``{"markdown": path, "csv": path, "plots": [paths], "runs": n, "finished": n, "not_finished": n,
        "skipped": n}``: ``runs`` counts every record (``not_finished``: failed or degenerate ones).
    """
    out_dir = out_dir or os.path.join(folder, "report")
    a = analyse(folder, metric, wandb_project, reference)
    df, summary, tests, cv, sequences = a["runs"], a["summary"], a["tests"], a["cv"], a["sequences"]
    skipped = len(a["skipped"])
    plots = plot_all(a["plotted"], summary, out_dir) if len(a["plotted"]) else []
    md = write_text(os.path.join(out_dir, "comparison.md"), to_markdown(summary, skipped, df) + cv_markdown(cv)
                    + "\n".join(tests_markdown(tests, reference)) + "\n" + continual_markdown(sequences)
                    + other_records_markdown(a["evaluations"], a["debug"], metric, a["label_noise"])
                    + plots_markdown(plots, out_dir))
    if len(sequences):
        write_csv(os.path.join(out_dir, "continual.csv"), sequences)
    tests_csv = write_csv(os.path.join(out_dir, "paired_tests.csv"), tests)
    if len(cv):
        write_csv(os.path.join(out_dir, "cv.csv"), cv.assign(found=cv["found"].map(lambda s: " ".join(map(str, s)))))
    csv = write_csv(os.path.join(out_dir, "comparison.csv"),
                    summary.assign(seeds=summary["seeds"].map(lambda s: " ".join(map(str, s)))))
    finished = int((df["status"] == FINISHED).sum()) if len(df) else 0
    return {"markdown": md, "csv": csv, "paired_tests": tests_csv, "plots": plots, "runs": len(df),
            "evaluations": len(a["evaluations"]), "debug": len(a["debug"]),
            "finished": finished, "not_finished": len(df) - finished, "skipped": skipped}


def plots_markdown(plots: list[str], out_dir: str) -> str:
    """A "Plots" section embedding each PNG by its path relative to ``comparison.md``."""
    if not plots:
        return ""
    lines = ["", "## Plots", ""]
    for p in plots:
        name = os.path.splitext(os.path.basename(p))[0]
        lines += [f"![{name}]({os.path.relpath(p, out_dir)})", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localize.report", description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="log folder with run dirs (e.g. logs/runs or logs)")
    parser.add_argument("--out", help="output folder (default <folder>/report)")
    parser.add_argument("--metric", help="test metric, e.g. test/f1 (default: per task)")
    parser.add_argument("--wandb-project", help="also pull finished runs from W&B ENTITY/PROJECT (online)")
    parser.add_argument("--reference", default=DEFAULT_REFERENCE,
                        help=f"method the others are paired against (default {DEFAULT_REFERENCE}; where a setting "
                             "has none, its best-ranked method)")
    parser.add_argument("--archive", help="also copy the records and test predictions the report read to this "
                                          "folder (localize.report.archive): the page regenerates from it alone")
    args = parser.parse_args(argv)
    try:
        paths = write_report(args.folder, args.out, args.metric, args.wandb_project, args.reference)
    except (RuntimeError, FileNotFoundError, ValueError) as e:
        print(f"[localize.report] error: {e}", file=sys.stderr)
        return 1
    with open(paths["markdown"]) as f:
        print(f.read())
    print(f"[localize.report] {paths['finished']} finished runs, {paths['skipped']} unfinished run dir(s) skipped"
          + (f", {paths['not_finished']} failed or degenerate run(s) counted (degenerate ones in the means)"
             if paths["not_finished"] else ""))
    for p in [paths["markdown"], paths["csv"], paths["paired_tests"], *paths["plots"]]:
        print(f"  wrote {p}")
    if args.archive:
        n = archive_records(args.folder, args.archive)
        print(f"[localize.report] archived {n} records to {args.archive}: "
              f"python -m localize.report {args.archive} regenerates this report")
    return 0

