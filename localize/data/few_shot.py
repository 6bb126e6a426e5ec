"""Few-shot training splits: ``data.train_per_label=K`` keeps K training examples of every label.

The draw is seeded by the data seed (so a few-shot curve's seeds also draw its K examples), independent per
label (K=8's examples are not a prefix of K=32's: each K is its own sample, as in the few-shot literature),
and keeps the split's order. Dev and test are never touched. A label with fewer than K training examples is
refused with the largest K that every label can give.
"""
from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from localize.data.errors import DataError

_SEED = "{seed}/per-label-{k}"


def per_label_sample(examples: list[dict[str, Any]], k: Any, seed: int, source: str = "train") -> list[dict[str, Any]]:
    """``k`` examples of every ``example["label"]``, drawn with ``seed``, in ``examples``' order."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise DataError(f"data.train_per_label={k} is not a count. Fix: data.train_per_label=8 (examples per "
                        f"label), or data.train_per_label=null for the whole training split")
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_label[ex["label"]].append(i)
    short = {lab: len(ix) for lab, ix in sorted(by_label.items()) if len(ix) < k}
    if short:
        most = min(len(ix) for ix in by_label.values())
        raise DataError(f"data.train_per_label={k}: {source} has fewer examples of {short}. "
                        f"Fix: data.train_per_label={most} (the most every label has)")
    rng = random.Random(_SEED.format(seed=seed, k=k))
    keep = sorted(i for lab in sorted(by_label) for i in rng.sample(by_label[lab], k))
    return [examples[i] for i in keep]
