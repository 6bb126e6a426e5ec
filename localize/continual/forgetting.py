"""Is the forgetting real? A paired test per earlier stage: its test predictions after the last stage
against those right after it was trained (the same test examples: ``tracking.intervals.paired_test``)."""
from __future__ import annotations

import os
from typing import Any

from localize.tracking.intervals import paired_test, run_predictions, verdict


def forgetting_tests(seq: Any) -> list[dict[str, Any]]:
    """Per stage j < T-1: ``R[T-1][j] - R[j][j]`` with its paired-bootstrap 95% interval and p-value."""
    T, out = len(seq.names), []
    for j in range(T - 1):
        after_last = run_predictions(os.path.join(seq.out, "evals", f"after-{T - 1}-on-{j}"))
        after_own = run_predictions(os.path.join(seq.out, "evals", f"after-{j}-on-{j}"))
        entry: dict[str, Any] = {"stage": seq.names[j]}
        if after_last is None or after_own is None:
            entry["note"] = "no test predictions recorded"
        else:
            try:
                test = paired_test(after_last, after_own, seq.metric, seed=seq.seed)
                entry.update(test, verdict=verdict(test))
            except ValueError as e:
                entry["note"] = str(e)
        out.append(entry)
    return out
