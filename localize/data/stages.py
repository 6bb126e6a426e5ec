"""Stage data of a continual sequence (``localize.continual``): a corpus cut between stages, and
earlier stages' examples replayed into a later one.

* ``data.parts=K data.part=i``: train and dev cut into ``K`` disjoint seeded shares (``fold_ids``, the
  cross-validation splitter), share ``i`` kept — two stages on one corpus learn from other sentences.
* ``data.replay_from=[files] data.replay_size=N``: ``N`` examples (or a fraction) drawn with the data
  seed from JSONL files of examples, added to the training split only.
"""
from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from typing import Any

from localize.data.errors import DataError
from localize.data.folds import check_share, fold_ids

# Its own seed: the shares must not line up with the train/dev/test split's shuffle order.
_PART_SEED = "{seed}/parts"
_REPLAY_SEED = "{seed}/replay"


def check_part(parts: Any, part: Any) -> tuple[int, int]:
    """``(parts, part)`` when they name one share, else one :class:`DataError` line with the fix."""
    return check_share(parts, part, ("data.parts", "data.part"), "a share of the data needs",
                       "data.parts=2 data.part=0 (or data.parts=null data.part=null for all of it)", "shares")


def part_of(examples: Sequence[dict], parts: int, part: int, seed: int | str) -> list[dict]:
    """Share ``part`` of ``parts`` disjoint seeded shares of ``examples`` (original order kept)."""
    if len(examples) < parts:
        raise DataError(f"{len(examples)} examples are too few for data.parts={parts}. Fix: data.parts=null or add data")
    ids = fold_ids(examples, parts, _PART_SEED.format(seed=seed))
    return [ex for ex, f in zip(examples, ids) if f == part]


def write_examples(path: str, examples: Sequence[dict]) -> None:
    """One example per JSON line (atomically), the form ``data.replay_from`` reads."""
    from localize.tracking.atomic import atomic_file

    with atomic_file(path) as f:
        for ex in examples:
            f.write(json.dumps(ex, ensure_ascii=False) + "\n")


def read_examples(path: str) -> list[dict]:
    """The examples of a file written by :func:`write_examples` (plain JSON: nothing is executed)."""
    if not os.path.isfile(path):
        raise DataError(f"data.replay_from: '{path}' does not exist. Fix: pass files written by localize.continual "
                        f"(<sequence dir>/replay/*.jsonl), or data.replay_from=[]")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                ex = json.loads(line)
            except ValueError as e:
                raise DataError(f"{path}:{n}: not a JSON line ({e}). Fix: regenerate the file with localize.continual, "
                                f"or drop it from data.replay_from") from None
            if not isinstance(ex, dict):
                raise DataError(f"{path}:{n}: an example is a JSON object. Fix: regenerate the file, or drop it "
                                f"from data.replay_from")
            out.append(ex)
    return out


def replay_sample(paths: Sequence[str], size: float | int | None, seed: int | str) -> list[dict]:
    """``size`` examples (an int, or a fraction < 1 of them; None: all) drawn without replacement,
    seeded, from the pooled files."""
    pool = [ex for p in paths for ex in read_examples(p)]
    if size is None:
        return pool
    if isinstance(size, bool) or not isinstance(size, (int, float)) or size <= 0 or (
            isinstance(size, float) and size >= 1):
        raise DataError(f"data.replay_size={size}: a count of examples (int > 0) or a fraction in (0, 1). "
                        f"Fix: data.replay_size=50 or data.replay_size=0.25")
    n = size if isinstance(size, int) else max(1, round(size * len(pool)))
    if n > len(pool):
        raise DataError(f"data.replay_size={n} but the replay files hold {len(pool)} examples. "
                        f"Fix: data.replay_size={len(pool)} (or a fraction such as 0.5)")
    return random.Random(_REPLAY_SEED.format(seed=seed)).sample(pool, n)
