"""Robustness of a trained run: ``python -m localize.evaluate run=<dir> +perturb=<suite>``.

Each operation of the suite (``conf/perturb/*.yaml``; the operations of ``localize.data.augment``) perturbs
the test split in place — same examples, same ids, labels kept aligned — and the run is scored on it. The
record's ``robustness`` holds, per perturbation, how many test examples it changed, the metrics with their
bootstrap CI, and the drop against the clean test as a paired bootstrap on the same examples. Each
perturbation's per-example predictions are kept beside the record (``test_predictions.perturb-<op>.jsonl``), so
runs of several seeds or methods can be pooled and paired later (``experiments/robustness/table.py``).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable

from omegaconf import DictConfig

from localize.tracking.intervals import TestPredictions, paired_test, read_predictions, verdict, write_predictions
from localize.utils import build

log = logging.getLogger(__name__)


def predictions_file(operation: str) -> str:
    """The file, beside the evaluate record, that holds one perturbation's per-example predictions."""
    return f"test_predictions.perturb-{operation}.jsonl"


def robustness(cfg: DictConfig, module: Any, new_trainer: Callable[[], Any], clean: TestPredictions | None,
               clean_metrics: dict[str, float], clean_test: list[dict], out_dir: str) -> dict[str, Any]:
    """Score ``module`` on each perturbed copy of the configured test split (see the module docstring);
    ``clean_test``: the clean test examples, whose ids pair each perturbed row with its original;
    ``out_dir``: the evaluate record's dir, where each perturbation's predictions are written."""
    suite = cfg.perturb
    metric = str(cfg.task.monitor).replace("val/", "test/")
    out = {"suite": str(suite.get("name", "custom")), "metric": metric, "clean": clean_metrics.get(metric),
           "perturbations": []}
    for op in list(suite.operations):
        dm = build(cfg.data, perturb=[str(op)])
        tested = new_trainer().test(module, datamodule=dm, verbose=False)
        metrics = {k: float(v) for k, v in (tested[0] if tested else {}).items()}
        preds = module.test_predictions()
        if preds is not None:  # a perturbed example is its clean original (same place in the split)
            for r in preds.rows:
                r.pop("id", None)
            preds.assign_ids(clean_test)
        entry = {"operation": str(op), **{k: dm.data_info["perturb"][k] for k in ("changed", "examples")},
                 "metrics": metrics, "metrics_ci": preds.intervals() if preds is not None else {},
                 "drop": None if metric not in metrics or metric not in clean_metrics else clean_metrics[metric] - metrics[metric]}
        if preds is not None and preds.rows:
            file = predictions_file(str(op))
            write_predictions(os.path.join(out_dir, file), preds)
            entry["predictions"] = preds.meta(file)
        if clean is not None and preds is not None:
            test = paired_test(preds, clean, metric)
            entry["paired_vs_clean"] = {**test, "verdict": verdict(test)}
        out["perturbations"].append(entry)
        log.info("perturbation %s: %s=%.4f (clean %.4f), %d of %d test examples changed", op, metric,
                 metrics.get(metric, float("nan")), clean_metrics.get(metric, float("nan")), entry["changed"],
                 entry["examples"])
    return out


def perturbed_predictions(run_dir: str, entry: dict[str, Any]) -> TestPredictions | None:
    """One perturbation's predictions back from an evaluate record's dir (its ``robustness`` entry)."""
    meta = entry.get("predictions") or {}
    if not meta.get("file"):
        return None
    return read_predictions(os.path.join(run_dir, meta["file"]), meta["kind"], meta.get("options"))
