"""Markdown table of an Optuna multirun: each trial's searched values, dev objective, test score and
cost, and the sweeper's best parameters (``optimization_results.yaml``).

    python experiments/lora_search/trials.py logs/experiments/lora_search/multiruns/<time>
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from omegaconf import OmegaConf


def main(folder: str) -> int:
    root = Path(folder)
    best_file = root / "optimization_results.yaml"
    if not best_file.exists():
        sys.exit(f"{best_file} is missing: the multirun did not finish (rerun experiments/lora_search/run.sh)")
    best = yaml.safe_load(best_file.read_text())
    searched = list(best["best_params"])
    rows, objective, test = [], "val/f1_best", "test/f1"
    for run in sorted(root.glob("*/run.json"), key=lambda p: int(p.parent.name.split("-")[0])):
        record = json.loads(run.read_text())
        config = OmegaConf.create(record["config"])  # the resolved config holds each trial's values
        m, perf = record["metrics"], record["perf"]
        # the search's own objective and the task's test metric (val/f1_macro_best, test/f1_macro for sentiment)
        objective = config.get("optimized_metric") or objective
        test = str(OmegaConf.select(config, "task.monitor") or "val/f1").replace("val/", "test/", 1)
        rows.append([run.parent.name.split("-")[0], *(f"{OmegaConf.select(config, k):.3g}" for k in searched),
                     f"{m.get(objective, float('nan')):.3f}", f"{m.get(test, float('nan')):.3f}",
                     str(record.get("status", "?")),
                     str(perf.get("optimizer_steps", "?")), f"{perf['s_per_epoch']:.1f}", f"{perf['wall_s'] / 60:.1f}"])
    names = {"val/f1_best": "dev F1 (best epoch, objective)", "test/f1": "test F1"}
    head = ["trial", *searched, names.get(objective, f"{objective} (objective)"), names.get(test, test), "status",
            "optimizer steps", "s/epoch", "wall min"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", f"Best (optimization_results.yaml): {best['best_params']}, dev {best['best_value']:.3f}"
              f" — {len(rows)} trials in `{root}`."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
