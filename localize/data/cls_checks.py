"""Checks on classification splits: the label set, class weights, duplicates and train/test leakage."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import torch

from localize.data.errors import DataError

Example = dict[str, str]
Splits = dict[str, list[Example]]


# ---------------------------------------------------------------------------------------------
# Duplicates and leakage
# ---------------------------------------------------------------------------------------------


def _key(ex: Example) -> str:
    # Whitespace-collapsed so re-crawled copies differing only in spacing/newlines still match.
    key = " ".join(ex["text"].split())
    return key + "\x1f" + " ".join(ex["text_pair"].split()) if "text_pair" in ex else key


def remove_leakage(splits: Mapping[str, list[Example]]) -> tuple[Splits, dict[str, int]]:
    """Drops train documents whose normalised text also occurs in another split.

    Run it before truncation so that only genuinely identical documents collide.

    Args:
        splits: Split name -> examples; must contain ``"train"``.

    Returns:
        ``(splits, removed)``: the splits with a filtered ``train`` (others untouched) and, per
        other split, how many train documents collided with it. A train document colliding with
        several splits is counted under each but removed once.
    """
    if "train" not in splits:
        raise DataError(f"remove_leakage needs a 'train' split, got {sorted(splits)}")
    held_out = {name: {_key(ex) for ex in exs} for name, exs in splits.items() if name != "train"}
    removed = dict.fromkeys(held_out, 0)
    train = []
    for ex in splits["train"]:
        key = _key(ex)
        hits = [name for name, keys in held_out.items() if key in keys]
        for name in hits:
            removed[name] += 1
        if not hits:
            train.append(ex)
    return {**splits, "train": train}, removed


def duplicate_stats(splits: Mapping[str, list[Example]]) -> dict[str, int]:
    """Counts duplicates for reporting (nothing is removed).

    Returns:
        ``"within:<split>"`` -> extra copies inside a split, and ``"overlap:<a>&<b>"`` -> distinct
        normalised texts shared by two splits.
    """
    keys = {name: Counter(map(_key, exs)) for name, exs in splits.items()}
    stats = {f"within:{n}": sum(c - 1 for c in cnt.values()) for n, cnt in keys.items()}
    stats |= {f"overlap:{a}&{b}": len(keys[a].keys() & keys[b].keys()) for a, b in combinations(keys, 2)}
    return stats


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------


def _label_order(label: str) -> tuple[int, int | str]:
    # Numeric labels sort numerically so "10" does not get an id before "2".
    return (0, int(label)) if re.fullmatch(r"-?\d+", label) else (1, label)


def label_names_from(examples: Sequence[Example], given: Sequence[Any] | None = None) -> list[str]:
    """Returns the label names (their index is the class id).

    Args:
        examples: Examples whose labels must all be covered.
        given: Configured label names; if set, it fixes the order and is validated.

    Returns:
        ``given`` as strings, or the sorted label set of ``examples`` (numbers numerically).

    Raises:
        DataError: If ``given`` has duplicates or the data has labels outside it.
    """
    seen = {ex["label"] for ex in examples}
    if given is None:
        return sorted(seen, key=_label_order)
    names = [str(g) for g in given]
    if len(set(names)) != len(names):
        raise DataError(f"data.labels has duplicates: {names}. Fix: list each label once")
    unknown = sorted(seen - set(names), key=_label_order)
    if unknown:
        ids = {lab: [ex["id"] for ex in examples if ex["label"] == lab][:3] for lab in unknown}
        detail = "; ".join(f"{lab!r} (e.g. {', '.join(v)})" for lab, v in ids.items())
        raise DataError(
            f"labels not in data.labels={names}: {detail}. Fix: add them to data.labels or fix/drop those rows"
        )
    return names


def check_label_spellings(splits: Mapping[str, Sequence[Example]], source: Any) -> None:
    """Refuses one number written two ways (``1`` and ``1.0``, ``01``): each spelling would be its own class.

    Which one is meant cannot be told from the data (a float column exported next to an int one, or
    two real classes), so the file is fixed, not guessed.

    Raises:
        DataError: naming the spellings, their counts and rows, and the fix.
    """
    by_value: dict[float, Counter] = {}
    first: dict[str, str] = {}
    for exs in splits.values():
        for ex in exs:
            lab = ex["label"]
            try:
                value = float(lab)
            except ValueError:
                continue
            by_value.setdefault(value, Counter())[lab] += 1
            first.setdefault(lab, ex["id"])
    clashes = {v: c for v, c in by_value.items() if len(c) > 1}
    if clashes:
        value, counts = next(iter(clashes.items()))
        (keep, _), *others = counts.most_common()
        seen = ", ".join(f"{lab!r} x{n} (first: {first[lab]})" for lab, n in counts.most_common())
        raise DataError(f"{source}: the label {value:g} is written {len(counts)} ways: {seen}; each would become its "
                        f"own class. Fix: write it one way in the label column (e.g. replace "
                        f"{', '.join(repr(lab) for lab, _ in others)} with {keep!r})")


def class_weights(examples: Sequence[Example], label_names: Sequence[str]) -> torch.Tensor:
    """Inverse-frequency class weights, normalised to mean 1, in ``label_names`` order.

    Raises:
        DataError: If a label has no examples (its weight would be infinite) or is unknown.
    """
    names = label_names_from(examples, label_names)
    counts = Counter(ex["label"] for ex in examples)
    empty = [n for n in names if counts[n] == 0]
    if empty:
        raise DataError(f"labels {empty} have no training examples, so their class weight is infinite. Fix: add "
                        f"training examples, drop them from data.labels, or set data.use_class_weights=false")
    w = torch.tensor([1.0 / counts[n] for n in names], dtype=torch.float32)
    return w / w.mean()
