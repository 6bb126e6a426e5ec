"""The accuracy matrix of a stage sequence and what it says (Lopez-Paz & Ranzato 2017, GEM).

``R[i][j]``: the score on stage ``j``'s test set after training stage ``i`` (None where not measured).
``Z[j]``: stage ``j``'s zero-shot score (the base model, no training on the sequence).

* final average: mean over j of ``R[T-1][j]``;
* backward transfer ``BWT = mean_{j<T-1} (R[T-1][j] - R[j][j])``: negative is forgetting;
* forward transfer ``FWT = mean_{j>0} (R[j-1][j] - Z[j])``: what earlier stages give a stage before it trains.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

Matrix = list[list[float | None]]


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return sum(vals) / len(vals) if vals and len(vals) == len(values) else None


def transfer(R: Matrix, Z: Sequence[float | None] | None = None) -> dict[str, float | None]:
    """``final_average``, ``bwt``, ``fwt`` (None where a cell they need is missing), and
    ``forgetting`` (``-bwt``, the share of what was learned that is lost, in metric points)."""
    T = len(R)
    last = R[T - 1] if T else []
    bwt = _mean([None if last[j] is None or R[j][j] is None else last[j] - R[j][j] for j in range(T - 1)]) \
        if T > 1 else None
    fwt = None
    if Z is not None and T > 1:
        fwt = _mean([None if R[j - 1][j] is None or Z[j] is None else R[j - 1][j] - Z[j] for j in range(1, T)])
    return {"final_average": _mean(last) if T else None, "bwt": bwt, "fwt": fwt,
            "forgetting": -bwt if bwt is not None else None}


def heatmap(R: Matrix, names: Sequence[str], path: str, title: str, metric: str) -> str:
    """``R`` as an annotated heatmap PNG (rows: after training stage i; columns: stage j's test)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    data = np.array([[np.nan if v is None else v for v in row] for row in R], dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(names), 1.2 + 0.9 * len(names)))
    im = ax.imshow(data, vmin=0, vmax=max(1e-9, float(np.nanmax(data))) if np.isfinite(data).any() else 1,
                   cmap="viridis")
    for i in range(len(names)):
        for j in range(len(names)):
            if np.isfinite(data[i, j]):
                ax.text(j, i, f"{data[i, j]:.3f}", ha="center", va="center", color="w", fontsize=9)
    ax.set_xticks(range(len(names)), [f"test: {n}" for n in names], rotation=20)
    ax.set_yticks(range(len(names)), [f"after {n}" for n in names])
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label=metric)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cell(record: dict[str, Any] | None, metric: str) -> dict[str, Any] | None:
    """One matrix cell from an evaluation record: the score, its 95% interval and the test size."""
    if record is None:
        return None
    key = f"test/{metric}"
    ci = (record.get("metrics_ci") or {}).get(key) or {}
    value = (record.get("metrics") or {}).get(key)
    return {"value": value, "low": ci.get("low"), "high": ci.get("high"),
            "n": (record.get("test_predictions") or {}).get("n")}


__all__ = ["transfer", "heatmap", "cell", "Matrix"]
