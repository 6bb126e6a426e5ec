"""Markdown tables of the audits under a folder (experiments/audit/run.sh): how well each found the
injected flips, and the top of the shipped corpus's own ranking."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _fold_minutes(r: dict) -> float:
    """Wall time of the fold trainings (the audit's own wall_s counts only its last call when resumed)."""
    return sum(json.loads((Path(f["run_dir"]) / "run.json").read_text())["perf"]["wall_s"] for f in r["folds"]) / 60


def main(root: str) -> None:
    records = [(json.loads(p.read_text()), p.parent) for p in sorted(Path(root).glob("*/audit.json"))]
    print("| audit | examples | flipped | precision@k [95% CI] | random | flagged | flag precision | flag recall "
          "| fold test F1 / macro-F1 (mean) | fold training min (sum) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r, d in records:
        inj = r.get("injected") or {}
        # span F1 for NER, macro-F1 for classification
        f1 = [f["test"].get("test/f1", f["test"].get("test/f1_macro")) for f in r["folds"]]
        f1 = [v for v in f1 if v is not None]
        pk = (f"{inj['precision_at_k']:.2f} [{inj['precision_at_k_ci'][0]:.2f}, {inj['precision_at_k_ci'][1]:.2f}]"
              if inj.get("k") else "–")
        cells = [d.name, r["examples"], inj.get("flipped", 0), pk,
                 f"{inj['random_expectation']:.2f}" if inj.get("k") else "–", r["flagged"],
                 f"{inj['flag_precision']:.2f}" if inj.get("flag_precision") is not None else "–",
                 f"{inj['flag_recall']:.2f}" if inj.get("k") else "–",
                 f"{sum(f1) / len(f1):.3f}" if f1 else "–", f"{_fold_minutes(r):.1f}"]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    for r, d in records:
        by = (r.get("injected") or {}).get("by_ranking")
        if by:
            print(f"\nRankings of `{d.name}` on the same out-of-fold probabilities (precision@{r['injected']['k']}, "
                  f"Wilson 95% CI; random {r['injected']['random_expectation']:.3f}; used: {r['method'].get('ranking')}):\n")
            print("| sentence score | precision@k [95% CI] |")
            print("|---|---|")
            for m, v in by.items():
                lo, hi = v["precision_at_k_ci"]
                print(f"| {m} | {v['precision_at_k']:.3f} [{lo:.3f}, {hi:.3f}] |")
    for r, d in records:
        flipped = set()
        for f in r["folds"]:
            run = json.loads((Path(f["run_dir"]) / "run.json").read_text())
            flipped |= {n["id"] for n in (run["data"].get("label_noise") or {}).get("examples", []) if n["split"] == "test"}
        print(f"\nTop 10 of `{d.name}` (`label_issues.jsonl` ranks all {r['examples']}; injected: a flip of this run):\n")
        print("| rank | id | injected | words given → suggested | score |")
        print("|---|---|---|---|---|")
        for line in (d / "label_issues.jsonl").read_text(encoding="utf-8").splitlines()[:10]:
            x = json.loads(line)
            diff = "; ".join(f"{w['token']}: {w['given']} → {w['suggested']}" for w in x.get("words", [])[:3])
            label = f"{x.get('given')} → {x.get('suggested')}"  # classification: one label per text
            print(f"| {x['rank']} | {x['id']} | {'yes' if x['id'] in flipped else ''} | {diff or label} "
                  f"| {x['score']:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "logs/experiments/audit")
