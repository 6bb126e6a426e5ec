"""Injected label noise: ``data.label_noise=0.05`` gives a seeded 5% of the examples a wrong label.

It is how a label audit is checked (``localize.audit``: do the flipped examples rank high?) and how a
method's robustness to noisy local annotation is measured. Whether an example is flipped, and how, is
drawn from its own id and the data seed alone, so every split, fold and run of one corpus agrees on
which examples are wrong — a K-fold audit trains each fold on the same noisy corpus.

Flips stay inside the run's label set: a class becomes another class; an NER sentence has one entity
relabelled to another type (its span kept — the most common annotation slip). Sentences without an
entity are left as they are.
"""
from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from typing import Any

from localize.data.errors import DataError

_SEED = "{seed}/label-noise/{id}"
SPLIT_NAMES = ("train", "validation", "test")

# example, the run's label set, the example's own draw -> the flipped example (None: cannot be flipped)
Flip = Callable[[dict, Sequence[str], random.Random], "dict | None"]


def check_noise(fraction: Any, splits: Sequence[str]) -> tuple[float, list[str]]:
    """``(fraction, splits)`` when they are valid, else one :class:`DataError` line with the fix."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise DataError(f"data.label_noise={fraction}: the share of examples to flip is a fraction in (0, 1). "
                        f"Fix: data.label_noise=0.05 (or null for the labels as given)")
    bad = [s for s in splits if s not in SPLIT_NAMES]
    if bad or not splits:
        raise DataError(f"data.label_noise_splits={list(splits)}: splits are {list(SPLIT_NAMES)}. "
                        f"Fix: data.label_noise_splits=[train]")
    return float(fraction), list(splits)


def _draw(ex: dict, seed: Any) -> random.Random:
    key = _SEED.format(seed=seed, id=ex.get("id", repr(sorted(ex.items()))))
    return random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))


def flip_examples(examples: Sequence[dict], fraction: float, labels: Sequence[str], seed: Any,
                  flip: Flip) -> tuple[list[dict], list[dict]]:
    """``(examples with the drawn ones flipped, one note per flipped example)``; each note is
    ``{"id", "given", "true"}`` (the injected label and the original one, in the example's own form)."""
    out, notes = [], []
    for ex in examples:
        rng = _draw(ex, seed)
        new = flip(ex, labels, rng) if rng.random() < fraction else None
        if new is None:
            out.append(ex)
            continue
        out.append(new)
        notes.append({"id": ex.get("id"), "given": _label(new), "true": _label(ex)})
    return out, notes


def _label(ex: dict) -> Any:
    return ex["tags"] if "tags" in ex else ex.get("label")


def flip_class(ex: dict, labels: Sequence[str], rng: random.Random) -> dict | None:
    """Classification: another class of the label set, drawn uniformly."""
    others = [lab for lab in labels if lab != ex["label"]]
    return {**ex, "label": rng.choice(others)} if others else None


def flip_entity_type(ex: dict, labels: Sequence[str], rng: random.Random) -> dict | None:
    """NER: one entity of the sentence (drawn) gets another entity type of the label set."""
    types = sorted({t[2:] for t in labels if t != "O"})
    tags = list(ex["tags"])
    starts = [i for i, t in enumerate(tags) if t.startswith("B-")]
    if not starts or len(types) < 2:
        return None
    start = rng.choice(starts)
    old = tags[start][2:]
    new = rng.choice([t for t in types if t != old])
    end = start + 1
    while end < len(tags) and tags[end] == f"I-{old}":
        end += 1
    tags[start:end] = [f"B-{new}"] + [f"I-{new}"] * (end - start - 1)
    return {**ex, "tags": tags}
