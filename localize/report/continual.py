"""Continual sequences in the report: one row per (sequence, strategy), seeds pooled.

A sequence dir holds ``continual.json`` (``localize.continual.sequence``) and one evaluation record per
cell of its matrix. Per strategy:

* **final average** of the last stage's model over every stage's test set, with a 95% bootstrap
  interval over test examples and seeds; the stages are fixed terms, not resampled
  (``tracking.intervals.stage_mean_interval``);
* **BWT** (backward transfer; negative = forgetting): ``R[T-1][j] - R[j][j]`` averaged over earlier
  stages and seeds, with its interval and p-value from the same bootstrap, paired (the same test
  examples before and after share each draw);
* **FWT** (forward transfer): ``R[j-1][j] - Z[j]`` over the later stages, Z the base model's zero-shot score
  on stage j's test, the same paired bootstrap (n/a where an earlier model cannot answer a later stage);
* **vs the reference strategy** (default ``sequential``): the earlier stages' scores after the last
  stage, paired on the same test examples and seeds — does the strategy keep more than the reference?
* costs: training seconds per sequence, storage kept to serve every stage, models kept.
"""
from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd

from localize.report.records import CONTINUAL_RECORD as SEQUENCE_RECORD, fmt
DEFAULT_REFERENCE = "sequential"
COLUMNS = ["sequence", "strategy", "seeds", "metric", "final", "final_low", "final_high", "learned", "bwt", "bwt_low",
           "bwt_high", "bwt_p", "fwt", "fwt_low", "fwt_high", "fwt_p", "forgetting_cut", "reference", "kept_diff", "kept_low", "kept_high", "kept_p", "kept_seeds",
           "train_s", "stored_mb", "models_kept", "matrix", "zero_shot", "dirs"]


def find_sequences(folder: str) -> list[str]:
    """Sequence dirs (holding ``continual.json``) under ``folder``."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        if SEQUENCE_RECORD in files:
            out.append(root)
            dirs[:] = []
    return out


def _read(path: str) -> dict[str, Any]:
    with open(os.path.join(path, SEQUENCE_RECORD)) as f:
        return json.load(f)


def _cells(seq_dir: str, T: int) -> dict[tuple[int, int], Any]:
    """Each recorded cell's test predictions, ``(i, j)`` -> predictions (None where not measured), read once;
    row -1 is the base model's (zero-shot)."""
    from localize.tracking.intervals import run_predictions

    cells = {(i, j): run_predictions(os.path.join(seq_dir, "evals", f"after-{i}-on-{j}"))
             for i in range(T) for j in range(T)}
    return cells | {(-1, j): run_predictions(os.path.join(seq_dir, "evals", f"zero-shot-on-{j}")) for j in range(T)}


def _seed_mean(cells: list[dict | None]) -> float | None:
    """The mean value of one cell over seeds; None unless every seed measured it."""
    return sum(c["value"] for c in cells) / len(cells) if cells and all(cells) else None


def summarize_sequences(folder: str, reference: str = DEFAULT_REFERENCE) -> pd.DataFrame:
    """One row per (sequence, strategy) of the finished sequences under ``folder`` (columns: ``COLUMNS``)."""
    from localize.tracking.intervals import stage_mean_interval

    groups: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    for d in find_sequences(folder):
        s = _read(d)
        if s.get("status") == "finished":
            groups.setdefault((s["sequence"], s["strategy"]), []).append((d, s))
    rows = []
    for (sequence, strategy), seqs in sorted(groups.items()):
        seqs.sort(key=lambda x: x[1]["seed"])
        metric = seqs[0][1]["metric"]
        T = len(seqs[0][1]["stage_names"])
        cells = [_cells(d, T) for d, _ in seqs]
        # Per seed, the stages are fixed terms (not resampled); test examples and seeds are.
        final = [[(c[T - 1, j], 1 / T) for j in range(T)] for c in cells]
        own = [[(c[j, j], 1 / T) for j in range(T)] for c in cells]
        back = [[t for j in range(T - 1) for t in ((c[T - 1, j], 1 / (T - 1)), (c[j, j], -1 / (T - 1)))]
                for c in cells]
        fwd = [[t for j in range(1, T) for t in ((c[j - 1, j], 1 / (T - 1)), (c[-1, j], -1 / (T - 1)))]
               for c in cells]
        ci, lci, bwt, fwt = (stage_mean_interval(g, metric) if all(p is not None for x in g for p, _ in x) else {}
                             for g in (final, own, back, fwd))
        # Earlier stages after the last one, per seed: what the reference comparison pairs.
        last_by_seed = {s["seed"]: [c[T - 1, j] for j in range(T - 1) if c[T - 1, j] is not None and
                                    c[j, j] is not None] for (_, s), c in zip(seqs, cells)}
        matrix = [[_seed_mean([s["matrix"][i][j] for _, s in seqs]) for j in range(T)] for i in range(T)]
        cost = [s.get("cost") or {} for _, s in seqs]
        rows.append({"sequence": sequence, "strategy": strategy, "seeds": [s["seed"] for _, s in seqs],
                     "metric": metric, "final": ci.get("estimate"), "final_low": ci.get("low"),
                     "final_high": ci.get("high"), "learned": lci.get("estimate"), "bwt": bwt.get("estimate"),
                     "bwt_low": bwt.get("low"), "bwt_high": bwt.get("high"), "bwt_p": bwt.get("p_value"),
                     "fwt": fwt.get("estimate"), "fwt_low": fwt.get("low"), "fwt_high": fwt.get("high"),
                     "fwt_p": fwt.get("p_value"),
                     "zero_shot": [_seed_mean([(s.get("zero_shot") or [None] * T)[j] for _, s in seqs])
                                   for j in range(T)],
                     "train_s": sum(c.get("train_s", 0) for c in cost) / len(cost),
                     "stored_mb": sum(c.get("stored_mb", 0) for c in cost) / len(cost),
                     "models_kept": cost[0].get("models_kept"), "matrix": matrix,
                     "dirs": [d for d, _ in seqs], "_last": last_by_seed})
    _against_reference(rows, reference)
    return pd.DataFrame([{k: r.get(k) for k in COLUMNS} for r in rows], columns=COLUMNS)


