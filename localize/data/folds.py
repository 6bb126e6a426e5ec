"""K-fold cross-validation of an unsplit corpus: ``data.cv_folds=K data.cv_fold=i``.

:func:`fold_ids` puts every example in exactly one of K test folds (seeded; grouped examples — translation's
English source — never span two folds); :func:`fold_split` is ``sources.split_examples(..., folds=K,
fold=i)``: fold ``i`` is the test split and the other folds (the fold's *training part*) are cut into
dev and train by ``split_examples`` itself, so the plain split and the folds share one splitter.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from localize.data.errors import DataError
from localize.data.sources import Splits, _counts, _sizes, source_hash, split_examples

# The dev carve of a fold uses its own seed: the folds are chunks of the seeded order (or of the
# group hash), so reusing that order would take the dev part from one neighbouring fold only.
_DEV_SEED = "{seed}/cv-dev"


def check_share(count: Any, index: Any, keys: tuple[str, str], needs: str, count_fix: str,
                unit: str, index_fix: str = "") -> tuple[int, int]:
    """``(count, index)`` when ``index`` names one of ``count >= 2`` shares (CV folds, continual parts),
    else one :class:`DataError` line naming the key and the fix."""
    count_key, index_key = keys
    if isinstance(count, bool) or not isinstance(count, int) or count < 2:
        got = f"{count_key}={count}" if count is not None else f"{index_key}={index} without {count_key}"
        raise DataError(f"{got}: {needs} an integer {count_key} >= 2. Fix: {count_fix}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        what = " is not set" if index is None else f"={index} is out of range"
        raise DataError(f"{index_key}{what} for {count_key}={count} ({unit} are 0..{count - 1}). "
                        f"Fix: {index_key}=0{index_fix}")
    return count, index


def check_folds(folds: Any, fold: Any) -> tuple[int, int]:
    """``(folds, fold)`` when they name a fold, else one :class:`DataError` line with the fix."""
    every = f" (every fold: -m data.cv_fold={','.join(map(str, range(folds)))})" if isinstance(folds, int) else ""
    return check_share(folds, fold, ("data.cv_folds", "data.cv_fold"), "cross-validation needs",
                       "data.cv_folds=5 (or data.cv_folds=null data.cv_fold=null for the plain split)", "folds", every)


def _chunks(seq: Sequence[Any], k: int) -> list[Sequence[Any]]:
    """``seq`` cut into ``k`` consecutive chunks whose lengths differ by at most one."""
    return [seq[i * len(seq) // k:(i + 1) * len(seq) // k] for i in range(k)]


def _fold_order(examples: Sequence[dict], folds: int, seed: int | str,
                group: Callable[[dict], Hashable] | None) -> tuple[list[int], list[int]]:
    """``(fold of each example, example indices in seeded order)``; see :func:`fold_ids`."""
    if group is None:
        order = list(range(len(examples)))
        random.Random(seed).shuffle(order)  # the same shuffle as the plain split
        units, of_example = order, None
    else:
        keys = [group(ex) for ex in examples]
        pos = {k: source_hash(str(k), seed) for k in set(keys)}
        units = sorted(pos, key=lambda k: (pos[k], str(k)))
        order = sorted(range(len(examples)), key=lambda i: (pos[keys[i]], i))
        of_example = keys
    if len(units) < folds:
        unit = "examples" if group is None else "groups"
        raise DataError(f"{len(units)} {unit} are too few for data.cv_folds={folds}. "
                        f"Fix: data.cv_folds={max(2, min(5, len(units)))} or add data")
    fold_of = {u: f for f, chunk in enumerate(_chunks(units, folds)) for u in chunk}
    ids = [fold_of[i] for i in range(len(examples))] if of_example is None else [fold_of[k] for k in of_example]
    return ids, order


def fold_ids(examples: Sequence[dict], folds: int, seed: int | str = 42, *,
             group: Callable[[dict], Hashable] | None = None) -> list[int]:
    """The test fold (``0 .. folds-1``) of every example: each example is in exactly one.

    Without ``group`` the folds are ``folds`` consecutive chunks of ``random.Random(seed).shuffle``
    of the indices (sizes differ by at most one). With ``group`` the distinct keys, in
    :func:`source_hash` order, are cut into chunks of near-equal group counts: a group never spans
    two folds (translation: no English source is both trained and tested on).
    """
    return _fold_order(examples, folds, seed, group)[0]


def _dev_share(sizes: Mapping[str, Any] | Sequence[Any], n: int) -> float:
    """The ``validation / (train + validation)`` ratio of ``sizes`` (``n``: resolves a None rest)."""
    named, fractions = _sizes(sizes, False)
    if not fractions and None in named.values():
        named = _counts(named, False, n, "examples")
    train, dev = named.get("train") or 0, named.get("validation") or 0
    if train + dev <= 0:
        raise DataError(f"data.split_sizes={dict(named)} gives no train/validation share to carve a fold's dev "
                        f"from. Fix: data.cv_dev=0.1")
    return dev / (train + dev)


def fold_split(examples: Sequence[dict], sizes: Mapping[str, Any] | Sequence[Any], seed: int | str,
               folds: Any, fold: Any, dev: float | int | None, *, group: Callable[[dict], Hashable] | None,
               keep_order: bool) -> Splits:
    """``test`` = fold ``fold``; the other folds (the fold's *training part*) are cut into
    ``validation`` and ``train`` by ``split_examples`` with its own seed, grouped as the folds are.

    Args:
        dev: the dev part, a fraction of the training part (of its examples, or of its groups)
            or a count; None keeps the ``train : validation`` ratio of ``sizes`` (400/50/50: 1/9).
        Others: as ``split_examples``.

    Raises:
        DataError: bad ``folds``/``fold``/``dev`` (one line naming the key and the fix), too few examples.
    """
    folds, fold = check_folds(folds, fold)
    ids, order = _fold_order(examples, folds, seed, group)
    test = [examples[i] for i in (range(len(examples)) if keep_order else order) if ids[i] == fold]
    rest = [examples[i] for i in range(len(examples)) if ids[i] != fold]
    n_rest = len(rest) if group is None else len({group(ex) for ex in rest})
    share = _dev_share(sizes, len(examples)) if dev is None else dev
    if isinstance(share, bool) or not isinstance(share, (int, float)) or share <= 0 or (
            isinstance(share, float) and share >= 1):
        raise DataError(f"data.cv_dev={dev}: the dev part of a fold is a fraction in (0, 1) of its training part "
                        f"or a positive count. Fix: data.cv_dev=0.1 (or null: the data.split_sizes ratio)")
    if isinstance(share, int) and share >= n_rest:
        raise DataError(f"data.cv_dev={share} leaves no training data in a fold's training part of {n_rest}. "
                        f"Fix: data.cv_dev=0.1")
    # A fraction becomes a count (of examples or groups): hash intervals would leave a few groups'
    # dev size to chance.
    count = share if isinstance(share, int) else max(1, math.floor(share * n_rest))
    parts = split_examples(rest, {"train": None, "validation": count}, _DEV_SEED.format(seed=seed), group=group,
                           keep_order=keep_order)
    return {"train": parts["train"], "validation": parts["validation"], "test": test}
