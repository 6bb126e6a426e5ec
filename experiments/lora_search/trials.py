"""Markdown table of an Optuna multirun: each trial's searched values, dev objective, test score and
cost, and the sweeper's best parameters (``optimization_results.yaml``).

    python experiments/lora_search/trials.py logs/experiments/lora_search/multiruns/<time>
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def main(folder: str) -> int:
    root = Path(folder)
    best_file = root / "optimization_results.yaml"
    if not best_file.exists():
        sys.exit(f"{best_file} is missing: the multirun did not finish (rerun experiments/lora_search/run.sh)")
    best = yaml.safe_load(best_file.read_text())
    searched = list(best["best_params"])
    rows = []
    for run in sorted(root.glob("*/run.json"), key=lambda p: int(p.parent.name.split("-")[0])):
        record = json.loads(run.read_text())
        overrides = dict(o.split("=", 1) for o in yaml.safe_load((run.parent / ".hydra" / "overrides.yaml").read_text())
                         if "=" in o)
        m, perf = record["metrics"], record["perf"]
        rows.append([run.parent.name.split("-")[0], *(_short(overrides.get(k, "")) for k in searched),
                     f"{m['val/f1_best']:.3f}", f"{m['test/f1']:.3f}", f"{perf['s_per_epoch']:.1f}",
                     f"{perf['wall_s'] / 60:.1f}"])
    head = ["trial", *searched, "dev F1 (best epoch, objective)", "test F1", "s/epoch", "wall min"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", f"Best (optimization_results.yaml): {best['best_params']}, dev F1 {best['best_value']:.3f}"
              f" — {len(rows)} trials in `{root}`."]
    print("\n".join(lines))
    return 0


def _short(value: str) -> str:
    try:
        return f"{float(value):.2e}" if "e-" in value or (0 < float(value) < 0.01) else value
    except ValueError:
        return value


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