def _against_reference(rows: list[dict], reference: str) -> None:
    """Earlier stages after the last one, strategy vs reference on the same examples and seeds; and
    how much of the reference's forgetting (|BWT|) the strategy cuts."""
    from localize.tracking.intervals import paired_test

    for r in rows:
        ref = next((x for x in rows if x["sequence"] == r["sequence"] and x["strategy"] == reference), None)
        if ref is None or ref is r:
            continue
        r["reference"] = reference
        if ref["bwt"] is not None and r["bwt"] is not None and ref["bwt"] < 0:
            r["forgetting_cut"] = 1 - abs(min(r["bwt"], 0.0)) / abs(ref["bwt"])
        common = sorted(set(r["_last"]) & set(ref["_last"]))  # pair on the seeds both ran
        a = [p for seed in common for p in r["_last"][seed]]
        b = [p for seed in common for p in ref["_last"][seed]]
        if a and len(a) == len(b):
            try:
                t = paired_test(a, b, r["metric"])
            except ValueError:
                continue
            r.update(kept_diff=t["difference"], kept_low=t["low"], kept_high=t["high"], kept_p=t["p_value"],
                     kept_seeds=common)


def to_markdown(df: pd.DataFrame) -> str:
    """The report's "Continual sequences" section (empty string without sequences)."""
    if not len(df):
        return ""
    lines = ["", "## Continual sequences", "",
             "| sequence | strategy | seeds | final average [95% CI] | learned (R[j][j]) | BWT [95% CI] (p) | "
             "FWT [95% CI] (p) | forgetting cut vs reference | earlier stages vs reference [95% CI] (p) | train s | "
             "stored MB | models |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in df.itertuples():
        vs = (f"{r.kept_diff:+.4f} [{fmt(r.kept_low)}, {fmt(r.kept_high)}] (p = {r.kept_p:.3f}; seeds "
              f"{' '.join(map(str, r.kept_seeds))})"
              if r.kept_diff is not None and r.kept_diff == r.kept_diff else "n/a")
        cut = f"{100 * r.forgetting_cut:.0f}%" if r.forgetting_cut is not None and r.forgetting_cut == r.forgetting_cut \
            else "n/a"
        bwt, fwt = (f"{v:+.4f} [{fmt(lo)}, {fmt(hi)}] (p = {p:.3f})" if v is not None and v == v else "n/a"
                    for v, lo, hi, p in ((r.bwt, r.bwt_low, r.bwt_high, r.bwt_p), (r.fwt, r.fwt_low, r.fwt_high, r.fwt_p)))
        lines.append(f"| {r.sequence} | {r.strategy} | {' '.join(map(str, r.seeds))} | {fmt(r.final)} "
                     f"[{fmt(r.final_low)}, {fmt(r.final_high)}] | {fmt(r.learned)} | {bwt} | {fwt} | {cut} | {vs} | "
                     f"{fmt(r.train_s, 0)} | {fmt(r.stored_mb, 1)} | {r.models_kept} |")
    lines += ["", "Matrices (mean over seeds; row: after training stage i, column: stage j's test; n/a: not "
                  "measured, e.g. a later stage's new labels the model has no output for):", ""]
    for r in df.itertuples():
        cells = " / ".join("[" + ", ".join(fmt(v) for v in row) + "]" for row in r.matrix)
        zero = ", ".join(fmt(v) for v in r.zero_shot or [])
        lines.append(f"- {r.sequence} / {r.strategy}: {cells} (zero-shot: [{zero}])")
    lines += ["", "Final average: the last stage's model on every stage's test set; its 95% interval is a bootstrap "
                  "over test examples and seeds (the stages are fixed, not resampled). BWT: R[T-1][j] - R[j][j] over "
                  "earlier stages (negative = forgetting), the same bootstrap paired on the same test examples. FWT: R[j-1][j] - "
                  "the base model's zero-shot score on stage j, over later stages, the same bootstrap. Forgetting cut: 1 - |BWT| / "
                  "|BWT of the reference|. Earlier stages vs reference: their scores after the last stage, the "
                  "strategy minus the reference, paired on the same examples and seeds."]
    return "\n".join(lines) + "\n"
