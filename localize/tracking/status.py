"""Whether a run is worth reading: ``status`` in every run record.

* ``finished``: trained, scored, nothing suspicious.
* ``failed``: training stopped with an error that is the run's outcome, not an interruption — a
  non-finite training loss (``TrainingFailed``). ``localize.train`` writes a record for it (status,
  reason, no test metrics, no model) and exits non-zero; a run that was killed or crashed writes
  none, so ``resume=<run dir>`` can still finish it.
* ``degenerate``: training ended but the model is not a model: a non-finite dev/test loss or
  headline metric, or dev predictions that are one label for everything while the dev gold data
  holds at least two (LoRA at too high a learning rate collapses NER to all-``O``). The dev
  predictions counted are those of the epoch the best checkpoint comes from — the weights that
  are tested and stored.

``localize.tracking.callbacks.RunHealthCallback`` raises ``TrainingFailed`` and counts the dev
predictions; ``localize.runs.read_run`` refuses any record whose status is not ``finished``; ``localize.report``
lists every run's status, counts the others per method and keeps them out of means and costs.
"""
from __future__ import annotations

import math
from typing import Any

FINISHED, FAILED, DEGENERATE = "finished", "failed", "degenerate"
STATUSES = (FINISHED, FAILED, DEGENERATE)
# Runs with test metrics. A degenerate run (e.g. collapsed to all-O) is its method's real outcome at
# that setting: it stays in the method's figures and is counted; a failed run has no test metrics.
SCORED = (FINISHED, DEGENERATE)
# Logged values that must be finite for a finished run (plus the task's monitored metric).
_MUST_BE_FINITE = ("val/loss", "test/loss")


class TrainingFailed(ValueError):
    """Training cannot go on (e.g. a non-finite loss); the run is recorded with ``status: failed``.
    A ``ValueError``: its fix is a setting (learning rate, data), so the CLI prints it as one line."""


def run_status(metrics: dict[str, float], dev_counts: dict[str, list[int]] | None = None,
               label_names: list[str] | None = None, monitor: str | None = None,
               fix: str | None = None) -> tuple[str, str | None]:
    """``(status, reason)`` of a run that trained to the end (see the module docstring).

    Args:
        metrics: the run's logged metrics (``split/name`` -> value).
        dev_counts: ``RunHealthCallback.dev_counts``: per label id, predicted and gold counts on dev.
        label_names: label id -> name, for the reason's wording.
        monitor: the task's monitored dev metric (``task.monitor``), which must be finite too.
        fix: what to change when the dev predictions collapse to one label (the module's ``collapse_fix``;
            default: the learning rate or the length of training).
    """
    for key in (*_MUST_BE_FINITE, *([monitor] if monitor else []), *[k for k in metrics if k.startswith("test/")
                                                                        and k.split("/")[1] in ("f1", "f1_macro", "chrf")]):
        value = metrics.get(key)
        if value is not None and not math.isfinite(float(value)):
            return DEGENERATE, f"{key} is {value}"
    counts = dev_counts
    if counts and counts.get("pred") and counts.get("gold"):
        predicted = [i for i, n in enumerate(counts["pred"]) if n > 0]
        gold = [i for i, n in enumerate(counts["gold"]) if n > 0]
        if len(predicted) == 1 and len(gold) >= 2:
            label = label_names[predicted[0]] if label_names and predicted[0] < len(label_names) else predicted[0]
            return DEGENERATE, (f"predicts '{label}' for all {counts['pred'][predicted[0]]} dev items (the dev data has "
                                f"{len(gold)} labels): the model collapsed; {fix or 'lower adapter.lr or train longer'}")
    return FINISHED, None


def count_labels(pred: Any, gold: Any, n_labels: int) -> dict[str, Any]:
    """Per-label counts (tensors) of predicted and gold ids (positions where gold is -100 are padding)."""
    import torch  # the report reads this module: no torch at import

    keep = gold != -100
    return {"pred": torch.bincount(pred[keep].clamp(min=0).cpu().long(), minlength=n_labels),
            "gold": torch.bincount(gold[keep].cpu().long(), minlength=n_labels)}
