"""The robustness table of ``experiments/robustness/run.sh``: per method, the clean and perturbed test metric
pooled over seeds (two-level bootstrap 95% CI), the drop (paired on the same sentences), and each method
against the reference on the same perturbed sentences (paired bootstrap over the shared seeds).

    python experiments/robustness/table.py logs/experiments/robustness --out experiments/robustness/results
    python experiments/robustness/table.py logs/experiments/robustness --pending   # runs not yet scored

Methods are named as ``localize.report`` names them (``full_frozen_emb+typos``: an augmented run;
``full_frozen_emb+fgm``: a tag that sets the recipe apart).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from typing import Any

from localize.report.records import collect, fmt, kind_of, label_recipes
from localize.robustness import perturbed_predictions
from localize.tracking.intervals import TestPredictions, metric_intervals, paired_test, run_predictions, verdict
from localize.tracking.record import read_record

CLEAN = "clean"


def scored(folder: str) -> tuple[dict[str, dict[str, dict[int, TestPredictions]]], list[str], str]:
    """``({method: {"clean" | operation: {seed: predictions}}}, training runs not yet scored, metric)``."""
    df = collect(folder)
    kinds = kind_of(df)
    train = label_recipes(df[kinds == "compared"])
    method = {os.path.realpath(d): (m, int(s)) for d, m, s in zip(train["run_dir"], train["adapter"], train["seed"])}
    out: dict[str, dict[str, dict[int, TestPredictions]]] = defaultdict(lambda: defaultdict(dict))
    done, metric = set(), "test/f1"
    for run_dir in df[kinds == "evaluate"]["run_dir"]:
        record = read_record(run_dir) or {}
        rob, evaluated = record.get("robustness"), os.path.realpath(str(record.get("evaluated_run")))
        if not rob or evaluated not in method:
            continue
        name, seed = method[evaluated]
        done.add(evaluated)
        metric = rob["metric"]
        out[name][CLEAN][seed] = run_predictions(run_dir)
        for entry in rob["perturbations"]:
            out[name][entry["operation"]][seed] = perturbed_predictions(run_dir, entry)
    pending = sorted(d for d in train["run_dir"] if os.path.realpath(d) not in done)
    return out, pending, metric


def _ci(preds: list[TestPredictions], metric: str) -> dict[str, Any]:
    return metric_intervals(preds, metrics=[metric])[metric]


def table(groups: dict[str, dict[str, dict[int, TestPredictions]]], metric: str, reference: str) -> list[dict]:
    """One row per method and condition (clean, then each perturbation)."""
    if reference not in groups:
        raise SystemExit(f"no scored runs of the reference method {reference!r}: one of {sorted(groups)} "
                         "(--reference NAME)")
    rows = []
    for name in sorted(groups, key=lambda m: (m != reference, m)):
        for cond, by_seed in groups[name].items():
            seeds = sorted(by_seed)
            preds = [by_seed[s] for s in seeds]
            row: dict[str, Any] = {"method": name, "condition": cond, "seeds": seeds, "ci": _ci(preds, metric)}
            if cond != CLEAN:  # the drop: clean minus perturbed, the same model on the same sentences
                row["drop"] = paired_test([groups[name][CLEAN][s] for s in seeds], preds, metric)
            shared = [s for s in seeds if s in groups[reference].get(cond, {})]
            if name != reference and shared:
                row["vs_reference"] = paired_test([by_seed[s] for s in shared],
                                                  [groups[reference][cond][s] for s in shared], metric)
            rows.append(row)
    return rows


def _diff(test: dict[str, Any] | None, words: bool = True) -> str:
    """A paired test in a cell; ``words``: the verdict (better/worse), else the p-value alone (for a drop,
    where "better" would read backwards)."""
    if not test:
        return "–"
    said = verdict(test) if words else f"p = {test['p_value']:.3f}"
    return f"{test['difference']:+.3f} [{test['low']:+.3f}, {test['high']:+.3f}], {said}"


def markdown(rows: list[dict], metric: str, reference: str) -> str:
    lines = [f"| method | test set | seeds | {metric} [95% CI] | drop vs clean [95% CI] | vs {reference} [95% CI] |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ci = r["ci"]
        lines.append(f"| {r['method']} | {r['condition']} | {','.join(map(str, r['seeds']))} | "
                     f"{fmt(ci['estimate'], 3)} [{fmt(ci['low'], 3)}, {fmt(ci['high'], 3)}] | "
                     f"{_diff(r.get('drop'), words=False)} | {_diff(r.get('vs_reference'))} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="the experiment's log folder (training runs and their evaluate records)")
    ap.add_argument("--out", default="experiments/robustness/results")
    ap.add_argument("--reference", default="full_frozen_emb", help="the method the others are paired with")
    ap.add_argument("--pending", action="store_true", help="print the training runs not yet scored, one a line")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.folder):
        print(f"no such folder: {args.folder}: run bash experiments/robustness/run.sh first", file=sys.stderr)
        return 2
    groups, pending, metric = scored(args.folder)
    if args.pending:
        print("\n".join(pending))
        return 0
    if not groups:
        print(f"no scored runs under {args.folder}: run bash experiments/robustness/run.sh", file=sys.stderr)
        return 2
    rows = table(groups, metric, args.reference)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(markdown(rows, metric, args.reference))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(rows, f, indent=2, default=str)
    print(markdown(rows, metric, args.reference), end="")
    if pending:
        print(f"{len(pending)} training runs not scored yet (left out): {', '.join(pending)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
